"""Wires for Cohere's v2 chat and embed clients (`cohere.ClientV2`): their requests arrive translated to OpenAI's
(relay/protocols/cohere_chat.py), go to any chat upstream as OpenAI chat (through chat to Anthropic and Gemini), and
the answers go back in Cohere's shape."""

from __future__ import annotations

import json
from typing import Any

from relay.protocols.cohere_chat import (
    OpenAIToCohereStream,
    openai_chat_response_to_cohere,
    openai_embeddings_to_cohere,
)
from relay.usage import usage_from_openai
from relay.wires import OpenAIChunkStream, Plain, StreamConverter, _json, plain_from_openai_chat
from relay.wires_rerank import COHERE


class CohereChatViaOpenAI:
    client = COHERE
    operation = "chat/completions"

    def __init__(self, body: dict[str, Any]) -> None:
        self.client_body = body
        self.model = str(body.get("model", ""))

    def request(self, model: str, stream_usage: bool) -> dict[str, Any]:
        body = dict(self.client_body, model=model)
        if body.get("stream") and stream_usage:
            body["stream_options"] = {"include_usage": True}
        return body

    def plain(self, raw: bytes) -> Plain | None:
        return plain_from_openai_chat(raw, openai_chat_response_to_cohere)

    def stream(self) -> StreamConverter:
        return OpenAIChunkStream(OpenAIToCohereStream(), "finish")


class CohereEmbedViaOpenAI:
    client = COHERE
    operation = "embeddings"

    def __init__(self, body: dict[str, Any]) -> None:
        self.client_body = body
        self.texts = list(body.get("input") or [])

    def request(self, model: str, stream_usage: bool) -> dict[str, Any]:
        return dict(self.client_body, model=model)

    def plain(self, raw: bytes) -> Plain | None:
        data = _json(raw)
        if data is None or not isinstance(data.get("data"), list):
            return None
        answer = openai_embeddings_to_cohere(data, self.texts)
        return Plain(json.dumps(answer).encode(), usage_from_openai(data.get("usage")), "")

    def stream(self) -> Any:
        raise RuntimeError("embeddings are never streamed")
