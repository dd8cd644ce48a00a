"""Request signing for task upstreams, as pure functions: Kling's HS256 JWT and Volcengine's HMAC-SHA256 (V4)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

VOLC_REGION = "cn-north-1"
VOLC_SERVICE = "cv"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt_hs256(claims: dict, secret: str) -> str:
    """A compact JWT signed with HMAC-SHA256 (RFC 7519), header `{"alg": "HS256", "typ": "JWT"}`."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


def kling_token(access_key: str, secret_key: str, now: float | None = None) -> str:
    """Kling's bearer token: iss = access key, valid 30 minutes, from 5 seconds ago (clock skew)."""
    now = int(now if now is not None else time.time())
    return jwt_hs256({"iss": access_key, "exp": now + 1800, "nbf": now - 5}, secret_key)


def key_pair(key: str) -> tuple[str, str]:
    """An `access|secret` upstream key split in two; a key without `|` is taken as both halves' first."""
    access, _, secret = key.partition("|")
    return access.strip(), secret.strip()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _query_canonical(query: str) -> str:
    pairs = []
    for item in filter(None, query.split("&")):
        name, _, value = item.partition("=")
        pairs.append((quote(name, safe="-_.~"), quote(value, safe="-_.~")))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def volc_canonical_request(method: str, url: str, headers: dict[str, str], body_hash: str) -> tuple[str, str]:
    """The canonical request and the signed-header list: METHOD, path, sorted query, headers, names, body hash."""
    parts = urlsplit(url)
    names = sorted(headers)
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in names)
    signed = ";".join(names)
    request = "\n".join([method.upper(), parts.path or "/", _query_canonical(parts.query), canonical_headers, signed,
                         body_hash])
    return request, signed


def volc_sign(method: str, url: str, body: bytes, access_key: str, secret_key: str, *,
              now: datetime | None = None, region: str = VOLC_REGION, service: str = VOLC_SERVICE) -> dict[str, str]:
    """Headers that sign a Volcengine OpenAPI request (content-type, host, x-date, x-content-sha256 signed)."""
    now = now or datetime.now(UTC)
    x_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = x_date[:8]
    body_hash = hashlib.sha256(body).hexdigest()
    signed_headers = {"content-type": "application/json", "host": urlsplit(url).netloc, "x-content-sha256": body_hash,
                      "x-date": x_date}
    request, signed = volc_canonical_request(method, url, signed_headers, body_hash)
    scope = f"{day}/{region}/{service}/request"
    to_sign = "\n".join(["HMAC-SHA256", x_date, scope, hashlib.sha256(request.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(secret_key.encode(), day), region), service), "request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json", "Host": signed_headers["host"], "X-Date": x_date,
        "X-Content-Sha256": body_hash,
        "Authorization": f"HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}",
    }
