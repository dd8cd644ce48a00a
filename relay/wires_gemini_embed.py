"""Gemini embeddings for Gemini clients (`models/{model}:embedContent` and `:batchEmbedContents`, what the Google
GenAI SDK's `embed_content` calls): passed through to Gemini upstreams, translated to `/v1/embeddings` for
OpenAI-compatible ones. And OpenAI's `/v1/embeddings` served by Gemini upstreams.

Gemini's embedding answers carry no token usage (a `usageMetadata`, where an upstream sends one, is read), so they
are billed on the input counted locally; OpenAI-compatible upstreams report `usage.prompt_tokens`.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

from relay import errors
from relay.protocols.untrusted import as_dict
from relay.usage import Usage, usage_from_openai
from relay.wires import OPENAI, Plain, _json
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


class OpenAIEmbeddingsViaGemini:
    """An OpenAI `/v1/embeddings` client and a Gemini upstream: the inputs as `:batchEmbedContents` requests, the
    vectors back as OpenAI's list (base64 when asked). Token-array inputs have no text to send: a 400."""

    client = OPENAI
    operation = "batchEmbedContents"

    def __init__(self, body: dict[str, Any], input_estimate: int) -> None:
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) and i for i in inputs):
            raise errors.bad_request("'input' must be a non-empty string or array of strings for this model.",
                                     param="input")
        self.inputs, self.estimate = inputs, input_estimate
        self.dimensions = body.get("dimensions")
        self.base64 = body.get("encoding_format") == "base64"
        self.model = str(body.get("model", ""))

    def request(self, model: str, stream_usage: bool) -> dict[str, Any]:
        extra = {"outputDimensionality": self.dimensions} if isinstance(self.dimensions, int) else {}
        return {"requests": [{"model": f"models/{model}", "content": {"parts": [{"text": text}]}, **extra}
                             for text in self.inputs]}

    def plain(self, raw: bytes) -> Plain | None:
        data = _json(raw)
        vectors = data.get("embeddings") if data is not None else None
        if not isinstance(vectors, list) or len(vectors) != len(self.inputs) or not all(
                isinstance(v, dict) and isinstance(v.get("values"), list) for v in vectors):
            return None
        return self.answer(vectors, _gemini_usage(data) or Usage(self.estimate, 0))

    def answer(self, vectors: list[dict[str, Any]], usage: Usage) -> Plain:
        """The vectors as OpenAI's embedding list (base64 when asked), with their usage."""
        rows = [{"object": "embedding", "index": i,
                 "embedding": _base64_floats(v["values"]) if self.base64 else v["values"]}
                for i, v in enumerate(vectors)]
        answer = {"object": "list", "data": rows, "model": self.model,
                  "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens}}
        return Plain(json.dumps(answer).encode(), usage, "")

    def stream(self) -> Any:
        raise RuntimeError("embeddings are never streamed")


def _base64_floats(values: list[Any]) -> str:
    """A vector as OpenAI's `encoding_format: base64` carries it: little-endian float32s."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


class OpenAIEmbeddingsViaVertex(OpenAIEmbeddingsViaGemini):
    """An OpenAI `/v1/embeddings` client and Vertex AI's embedding models (`text-embedding-005`,
    `gemini-embedding-001`): the inputs as `:predict` instances, each vector with its own token count."""

    operation = "predict"

    def request(self, model: str, stream_usage: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"instances": [{"content": text} for text in self.inputs]}
        if isinstance(self.dimensions, int):
            body["parameters"] = {"outputDimensionality": self.dimensions}
        return body

    def plain(self, raw: bytes) -> Plain | None:
        data = _json(raw)
        predictions = data.get("predictions") if data is not None else None
        if not isinstance(predictions, list) or len(predictions) != len(self.inputs):
            return None
        vectors = [p.get("embeddings") if isinstance(p, dict) else None for p in predictions]
        if not all(isinstance(v, dict) and isinstance(v.get("values"), list) for v in vectors):
            return None
        counted = [as_dict(v.get("statistics")).get("token_count") for v in vectors]
        tokens = sum(int(c) for c in counted if isinstance(c, (int, float)) and 0 < c < float("inf"))
        return self.answer(vectors, Usage(tokens, 0) if tokens else Usage(self.estimate, 0, estimated=True))
