"""Gemini embeddings for Gemini clients (`models/{model}:embedContent` and `:batchEmbedContents`, what the Google
GenAI SDK's `embed_content` calls): passed through to Gemini upstreams, translated to `/v1/embeddings` for
OpenAI-compatible ones.

Gemini's embedding answers carry no token usage (a `usageMetadata`, where an upstream sends one, is read), so they
are billed on the input counted locally; OpenAI-compatible upstreams report `usage.prompt_tokens`.
"""

from __future__ import annotations

import json
from typing import Any

from relay import errors
from relay.usage import Usage, usage_from_openai
from relay.wires import Plain, _json
from relay.wires_gemini import GEMINI

MAX_EMBED_REQUESTS = 2048  # what an OpenAI-compatible upstream takes in one call


def embed_requests(body: dict[str, Any], operation: str) -> list[dict[str, Any]]:
    """The one request of `embedContent`, or `batchEmbedContents`' list."""
    return [body] if operation == "embedContent" else body["requests"]


def embed_texts(body: dict[str, Any], operation: str) -> list[str]:
    """Each request's text (its parts joined), in order."""
    return ["".join(part["text"] for part in request["content"]["parts"])
            for request in embed_requests(body, operation)]


def embed_validate(body: dict[str, Any], operation: str) -> None:
    """A 400 in Google's shape for what no upstream could embed: every request needs text parts."""
    requests = [body] if operation == "embedContent" else body.get("requests")
    if not isinstance(requests, list) or not requests or len(requests) > MAX_EMBED_REQUESTS:
        raise errors.bad_request(f"requests: a non-empty array of at most {MAX_EMBED_REQUESTS} embed requests is "
                                 "required.", param="requests")
    for index, request in enumerate(requests):
        where = "content" if operation == "embedContent" else f"requests[{index}].content"
        content = request.get("content") if isinstance(request, dict) else None
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list) or not parts or not all(
                isinstance(part, dict) and isinstance(part.get("text"), str) for part in parts):
            raise errors.bad_request(f"{where}: a content with a non-empty array of text parts is required.",
                                     param=where)
        size = request.get("outputDimensionality")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 65536):
            raise errors.bad_request("outputDimensionality must be a positive whole number.",
                                     param="outputDimensionality")


def _gemini_usage(data: dict[str, Any]) -> Usage | None:
    metadata = data.get("usageMetadata")
    tokens = metadata.get("promptTokenCount") if isinstance(metadata, dict) else None
    return Usage(tokens, 0) if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0 else None


class GeminiEmbedPassThrough:
    """A Gemini client and a Gemini upstream: the body as sent, each request naming the upstream's model."""

    client = GEMINI

    def __init__(self, operation: str, body: dict[str, Any]) -> None:
        self.operation, self.client_body = operation, body

    def request(self, model: str, stream_usage: bool) -> dict[str, Any]:
        if self.operation == "embedContent":
            return dict(self.client_body, model=f"models/{model}")
        return dict(self.client_body, requests=[dict(request, model=f"models/{model}")
                                                for request in self.client_body["requests"]])

    def plain(self, raw: bytes) -> Plain | None:
        data = _json(raw)
        if data is None or not isinstance(data.get("embedding", data.get("embeddings")), (dict, list)):
            return None
        return Plain(raw, _gemini_usage(data), "")

    def stream(self) -> Any:
        raise RuntimeError("embeddings are never streamed")


class GeminiEmbedViaOpenAI:
    """A Gemini client and an OpenAI-compatible upstream: the texts as `/v1/embeddings` input, the vectors back as
    Gemini's `embedding` / `embeddings`."""

    client = GEMINI
    operation = "embeddings"

    def __init__(self, action: str, body: dict[str, Any]) -> None:
        self.action, self.texts = action, embed_texts(body, action)
        sizes = [r.get("outputDimensionality") for r in embed_requests(body, action)]
        self.dimensions = next((size for size in sizes if size), None)

    def request(self, model: str, stream_usage: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "input": self.texts, "encoding_format": "float"}
        if self.dimensions:
            body["dimensions"] = self.dimensions
        return body

    def plain(self, raw: bytes) -> Plain | None:
        data = _json(raw)
        items = data.get("data") if data is not None else None
        if not isinstance(items, list) or len(items) != len(self.texts) or not all(
                isinstance(item, dict) and isinstance(item.get("embedding"), list) for item in items):
            return None
        ordered = sorted(items, key=lambda item: item.get("index") if isinstance(item.get("index"), int) else 0)
        vectors = [{"values": item["embedding"]} for item in ordered]
        answer = {"embedding": vectors[0]} if self.action == "embedContent" else {"embeddings": vectors}
        return Plain(json.dumps(answer).encode(), usage_from_openai(data.get("usage")), "")

    def stream(self) -> Any:
        raise RuntimeError("embeddings are never streamed")
