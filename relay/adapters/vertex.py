"""Google Vertex AI: Gemini models (publisher `google`) and Claude models (publisher `anthropic`) in a Cloud project.

Partner and open models named `publisher/model` go to its OpenAI-compatible endpoint. Keys are service-account
JSON key files, traded for OAuth access tokens (google_credentials.py), or, for Gemini models only, Vertex AI
express-mode API keys. Upstream settings (`extras`): `region` (default "global"), `regions`
mapping model names to their own region, `project_id` (default: the service account's), `anthropic_version`.
Gemini bodies are Gemini's own; Claude bodies are Anthropic's with the model in the path and `anthropic_version`
in the body (Anthropic's Vertex client does the same).
"""

from __future__ import annotations

from typing import Any, AsyncIterator
from urllib.parse import quote

import httpx

from relay.adapters.anthropic import AnthropicAdapter
from relay.adapters.base import Call, UpstreamResponse, refusal
from relay.adapters.gemini import GeminiAdapter
from relay.adapters.openai import OpenAIAdapter
from relay.adapters.google_credentials import ACCESS_TOKENS, CredentialsRefused, service_account_parse
from relay.http import json_bytes

GLOBAL_BASE = "https://aiplatform.googleapis.com"
DEFAULT_REGION = "global"
ANTHROPIC_VERSION = "vertex-2023-10-16"


def vertex_region(call: Call) -> str:
    extras = call.upstream.extras
    regions = extras.get("regions") if isinstance(extras.get("regions"), dict) else {}
    return str(regions.get(call.model) or extras.get("region") or DEFAULT_REGION)


def vertex_base(call: Call, region: str) -> str:
    """The regional host by default (`{region}` in the provider's base URL); an operator's base URL as given."""
    base = call.upstream.base_url
    if "{region}" in base:
        return GLOBAL_BASE if region == "global" else base.replace("{region}", region)
    return base.removesuffix("/v1")


def location_url(call: Call, project: str) -> str:
    """The project's address in the model's region: `{host}/v1/projects/{project}/locations/{region}`."""
    region = vertex_region(call)
    return f"{vertex_base(call, region)}/v1/projects/{quote(project, safe='')}/locations/{region}"


def publisher_url(call: Call, publisher: str, action: str, project: str | None) -> str:
    """A model's address: in the project and region, or (express mode, project None) at the global publisher."""
    model = quote(call.model, safe="@")
    if project is None:
        return f"{vertex_base(call, vertex_region(call))}/v1/publishers/{publisher}/models/{model}:{action}"
    return f"{location_url(call, project)}/publishers/{publisher}/models/{model}:{action}"


async def bearer(client: httpx.AsyncClient, call: Call) -> tuple[str, str] | httpx.Response:
    """(access token, project) for a service-account key, or the refusal to answer with."""
    account = service_account_parse(call.key)
    if account is None:
        return refusal(401, "This Vertex AI model needs a service-account key (JSON); express-mode API keys reach "
                            "Gemini models only.")
    project = str(call.upstream.extras.get("project_id") or account.project_id)
    if not project:
        return refusal(401, "No Google Cloud project: set project_id in the upstream's settings.")
    try:
        token = await ACCESS_TOKENS.token(client, account, call.upstream.connect_timeout + 10)
    except CredentialsRefused as exc:
        return refusal(exc.status, str(exc))
    return token, project


class VertexGeminiAdapter(GeminiAdapter):
    """Gemini's wire format at Vertex AI's address."""

    async def send(self, client: httpx.AsyncClient, call: Call, content: bytes | AsyncIterator[bytes],
                   length: int | None = None) -> UpstreamResponse:
        if service_account_parse(call.key) is None:  # an express-mode API key
            url = publisher_url(call, "google", self.action(call), None)
            return await self.post(client, call, url, self.headers(call), content, length)
        auth = await bearer(client, call)
        if isinstance(auth, httpx.Response):
            return auth
        token, project = auth
        url = publisher_url(call, "google", self.action(call), project)
        headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
        return await self.post(client, call, url, headers, content, length)


class VertexAnthropicAdapter(AnthropicAdapter):
    """Anthropic's Messages format at Vertex AI's `rawPredict` / `streamRawPredict`."""

    def body(self, call: Call) -> dict[str, Any]:
        body = {k: v for k, v in call.body.items() if k != "model"}
        body.setdefault("anthropic_version", call.upstream.extras.get("anthropic_version") or ANTHROPIC_VERSION)
        return body

    async def send(self, client: httpx.AsyncClient, call: Call, content: bytes | AsyncIterator[bytes],
                   length: int | None = None) -> UpstreamResponse:
        auth = await bearer(client, call)
        if isinstance(auth, httpx.Response):
            return auth
        token, project = auth
        url = publisher_url(call, "anthropic", "streamRawPredict" if call.stream else "rawPredict", project)
        headers = {k: v for k, v in self.headers(call).items() if k not in ("x-api-key", "anthropic-version")}
        headers["authorization"] = f"Bearer {token}"
        return await self.post(client, call, url, headers, json_bytes(self.body(call)))


class VertexOpenAIAdapter(OpenAIAdapter):
    """Partner and open models (`meta/llama-...-maas`, `deepseek-ai/...`) at Vertex AI's OpenAI-compatible
    endpoint, named `publisher/model`."""

    async def send(self, client: httpx.AsyncClient, call: Call, content: bytes | AsyncIterator[bytes],
                   length: int | None = None) -> UpstreamResponse:
        auth = await bearer(client, call)
        if isinstance(auth, httpx.Response):
            return auth
        token, project = auth
        url = f"{location_url(call, project)}/endpoints/openapi/{call.operation}"
        headers = {"content-type": call.content_type, "authorization": f"Bearer {token}"}
        return await self.post(client, call, url, headers, content, length)


def vertex_adapter_for(model: str) -> GeminiAdapter | AnthropicAdapter | OpenAIAdapter:
    """Claude models are Anthropic's publisher; `publisher/model` names go to the OpenAI-compatible endpoint; every
    other model is Google's."""
    if model.lower().startswith("claude"):
        return VERTEX_ANTHROPIC
    return VERTEX_OPENAI if "/" in model else VERTEX_GEMINI


VERTEX_GEMINI = VertexGeminiAdapter()
VERTEX_ANTHROPIC = VertexAnthropicAdapter()
VERTEX_OPENAI = VertexOpenAIAdapter()
