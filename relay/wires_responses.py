"""Wires for OpenAI's Responses API: passed through to upstreams that offer it, or served through chat completions."""

from __future__ import annotations

from typing import Any

from relay.errors import RelayError
from relay.protocols.responses_chat import (
    OpenAIToResponsesStream, ProtocolError, openai_chat_response_to_responses, responses_request_to_openai_chat,
)
from relay.protocols.untrusted import as_dict, as_list
from relay.usage import usage_from_responses
from relay.wires import (
    OPENAI, OpenAIChunkStream, PassThroughMeter, Plain, StreamConverter, _json, plain_from_openai_chat,
)

TERMINAL_RESPONSE_EVENTS = {"response.completed", "response.incomplete", "response.failed"}


def _responses_text(response: dict[str, Any]) -> str:
    parts = []
    for item in as_list(response.get("output")):
        if isinstance(item, dict):
            parts.append(str(item.get("arguments") or ""))
            for content in as_list(item.get("content")):
                if isinstance(content, dict):
                    parts.append(str(content.get("text") or ""))
    return "".join(parts)


class _ResponsesMeter(PassThroughMeter):
    """Usage from the terminal event's response; text from the deltas."""

    def observe(self, event: str, data: dict[str, Any] | None, frame: bytes) -> None:
        data = data or {}
        kind = str(data.get("type") or event)
        if kind in TERMINAL_RESPONSE_EVENTS:
            self.complete = True
            self.usage = usage_from_responses(as_dict(data.get("response")).get("usage"))
        elif kind.endswith(".delta") and isinstance(data.get("delta"), str):
            self.parts.append(data["delta"])
        elif kind == "error":
            self.error = str(data.get("message") or "upstream error")


class ResponsesPassThrough:
    """OpenAI's Responses API, relayed natively to upstreams that offer it."""

    client = OPENAI
    operation = "responses"

    def __init__(self, body: dict[str, Any]) -> None:
        self.client_body = body

    def request(self, model: str, stream_usage: bool) -> dict[str, Any]:
        return dict(self.client_body, model=model)

    def plain(self, raw: bytes) -> Plain | None:
        data = _json(raw)
        if data is None or data.get("object") != "response":
            return None
        return Plain(raw, usage_from_responses(data.get("usage")), _responses_text(data))

    def stream(self) -> StreamConverter:
        return _ResponsesMeter()


class ResponsesCompactPassThrough(ResponsesPassThrough):
    """`/v1/responses/compact` (a long conversation compacted, as Codex asks): natively only, never streamed."""

    operation = "responses/compact"

    def request(self, model: str, stream_usage: bool) -> dict[str, Any]:
        return dict(self.client_body, model=model)

    def plain(self, raw: bytes) -> Plain | None:
        data = _json(raw)
        if data is None or data.get("object") != "response.compaction":
            return None
        return Plain(raw, usage_from_responses(data.get("usage")), _responses_text(data))


class ResponsesViaChat:
    """A Responses API client served by an OpenAI-compatible upstream that has only chat completions."""

    client = OPENAI
    operation = "chat/completions"

    def __init__(self, body: dict[str, Any], input_estimate: int) -> None:
        self.client_body, self.input_estimate = body, input_estimate
        self.model = str(body.get("model", ""))
        try:
            self.chat = responses_request_to_openai_chat(body)
        except ProtocolError as exc:
            raise RelayError(400, str(exc)) from None

    def request(self, model: str, stream_usage: bool) -> dict[str, Any]:
        body = dict(self.chat, model=model)
        if not stream_usage:
            body.pop("stream_options", None)
        return body

    def plain(self, raw: bytes) -> Plain | None:
        return plain_from_openai_chat(
            raw, lambda data: openai_chat_response_to_responses(data, model=self.model, request=self.client_body))

    def stream(self) -> StreamConverter:
        return OpenAIChunkStream(OpenAIToResponsesStream(self.model, self.client_body, self.input_estimate), "done")
