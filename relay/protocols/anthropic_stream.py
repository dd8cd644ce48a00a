"""Streaming Anthropic ⇄ OpenAI chat: two small state machines fed one parsed event/chunk at a time (§4.1)."""

from __future__ import annotations

import json
import time
from typing import Any

from relay.protocols.anthropic_response import (
    TokenUsage,
    anthropic_error_from_openai,
    anthropic_usage_body,
    finish_reason_from_stop_reason,
    openai_error_from_anthropic,
    openai_usage_body,
    stop_reason_from_finish_reason,
    token_usage_from_anthropic,
    token_usage_from_openai,
)
from relay.protocols.sse import frame_build
from relay.protocols.untrusted import as_list

DONE_FRAME = b"data: [DONE]\n\n"
ANTHROPIC_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
                          "output_tokens_details")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class AnthropicToOpenAIStream:
    """Anthropic stream events → OpenAI `chat.completion.chunk` frames, `[DONE]` last."""

    def __init__(self, model: str, include_usage: bool, *, created: int | None = None) -> None:
        self.model = model
        self.include_usage = include_usage
        self.created = int(time.time()) if created is None else created
        self.id = ""
        self.complete = False  # message_stop arrived
        self.error = ""  # message of an `event: error`, if one arrived
        self.stop_reason: str | None = None
        self._started = self._closed = False
        self._tool_ordinals: dict[Any, int] = {}  # Anthropic block index → OpenAI tool_calls index
        self._raw_usage: dict[str, Any] = {}
        self._text: list[str] = []

    @property
    def usage(self) -> TokenUsage | None:
        """Input from message_start (overridden by message_delta), output from the last message_delta."""
        return token_usage_from_anthropic(self._raw_usage)

    @property
    def text(self) -> str:
        """Everything generated so far (text, thinking, tool input), for estimating usage if it never arrives."""
        return "".join(self._text)

    def feed(self, event: str, data: dict[str, Any]) -> list[bytes]:
        if self._closed or not isinstance(data, dict):
            return []
        kind = event or data.get("type")
        handler = {
            "message_start": self._message_start,
            "content_block_start": self._block_start,
            "content_block_delta": self._block_delta,
            "message_delta": self._message_delta,
            "message_stop": self._message_stop,
            "error": self._error,
        }.get(kind) if isinstance(kind, str) else None
        return handler(data) if handler else []  # ping, content_block_stop and unknown events carry nothing

    def finish(self) -> list[bytes]:
        """Closing frames for a stream that ended without message_stop (usage chunk if asked for, then [DONE])."""
        return [] if self._closed else self._close()

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        chunk: dict[str, Any] = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                                 "model": self.model,
                                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
        if self.include_usage:
            chunk["usage"] = None  # as OpenAI does on every chunk but the last when include_usage is on
        return frame_build(_dumps(chunk))

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def _delta(self, delta: dict[str, Any], text: str) -> list[bytes]:
        self._text.append(text)
        return self._start() + [self._chunk(delta)]

    def _merge_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self._raw_usage.update({k: usage[k] for k in ANTHROPIC_USAGE_FIELDS if usage.get(k) is not None})

    def _message_start(self, data: dict[str, Any]) -> list[bytes]:
        message = data.get("message") if isinstance(data.get("message"), dict) else {}
        self.id = str(message.get("id") or self.id)
        self._merge_usage(message.get("usage"))
        return self._start()

    def _block_start(self, data: dict[str, Any]) -> list[bytes]:
        block = data.get("content_block") if isinstance(data.get("content_block"), dict) else {}
        kind = block.get("type")
        if kind == "tool_use":
            ordinal = self._tool_ordinals[_hashable(data.get("index"))] = len(self._tool_ordinals)
            call = {"index": ordinal, "id": str(block.get("id") or ""), "type": "function",
                    "function": {"name": str(block.get("name") or ""), "arguments": ""}}
            return self._delta({"tool_calls": [call]}, "")
        if kind == "text" and isinstance(block.get("text"), str) and block["text"]:
            return self._delta({"content": block["text"]}, block["text"])
        if kind == "thinking" and isinstance(block.get("thinking"), str) and block["thinking"]:
            return self._delta({"reasoning_content": block["thinking"]}, block["thinking"])
        return self._start()  # redacted_thinking and server-tool blocks have nothing an OpenAI client can use

    def _block_delta(self, data: dict[str, Any]) -> list[bytes]:
        delta = data.get("delta") if isinstance(data.get("delta"), dict) else {}
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str) and delta["text"]:
            return self._delta({"content": delta["text"]}, delta["text"])
        if kind == "thinking_delta" and isinstance(delta.get("thinking"), str) and delta["thinking"]:
            return self._delta({"reasoning_content": delta["thinking"]}, delta["thinking"])
        fragment = delta.get("partial_json")
        ordinal = self._tool_ordinals.get(_hashable(data.get("index")))
        if kind == "input_json_delta" and isinstance(fragment, str) and fragment and ordinal is not None:
            return self._delta({"tool_calls": [{"index": ordinal, "function": {"arguments": fragment}}]}, fragment)
        return []  # signature_delta, citations_delta, empty fragments

    def _message_delta(self, data: dict[str, Any]) -> list[bytes]:
        self._merge_usage(data.get("usage"))
        delta = data.get("delta") if isinstance(data.get("delta"), dict) else {}
        if self.stop_reason is not None or not delta.get("stop_reason"):
            return []
        self.stop_reason = str(delta["stop_reason"])
        return self._start() + [self._chunk({}, finish_reason_from_stop_reason(self.stop_reason))]

    def _message_stop(self, data: dict[str, Any]) -> list[bytes]:
        self.complete = True
        return self._close()

    def _error(self, data: dict[str, Any]) -> list[bytes]:
        envelope = openai_error_from_anthropic(data.get("error"))
        self.error = envelope["error"]["message"]
        self._closed = True  # OpenAI clients raise on an error payload; nothing may follow it
        return [frame_build(_dumps(envelope))]

    def _close(self) -> list[bytes]:
        self._closed = True
        frames = []
        if self.include_usage and (usage := self.usage) is not None:
            chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                     "choices": [], "usage": openai_usage_body(usage)}
            frames.append(frame_build(_dumps(chunk)))
        return frames + [DONE_FRAME]


class OpenAIToAnthropicStream:
    """OpenAI chat chunks → Anthropic stream events, message_start … message_stop (new-api's state machine)."""

    def __init__(self, model: str, input_tokens_estimate: int) -> None:
        self.model = model
        self.input_tokens_estimate = input_tokens_estimate
        self.complete = False  # a finish_reason arrived
        self.error = ""
        self.finish_reason: str | None = None
        self._usage: TokenUsage | None = None
        self._id = ""
        self._started = self._closed = False
        self._open: tuple[str, Any] | None = None  # (block type, tool key) of the open content block
        self._index = -1  # Anthropic index of the last block opened
        self._tool_keys: set[Any] = set()  # OpenAI tool calls already given a block
        self._text: list[str] = []

    @property
    def usage(self) -> TokenUsage | None:
        return self._usage

    @property
    def text(self) -> str:
        return "".join(self._text)

    def feed(self, chunk: dict[str, Any]) -> list[bytes]:
        if self._closed or not isinstance(chunk, dict):
            return []
        if "error" in chunk:
            body = anthropic_error_from_openai(chunk["error"])
            self.error = body["error"]["message"]
            self._closed = True
            return [frame_build(_dumps(body), "error")]
        usage = token_usage_from_openai(chunk.get("usage"))
        self._usage = usage or self._usage
        choices = [c for c in as_list(chunk.get("choices")) if isinstance(c, dict)]
        # Azure opens with a chunk of only prompt_filter_results (empty id): start on a chunk with substance.
        frames = self._start(chunk) if choices or usage else []
        # Anthropic has one message per stream: other choices (n > 1) are dropped.
        for choice in [c for c in choices if c.get("index", 0) == 0][:1]:
            if isinstance(choice.get("delta"), dict):
                frames += self._delta(choice["delta"])
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
                self.complete = True
                frames += self._close_block()
        if self.finish_reason and self._usage is not None:
            frames += self._finish(0)
        return frames

    def done(self, *, output_tokens_estimate: int = 0) -> list[bytes]:
        """[DONE] or the end of the upstream stream: send whatever has been held back and message_stop."""
        return [] if self._closed else self._start({}) + self._finish(output_tokens_estimate)

    def _event(self, name: str, data: dict[str, Any]) -> bytes:
        return frame_build(_dumps({"type": name, **data}), name)

    def _start(self, chunk: dict[str, Any]) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        self._id = str(chunk.get("id") or "")
        message = {"id": self._id, "type": "message", "role": "assistant", "model": self.model, "content": [],
                   "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": self.input_tokens_estimate, "output_tokens": 0}}
        return [self._event("message_start", {"message": message})]

    def _close_block(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        return [self._event("content_block_stop", {"index": self._index})]

    def _open_block(self, kind: str, key: Any, block: dict[str, Any]) -> list[bytes]:
        """Clients break on interleaved block types, so the open block is closed before a different one starts."""
        if self._open == (kind, key):
            return []
        frames = self._close_block()
        self._open, self._index = (kind, key), self._index + 1
        return frames + [self._event("content_block_start", {"index": self._index, "content_block": block})]

    def _block_delta(self, delta: dict[str, Any], text: str) -> bytes:
        self._text.append(text)
        return self._event("content_block_delta", {"index": self._index, "delta": delta})

    def _delta(self, delta: dict[str, Any]) -> list[bytes]:
        frames: list[bytes] = []
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            frames += self._open_block("thinking", None, {"type": "thinking", "thinking": "", "signature": ""})
            frames.append(self._block_delta({"type": "thinking_delta", "thinking": reasoning}, reasoning))
        content = delta.get("content")
        if isinstance(content, str) and content:
            frames += self._open_block("text", None, {"type": "text", "text": ""})
            frames.append(self._block_delta({"type": "text_delta", "text": content}, content))
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                frames += self._tool_call(call)
        return frames

    def _tool_call(self, call: dict[str, Any]) -> list[bytes]:
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        key = call.get("index")
        if not isinstance(key, int):  # some upstreams omit the index: a new id means a new call
            current = self._open[1] if self._open and self._open[0] == "tool_use" else len(self._tool_keys)
            key = call.get("id") or current
        frames: list[bytes] = []
        if self._open != ("tool_use", key):
            if key in self._tool_keys:
                return []  # a late fragment of a call whose block is already closed cannot be delivered
            self._tool_keys.add(key)
            block = {"type": "tool_use", "id": str(call.get("id") or f"toolu_{len(self._tool_keys)}"),
                     "name": str(function.get("name") or ""), "input": {}}
            frames += self._open_block("tool_use", key, block)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            frames.append(self._block_delta({"type": "input_json_delta", "partial_json": arguments}, arguments))
        return frames

    def _finish(self, output_tokens_estimate: int) -> list[bytes]:
        frames = self._close_block()
        self._closed = True
        has_tool_use = bool(self._tool_keys)
        stop_reason = stop_reason_from_finish_reason(self.finish_reason, has_tool_use=has_tool_use)
        if self._usage is not None:
            usage = anthropic_usage_body(self._usage)
        else:
            usage = {"input_tokens": self.input_tokens_estimate, "output_tokens": output_tokens_estimate}
        frames.append(self._event("message_delta", {"delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                                    "usage": usage}))
        return frames + [self._event("message_stop", {})]


def _hashable(index: Any) -> Any:
    """A block index as a key: a list or object sent as one is read as no index."""
    return index if isinstance(index, (int, str, float, bool)) or index is None else None
