"""A fake Anthropic Messages upstream: a real HTTP server (plain ASGI app on uvicorn) for relay tests and benchmarks.

In tests:   ``with FakeAnthropic() as up: up.behave("claude-x", status=529); ... up.requests[-1].body``
Benchmarks: ``python -m tests.fakes.anthropic_upstream --port 9101 --latency-ms 50 --chunks 20 --chunk-delay-ms 5``

Wire format follows /work/shared/protocols.md section 4 (messages, count_tokens, models). The server and ASGI plumbing
(free port, uvicorn thread, request recording, disconnect handling) is FakeOpenAI's, inherited; ``FakeUpstream`` below
is the small piece of it that gemini_upstream.py shares too.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator, Self

import uvicorn

from tests.fakes.openai_upstream import (
    FakeOpenAI,
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

DEFAULT_MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")
# error.type per status; protocols.md section 4 "Errors".
ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
    504: "timeout_error", 529: "overloaded_error",
}
STREAM_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}


@dataclass
class Behaviour:
    """How the fake answers for one model. Delays are in seconds unless the name ends in ``_ms``."""

    content: str | None = None  # None: "Hello from <model>!" (or no text block when tool_use is set)
    input_tokens: int = 17  # input neither read from nor written to the cache
    output_tokens: int = 5  # thinking included, as Anthropic counts it
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    usage_in_delta: bool = False  # message_delta repeats input and cache counts, as newer responses do
    thinking: str | None = None  # thinking block before the text; None: a default one only if the request enables it
    signature: str = "fake-thinking-signature"
    tool_use: list[dict[str, Any]] | None = None  # [{"name": ..., "input": {...}, "id"?: ...}] -> stop_reason tool_use
    stop_reason: str = "end_turn"  # used when there is no tool use
    stop_sequence: str | None = None  # reported with stop_reason "stop_sequence" (default: the request's first)
    status: int | None = None  # fail the request with this HTTP status and an Anthropic error body
    error_message: str | None = None
    error_type: str | None = None  # default from ERROR_TYPES, else invalid_request_error / api_error (5xx)
    retry_after: int | float | str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers
    delay_before_headers: float = 0.0
    latency_ms: float = 0.0  # before the first stream event / before the JSON body
    chunks: int = 3  # delta pieces per content block
    chunk_delay_ms: float = 0.0  # between stream events
    cut_after_chunks: int | None = None  # drop the connection after N events (ping included; no message_stop)
    error_event_after_chunks: int | None = None  # after N events send `event: error` (stream_error_type) and end
    error_after_chunks: int | None = None  # the same, under the name the other fakes use
    stream_error_type: str = "overloaded_error"
    never_end: bool = False  # keep streaming text deltas until the client leaves

    def error_body(self, status: int) -> dict[str, Any]:
        fallback = "api_error" if status >= 500 else "invalid_request_error"
        type_ = self.error_type or ERROR_TYPES.get(status, fallback)
        message = self.error_message or ("Overloaded" if status == 529 else f"Fake upstream error (HTTP {status}).")
        return anthropic_error(message, type_=type_)


def anthropic_error(message: str, *, type_: str = "invalid_request_error") -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}, "request_id": _request_id()}


def _request_id() -> str:
    return f"req_{uuid.uuid4().hex[:24]}"


def _event(obj: dict[str, Any]) -> bytes:
    return b"event: " + obj["type"].encode() + b"\ndata: " + _dumps(obj) + b"\n\n"


async def _send_error(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    await _send_json(send, status, body, {"request-id": body["request_id"], **(headers or {})})


async def _send_invalid(send: Send, message: str) -> None:
    await _send_error(send, 400, anthropic_error(message))


class FakeAnthropicApp(FakeOpenAIApp):
    """The ASGI app: FakeOpenAIApp's recording and disconnect plumbing with Anthropic routes and wire format."""

    def __init__(self, *, api_key: str | None = "sk-ant-upstream-test", default: Behaviour | None = None,
                 models: tuple[str, ...] = DEFAULT_MODELS, record: bool = True):
        super().__init__(api_key=api_key, prefix="", models=models, record=record)
        self.default = default or Behaviour()
        self._routes = {
            ("POST", "/v1/messages"): self._messages,
            ("POST", "/v1/messages/count_tokens"): self._count_tokens,
            ("GET", "/v1/models"): self._models,
        }

    async def _dispatch(self, request: RecordedRequest, send: Send, stop: asyncio.Event) -> None:
        path = request.path
        route_path = "/v1/models/{id}" if request.method == "GET" and path.startswith("/v1/models/") else path
        headers = request.headers
        key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ") or None
        if self.api_key is not None and key != self.api_key:
            message = "invalid x-api-key" if key else "x-api-key header is required"
            return await _send_error(send, 401, anthropic_error(message, type_="authentication_error"))
        if not headers.get("anthropic-version"):  # the real API answers 400 here, not 401
            return await _send_invalid(send, "anthropic-version: header is required")
        if route_path == "/v1/models/{id}":
            return await _send_json(send, 200, _model_object(path.rsplit("/", 1)[1]))
        handler = self._routes.get((request.method, route_path))
        if handler is None:
            status = 405 if any(p == route_path for _, p in self._routes) else 404
            error_type = "not_found_error" if status == 404 else "invalid_request_error"
            message = "Not Found" if status == 404 else f"Method Not Allowed ({request.method} {path})"
            return await _send_error(send, status, anthropic_error(message, type_=error_type))
        if request.method == "GET":
            return await handler(request, send, stop, None, self.default)
        body = request.body
        if not isinstance(body, dict):
            return await _send_invalid(send, "There was an issue with the format of your request: invalid JSON body")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return await _send_invalid(send, "model: Field required")
        behaviour = self.behaviour(model)
        if await _pause(stop, behaviour.delay_before_headers):
            return
        if behaviour.status is not None:
            extra = dict(behaviour.headers)
            if behaviour.retry_after is not None:
                extra["retry-after"] = str(behaviour.retry_after)
            return await _send_error(send, behaviour.status, behaviour.error_body(behaviour.status), extra)
        await handler(request, send, stop, model, behaviour)

    # ---- endpoints ----------------------------------------------------------------------------------------------

    async def _messages(self, request: RecordedRequest, send: Send, stop: asyncio.Event, model: str,
                        b: Behaviour) -> None:
        body = request.body
        problem = _messages_problem(body, needs_max_tokens=True)
        if problem:
            return await _send_invalid(send, problem)
        message = _message(model, b, body)
        if body.get("stream"):
            return await self._stream(send, stop, b, _message_events(message, b))
        await self._reply(send, stop, b, message)

    async def _count_tokens(self, request: RecordedRequest, send: Send, stop: asyncio.Event, model: str,
                            b: Behaviour) -> None:
        problem = _messages_problem(request.body, needs_max_tokens=False)
        if problem:
            return await _send_invalid(send, problem)
        await self._reply(send, stop, b, {"input_tokens": b.input_tokens})

    async def _models(self, request: RecordedRequest, send: Send, stop: asyncio.Event, model: str | None,
                      b: Behaviour) -> None:
        names = list(dict.fromkeys([*self.models, *self.behaviours]))
        data = [_model_object(name) for name in names]
        await _send_json(send, 200, {"data": data, "has_more": False, "first_id": names[0] if names else None,
                                     "last_id": names[-1] if names else None})

    # ---- sending ------------------------------------------------------------------------------------------------

    async def _reply(self, send: Send, stop: asyncio.Event, b: Behaviour, result: dict[str, Any]) -> None:
        if await _pause(stop, b.latency_ms / 1000):
            return
        await _send_json(send, 200, result, {"request-id": _request_id(), **b.headers})

    async def _stream(self, send: Send, stop: asyncio.Event, b: Behaviour, frames: Iterator[dict[str, Any]]) -> None:
        headers = {**STREAM_HEADERS, "request-id": _request_id(), **b.headers}
        await send({"type": "http.response.start", "status": 200, "headers": _header_list(headers)})
        self.open_streams += 1
        error_after = b.error_event_after_chunks if b.error_event_after_chunks is not None else b.error_after_chunks
        try:
            if await _pause(stop, b.latency_ms / 1000):
                return
            delay = b.chunk_delay_ms / 1000 or (0.01 if b.never_end else 0)
            for sent, event in enumerate(frames):
                if sent and await _pause(stop, delay) or stop.is_set():
                    return  # client gone (or server closing): stop producing
                if b.cut_after_chunks is not None and sent >= b.cut_after_chunks:
                    raise _UpstreamCut(f"cut after {sent} events")
                if error_after is not None and sent >= error_after:
                    error = {"type": "error", "error": {"type": b.stream_error_type,
                                                        "message": b.error_message or "Overloaded"}}
                    return await send({"type": "http.response.body", "body": _event(error), "more_body": False})
                await send({"type": "http.response.body", "body": _event(event), "more_body": True})
                self.stream_frames_sent += 1
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.open_streams -= 1


def _messages_problem(body: dict[str, Any], *, needs_max_tokens: bool) -> str | None:
    """The invalid_request_error message the real API gives for the first problem in the body, if any."""
    if needs_max_tokens:
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            return "max_tokens: Field required"
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            return "max_tokens: Input should be a valid integer greater than or equal to 1"
    messages = body.get("messages")
    if messages is None:
        return "messages: Field required"
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{index}.role: Input should be 'user' or 'assistant'"
        if not isinstance(message.get("content"), (str, list)):
            return f"messages.{index}.content: Field required"
    temperature = body.get("temperature")
    if isinstance(temperature, (int, float)) and not 0 <= temperature <= 1:
        return "temperature: range: 0..1"
    thinking = body.get("thinking") or {}
    if needs_max_tokens and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if budget >= body["max_tokens"]:
            return "`max_tokens` must be greater than `thinking.budget_tokens`."
    return None


def _message(model: str, b: Behaviour, body: dict[str, Any]) -> dict[str, Any]:
    """The non-streaming message object; the stream events are derived from it."""
    content: list[dict[str, Any]] = []
    thinking = b.thinking
    if thinking is None and (body.get("thinking") or {}).get("type") in ("enabled", "adaptive"):
        thinking = f"Thinking about an answer from {model}."
    if thinking is not None:
        content.append({"type": "thinking", "thinking": thinking, "signature": b.signature})
    text = b.content if b.content is not None or b.tool_use else f"Hello from {model}!"
    if text is not None:
        content.append({"type": "text", "text": text})
    for call in b.tool_use or []:
        content.append({"type": "tool_use", "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                        "name": call["name"], "input": call.get("input", {})})
    stop_reason = "tool_use" if b.tool_use else b.stop_reason
    stop_sequence = None
    if stop_reason == "stop_sequence":
        stop_sequence = b.stop_sequence or next(iter(body.get("stop_sequences") or []), None)
    return {"id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop_reason, "stop_sequence": stop_sequence, "usage": _usage(b)}


def _usage(b: Behaviour) -> dict[str, Any]:
    return {"input_tokens": b.input_tokens, "output_tokens": b.output_tokens,
            "cache_creation_input_tokens": b.cache_creation_input_tokens,
            "cache_read_input_tokens": b.cache_read_input_tokens,
            "cache_creation": {"ephemeral_5m_input_tokens": b.cache_creation_input_tokens,
                               "ephemeral_1h_input_tokens": 0},
            "service_tier": "standard"}


def _message_events(message: dict[str, Any], b: Behaviour) -> Iterator[dict[str, Any]]:
    """Stream events in the order of protocols.md section 4: start, blocks (ping after the first block start),
    message_delta with cumulative usage, message_stop."""
    usage = message["usage"]
    start_usage = {**usage, "output_tokens": 1}
    yield {"type": "message_start", "message": {**message, "content": [], "stop_reason": None, "stop_sequence": None,
                                                "usage": start_usage}}
    for index, block in enumerate(message["content"]):
        opening = {**block, "input": {}} if block["type"] == "tool_use" else {**block, block["type"]: ""}
        opening.pop("signature", None)
        yield {"type": "content_block_start", "index": index, "content_block": opening}
        if index == 0:
            yield {"type": "ping"}
        for delta in _block_deltas(block, b.chunks):
            yield {"type": "content_block_delta", "index": index, "delta": delta}
        if b.never_end and block["type"] == "text":
            for piece in itertools.cycle(_split(block["text"], b.chunks) or ["."]):
                yield {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}
        yield {"type": "content_block_stop", "index": index}
    delta_usage = {"output_tokens": usage["output_tokens"]}
    if b.usage_in_delta:
        delta_usage = {key: usage[key] for key in ("input_tokens", "cache_creation_input_tokens",
                                                   "cache_read_input_tokens", "output_tokens")}
    yield {"type": "message_delta", "delta": {"stop_reason": message["stop_reason"],
                                              "stop_sequence": message["stop_sequence"]}, "usage": delta_usage}
    yield {"type": "message_stop"}


def _block_deltas(block: dict[str, Any], chunks: int) -> list[dict[str, Any]]:
    if block["type"] == "thinking":
        deltas = [{"type": "thinking_delta", "thinking": piece} for piece in _split(block["thinking"], chunks)]
        return [*deltas, {"type": "signature_delta", "signature": block["signature"]}]
    if block["type"] == "tool_use":  # the API's first fragment is often empty
        pieces = ["", *_split(json.dumps(block["input"]), chunks)]
        return [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]
    return [{"type": "text_delta", "text": piece} for piece in _split(block["text"], chunks)]


def _model_object(name: str) -> dict[str, Any]:
    display = name.replace("-", " ").title()
    return {"type": "model", "id": name, "display_name": display, "created_at": "2025-09-29T00:00:00Z",
            "lifecycle": "active", "max_input_tokens": 200000, "max_tokens": 64000}


class FakeUpstream(FakeOpenAI):
    """FakeOpenAI's server (free port, uvicorn in a daemon thread, context manager) around another protocol's app.

    Shared with gemini_upstream.py. Subclasses set ``behaviour_class`` and replace ``self.app`` in ``__init__``.
    """

    behaviour_class: type = Behaviour

    def behave(self, model: str = "*", **fields: Any) -> Any:
        """Set how ``model`` is answered (fields start from the Behaviour defaults); "*" sets the default."""
        behaviour = self.behaviour_class(**fields)
        if model == "*":
            self.app.default = behaviour
        else:
            self.app.behaviours[model] = behaviour
        return behaviour

    def reset(self) -> None:
        self.app.behaviours.clear()
        self.app.default = self.behaviour_class()
        self.app.requests.clear()

    def __enter__(self) -> Self:
        self.start()
        return self


class FakeAnthropic(FakeUpstream):
    """The fake Anthropic upstream; ``url`` is the SDK's ``base_url`` (it appends ``/v1/messages`` itself)."""

    behaviour_class = Behaviour

    def __init__(self, *, api_key: str | None = "sk-ant-upstream-test", host: str = "127.0.0.1", port: int = 0,
                 default: Behaviour | None = None, models: tuple[str, ...] = DEFAULT_MODELS):
        super().__init__(api_key=api_key, host=host, port=port)
        self.app = FakeAnthropicApp(api_key=api_key, default=default, models=models)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Anthropic Messages upstream for benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9101, help="0 picks a free port (printed on start)")
    parser.add_argument("--api-key", default="sk-ant-upstream-test", help='"" accepts any key')
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--chunks", type=int, default=3)
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0)
    parser.add_argument("--content", default=None)
    parser.add_argument("--input-tokens", type=int, default=17)
    parser.add_argument("--output-tokens", type=int, default=5)
    args = parser.parse_args(argv)
    default = Behaviour(content=args.content, latency_ms=args.latency_ms, chunks=args.chunks,
                        chunk_delay_ms=args.chunk_delay_ms, input_tokens=args.input_tokens,
                        output_tokens=args.output_tokens)
    app = FakeAnthropicApp(api_key=args.api_key or None, default=default, record=False)
    sock = _listening_socket(args.host, args.port)
    print(f"fake Anthropic upstream listening on http://{args.host}:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(_uvicorn_config(app)).run(sockets=[sock])


if __name__ == "__main__":
    main()
