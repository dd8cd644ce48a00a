"""Which client protocol and which operation a relay path names, and errors in the route's own shape."""

from __future__ import annotations

import re
from typing import Any

from relay.media_tasks import routes as media_routes
from relay.wires import ANTHROPIC, OPENAI, error_body
from relay.wires_gemini import GEMINI
from relay.wires_rerank import COHERE

OPERATIONS = {
    "/v1/messages": "messages",
    "/v1/chat/completions": "chat/completions",
    "/v1/completions": "completions",
    "/v1/code/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/v1/moderations": "moderations",
    "/v1/responses": "responses",
    "/v1/responses/compact": "responses/compact",
    "/v1/images/generations": "images/generations",
    "/v1/images/edits": "images/edits",
    "/v1/audio/speech": "audio/speech",
    "/v1/audio/transcriptions": "audio/transcriptions",
    "/v1/audio/translations": "audio/translations",
    "/v1/rerank": "rerank",
    "/v1/v1/rerank": "rerank",  # the cohere SDK joins its own path to a base URL that already ends in /v1
    "/v2/rerank": "rerank",
    "/v1/v2/rerank": "rerank",
    "/v2/chat": "chat/completions",  # Cohere's v2 SDK (cohere.ClientV2)
    "/v2/embed": "embeddings",
}
PREFIXES = ("/v1/", "/v1beta/", "/v2/", "/mj/", "/mj-fast/", "/mj-relax/", "/mj-turbo/", "/suno/", "/kling/",
            "/jimeng/", "/pg/")
GEMINI_OPENAI_BASE = "/v1beta/openai/"  # .../v1beta/openai/chat/completions is /v1/chat/completions here

GEMINI_ACTION = re.compile(r"^/v1(?:beta)?/models/(?P<model>[^/:]+):"
                           r"(?P<action>generateContent|streamGenerateContent|countTokens|embedContent|batchEmbedContents)$")


def client_protocol(path: str) -> str:
    """The wire format the caller speaks, by path: Anthropic's under /v1/messages, Google's under /v1beta and on
    `models/{model}:generateContent`, OpenAI's elsewhere."""
    if path.startswith("/v1/messages"):
        return ANTHROPIC
    if path.startswith(GEMINI_OPENAI_BASE):
        return OPENAI
    if path in {"/v2/rerank", "/v1/v2/rerank", "/v2/chat", "/v2/embed"}:
        return COHERE
    if path.startswith("/v1beta/") or GEMINI_ACTION.match(path):
        return GEMINI
    return OPENAI


def error_for(path: str, status: int, message: str, *, request_id: str = "", **fields: Any) -> dict[str, Any]:
    """A relay error in the shape of the route's protocol: the task routes' own (Midjourney, Suno, Kling) included."""
    if media_routes.owns(path):
        return media_routes.error_shape(media_routes.protocol_of(path), status, message, request_id=request_id,
                                        **fields)
    return error_body(client_protocol(path), status, message, **fields)
