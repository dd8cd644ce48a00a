"""Google Cloud service-account keys: a signed JWT traded for an OAuth access token, cached until near its expiry.

Google's OAuth 2.0 for server-to-server applications: an RS256 JWT whose claims are the account's `client_email`
(iss), the scope, the token URI (aud), `iat` and `exp` (at most an hour later), posted to the token URI as
`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`; the answer is `{"access_token", "expires_in"}`.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
LIFETIME = 3600  # seconds: the longest Google grants
REFRESH_MARGIN = 300  # a token this close to expiry is replaced before use


class CredentialsRefused(Exception):
    """The token endpoint said no (a revoked key, a deleted account); `status` is what the relay answers with."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ServiceAccount:
    client_email: str
    private_key: str
    private_key_id: str
    project_id: str
    token_uri: str


def service_account_parse(key: str) -> ServiceAccount | None:
    """The service account in a key (its JSON key file, as Google hands it out); None for a plain API key."""
    if not key.startswith("{"):
        return None
    try:
        data = json.loads(key)
    except ValueError:
        return None
    if not isinstance(data, dict) or not data.get("client_email") or not data.get("private_key"):
        return None
    return ServiceAccount(
        client_email=str(data["client_email"]), private_key=str(data["private_key"]),
        private_key_id=str(data.get("private_key_id") or ""), project_id=str(data.get("project_id") or ""),
        token_uri=str(data.get("token_uri") or DEFAULT_TOKEN_URI),
    )


@functools.lru_cache(maxsize=64)
def _signing_key(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA key")
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_assertion(account: ServiceAccount, now: int) -> str:
    """The signed JWT the token endpoint takes (RS256, an hour long)."""
    header = {"alg": "RS256", "typ": "JWT", **({"kid": account.private_key_id} if account.private_key_id else {})}
    claims = {"iss": account.client_email, "scope": SCOPE, "aud": account.token_uri, "iat": now, "exp": now + LIFETIME}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = _signing_key(account.private_key).sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def _refusal(response: httpx.Response) -> CredentialsRefused:
    try:
        data: Any = response.json()
    except ValueError:
        data = {}
    detail = data.get("error_description") or data.get("error") if isinstance(data, dict) else None
    status = 503 if response.status_code >= 500 else 401
    return CredentialsRefused(f"Google's token endpoint answered HTTP {response.status_code}: {detail or 'no reason'}",
                              status)


class AccessTokens:
    """Per process: one live token per service account, fetched once however many requests wait for it."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._locks: dict[tuple[int, str, str], asyncio.Lock] = {}

    async def token(self, client: httpx.AsyncClient, account: ServiceAccount, timeout: float) -> str:
        """A valid access token for `account`; raises CredentialsRefused or httpx.HTTPError."""
        slot = (account.client_email, account.private_key_id or account.private_key[-64:])
        cached = self._tokens.get(slot)
        if cached and cached[1] - REFRESH_MARGIN > time.time():
            return cached[0]
        # one lock per event loop: the relay's, and the loops upstream tests run in (asyncio.run in another thread)
        lock = self._locks.setdefault((id(asyncio.get_running_loop()), *slot), asyncio.Lock())
        async with lock:
            cached = self._tokens.get(slot)
            if cached and cached[1] - REFRESH_MARGIN > time.time():
                return cached[0]
            try:
                assertion = jwt_assertion(account, int(time.time()))
            except (ValueError, TypeError) as exc:
                raise CredentialsRefused("The service account's private key cannot be read.") from exc
            response = await client.post(account.token_uri, data={"grant_type": GRANT_TYPE, "assertion": assertion},
                                         timeout=timeout)
            if response.status_code != 200:
                raise _refusal(response)
            try:
                data = response.json()
                token, lifetime = str(data["access_token"]), float(data.get("expires_in") or LIFETIME)
            except (ValueError, KeyError, TypeError) as exc:
                raise CredentialsRefused("Google's token endpoint sent an unreadable answer.", 502) from exc
            self._tokens[slot] = (token, time.time() + lifetime)
            return token

    def forget(self) -> None:
        self._tokens.clear()


ACCESS_TOKENS = AccessTokens()
