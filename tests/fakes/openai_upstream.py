"""A fake OpenAI-compatible upstream: a real HTTP server (plain ASGI app on uvicorn) for relay tests and benchmarks.

In tests:   ``with FakeOpenAI() as up: up.behave("gpt-4o", status=500); ... up.requests[-1].body``
Benchmarks: ``python tests/fakes/openai_upstream.py --port 9100 --latency-ms 50 --chunks 20 --chunk-delay-ms 5``

Wire format follows /work/shared/protocols.md section 1 (chat, legacy completions, embeddings, moderations, models).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import itertools
import json
import logging
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterator
from urllib.parse import parse_qsl

import uvicorn

try:
    from tests.fakes.openai_media import MediaRoutes, image_events, image_result, multipart_parse
except ImportError:  # run as a script (the benchmark's upstream)
    from openai_media import MediaRoutes, image_events, image_result, multipart_parse  # type: ignore[no-redef]

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "omni-moderation-latest")
MODERATION_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
    "self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence",
    "violence/graphic",
)
# (type, code) per status; protocols.md 1.2 (the exact strings are unverified there too).
ERROR_KINDS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass
class Behaviour:
    """How the fake answers for one model. Delays are in seconds unless the name ends in ``_ms``."""

    content: str | None = None  # None: "Hello from <model>!" (or no content when tool_calls are set)
    prompt_tokens: int = 17
    completion_tokens: int = 5  # per choice; usage reports it times the number of choices
    cached_tokens: int = 0
    reasoning_tokens: int = 0  # per choice, like completion_tokens
    reasoning_content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None  # [{"name": ..., "arguments": str | dict, "id"?: ...}]
    finish_reason: str = "stop"  # used when there are no tool calls
    status: int | None = None  # fail the request with this HTTP status and an OpenAI error body
    fail_times: int | None = None  # with status: fail only the first N requests, then answer normally (a burst)
    raw_body: bytes | None = None  # answer 200 with exactly these bytes (invalid JSON, a broken stream)
    error_message: str | None = None
    error_type: str | None = None  # default from ERROR_KINDS / "server_error"
    error_code: str | None = None
    retry_after: int | float | str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers
    delay_before_headers: float = 0.0
    latency_ms: float = 0.0  # before the first stream frame / before the JSON body
    chunks: int = 3  # content (and argument/reasoning) pieces per stream
    chunk_delay_ms: float = 0.0  # between stream frames
    cut_after_chunks: int | None = None  # drop the connection after N data frames (no [DONE])
    error_after_chunks: int | None = None  # after N data frames send data: {"error": ...} and end
    never_end: bool = False  # keep streaming content until the client leaves
    system_fingerprint: str | None = "fp_fake"

    def error_body(self, status: int, model: str) -> dict[str, Any]:
        fallback = ("server_error", "server_error") if status >= 500 else ("invalid_request_error", None)
        kind, code = ERROR_KINDS.get(status, fallback)
        message = self.error_message or f"Fake upstream error (HTTP {status}) for model {model}."
        return openai_error(message, type_=self.error_type or kind, code=self.error_code or code)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lowercased names
    raw: bytes
    body: Any  # parsed JSON, or the raw bytes when the body is not JSON

    @property
    def json(self) -> Any:
        return self.body if not isinstance(self.body, bytes) else None


class _UpstreamCut(Exception):
    """Raised inside the app to make uvicorn drop the connection mid-stream."""


class _HideCuts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _UpstreamCut))


logging.getLogger("uvicorn.error").addFilter(_HideCuts())


def openai_error(message: str, *, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _frame(obj: Any) -> bytes:
    return b"data: " + _dumps(obj) + b"\n\n"


def _split(text: str, parts: int) -> list[str]:
    """Split text into ``parts`` contiguous non-empty pieces (fewer if the text is shorter)."""
    if not text:
        return []
    parts = max(1, min(parts, len(text)))
    size, extra = divmod(len(text), parts)
    pieces, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def embedding_vector(text: str, dimensions: int = 8) -> list[float]:
    """Deterministic vector from a hash; multiples of 1/128 so float32 and float64 agree exactly."""
    digest = b""
    for block in itertools.count():
        if len(digest) >= dimensions:
            break
        digest += hashlib.sha256(f"{block}:{text}".encode()).digest()
    return [(byte - 128) / 128 for byte in digest[:dimensions]]


async def _pause(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep, waking early when the request is stopped; True if it was."""
    if seconds <= 0:
        return stop.is_set()
    if seconds <= 0.05:  # short pauses: a plain sleep is cheaper than wait_for's task
        await asyncio.sleep(seconds)
        return stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True


class FakeOpenAIApp(MediaRoutes):
    """The ASGI app; holds behaviours, recorded requests and stream counters."""

    def __init__(self, *, api_key: str | None = "sk-upstream-test", prefix: str = "/v1",
                 default: Behaviour | None = None, models: tuple[str, ...] = DEFAULT_MODELS, record: bool = True):
        self.api_key = api_key
        self.prefix = prefix.rstrip("/")
        self.default = default or Behaviour()
        self.behaviours: dict[str, Behaviour] = {}
        self.models = tuple(models)
        self.record = record
        self.requests: list[RecordedRequest] = []
        self.open_streams = 0
        self.stream_frames_sent = 0
        self._stops: set[asyncio.Event] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._routes = {
            ("POST", "/chat/completions"): self._chat,
            ("POST", "/completions"): self._completions,
            ("POST", "/embeddings"): self._embeddings,
            ("POST", "/moderations"): self._moderations,
            ("POST", "/responses"): self._responses,
            ("POST", "/responses/compact"): self._compact,
            ("POST", "/images/generations"): self._images,
            **self.media_routes(),
            ("GET", "/models"): self._models,
        }

    def behaviour(self, model: str) -> Behaviour:
        return self.behaviours.get(model, self.default)

    # the plumbing the media routes use
    pause = staticmethod(lambda stop, seconds: _pause(stop, seconds))
    header_list = staticmethod(lambda headers: _header_list(headers))
    send_missing = staticmethod(lambda send, param: _send_missing(send, param))

    def stop_all(self) -> None:
        """Wake every sleeping or streaming request so the server can shut down (thread-safe)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(lambda: [stop.set() for stop in list(self._stops)])

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self._loop = asyncio.get_running_loop()
        raw = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = self._recorded(scope, bytes(raw))
        if self.record:
            self.requests.append(request)
        stop = asyncio.Event()
        self._stops.add(stop)
        watcher = asyncio.create_task(self._watch_disconnect(receive, stop))
        try:
            await self._dispatch(request, send, stop)
        finally:
            watcher.cancel()
            self._stops.discard(stop)

    @staticmethod
    def _recorded(scope: dict[str, Any], raw: bytes) -> RecordedRequest:
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key, text = name.decode("latin-1").lower(), value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        if headers.get("content-type", "").startswith("multipart/form-data"):
            body = multipart_parse(raw, headers["content-type"])
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        return RecordedRequest(scope["method"], scope["path"], query, headers, raw, body)

    @staticmethod
    async def _watch_disconnect(receive: Receive, stop: asyncio.Event) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        stop.set()

    async def _dispatch(self, request: RecordedRequest, send: Send, stop: asyncio.Event) -> None:
        path = request.path
        route_path = path[len(self.prefix):] if path.startswith(self.prefix + "/") else None
        if route_path is not None and route_path.startswith("/models/") and request.method == "GET":
            route_path = "/models/{id}"
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            message = "Incorrect API key provided. You can find your API key at https://platform.openai.com/api-keys."
            return await _send_json(send, 401, openai_error(message, code="invalid_api_key"))
        if route_path == "/models/{id}":
            return await _send_json(send, 200, _model_object(path.rsplit("/", 1)[1]))
        handler = self._routes.get((request.method, route_path or ""))
        if handler is None:
            status = 405 if any(p == route_path for _, p in self._routes) else 404
            message = f"Invalid URL ({request.method} {path})"
            return await _send_json(send, status, openai_error(message, code="unknown_url"))
        if request.method == "GET":
            return await handler(request, send, stop, None, self.default)
        body = request.body
        if not isinstance(body, dict):
            message = "We could not parse the JSON body of your request."
            return await _send_json(send, 400, openai_error(message))
        model = body.get("model") or ("omni-moderation-latest" if route_path == "/moderations" else None)
        if not isinstance(model, str):
            return await _send_json(send, 400, openai_error("you must provide a model parameter", param="model"))
        behaviour = self.behaviour(model)
        if await _pause(stop, behaviour.delay_before_headers):
            return
        failing = behaviour.status is not None and (behaviour.fail_times is None or behaviour.fail_times > 0)
        if failing and behaviour.fail_times is not None:
            behaviour.fail_times -= 1
        if behaviour.raw_body is not None and not failing:
            kind = "text/event-stream" if body.get("stream") else "application/json"
            await send({"type": "http.response.start", "status": 200, "headers": _header_list({"content-type": kind})})
            return await send({"type": "http.response.body", "body": behaviour.raw_body, "more_body": False})
        if failing:
            headers = dict(behaviour.headers)
            if behaviour.retry_after is not None:
                headers["retry-after"] = str(behaviour.retry_after)
            return await _send_json(send, behaviour.status, behaviour.error_body(behaviour.status, model), headers)
        await handler(request, send, stop, model, behaviour)

    # ---- endpoints ----------------------------------------------------------------------------------------------

    async def _chat(self, request: RecordedRequest, send: Send, stop: asyncio.Event, model: str, b: Behaviour) -> None:
        body = request.body
        if not isinstance(body.get("messages"), list):
            return await _send_missing(send, "messages")
        n = int(body.get("n") or 1)
        content = b.content if b.content is not None or b.tool_calls else f"Hello from {model}!"
        calls = [_tool_call(call) for call in b.tool_calls or []]
        finish = "tool_calls" if calls else b.finish_reason
        base = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": model,
                "system_fingerprint": b.system_fingerprint}
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            frames = _chat_frames(base, b, n, content, calls, finish, include_usage)
            return await self._stream(send, stop, b, frames)
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
        if b.reasoning_content is not None:
            message["reasoning_content"] = b.reasoning_content
        if calls:
            message["tool_calls"] = [{"id": c["id"], "type": "function",
                                      "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]
        choices = [{"index": i, "message": message, "logprobs": None, "finish_reason": finish} for i in range(n)]
        result = {**base, "object": "chat.completion", "service_tier": "default", "choices": choices,
                  "usage": _chat_usage(b, n)}
        await self._reply(send, stop, b, result)

    async def _completions(self, request: RecordedRequest, send: Send, stop: asyncio.Event, model: str,
                           b: Behaviour) -> None:
        body = request.body
        prompt = body.get("prompt")
        if prompt is None:
            return await _send_missing(send, "prompt")
        prompts = len(prompt) if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)) else 1
        count = int(body.get("n") or 1) * prompts
        text = b.content if b.content is not None else f"Hello from {model}!"
        base = {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time()),
                "model": model, "system_fingerprint": b.system_fingerprint}
        usage = {"prompt_tokens": b.prompt_tokens, "completion_tokens": b.completion_tokens * count,
                 "total_tokens": b.prompt_tokens + b.completion_tokens * count}
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await self._stream(send, stop, b, _completion_frames(base, b, count, text, usage, include_usage))
        choices = [{"text": text, "index": i, "logprobs": None, "finish_reason": b.finish_reason} for i in range(count)]
        await self._reply(send, stop, b, {**base, "choices": choices, "usage": usage})

    async def _embeddings(self, request: RecordedRequest, send: Send, stop: asyncio.Event, model: str,
                          b: Behaviour) -> None:
        body = request.body
        inputs = body.get("input")
        if inputs is None or inputs == "" or inputs == []:
            return await _send_missing(send, "input")
        if isinstance(inputs, str) or (isinstance(inputs, list) and isinstance(inputs[0], int)):
            inputs = [inputs]  # one string or one token list
        dimensions = int(body.get("dimensions") or 8)
        data = []
        for index, item in enumerate(inputs):
            vector = embedding_vector(item if isinstance(item, str) else json.dumps(item), dimensions)
            if body.get("encoding_format") == "base64":
                vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        usage = {"prompt_tokens": b.prompt_tokens, "total_tokens": b.prompt_tokens}
        await self._reply(send, stop, b, {"object": "list", "model": model, "data": data, "usage": usage})

    async def _moderations(self, request: RecordedRequest, send: Send, stop: asyncio.Event, model: str,
                           b: Behaviour) -> None:
        inputs = request.body.get("input")
        if inputs is None:
            return await _send_missing(send, "input")
        result = {"flagged": False, "categories": dict.fromkeys(MODERATION_CATEGORIES, False),
                  "category_scores": dict.fromkeys(MODERATION_CATEGORIES, 0.0001),
                  "category_applied_input_types": {name: ["text"] for name in MODERATION_CATEGORIES}}
        results = [result] * (len(inputs) if isinstance(inputs, list) else 1)
        await self._reply(send, stop, b, {"id": f"modr-{uuid.uuid4().hex[:24]}", "model": model, "results": results})

    async def _models(self, request: RecordedRequest, send: Send, stop: asyncio.Event, model: str | None,
                      b: Behaviour) -> None:
        names = list(dict.fromkeys([*self.models, *self.behaviours]))
        await _send_json(send, 200, {"object": "list", "data": [_model_object(name) for name in names]})

    # ---- sending ------------------------------------------------------------------------------------------------

    async def _responses(self, request: RecordedRequest, send: Send, stop: asyncio.Event, model: str,
                         b: Behaviour) -> None:
        """The Responses API: a response object, or typed events ending with `response.completed`."""
        if request.body.get("input") is None:
            return await _send_missing(send, "input")
        text = b.content if b.content is not None else f"Hello from {model}!"
        usage = {"input_tokens": b.prompt_tokens, "input_tokens_details": {"cached_tokens": b.cached_tokens},
                 "output_tokens": b.completion_tokens,
                 "output_tokens_details": {"reasoning_tokens": b.reasoning_tokens},
                 "total_tokens": b.prompt_tokens + b.completion_tokens}
        item = {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}
        response = {"id": f"resp_{uuid.uuid4().hex[:16]}", "object": "response", "created_at": int(time.time()),
                    "status": "completed", "model": model, "output": [item], "usage": usage, "error": None,
                    "incomplete_details": None, "instructions": None, "parallel_tool_calls": True,
                    "tool_choice": "auto", "tools": []}
        if not request.body.get("stream"):
            return await self._reply(send, stop, b, response)
        pending = {**response, "status": "in_progress", "output": [], "usage": None}
        pieces = _split(text, b.chunks)

        def events() -> Iterator[dict[str, Any]]:
            yield {"type": "response.created", "sequence_number": 0, "response": pending}
            for i, piece in enumerate(pieces, 1):
                yield {"type": "response.output_text.delta", "sequence_number": i, "item_id": "msg_1",
                       "output_index": 0, "content_index": 0, "delta": piece, "logprobs": []}
            yield {"type": "response.completed", "sequence_number": len(pieces) + 1, "response": response}

        await self._stream(send, stop, b, events())

    async def _compact(self, request: RecordedRequest, send: Send, stop: asyncio.Event, model: str,
                       b: Behaviour) -> None:
        """A compacted conversation: the kept user messages and one opaque compaction item."""
        if request.body.get("input") is None and not request.body.get("previous_response_id"):
            return await _send_missing(send, "input")
        kept = [item for item in request.body.get("input") or [] if isinstance(item, dict) and item.get("role") == "user"]
        usage = {"input_tokens": b.prompt_tokens, "input_tokens_details": {"cached_tokens": b.cached_tokens},
                 "output_tokens": b.completion_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": b.prompt_tokens + b.completion_tokens}
        output = [*kept, {"type": "compaction", "id": "cmp_1", "encrypted_content": "gAAAA-opaque"}]
        await self._reply(send, stop, b, {"id": f"resp_{uuid.uuid4().hex[:16]}", "object": "response.compaction",
                                          "created_at": int(time.time()), "output": output, "usage": usage})

    async def _images(self, request: RecordedRequest, send: Send, stop: asyncio.Event, model: str,
                      b: Behaviour) -> None:
        """Image generation: `n` image URLs (or base64 images); GPT image models also report token usage."""
        if not request.body.get("prompt"):
            return await _send_missing(send, "prompt")
        if request.body.get("stream"):
            return await self._stream(send, stop, b, image_events("image_generation", request.body, b))
        n = int(request.body.get("n") or 1)
        result = image_result(model, n, request.body.get("response_format") == "b64_json", b)
        for item in result["data"]:
            item.setdefault("revised_prompt", request.body["prompt"])
        await self._reply(send, stop, b, result)

    async def _reply(self, send: Send, stop: asyncio.Event, b: Behaviour, result: dict[str, Any]) -> None:
        if await _pause(stop, b.latency_ms / 1000):
            return
        await _send_json(send, 200, result, b.headers)

    async def _stream(self, send: Send, stop: asyncio.Event, b: Behaviour, frames: Iterator[dict[str, Any]]) -> None:
        headers = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", **b.headers}
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
                    raise _UpstreamCut(f"cut after {sent} frames")
                if b.error_after_chunks is not None and sent >= b.error_after_chunks:
                    error = b.error_body(500, frame.get("model", ""))
                    return await send({"type": "http.response.body", "body": _frame(error), "more_body": False})
                await send({"type": "http.response.body", "body": _frame(frame), "more_body": True})
                self.stream_frames_sent += 1
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
        finally:
            self.open_streams -= 1


def _chat_frames(base: dict[str, Any], b: Behaviour, n: int, content: str | None, calls: list[dict[str, Any]],
                 finish: str, include_usage: bool) -> Iterator[dict[str, Any]]:
    """chat.completion.chunk dicts: role, reasoning, content and tool-call deltas, finish, optional usage."""
    head = {**base, "object": "chat.completion.chunk"}
    if include_usage:
        head["usage"] = None

    def chunk(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**head, "choices": [choice]}

    deltas: list[dict[str, Any]] = [{"content": None, "reasoning_content": piece}
                                    for piece in _split(b.reasoning_content or "", b.chunks)]
    deltas += [{"content": piece} for piece in _split(content or "", b.chunks)]
    for k, call in enumerate(calls):
        start = {"index": k, "id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": ""}}
        deltas.append({"tool_calls": [start]})
        deltas += [{"tool_calls": [{"index": k, "function": {"arguments": piece}}]}
                   for piece in _split(call["arguments"], b.chunks)]
    if calls and not deltas[0].keys() - {"tool_calls"}:
        deltas[0] = {"role": "assistant", "content": None, "refusal": None, **deltas[0]}  # as OpenAI sends it
    else:
        deltas.insert(0, {"role": "assistant", "content": "", "refusal": None})
    for delta in deltas:  # n>1: choices interleaved, one per chunk
        for index in range(n):
            yield chunk(index, delta)
    if b.never_end:
        for piece in itertools.cycle(_split(content or "", b.chunks) or ["."]):
            yield chunk(0, {"content": piece})
    for index in range(n):
        yield chunk(index, {}, finish)
    if include_usage:
        yield {**head, "choices": [], "usage": _chat_usage(b, n)}


def _completion_frames(base: dict[str, Any], b: Behaviour, count: int, text: str, usage: dict[str, int],
                       include_usage: bool) -> Iterator[dict[str, Any]]:
    head = {**base, "usage": None} if include_usage else base

    def chunk(index: int, piece: str, finish_reason: str | None = None) -> dict[str, Any]:
        return {**head, "choices": [{"text": piece, "index": index, "logprobs": None, "finish_reason": finish_reason}]}

    for piece in _split(text, b.chunks):
        for index in range(count):
            yield chunk(index, piece)
    if b.never_end:
        for piece in itertools.cycle(_split(text, b.chunks) or ["."]):
            yield chunk(0, piece)
    for index in range(count):
        yield chunk(index, "", b.finish_reason)
    if include_usage:
        yield {**head, "choices": [], "usage": usage}


def _chat_usage(b: Behaviour, n: int) -> dict[str, Any]:
    completion = b.completion_tokens * n
    return {"prompt_tokens": b.prompt_tokens, "completion_tokens": completion,
            "total_tokens": b.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": b.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": b.reasoning_tokens * n, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    arguments = call.get("arguments", "{}")
    return {"id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}", "name": call["name"],
            "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments)}


def _model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 1700000000, "owned_by": "fake-openai"}


def _header_list(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    headers = {"x-request-id": f"req_{uuid.uuid4().hex}", **headers}
    return [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in headers.items()]


async def _send_json(send: Send, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
    payload = _dumps(obj)
    all_headers = {"content-type": "application/json", "content-length": str(len(payload)), **(headers or {})}
    await send({"type": "http.response.start", "status": status, "headers": _header_list(all_headers)})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


async def _send_missing(send: Send, param: str) -> None:
    error = openai_error(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    await _send_json(send, 400, error)


def _listening_socket(host: str, port: int) -> socket.socket:
    # proto must be IPPROTO_TCP: asyncio only sets TCP_NODELAY on such sockets, and without it Nagle plus delayed
    # ACKs hold every keep-alive response body back by 40 ms (headers and body are separate writes).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _uvicorn_config(app: FakeOpenAIApp, **extra: Any) -> uvicorn.Config:
    # keep-alive longer than clients' pool expiry, so benchmarks never race a server-side idle close
    return uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False, proxy_headers=False,
                          timeout_keep_alive=75, timeout_graceful_shutdown=2, **extra)


class FakeOpenAI:
    """The fake upstream served by uvicorn in a daemon thread; use it as a context manager."""

    def __init__(self, *, api_key: str | None = "sk-upstream-test", prefix: str = "/v1", host: str = "127.0.0.1",
                 port: int = 0, default: Behaviour | None = None, models: tuple[str, ...] = DEFAULT_MODELS):
        self.app = FakeOpenAIApp(api_key=api_key, prefix=prefix, default=default, models=models)
        self.api_key = api_key
        self.host, self.port = host, port
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return self.url + self.app.prefix

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.app.requests

    @property
    def open_streams(self) -> int:
        return self.app.open_streams

    @property
    def stream_frames_sent(self) -> int:
        return self.app.stream_frames_sent

    def behave(self, model: str = "*", **fields: Any) -> Behaviour:
        """Set how ``model`` is answered (fields start from Behaviour's defaults); "*" sets the default."""
        behaviour = Behaviour(**fields)
        if model == "*":
            self.app.default = behaviour
        else:
            self.app.behaviours[model] = behaviour
        return behaviour

    def reset(self) -> None:
        self.app.behaviours.clear()
        self.app.default = Behaviour()
        self.app.requests.clear()

    def wait_streams_closed(self, timeout: float = 2.0) -> bool:
        """Wait until no stream is being produced; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.app.open_streams and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.app.open_streams == 0

    def start(self) -> FakeOpenAI:
        sock = _listening_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        self.url = f"http://{self.host}:{self.port}"
        self._server = uvicorn.Server(_uvicorn_config(self.app, log_config=None))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True,
                                        name=f"fake-openai-{self.port}")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError(f"fake OpenAI upstream did not start on {self.url}")
            time.sleep(0.002)
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self.app.stop_all()
        self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible upstream for benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100, help="0 picks a free port (printed on start)")
    parser.add_argument("--api-key", default="sk-upstream-test", help='"" accepts any key')
    parser.add_argument("--prefix", default="/v1")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--chunks", type=int, default=3)
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0)
    parser.add_argument("--content", default=None)
    parser.add_argument("--prompt-tokens", type=int, default=17)
    parser.add_argument("--completion-tokens", type=int, default=5)
    args = parser.parse_args(argv)
    default = Behaviour(content=args.content, latency_ms=args.latency_ms, chunks=args.chunks,
                        chunk_delay_ms=args.chunk_delay_ms, prompt_tokens=args.prompt_tokens,
                        completion_tokens=args.completion_tokens)
    app = FakeOpenAIApp(api_key=args.api_key or None, prefix=args.prefix, default=default, record=False)
    sock = _listening_socket(args.host, args.port)
    print(f"fake OpenAI upstream listening on http://{args.host}:{sock.getsockname()[1]}{app.prefix}", flush=True)
    uvicorn.Server(_uvicorn_config(app)).run(sockets=[sock])


if __name__ == "__main__":
    main()
