"""A fake Google Vertex AI upstream with its own OAuth token endpoint: a real HTTP server for relay tests.

``with FakeVertex(project="proj") as vx: key = vx.service_account(); ... vx.requests[-1]``

- ``POST /token``: Google's JWT-bearer grant. The assertion's RS256 signature is checked against the public key of
  the service account it names (made by ``service_account()``), and its claims (aud, scope, an hour at most).
- ``/v1/projects/{project}/locations/{region}/publishers/google/models/{model}:{method}``: Gemini's wire format
  (answered by FakeGeminiApp) for a Bearer token this fake issued; ``/v1/publishers/google/models/...`` for an
  express-mode API key in ``x-goog-api-key``.
- ``.../publishers/anthropic/models/{model}:rawPredict`` and ``:streamRawPredict``: Anthropic's Messages (answered
  by FakeAnthropicApp) with the model in the path and ``anthropic_version`` ``vertex-2023-10-16`` in the body.
- ``/v1/projects/{project}/locations/{region}/endpoints/openapi/chat/completions``: OpenAI's chat (FakeOpenAIApp)
  for partner models named ``publisher/model``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import uuid
from dataclasses import replace
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakes.anthropic_upstream import Behaviour as ClaudeBehaviour
from tests.fakes.anthropic_upstream import FakeAnthropicApp, FakeUpstream
from tests.fakes.gemini_upstream import Behaviour as GeminiBehaviour
from tests.fakes.gemini_upstream import FakeGeminiApp, gemini_error
from tests.fakes.openai_upstream import FakeOpenAIApp, RecordedRequest, Send, _send_json

MODEL_PATH = re.compile(r"^/v1/(?:projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/)?"
                        r"publishers/(?P<publisher>google|anthropic)/models/(?P<model>[^/:]+):(?P<method>\w+)$")
OPENAPI_PATH = re.compile(r"^/v1/projects/(?P<project>[^/]+)/locations/[^/]+/endpoints/openapi/(?P<operation>.+)$")
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class FakeVertexApp(FakeOpenAIApp):
    def __init__(self, *, project: str, express_key: str | None) -> None:
        super().__init__(api_key=None, prefix="")
        self.project, self.express_key = project, express_key
        self.gemini = FakeGeminiApp(api_key=None, record=False)
        self.claude = FakeAnthropicApp(api_key=None, record=False)
        self.openai = FakeOpenAIApp(api_key="openapi", record=False)  # the OpenAI-compatible endpoint
        self.public_keys: dict[str, rsa.RSAPublicKey] = {}  # client_email -> key
        self.tokens: dict[str, str] = {}  # access token -> client_email
        self.token_url = ""

    async def _dispatch(self, request: RecordedRequest, send: Send, stop: asyncio.Event) -> None:
        if request.path == "/token" and request.method == "POST":
            return await self._token(request, send)
        openapi = OPENAPI_PATH.match(request.path)
        if openapi:
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if token not in self.tokens or openapi["project"] != self.project:
                message = "Request had invalid authentication credentials."
                return await _send_json(send, 401, [gemini_error(401, message)])
            inner = replace(request, path=f"/v1/{openapi['operation']}", headers={**request.headers,
                                                                              "authorization": "Bearer openapi"})
            return await self.openai._dispatch(inner, send, stop)
        match = MODEL_PATH.match(request.path)
        if match is None or request.method != "POST":
            return await _send_json(send, 404, gemini_error(404, f"Invalid URL ({request.method} {request.path})"))
        if match["project"] is None:  # express mode: Gemini models with an API key
            if match["publisher"] != "google" or request.headers.get("x-goog-api-key") != self.express_key:
                return await _send_json(send, 401, gemini_error(401, "API key not valid."))
        else:
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if token not in self.tokens:
                message = "Request had invalid authentication credentials."
                return await _send_json(send, 401, gemini_error(401, message))
            if match["project"] != self.project:
                message = f"Permission denied on project {match['project']}"
                return await _send_json(send, 403, gemini_error(403, message))
        instances = request.body.get("instances") if isinstance(request.body, dict) else None
        if match["method"] == "predict" and instances and isinstance(instances[0], dict) and "content" in instances[0]:
            return await self._embed(send, instances, (request.body.get("parameters") or {}))
        if match["publisher"] == "google":
            inner = replace(request, path=f"/v1beta/models/{match['model']}:{match['method']}",
                            headers={k: v for k, v in request.headers.items() if k != "authorization"})
            return await self.gemini._dispatch(inner, send, stop)
        return await self._claude(request, send, stop, match["model"], match["method"])

    async def _embed(self, send: Send, instances: list[Any], parameters: dict[str, Any]) -> None:
        """Vertex AI's text embeddings: one vector per instance (its first value the text's length) and its tokens."""
        size = parameters.get("outputDimensionality") or 8
        predictions = [{"embeddings": {"values": [float(len(i["content"]))] + [0.25] * (size - 1),
                                       "statistics": {"truncated": False, "token_count": len(i["content"].split())}}}
                       for i in instances]
        await _send_json(send, 200, {"predictions": predictions, "metadata": {"billableCharacterCount": 1}})

    async def _claude(self, request: RecordedRequest, send: Send, stop: asyncio.Event, model: str,
                      method: str) -> None:
        body = request.body
        if not isinstance(body, dict) or "model" in body or body.get("anthropic_version") != VERTEX_ANTHROPIC_VERSION:
            message = "anthropic_version must be vertex-2023-10-16 and model must be in the path"
            return await _send_json(send, 400, {"type": "error", "error": {"type": "invalid_request_error",
                                                                           "message": message}})
        if method != ("streamRawPredict" if body.get("stream") else "rawPredict"):
            message = f"{method} does not match stream={body.get('stream')}"
            return await _send_json(send, 400, gemini_error(400, message))
        inner = replace(request, path="/v1/messages", body={**body, "model": model},
                        headers={"anthropic-version": "2023-06-01", "content-type": "application/json"})
        await self.claude._dispatch(inner, send, stop)

    async def _token(self, request: RecordedRequest, send: Send) -> None:
        form = dict(pair.split("=", 1) for pair in request.raw.decode().split("&") if "=" in pair)
        problem = self._assertion_problem(form)
        if problem:
            return await _send_json(send, 400, {"error": "invalid_grant", "error_description": problem})
        email = json.loads(_unb64(form["assertion"].split(".")[1]))["iss"]
        token = f"ya29.{uuid.uuid4().hex}"
        self.tokens[token] = email
        await _send_json(send, 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def _assertion_problem(self, form: dict[str, str]) -> str | None:
        if form.get("grant_type") != "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer":
            return "Invalid grant_type."
        try:
            header_b64, claims_b64, signature_b64 = form.get("assertion", "").split(".")
            header, claims = json.loads(_unb64(header_b64)), json.loads(_unb64(claims_b64))
        except ValueError:
            return "Invalid JWT."
        public_key = self.public_keys.get(claims.get("iss"))
        if header.get("alg") != "RS256" or public_key is None:
            return "Invalid JWT: unknown service account."
        try:
            public_key.verify(_unb64(signature_b64), f"{header_b64}.{claims_b64}".encode(), padding.PKCS1v15(),
                              hashes.SHA256())
        except InvalidSignature:
            return "Invalid JWT Signature."
        now = time.time()
        if claims.get("aud") != self.token_url or claims.get("scope") != SCOPE:
            return "Invalid JWT: aud or scope."
        if not claims["iat"] - 60 <= now < claims["exp"] or claims["exp"] - claims["iat"] > 3600:
            return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
        return None


class FakeVertex(FakeUpstream):
    def __init__(self, *, project: str = "proj-test", express_key: str | None = "vx-express") -> None:
        super().__init__(api_key=None)
        self.app = FakeVertexApp(project=project, express_key=express_key)

    def start(self) -> FakeVertex:
        super().start()
        self.app.token_url = f"{self.url}/token"
        return self

    def service_account(self, *, registered: bool = True, project: str | None = None) -> str:
        """A new service account's JSON key file (its public key known to the token endpoint when `registered`)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        email = f"relay-{uuid.uuid4().hex[:8]}@{project or self.app.project}.iam.gserviceaccount.com"
        if registered:
            self.app.public_keys[email] = key.public_key()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        return json.dumps({
            "type": "service_account", "project_id": project or self.app.project, "private_key_id": uuid.uuid4().hex,
            "private_key": pem, "client_email": email, "client_id": "1", "token_uri": self.app.token_url,
        }, indent=2)

    def behave_gemini(self, model: str, **fields: Any) -> None:
        self.app.gemini.behaviours[model] = GeminiBehaviour(**fields)

    def behave_claude(self, model: str, **fields: Any) -> None:
        self.app.claude.behaviours[model] = ClaudeBehaviour(**fields)

    @property
    def tokens_issued(self) -> int:
        return len(self.app.tokens)

    def reset(self) -> None:
        for app in (self.app.gemini, self.app.claude, self.app.openai):
            app.behaviours.clear()
        self.app.requests.clear()
        self.app.tokens.clear()
