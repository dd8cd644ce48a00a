"""Wires: how one client protocol is carried over one upstream family.

A wire turns the client's request into the upstream's, and the upstream's answer (plain or streamed) back into the
client's protocol, reading usage on the way. When both sides speak the same protocol the bytes pass through
untouched. Billing, failover and settlement never look at protocols: they see only `Usage` and produced text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from relay import jsonio
from relay.protocols.anthropic_request import anthropic_request_to_openai_chat, openai_chat_to_anthropic
from relay.protocols.anthropic_response import (
    anthropic_error_body, anthropic_to_openai_chat_response, openai_chat_response_to_anthropic,
    token_usage_from_anthropic,
)
from relay.protocols.anthropic_stream import AnthropicToOpenAIStream, OpenAIToAnthropicStream
from relay.protocols.gemini_response import gemini_error_body
from relay.protocols.openai_stream import StreamMeter
from relay.protocols.sse import frame_parse
from relay.protocols.untrusted import as_dict, as_list
from relay.usage import Usage, usage_from_openai, usage_from_responses

OPENAI, ANTHROPIC = "openai", "anthropic"


@dataclass
class Plain:
    body: bytes
    usage: Usage | None
    text: str  # what was produced, to estimate usage when the upstream gave none
    content_type: bytes | None = b"application/json"  # None: the upstream's, as it sent it


class StreamConverter(Protocol):
    usage: Usage | None
    text: str
    error: str
    complete: bool

    def feed(self, frame: bytes) -> list[bytes]: ...

    def finish(self) -> list[bytes]: ...


def error_body(protocol: str, status: int, message: str, *, type: str = "", code: str | None = None,
               param: str | None = None) -> dict:
    """A relay error in the client protocol's own shape."""
    if protocol == ANTHROPIC:
        return anthropic_error_body(status, message)
    if protocol == "gemini":
        return gemini_error_body(status, message)
    if protocol == "cohere":
        return {"message": message}
    return {"error": {"message": message, "type": type or "invalid_request_error", "param": param, "code": code}}


def _json(raw: bytes) -> dict[str, Any] | None:
    try:
        data = jsonio.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _openai_text(data: dict[str, Any]) -> str:
    produced = ""
    for choice in as_list(data.get("choices")):
        if isinstance(choice, dict):
            message = as_dict(choice.get("message"))
            produced += str(message.get("content") or "") + str(message.get("reasoning_content") or "")
            produced += str(choice.get("text") or "")
    return produced


def plain_from_openai_chat(raw: bytes, convert: Any) -> Plain | None:
    """An OpenAI chat.completion converted to the client's protocol by `convert(data)`; usage read from OpenAI's."""
    data = _json(raw)
    if data is None or "choices" not in data:
        return None
    return Plain(json.dumps(convert(data), ensure_ascii=False).encode(), usage_from_openai(data.get("usage")),
                 _openai_text(data))


def _anthropic_text(data: dict[str, Any]) -> str:
    parts = []
    for block in as_list(data.get("content")):
        if isinstance(block, dict):
            parts.append(str(block.get("text") or block.get("thinking") or ""))
            if block.get("type") == "tool_use":
                parts.append(json.dumps(block.get("input") or {}))
    return "".join(parts)


# --- OpenAI client --------------------------------------------------------------------------------------------

class _MeterStream:
    """An OpenAI stream passed through; the meter reads usage and text on the side."""

    def __init__(self, client_wants_usage: bool) -> None:
        self.meter = StreamMeter(client_wants_usage=client_wants_usage)

    def feed(self, frame: bytes) -> list[bytes]:
        out = self.meter.frame(frame)
        return [out] if out is not None else []

    def finish(self) -> list[bytes]:
        return []

    usage = property(lambda self: self.meter.usage)
    text = property(lambda self: self.meter.text)
    error = property(lambda self: self.meter.error)
    complete = property(lambda self: self.meter.done or self.meter.finished)


class OpenAIPassThrough:
    client = OPENAI

    def __init__(self, operation: str, body: dict[str, Any]) -> None:
        self.operation, self.client_body = operation, body
        options = body.get("stream_options")
        self.client_wants_usage = isinstance(options, dict) and bool(options.get("include_usage"))

    def request(self, model: str, stream_usage: bool) -> dict[str, Any]:
        body = dict(self.client_body, model=model)
        if body.get("stream") and stream_usage and self.operation in {"chat/completions", "completions"}:
            options = body.get("stream_options") if isinstance(body.get("stream_options"), dict) else {}
            body["stream_options"] = {**options, "include_usage": True}
        return body

    def plain(self, raw: bytes) -> Plain | None:
        data = _json(raw)
        if data is None:
            return None
        usage = data.get("usage")
        return Plain(raw, usage_from_openai(usage) or usage_from_responses(usage), _openai_text(data))

    def stream(self) -> StreamConverter:
        return _MeterStream(self.client_wants_usage)


class _AnthropicToOpenAI:
    def __init__(self, model: str, include_usage: bool) -> None:
        self.converter = AnthropicToOpenAIStream(model, include_usage)

    def feed(self, frame: bytes) -> list[bytes]:
        parsed = frame_parse(frame)
        data = _json(parsed.data.encode()) if parsed.data else None
        return self.converter.feed(parsed.event, data) if data is not None else []

    def finish(self) -> list[bytes]:
        return self.converter.finish()

    usage = property(lambda self: self.converter.usage.as_usage() if self.converter.usage else None)
    text = property(lambda self: self.converter.text)
    error = property(lambda self: self.converter.error or "")
    complete = property(lambda self: self.converter.complete)


class OpenAIChatViaAnthropic:
    """An OpenAI chat client served by an Anthropic upstream."""

    client = OPENAI
    operation = "messages"

    def __init__(self, body: dict[str, Any], default_max_tokens: int) -> None:
        self.client_body, self.default_max_tokens = body, default_max_tokens
        options = body.get("stream_options")
        self.client_wants_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        self.model = str(body.get("model", ""))

    def request(self, model: str, stream_usage: bool) -> dict[str, Any]:
        return openai_chat_to_anthropic(dict(self.client_body, model=model),
                                        default_max_tokens=self.default_max_tokens)

    def plain(self, raw: bytes) -> Plain | None:
        data = _json(raw)
        if data is None or data.get("type") != "message":
            return None
        converted = anthropic_to_openai_chat_response(data, model=self.model)
        usage = token_usage_from_anthropic(data.get("usage"))
        return Plain(json.dumps(converted, ensure_ascii=False).encode(), usage.as_usage() if usage else None,
                     _anthropic_text(data))

    def stream(self) -> StreamConverter:
        return _AnthropicToOpenAI(self.model, self.client_wants_usage)


# --- Anthropic client -----------------------------------------------------------------------------------------

class PassThroughMeter:
    """A stream passed to the client untouched (keep-alive comments aside); subclasses read, in `observe`, what
    billing needs from each frame's event name and JSON data."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.parts: list[str] = []
        self.error = ""
        self.complete = False

    def feed(self, frame: bytes) -> list[bytes]:
        parsed = frame_parse(frame)
        if parsed.is_comment_only:
            return []
        self.observe(parsed.event, _json(parsed.data.encode()) if parsed.data else None, frame)
        return [frame]

    def observe(self, event: str, data: dict[str, Any] | None, frame: bytes) -> None:
        raise NotImplementedError

    def finish(self) -> list[bytes]:
        return []

    @property
    def text(self) -> str:
        return "".join(self.parts)


class _AnthropicMeter(PassThroughMeter):
    """Usage from message_start and the last (cumulative) message_delta."""

    def __init__(self) -> None:
        super().__init__()
        self._input: dict[str, Any] = {}
        self._output: dict[str, Any] = {}

    def observe(self, event: str, data: dict[str, Any] | None, frame: bytes) -> None:
        data = data or {}
        kind = event or str(data.get("type", ""))
        if kind == "message_start":
            self._input = dict((data.get("message") or {}).get("usage") or {})
        elif kind == "message_delta":
            self._output = dict(data.get("usage") or {})
        elif kind == "message_stop":
            self.complete = True
        elif kind == "error":
            err = data.get("error")
            self.error = str(err.get("message") if isinstance(err, dict) else err or "upstream error")
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            self.parts.append(str(delta.get("text") or delta.get("thinking") or delta.get("partial_json") or ""))
        if self._input or self._output:
            merged = token_usage_from_anthropic({**self._input, **self._output})
            self.usage = merged.as_usage() if merged else None


class AnthropicPassThrough:
    client = ANTHROPIC
    operation = "messages"

    def __init__(self, body: dict[str, Any]) -> None:
        self.client_body = body

    def request(self, model: str, stream_usage: bool) -> dict[str, Any]:
        return dict(self.client_body, model=model)

    def plain(self, raw: bytes) -> Plain | None:
        data = _json(raw)
        if data is None:
            return None
        usage = token_usage_from_anthropic(data.get("usage"))
        return Plain(raw, usage.as_usage() if usage else None, _anthropic_text(data))

    def stream(self) -> StreamConverter:
        return _AnthropicMeter()


class OpenAIChunkStream:
    """An OpenAI chat stream turned into another protocol's frames by `converter` (feed(chunk) -> frames, and a
    closing method that flushes what it held back)."""

    def __init__(self, converter: Any, close: str) -> None:
        self.converter, self._close = converter, getattr(converter, close)
        self._closed = False
        self.complete = False

    def feed(self, frame: bytes) -> list[bytes]:
        parsed = frame_parse(frame)
        if parsed.is_comment_only:
            return []
        if parsed.data.strip() == "[DONE]":
            self.complete = True
            return self.finish()
        data = _json(parsed.data.encode())
        if data is None:
            return []
        if any(isinstance(c, dict) and c.get("finish_reason") for c in as_list(data.get("choices"))):
            self.complete = True
        return self.converter.feed(data)

    def finish(self) -> list[bytes]:
        if self._closed:
            return []
        self._closed = True
        return self._close()

    @property
    def usage(self) -> Usage | None:
        usage = self.converter.usage
        return usage.as_usage() if hasattr(usage, "as_usage") else usage

    text = property(lambda self: self.converter.text)
    error = property(lambda self: self.converter.error)


class AnthropicViaOpenAI:
    """An Anthropic client served by an OpenAI-compatible upstream."""

    client = ANTHROPIC
    operation = "chat/completions"

    def __init__(self, body: dict[str, Any], input_estimate: int) -> None:
        self.client_body, self.input_estimate = body, input_estimate
        self.model = str(body.get("model", ""))

    def request(self, model: str, stream_usage: bool) -> dict[str, Any]:
        body = anthropic_request_to_openai_chat(dict(self.client_body, model=model))
        if body.get("stream") and stream_usage:
            body["stream_options"] = {"include_usage": True}
        return body

    def plain(self, raw: bytes) -> Plain | None:
        return plain_from_openai_chat(raw, lambda data: openai_chat_response_to_anthropic(data, model=self.model))

    def stream(self) -> StreamConverter:
        return OpenAIChunkStream(OpenAIToAnthropicStream(self.model, self.input_estimate), "done")
