"""Wires for Google's Gemini protocol: natively, and across formats with OpenAI chat both ways."""

from __future__ import annotations

import json
import uuid
from typing import Any

from relay.protocols.gemini import (
    GeminiToOpenAIStream, OpenAIToGeminiStream, gemini_request_to_openai_chat, gemini_to_openai_chat_response,
    openai_chat_response_to_gemini, openai_chat_to_gemini, usage_from_gemini,
)
from relay.protocols.sse import frame_parse
from relay.protocols.untrusted import as_dict, as_list
from relay.wires import (
    OPENAI, OpenAIChunkStream, PassThroughMeter, Plain, StreamConverter, _json, plain_from_openai_chat,
)

GEMINI = "gemini"


def _gemini_text(data: dict[str, Any]) -> str:
    parts = []
    for candidate in as_list(data.get("candidates")):
        for part in as_list(as_dict(as_dict(candidate).get("content")).get("parts")):
            if isinstance(part, dict):
                parts.append(str(part.get("text") or ""))
                if isinstance(part.get("functionCall"), dict):
                    parts.append(json.dumps(part["functionCall"].get("args") or {}))
    return "".join(parts)


def _frame_json(frame: bytes) -> dict[str, Any] | None:
    """A Gemini stream frame: `data: {...}`, or a bare JSON error object without the `data:` prefix."""
    parsed = frame_parse(frame)
    data = _json(parsed.data.encode()) if parsed.data else None
    return data if data is not None else _json(frame.strip())


class _GeminiMeter(PassThroughMeter):
    """The last usageMetadata seen is the whole request's; a bare JSON error object may arrive without `data:`."""

    def observe(self, event: str, data: dict[str, Any] | None, frame: bytes) -> None:
        data = data if data is not None else _json(frame.strip())
        if data is None:
            return
        if isinstance(data.get("error"), dict):
            self.error = str(data["error"].get("message") or "upstream error")
        self.usage = usage_from_gemini(data.get("usageMetadata")) or self.usage
        self.parts.append(_gemini_text(data))
        if any(as_dict(c).get("finishReason") for c in as_list(data.get("candidates"))):
            self.complete = True


class GeminiPassThrough:
    client = GEMINI
    operation = "generateContent"

    def __init__(self, body: dict[str, Any]) -> None:
        self.client_body = body

    def request(self, model: str, stream_usage: bool) -> dict[str, Any]:
        return dict(self.client_body)

    def plain(self, raw: bytes) -> Plain | None:
        data = _json(raw)
        if data is None:
            return None
        return Plain(raw, usage_from_gemini(data.get("usageMetadata")), _gemini_text(data))

    def stream(self) -> StreamConverter:
        return _GeminiMeter()


class _GeminiToOpenAI:
    def __init__(self, model: str, include_usage: bool) -> None:
        self.converter = GeminiToOpenAIStream(model, include_usage, uuid.uuid4().hex[:24])

    def feed(self, frame: bytes) -> list[bytes]:
        data = _frame_json(frame)
        return self.converter.feed(data) if data is not None else []

    def finish(self) -> list[bytes]:
        return self.converter.finish()

    usage = property(lambda self: self.converter.usage)
    text = property(lambda self: self.converter.text)
    error = property(lambda self: self.converter.error)
    complete = property(lambda self: bool(self.converter._finished))


class OpenAIChatViaGemini:
    """An OpenAI chat client served by a Gemini upstream."""

    client = OPENAI
    operation = "generateContent"

    def __init__(self, body: dict[str, Any]) -> None:
        self.client_body = body
        self.model = str(body.get("model", ""))
        options = body.get("stream_options")
        self.client_wants_usage = isinstance(options, dict) and bool(options.get("include_usage"))

    def request(self, model: str, stream_usage: bool) -> dict[str, Any]:
        _model, body = openai_chat_to_gemini(dict(self.client_body, model=model))
        return body

    def plain(self, raw: bytes) -> Plain | None:
        data = _json(raw)
        if data is None or not ("candidates" in data or "promptFeedback" in data):
            return None
        converted = gemini_to_openai_chat_response(data, model=self.model, id_seed=uuid.uuid4().hex[:24])
        return Plain(json.dumps(converted, ensure_ascii=False).encode(), usage_from_gemini(data.get("usageMetadata")),
                     _gemini_text(data))

    def stream(self) -> StreamConverter:
        return _GeminiToOpenAI(self.model, self.client_wants_usage)


class GeminiViaOpenAI:
    """A Gemini client served by an OpenAI-compatible upstream."""

    client = GEMINI
    operation = "chat/completions"

    def __init__(self, body: dict[str, Any], model: str, stream: bool) -> None:
        self.client_body, self.model, self.streaming = body, model, stream

    def request(self, model: str, stream_usage: bool) -> dict[str, Any]:
        body = gemini_request_to_openai_chat(model, self.client_body)
        if self.streaming:
            body["stream"] = True
            if stream_usage:
                body["stream_options"] = {"include_usage": True}
        return body

    def plain(self, raw: bytes) -> Plain | None:
        return plain_from_openai_chat(raw, lambda data: openai_chat_response_to_gemini(data, model=self.model))

    def stream(self) -> StreamConverter:
        return OpenAIChunkStream(OpenAIToGeminiStream(self.model), "finish")

