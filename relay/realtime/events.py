"""Reading and writing OpenAI Realtime events (protocols.md section 3): pure functions, no I/O, no Django."""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from relay.tokenizer import count_text
from relay.usage import Usage
from relay.wires_media import AUDIO_TOKENS_PER_SECOND

# Deltas whose text is output tokens (beta names, then GA names).
TEXT_DELTAS = {
    "response.text.delta", "response.audio_transcript.delta", "response.function_call_arguments.delta",
    "response.output_text.delta", "response.output_audio_transcript.delta",
}
AUDIO_DELTAS = {"response.audio.delta", "response.output_audio.delta"}
PCM16_BYTES_PER_SECOND = 48_000  # 24 kHz mono, 16-bit little endian
G711_BYTES_PER_SECOND = 8_000


def event_id() -> str:
    return f"event_{uuid.uuid4().hex[:20]}"


def error_event(message: str, *, code: str, type: str = "invalid_request_error") -> str:
    """An `error` server event in OpenAI's shape."""
    return json.dumps({"type": "error", "event_id": event_id(),
                       "error": {"type": type, "code": code, "message": message, "param": None, "event_id": None}})


def parse(text: str) -> dict[str, Any] | None:
    """A text frame as an event object, or None when it is not one."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def is_response_create(text: str) -> bool:
    """Whether a client frame asks for a response (the substring test keeps audio appends from being parsed)."""
    if "response.create" not in text:
        return False
    event = parse(text)
    return event is not None and event.get("type") == "response.create"


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_from_realtime(data: Any) -> Usage | None:
    """A `response.done` usage: input includes cached tokens; audio input is billed at the audio ratio only where
    it was not cached (when the cached split is not given, cached tokens are taken to be text first)."""
    if not isinstance(data, dict) or "input_tokens" not in data and "output_tokens" not in data:
        return None
    prompt, completion = _int(data.get("input_tokens")), _int(data.get("output_tokens"))
    inputs = data.get("input_token_details") if isinstance(data.get("input_token_details"), dict) else {}
    outputs = data.get("output_token_details") if isinstance(data.get("output_token_details"), dict) else {}
    cached = min(_int(inputs.get("cached_tokens")), prompt)
    audio_in = _int(inputs.get("audio_tokens"))
    split = inputs.get("cached_tokens_details")
    if isinstance(split, dict) and "audio_tokens" in split:
        cached_audio = _int(split.get("audio_tokens"))
    else:
        cached_audio = max(cached - _int(inputs.get("text_tokens")), 0)
    audio_in = min(max(audio_in - cached_audio, 0), prompt - cached)
    audio_out = min(_int(outputs.get("audio_tokens")), completion)
    return Usage(prompt, completion, cached, audio_prompt_tokens=audio_in, audio_completion_tokens=audio_out)


@dataclass
class Progress:
    """What one response has streamed so far, for an estimate if its usage never arrives."""

    text: list[str] = field(default_factory=list)
    audio_bytes: int = 0
    started: float = field(default_factory=time.monotonic)


@dataclass
class Finished:
    response_id: str
    usage: Usage
    status: str
    latency_ms: int = 0


class ResponseTracker:
    """Follows the responses a session has in progress, from `response.created` to `response.done`."""

    def __init__(self) -> None:
        self.open: dict[str, Progress] = {}
        self.audio_bytes_per_second = PCM16_BYTES_PER_SECOND
        self.last_input_tokens = 0

    def observe(self, event: dict[str, Any]) -> Finished | None:
        """Take note of one server event; returns the finished response on `response.done`."""
        kind = event.get("type")
        if kind in TEXT_DELTAS or kind in AUDIO_DELTAS:
            progress = self.open.setdefault(str(event.get("response_id") or ""), Progress())
            delta = event.get("delta")
            if isinstance(delta, str):
                if kind in AUDIO_DELTAS:
                    progress.audio_bytes += len(delta) * 3 // 4
                else:
                    progress.text.append(delta)
            return None
        if kind == "response.created":
            response = event.get("response") if isinstance(event.get("response"), dict) else {}
            self.open.setdefault(str(response.get("id") or ""), Progress())
        elif kind == "response.done":
            response = event.get("response") if isinstance(event.get("response"), dict) else {}
            response_id = str(response.get("id") or "")
            progress = self.open.pop(response_id, None) or self.open.pop("", None) or Progress()
            usage = usage_from_realtime(response.get("usage")) or self.estimate(progress)
            if not usage.estimated:
                self.last_input_tokens = usage.prompt_tokens
            latency_ms = int((time.monotonic() - progress.started) * 1000)
            return Finished(response_id, usage, str(response.get("status") or ""), latency_ms)
        elif kind in {"session.created", "session.updated"}:
            self._audio_format(event.get("session"))
        return None

    def _audio_format(self, session: Any) -> None:
        if not isinstance(session, dict):
            return
        fmt = session.get("output_audio_format")  # beta
        audio = session.get("audio")
        if fmt is None and isinstance(audio, dict) and isinstance(audio.get("output"), dict):  # GA
            spec = audio["output"].get("format")
            fmt = spec.get("type") if isinstance(spec, dict) else spec
        if isinstance(fmt, str):
            narrow = fmt in {"g711_ulaw", "g711_alaw", "audio/pcmu", "audio/pcma"}
            self.audio_bytes_per_second = G711_BYTES_PER_SECOND if narrow else PCM16_BYTES_PER_SECOND

    def estimate(self, progress: Progress) -> Usage:
        """Usage for a response cut short: the last known context as input, what was streamed as output."""
        audio = math.ceil(progress.audio_bytes / self.audio_bytes_per_second * AUDIO_TOKENS_PER_SECOND)
        text = count_text("".join(progress.text))
        return Usage(self.last_input_tokens, text + audio, audio_completion_tokens=audio, estimated=True)

    def unfinished(self) -> list[tuple[str, Usage]]:
        """Every response still open, with its estimated usage; they are forgotten here."""
        out = [(rid, self.estimate(progress)) for rid, progress in self.open.items()]
        self.open.clear()
        return out
