"""A fake OAuth 2.0 sign-in provider speaking as GitHub, LINUX DO and an OpenID Connect server, on loopback.

``with FakeOAuth() as op: code = op.issue("github", {"id": 1, "login": "octo"}, redirect_uri)``, then the relying
party trades the code at the token endpoint and reads the profile with the token, as the real providers have it:

- GitHub: ``POST /login/oauth/access_token`` (client id and secret in the form; a bad code is HTTP 200 with
  ``{"error": "bad_verification_code"}``), ``GET /user``.
- LINUX DO: ``POST /oauth2/token`` (HTTP Basic client credentials), ``GET /api/user``.
- OpenID Connect: ``POST /oidc/token`` (HTTP Basic), ``GET /oidc/userinfo``.

A code works once, only with the redirect URI it was issued for, and only for the client it was issued to.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from typing import Any
from urllib.parse import parse_qsl

from tests.fakes.anthropic_upstream import FakeUpstream
from tests.fakes.openai_upstream import FakeOpenAIApp, RecordedRequest, Send, _send_json

CLIENTS = {"github": ("gh-client", "gh-secret"), "linuxdo": ("ld-client", "ld-secret"),
           "oidc": ("oidc-client", "oidc-secret")}
TOKEN_PATHS = {"/login/oauth/access_token": "github", "/oauth2/token": "linuxdo", "/oidc/token": "oidc"}
PROFILE_PATHS = {"/user": "github", "/api/user": "linuxdo", "/oidc/userinfo": "oidc"}


class FakeOAuthApp(FakeOpenAIApp):
    def __init__(self) -> None:
        super().__init__(api_key=None, prefix="")
        self.codes: dict[str, tuple[str, dict[str, Any], str]] = {}  # code -> (provider, profile, redirect_uri)
        self.tokens: dict[str, tuple[str, dict[str, Any]]] = {}

    async def _dispatch(self, request: RecordedRequest, send: Send, stop: asyncio.Event) -> None:
        if request.method == "POST" and request.path in TOKEN_PATHS:
            return await self._token(request, send, TOKEN_PATHS[request.path])
        if request.method == "GET" and request.path in PROFILE_PATHS:
            provider = PROFILE_PATHS[request.path]
            found = self.tokens.get(request.headers.get("authorization", "").removeprefix("Bearer "))
            if found is None or found[0] != provider:
                return await _send_json(send, 401, {"message": "Bad credentials"})
            return await _send_json(send, 200, found[1])
        await _send_json(send, 404, {"message": "Not Found"})

    async def _token(self, request: RecordedRequest, send: Send, provider: str) -> None:
        form = dict(parse_qsl(request.raw.decode()))
        client_id, secret = CLIENTS[provider]
        if provider == "github":
            given = (form.get("client_id"), form.get("client_secret"))
        else:
            basic = request.headers.get("authorization", "").removeprefix("Basic ")
            given = tuple(base64.b64decode(basic).decode().split(":", 1)) if basic else (None, None)
        if given != (client_id, secret):
            return await _send_json(send, 401, {"error": "invalid_client"})
        issued = self.codes.pop(form.get("code", ""), None)
        if issued is None or issued[0] != provider or issued[2] != form.get("redirect_uri"):
            if provider == "github":  # GitHub says so with a 200
                return await _send_json(send, 200, {"error": "bad_verification_code",
                                                    "error_description": "The code passed is incorrect or expired."})
            return await _send_json(send, 400, {"error": "invalid_grant"})
        token = secrets.token_hex(16)
        self.tokens[token] = (provider, issued[1])
        await _send_json(send, 200, {"access_token": token, "token_type": "bearer", "scope": "read:user"})


class FakeOAuth(FakeUpstream):
    def __init__(self) -> None:
        super().__init__(api_key=None)
        self.app = FakeOAuthApp()

    def issue(self, provider: str, profile: dict[str, Any], redirect_uri: str) -> str:
        """The code the provider would hand the browser after the user agreed."""
        code = secrets.token_hex(8)
        self.app.codes[code] = (provider, profile, redirect_uri)
        return code

    def reset(self) -> None:
        self.app.codes.clear()
        self.app.tokens.clear()
        self.app.requests.clear()
