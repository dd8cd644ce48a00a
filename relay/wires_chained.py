"""Wires made of two: a client protocol carried over OpenAI chat, and OpenAI chat carried over an upstream family.

Every client protocol has a tested translation to and from OpenAI chat, and OpenAI chat has one to and from every
upstream family, so any client reaches any upstream by going through chat in the middle: an Anthropic client on a
Gemini upstream, a Gemini client on an Anthropic one, a Responses client on either. Usage is the upstream's own.
"""

from __future__ import annotations

from typing import Any

from relay.wires import Plain, StreamConverter


class Chained:
    """Two stream converters in a row: the first's output frames are the second's input."""

    def __init__(self, first: StreamConverter, second: StreamConverter) -> None:
        self.first, self.second = first, second

    def feed(self, frame: bytes) -> list[bytes]:
        return [out for middle in self.first.feed(frame) for out in self.second.feed(middle)]

    def finish(self) -> list[bytes]:
        return [out for middle in self.first.finish() for out in self.second.feed(middle)] + self.second.finish()

    usage = property(lambda self: self.first.usage)  # the upstream's own count (thoughts and all)
    text = property(lambda self: self.first.text)
    error = property(lambda self: self.first.error or self.second.error)
    complete = property(lambda self: self.first.complete)


class ViaChat:
    """`outer` (a client protocol over OpenAI chat) joined to `inner` (OpenAI chat over the upstream's family)."""

    def __init__(self, outer: Any, inner_wire: type, **inner_args: Any) -> None:
        self.outer = outer
        self.client = outer.client
        # The chat request the outer wire would send (usage asked for, as a stream's last chunk); the upstream's
        # model name is set again by the inner wire's own request().
        self.inner = inner_wire(outer.request(outer.model, True), **inner_args)
        self.operation = self.inner.operation

    def request(self, model: str, stream_usage: bool) -> dict[str, Any]:
        return self.inner.request(model, stream_usage)

    def plain(self, raw: bytes) -> Plain | None:
        chat = self.inner.plain(raw)
        answer = self.outer.plain(chat.body) if chat is not None else None
        if answer is None:
            return None
        return Plain(answer.body, chat.usage, chat.text, answer.content_type)

    def stream(self) -> StreamConverter:
        return Chained(self.inner.stream(), self.outer.stream())
