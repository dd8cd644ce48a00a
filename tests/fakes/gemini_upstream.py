"""A fake Google Gemini (Generative Language API) upstream: a real HTTP server for relay tests and benchmarks.

In tests:   ``with FakeGemini() as up: up.behave("gemini-x", thoughts="hmm"); ... up.requests[-1].body``
Benchmarks: ``python -m tests.fakes.gemini_upstream --port 9102 --latency-ms 50 --chunks 20 --chunk-delay-ms 5``

Wire format follows /work/shared/protocols.md section 5 (generateContent, streamGenerateContent with and without
``alt=sse``, countTokens, models) under both ``/v1beta`` and ``/v1``. Server plumbing as in anthropic_upstream.py.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator

import uvicorn

from tests.fakes.anthropic_upstream import FakeUpstream
from tests.fakes.openai_upstream import (
    FakeOpenAIApp,
    RecordedRequest,
    Send,
    _dumps,
    _header_list,
    _listening_socket,
    _pause,
    _send_json,
    _split,
    _UpstreamCut,
    _uvicorn_config,
)

DEFAULT_MODELS = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash", "text-embedding-004")
# google.rpc status names per HTTP status; protocols.md section 5 "Errors".
STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ABORTED",
    429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "NOT_IMPLEMENTED", 503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
DEFAULT_MESSAGES = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: ("An internal error has occurred. Please retry or report in "
          "https://developers.generativeai.google/guide/troubleshooting"),
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
INVALID_KEY = "API key not valid. Please pass a valid API key."
MISSING_KEY = ("Method doesn't allow unregistered callers (callers without established identity). "
               "Please use API Key or other form of API consumer identity to call this API.")
ROUTE = re.compile(r"^/(?P<version>v1beta|v1)/models(?:/(?P<model>[^:]+)(?::(?P<method>\w+))?)?$")
PROMPT_BLOCK_SAFETY = [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}]


@dataclass
class Behaviour:
    """How the fake answers for one model. Delays are in seconds unless the name ends in ``_ms``."""

    content: str | None = None  # None: "Hello from <model>!" (or no text part when function_call is set)
    prompt_tokens: int = 17  # promptTokenCount; includes cached_content_tokens, as Gemini counts it
    candidates_tokens: int = 5
    thoughts_tokens: int = 0  # billed as output, not inside candidatesTokenCount
    cached_content_tokens: int = 0
    thoughts: str | None = None  # a "thought": true part first; None: a default one only if includeThoughts is set
    thought_signature: str | None = None  # put on the first function call (or text) part
    image: tuple[str, str] | None = None  # (mimeType, base64): an inlineData part after the text, when the request's
    # responseModalities include IMAGE (as an image model answers)
    function_call: dict[str, Any] | list[dict[str, Any]] | None = None  # {"name": ..., "args": {...}} or a list
    finish_reason: str = "STOP"
    block_reason: str | None = None  # prompt blocked: promptFeedback and no candidates (HTTP 200)
    status: int | None = None  # fail the request with this HTTP status and a google.rpc error body
    error_message: str | None = None
    error_status: str | None = None  # default from STATUS_NAMES
    retry_after: int | float | str | None = None  # a google.rpc.RetryInfo detail, as Gemini sends it (no header)
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers
    delay_before_headers: float = 0.0
    latency_ms: float = 0.0  # before the first stream chunk / before the JSON body
    chunks: int = 3  # pieces per text (and thought) part
    chunk_delay_ms: float = 0.0  # between stream chunks
    cut_after_chunks: int | None = None  # drop the connection after N chunks
    error_after_chunks: int | None = None  # after N chunks send a raw JSON error object (no "data:") and end
    stream_error_code: int = 503
    never_end: bool = False  # keep streaming text until the client leaves

    def error_body(self, code: int) -> dict[str, Any]:
        message = self.error_message or DEFAULT_MESSAGES.get(code, f"Fake upstream error (HTTP {code}).")
        details = None
        if self.retry_after is not None:
            details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{self.retry_after}s"}]
        return gemini_error(code, message, status=self.error_status, details=details)


def gemini_error(code: int, message: str, *, status: str | None = None,
                 details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status or STATUS_NAMES.get(code, "UNKNOWN")}
    if details:
        error["details"] = details
    return {"error": error}


def invalid_key_error() -> dict[str, Any]:
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
               {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": INVALID_KEY}]
    return gemini_error(400, INVALID_KEY, details=details)


async def _send_invalid(send: Send, message: str) -> None:
    await _send_json(send, 400, gemini_error(400, message))


class FakeGeminiApp(FakeOpenAIApp):
    """The ASGI app: FakeOpenAIApp's recording and disconnect plumbing with Gemini routes and wire format."""

    def __init__(self, *, api_key: str | None = "gemini-upstream-test", default: Behaviour | None = None,
                 models: tuple[str, ...] = DEFAULT_MODELS, record: bool = True):
        super().__init__(api_key=api_key, prefix="", models=models, record=record)
        self.default = default or Behaviour()
        self._routes = {
            "generateContent": self._generate,
            "streamGenerateContent": self._generate,
            "countTokens": self._count_tokens,
            "embedContent": self._embed,
            "batchEmbedContents": self._embed,
            "predict": self._predict,
        }

    async def _dispatch(self, request: RecordedRequest, send: Send, stop: asyncio.Event) -> None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if self.api_key is not None and key != self.api_key:
            if not key:
                return await _send_json(send, 403, gemini_error(403, MISSING_KEY))
            return await _send_json(send, 400, invalid_key_error())
        match = ROUTE.match(request.path)
        model, method = (match["model"], match["method"]) if match else (None, None)
        if match and request.method == "GET" and method is None:
            if model is None:
                return await self._models(request, send)
            if model in self.models or model in self.behaviours:
                return await _send_json(send, 200, _model_object(model))
            message = f"models/{model} is not found for API version {match['version']}"
            return await _send_json(send, 404, gemini_error(404, message))
        handler = self._routes.get(method or "")
        if handler is None or request.method != "POST":
            status = 405 if handler else 404
            message = f"Invalid URL ({request.method} {request.path})"
            return await _send_json(send, status, gemini_error(status, message))
        body = request.body
        if not isinstance(body, dict):
            return await _send_invalid(send, "Invalid JSON payload received.")
        behaviour = self.behaviour(model)
        if await _pause(stop, behaviour.delay_before_headers):
            return
        if behaviour.status is not None:
            error = behaviour.error_body(behaviour.status)
            array = method == "streamGenerateContent" and request.query.get("alt") != "sse"
            return await _send_json(send, behaviour.status, [error] if array else error, behaviour.headers)
        await handler(request, send, stop, model, behaviour)

    # ---- endpoints ----------------------------------------------------------------------------------------------

    async def _generate(self, request: RecordedRequest, send: Send, stop: asyncio.Event, model: str,
                        b: Behaviour) -> None:
        body = request.body
        problem = _contents_problem(body.get("contents"))
        if problem:
            return await _send_invalid(send, problem)
        response_id = uuid.uuid4().hex[:22]
        parts = _parts(model, b, body)
        if request.path.endswith(":streamGenerateContent"):
            chunks = _stream_chunks(model, b, parts, response_id)
            return await self._stream(send, stop, b, chunks, sse=request.query.get("alt") == "sse")
        await self._reply(send, stop, b, _response(model, b, parts, response_id, final=True))

    async def _count_tokens(self, request: RecordedRequest, send: Send, stop: asyncio.Event, model: str,
                            b: Behaviour) -> None:
        body = request.body
        contents = body.get("contents", (body.get("generateContentRequest") or {}).get("contents"))
        problem = _contents_problem(contents)
        if problem:
            return await _send_invalid(send, problem)
        await self._reply(send, stop, b, {"totalTokens": b.prompt_tokens,
                                          "promptTokensDetails": [{"modality": "TEXT", "tokenCount": b.prompt_tokens}]})

    async def _embed(self, request: RecordedRequest, send: Send, stop: asyncio.Event, model: str,
                     b: Behaviour) -> None:
        """One vector per request, its first value the text's length; a batch's requests must name this model."""
        body = request.body
        single = request.path.endswith(":embedContent")
        requests = [body] if single else body.get("requests")
        if not isinstance(requests, list) or not requests:
            return await _send_invalid(send, "* BatchEmbedContentsRequest.requests: must not be empty")
        vectors = []
        for request_body in requests:
            if not single and request_body.get("model") != f"models/{model}":
                return await _send_invalid(send, f"Model {request_body.get('model')} does not match models/{model}")
            parts = (request_body.get("content") or {}).get("parts") or []
            text = "".join(str(part.get("text", "")) for part in parts)
            if not text:
                return await _send_invalid(send, "* EmbedContentRequest.content: contents must not be empty")
            size = request_body.get("outputDimensionality") or 8
            vectors.append({"values": [float(len(text))] + [0.5] * (size - 1)})
        await self._reply(send, stop, b, {"embedding": vectors[0]} if single else {"embeddings": vectors})

    async def _predict(self, request: RecordedRequest, send: Send, stop: asyncio.Event, model: str,
                       b: Behaviour) -> None:
        """Imagen: `sampleCount` PNGs; a prompt containing "blocked" has every image filtered out, as Imagen does."""
        instances = request.body.get("instances")
        prompt = instances[0].get("prompt") if isinstance(instances, list) and instances else None
        if not isinstance(prompt, str) or not prompt:
            return await _send_invalid(send, "Prompt is required.")
        count = (request.body.get("parameters") or {}).get("sampleCount") or 1
        if not 1 <= count <= 4:
            return await _send_invalid(send, "sampleCount must be from 1 to 4.")
        if "blocked" in prompt:
            return await self._reply(send, stop, b, {})
        await self._reply(send, stop, b, {"predictions": [{"mimeType": "image/png", "bytesBase64Encoded": "iVBORw0KGgo="}
                                                          for _ in range(count)]})

    async def _models(self, request: RecordedRequest, send: Send) -> None:
        names = list(dict.fromkeys([*self.models, *self.behaviours]))
        size = int(request.query.get("pageSize") or 50)
        start = int(request.query.get("pageToken") or 0)
        result: dict[str, Any] = {"models": [_model_object(name) for name in names[start:start + size]]}
        if start + size < len(names):
            result["nextPageToken"] = str(start + size)
        await _send_json(send, 200, result)

    # ---- sending ------------------------------------------------------------------------------------------------

    async def _stream(self, send: Send, stop: asyncio.Event, b: Behaviour, frames: Iterator[dict[str, Any]], *,
                      sse: bool = True) -> None:
        """With ``alt=sse``: ``data:`` frames; without: one JSON array, written element by element."""
        content_type = "text/event-stream" if sse else "application/json; charset=UTF-8"
        headers = {"content-type": content_type, "cache-control": "no-cache", **b.headers}
        await send({"type": "http.response.start", "status": 200, "headers": _header_list(headers)})
        self.open_streams += 1
        try:
            if await _pause(stop, b.latency_ms / 1000):
                return
            delay = b.chunk_delay_ms / 1000 or (0.01 if b.never_end else 0)
            for sent, frame in enumerate(frames):
                if sent and await _pause(stop, delay) or stop.is_set():
                    return  # client gone (or server closing): stop producing
                if b.cut_after_chunks is not None and sent >= b.cut_after_chunks:
                    raise _UpstreamCut(f"cut after {sent} chunks")
                separator = b"" if sse else (b"[" if sent == 0 else b",\r\n")
                if b.error_after_chunks is not None and sent >= b.error_after_chunks:
                    # Gemini writes a mid-stream error as a pretty-printed JSON object, even in SSE mode.
                    error = json.dumps(b.error_body(b.stream_error_code), indent=2).encode()
                    tail = b"\n" if sse else b"]"
                    return await send({"type": "http.response.body", "body": separator + error + tail,
                                       "more_body": False})
                body = b"data: " + _dumps(frame) + b"\r\n\r\n" if sse else separator + _dumps(frame)
                await send({"type": "http.response.body", "body": body, "more_body": True})
                self.stream_frames_sent += 1
            await send({"type": "http.response.body", "body": b"" if sse else b"]", "more_body": False})
        finally:
            self.open_streams -= 1


def _contents_problem(contents: Any) -> str | None:
    """The INVALID_ARGUMENT message the real API gives for bad ``contents``, if any."""
    if not contents:
        return "* GenerateContentRequest.contents: contents is not specified\n"
    if not isinstance(contents, list):
        return "Invalid value at 'contents' (type.googleapis.com/google.ai.generativelanguage.v1beta.Content)"
    for index, content in enumerate(contents):
        if not isinstance(content, dict) or not content.get("parts"):
            return f"* GenerateContentRequest.contents[{index}].parts: contents.parts must not be empty.\n"
        if content.get("role") not in (None, "", "user", "model"):
            return "Please use a valid role: user, model."
    return None


def _parts(model: str, b: Behaviour, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The model's parts: thought summary, text, function calls."""
    config = body.get("generationConfig") or body.get("generation_config") or {}
    thinking = config.get("thinkingConfig") or config.get("thinking_config") or {}
    thoughts = b.thoughts
    if thoughts is None and (thinking.get("includeThoughts") or thinking.get("include_thoughts")):
        thoughts = f"Thinking about an answer from {model}."
    calls = b.function_call if isinstance(b.function_call, list) else [b.function_call] if b.function_call else []
    text = b.content if b.content is not None or calls else f"Hello from {model}!"
    parts: list[dict[str, Any]] = [{"text": thoughts, "thought": True}] if thoughts is not None else []
    answer: list[dict[str, Any]] = [{"text": text}] if text else []
    answer += [{"functionCall": {"name": call["name"], "args": call.get("args", {})}} for call in calls]
    if b.image is not None and "IMAGE" in (config.get("responseModalities") or config.get("response_modalities") or []):
        answer.append({"inlineData": {"mimeType": b.image[0], "data": b.image[1]}})
    if answer and b.thought_signature is not None:
        signed = next((i for i, part in enumerate(answer) if "functionCall" in part), 0)
        answer[signed] = {**answer[signed], "thoughtSignature": b.thought_signature}
    return parts + answer


def _usage(b: Behaviour, *, final: bool) -> dict[str, Any]:
    """usageMetadata; like the real API it leaves out zero counts. Early stream chunks carry only the prompt side."""
    usage: dict[str, Any] = {"promptTokenCount": b.prompt_tokens}
    if final:
        usage |= {"candidatesTokenCount": b.candidates_tokens, "thoughtsTokenCount": b.thoughts_tokens}
    usage |= {"cachedContentTokenCount": b.cached_content_tokens}
    usage = {key: value for key, value in usage.items() if value}
    usage["totalTokenCount"] = b.prompt_tokens + (b.candidates_tokens + b.thoughts_tokens if final else 0)
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": b.prompt_tokens}]
    if b.cached_content_tokens:
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": b.cached_content_tokens}]
    return usage


def _response(model: str, b: Behaviour, parts: list[dict[str, Any]], response_id: str, *,
              final: bool) -> dict[str, Any]:
    """One GenerateContentResponse; ``final`` adds finishReason and the full usage."""
    if b.block_reason is not None:
        return {"promptFeedback": {"blockReason": b.block_reason, "safetyRatings": PROMPT_BLOCK_SAFETY},
                "usageMetadata": _usage(b, final=False), "modelVersion": model, "responseId": response_id}
    content: dict[str, Any] = {"parts": parts, "role": "model"} if parts else {"role": "model"}
    candidate: dict[str, Any] = {"content": content}
    if final:
        candidate["finishReason"] = b.finish_reason
    candidate["index"] = 0
    return {"candidates": [candidate], "usageMetadata": _usage(b, final=final), "modelVersion": model,
            "responseId": response_id}


def _stream_chunks(model: str, b: Behaviour, parts: list[dict[str, Any]],
                   response_id: str) -> Iterator[dict[str, Any]]:
    """Text and thought parts split into new (non-cumulative) fragments, one per chunk; function calls arrive whole.
    The last chunk carries finishReason and the final usageMetadata."""
    if b.block_reason is not None:
        yield _response(model, b, [], response_id, final=True)
        return
    pieces = []
    for part in parts:
        if "text" in part:
            pieces += [{**part, "text": piece} for piece in _split(part["text"], b.chunks)]
        else:
            pieces.append(part)
    for piece in pieces if b.never_end else pieces[:-1]:
        yield _response(model, b, [piece], response_id, final=False)
    if b.never_end:
        for piece in itertools.cycle([p for p in pieces if "text" in p and not p.get("thought")] or [{"text": "."}]):
            yield _response(model, b, [piece], response_id, final=False)
    yield _response(model, b, pieces[-1:], response_id, final=True)


def _model_object(name: str) -> dict[str, Any]:
    embedding = "embedding" in name
    methods = ["embedContent", "countTextTokens"] if embedding else ["generateContent", "countTokens",
                                                                     "createCachedContent", "batchGenerateContent"]
    result = {"name": f"models/{name}", "version": "001", "displayName": name.replace("-", " ").title(),
              "description": f"Fake {name}.", "inputTokenLimit": 2048 if embedding else 1048576,
              "outputTokenLimit": 1 if embedding else 65536, "supportedGenerationMethods": methods}
    if not embedding:
        result |= {"temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2, "thinking": True}
    return result


class FakeGemini(FakeUpstream):
    """The fake Gemini upstream; ``url`` is the SDK's ``base_url`` (it appends ``/v1beta/models/...`` itself)."""

    behaviour_class = Behaviour

    def __init__(self, *, api_key: str | None = "gemini-upstream-test", host: str = "127.0.0.1", port: int = 0,
                 default: Behaviour | None = None, models: tuple[str, ...] = DEFAULT_MODELS):
        super().__init__(api_key=api_key, host=host, port=port)
        self.app = FakeGeminiApp(api_key=api_key, default=default, models=models)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Gemini upstream for benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9102, help="0 picks a free port (printed on start)")
    parser.add_argument("--api-key", default="gemini-upstream-test", help='"" accepts any key')
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--chunks", type=int, default=3)
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0)
    parser.add_argument("--content", default=None)
    parser.add_argument("--prompt-tokens", type=int, default=17)
    parser.add_argument("--candidates-tokens", type=int, default=5)
    args = parser.parse_args(argv)
    default = Behaviour(content=args.content, latency_ms=args.latency_ms, chunks=args.chunks,
                        chunk_delay_ms=args.chunk_delay_ms, prompt_tokens=args.prompt_tokens,
                        candidates_tokens=args.candidates_tokens)
    app = FakeGeminiApp(api_key=args.api_key or None, default=default, record=False)
    sock = _listening_socket(args.host, args.port)
    print(f"fake Gemini upstream listening on http://{args.host}:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(_uvicorn_config(app)).run(sockets=[sock])


if __name__ == "__main__":
    main()
