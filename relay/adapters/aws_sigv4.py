"""AWS Signature Version 4 for one request: the `Authorization` and `X-Amz-*` headers to send with it.

AWS's SigV4 steps: a canonical request (method, the path URI-encoded once more, the sorted query, the signed
headers, the payload's SHA-256), the string to sign, a key derived from the secret by date, region and service, and
the HMAC-SHA256 of the one with the other.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True)
class AwsCredentials:
    access_key: str
    secret_key: str
    region: str = ""
    session_token: str = ""


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(f"AWS4{secret_key}".encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def canonical_query(query: str) -> str:
    pairs = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in parse_qsl(query, keep_blank_values=True))
    return "&".join(f"{k}={v}" for k, v in pairs)


def sigv4_headers(*, method: str, url: str, headers: dict[str, str], body: bytes, credentials: AwsCredentials,
                  region: str, service: str, now: datetime) -> dict[str, str]:
    """The headers that sign this request (add them to `headers`, which must already hold every other header to
    sign, host excepted); `now` is UTC."""
    parts = urlsplit(url)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    added = {"x-amz-date": amz_date}
    if credentials.session_token:
        added["x-amz-security-token"] = credentials.session_token
    signed = {name.lower(): " ".join(str(value).split()) for name, value in {**headers, **added}.items()}
    signed["host"] = parts.netloc
    names = sorted(signed)
    canonical = "\n".join([
        method.upper(),
        quote(parts.path or "/", safe="/~"),  # the path as sent, encoded once more (every service but S3)
        canonical_query(parts.query),
        "".join(f"{name}:{signed[name]}\n" for name in names),
        ";".join(names),
        hashlib.sha256(body).hexdigest(),
    ])
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signature = hmac.new(signing_key(credentials.secret_key, date, region, service), to_sign.encode(),
                         hashlib.sha256).hexdigest()
    added["authorization"] = (f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
                              f"SignedHeaders={';'.join(names)}, Signature={signature}")
    return added
