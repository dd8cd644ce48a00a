"""The built-in `demo` realtime upstream: no network; speaks the beta event protocol with deterministic replies.

It keeps a conversation, answers `response.create` with text deltas (or an audio transcript and a little
synthetic PCM audio when the session has the audio modality) and reports real token counts in `response.done`,
so a newcomer can try /v1/realtime, and be billed for it, right after `make run`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
import uuid
from functools import lru_cache
from typing import Any

from django.conf import settings

from relay.realtime.events import PCM16_BYTES_PER_SECOND, event_id, parse
from relay.realtime.upstream import UpstreamClosed
from relay.tokenizer import count_text
from relay.wires_media import AUDIO_TOKENS_PER_SECOND

AUDIO_PIECE_BYTES = 4_800  # 100 ms of pcm16 at 24 kHz per audio delta
PIECES = 3
SUPPORTED = ("session.update, conversation.item.create, input_audio_buffer.append/commit/clear, "
             "response.create, response.cancel")


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


@lru_cache(maxsize=4)
def _tone(n_bytes: int) -> str:
    """A quiet 440 Hz tone as base64 pcm16, `n_bytes` long."""
    samples = [int(800 * math.sin(2 * math.pi * 440 * i / 24_000)) for i in range(n_bytes // 2)]
    return base64.b64encode(struct.pack(f"<{len(samples)}h", *samples)).decode()


def _split(text: str, parts: int) -> list[str]:
    words = text.split(" ")
    size = max(1, math.ceil(len(words) / parts))
    chunks = [" ".join(words[i:i + size]) for i in range(0, len(words), size)]
    return [c if i == 0 else " " + c for i, c in enumerate(chunks)]


class DemoRealtime:
    """An in-process upstream socket (see `relay.realtime.upstream.UpstreamSocket`)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.session: dict[str, Any] = {
            "id": _id("sess"), "object": "realtime.session", "model": model, "modalities": ["text", "audio"],
            "instructions": "", "voice": "alloy", "input_audio_format": "pcm16", "output_audio_format": "pcm16",
            "turn_detection": None, "tools": [], "tool_choice": "auto", "temperature": 0.8,
            "max_response_output_tokens": "inf",
        }
        self.items: list[dict[str, Any]] = []  # the conversation: {"item": ..., "text_tokens", "audio_tokens"}
        self.audio_buffer = 0  # bytes appended and not yet committed
        self.delay = settings.DEMO_CHUNK_DELAY_MS / 1000
        self._out: asyncio.Queue[str | UpstreamClosed] = asyncio.Queue()
        self._responding: asyncio.Task | None = None
        self._closed: UpstreamClosed | None = None
        self._emit({"type": "session.created", "session": self.session})

    def _emit(self, event: dict[str, Any]) -> None:
        self._out.put_nowait(json.dumps({"event_id": event_id(), **event}))

    def _error(self, message: str, code: str, client_event: dict[str, Any] | None = None) -> None:
        self._emit({"type": "error", "error": {"type": "invalid_request_error", "code": code, "message": message,
                                               "param": None, "event_id": (client_event or {}).get("event_id")}})

    async def send(self, data: str | bytes) -> None:
        if self._closed is not None:
            raise self._closed
        event = parse(data) if isinstance(data, str) else None
        if event is None:
            self._error("Send each client event as one JSON object in a text frame.", "invalid_event")
            return
        handler = getattr(self, "_on_" + str(event.get("type", "")).replace(".", "_"), None)
        if handler is None:
            self._error(f"The demo model handles {SUPPORTED}; not '{event.get('type')}'.", "unsupported_event", event)
            return
        handler(event)

    async def recv(self) -> str | bytes:
        item = await self._out.get()
        if isinstance(item, UpstreamClosed):
            self._out.put_nowait(item)
            raise item
        return item

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._closed is None:
            self._closed = UpstreamClosed(code, reason)
            if self._responding is not None:
                self._responding.cancel()
            self._out.put_nowait(self._closed)

    # Client events

    def _on_session_update(self, event: dict[str, Any]) -> None:
        changes = event.get("session")
        if isinstance(changes, dict):
            self.session.update({k: v for k, v in changes.items() if k in self.session and k not in {"id", "object"}})
        self._emit({"type": "session.updated", "session": self.session})

    @staticmethod
    def _text_tokens(item: dict[str, Any]) -> int:
        texts = [part.get("text") or part.get("transcript") or "" for part in item.get("content") or []
                 if isinstance(part, dict)]
        return count_text(" ".join(texts))

    def _add_item(self, item: dict[str, Any], audio_tokens: int = 0) -> dict[str, Any]:
        previous = self.items[-1]["item"]["id"] if self.items else None
        entry = {"item": item, "text_tokens": self._text_tokens(item), "audio_tokens": audio_tokens}
        self.items.append(entry)
        self._emit({"type": "conversation.item.created", "previous_item_id": previous, "item": item})
        return entry

    def _on_conversation_item_create(self, event: dict[str, Any]) -> None:
        item = event.get("item")
        if not isinstance(item, dict) or not isinstance(item.get("content", []), list):
            self._error("'item' must be an object with a 'content' array.", "invalid_value", event)
            return
        audio = 0
        for part in item.get("content") or []:
            if isinstance(part, dict) and isinstance(part.get("audio"), str):
                audio += self._audio_tokens(len(part["audio"]) * 3 // 4)
        self._add_item({"id": _id("item"), "object": "realtime.item", "status": "completed", **item}, audio)

    @staticmethod
    def _audio_tokens(n_bytes: int) -> int:
        return math.ceil(n_bytes / PCM16_BYTES_PER_SECOND * AUDIO_TOKENS_PER_SECOND)

    def _on_input_audio_buffer_append(self, event: dict[str, Any]) -> None:
        audio = event.get("audio")
        if isinstance(audio, str):
            self.audio_buffer += len(audio) * 3 // 4

    def _on_input_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        self.audio_buffer = 0
        self._emit({"type": "input_audio_buffer.cleared"})

    def _on_input_audio_buffer_commit(self, event: dict[str, Any]) -> None:
        if not self.audio_buffer:
            self._error("The input audio buffer is empty.", "input_audio_buffer_commit_empty", event)
            return
        item_id = _id("item")
        self._emit({"type": "input_audio_buffer.committed", "previous_item_id": None, "item_id": item_id})
        seconds = self.audio_buffer / PCM16_BYTES_PER_SECOND
        item = {"id": item_id, "object": "realtime.item", "type": "message", "role": "user", "status": "completed",
                "content": [{"type": "input_audio", "transcript": f"({seconds:.1f} seconds of audio)"}]}
        self._add_item(item, self._audio_tokens(self.audio_buffer))
        self.audio_buffer = 0

    def _on_response_create(self, event: dict[str, Any]) -> None:
        if self._responding is not None and not self._responding.done():
            self._error("Conversation already has an active response.", "conversation_already_has_active_response",
                        event)
            return
        options = event.get("response") if isinstance(event.get("response"), dict) else {}
        self._responding = asyncio.ensure_future(self._respond(options))

    def _on_response_cancel(self, event: dict[str, Any]) -> None:
        if self._responding is None or self._responding.done():
            self._error("There is no active response to cancel.", "response_cancel_not_active", event)
            return
        self._responding.cancel()

    # The response

    def _reply(self) -> str:
        said = "nothing"
        for entry in reversed(self.items):
            item = entry["item"]
            if item.get("role") == "user":
                parts = [p.get("text") or p.get("transcript") or "" for p in item.get("content") or []
                         if isinstance(p, dict)]
                said = " ".join(" ".join(parts).split())[:200] or said
                break
        return f"This is the Modelgate realtime demo. You said: {said}"

    def _context(self, instructions: str) -> tuple[int, int]:
        """Text and audio input tokens: every response is billed the whole conversation so far, as OpenAI does."""
        return (count_text(instructions) + sum(e["text_tokens"] for e in self.items),
                sum(e["audio_tokens"] for e in self.items))

    @staticmethod
    def _usage(text_in: int, audio_in: int, text_out: int, audio_out: int) -> dict[str, Any]:
        return {"total_tokens": text_in + audio_in + text_out + audio_out, "input_tokens": text_in + audio_in,
                "output_tokens": text_out + audio_out,
                "input_token_details": {"cached_tokens": 0, "text_tokens": text_in, "audio_tokens": audio_in,
                                        "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0}},
                "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out}}

    async def _respond(self, options: dict[str, Any]) -> None:
        response_id, item_id = _id("resp"), _id("item")
        modalities = options.get("modalities") or self.session["modalities"]
        audio = isinstance(modalities, list) and "audio" in modalities
        instructions = str(options.get("instructions") or self.session.get("instructions") or "")
        reply = self._reply()
        kind = "audio" if audio else "text"
        where = {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
        item = {"id": item_id, "object": "realtime.item", "type": "message", "role": "assistant",
                "status": "in_progress", "content": []}
        response = {"id": response_id, "object": "realtime.response", "status": "in_progress",
                    "status_details": None, "output": [], "usage": None}
        text_in, audio_in = self._context(instructions)  # before this response's own item joins the conversation
        self._emit({"type": "response.created", "response": response})
        sent, audio_bytes, status = "", 0, "completed"
        self._emit({"type": "response.output_item.added", "response_id": response_id, "output_index": 0,
                    "item": item})
        entry = self._add_item(item)
        try:
            self._emit({"type": "response.content_part.added", **where, "part": {"type": kind}})
            for piece in _split(reply, PIECES):
                await asyncio.sleep(self.delay)
                sent += piece
                if audio:
                    self._emit({"type": "response.audio_transcript.delta", **where, "delta": piece})
                    self._emit({"type": "response.audio.delta", **where, "delta": _tone(AUDIO_PIECE_BYTES)})
                    audio_bytes += AUDIO_PIECE_BYTES
                else:
                    self._emit({"type": "response.text.delta", **where, "delta": piece})
            if audio:
                self._emit({"type": "response.audio.done", **where})
                self._emit({"type": "response.audio_transcript.done", **where, "transcript": sent})
            else:
                self._emit({"type": "response.text.done", **where, "text": sent})
        except asyncio.CancelledError:
            status = "cancelled"
        part = {"type": kind, "transcript": sent} if audio else {"type": "text", "text": sent}
        item = {**item, "status": "completed" if status == "completed" else "incomplete", "content": [part]}
        entry.update(item=item, text_tokens=self._text_tokens(item), audio_tokens=self._audio_tokens(audio_bytes))
        usage = self._usage(text_in, audio_in, count_text(sent), self._audio_tokens(audio_bytes))
        if self._closed is not None:
            return
        if status == "completed":
            self._emit({"type": "response.content_part.done", **where, "part": part})
            self._emit({"type": "response.output_item.done", "response_id": response_id, "output_index": 0,
                        "item": item})
        self._emit({"type": "response.done", "response": {**response, "status": status, "output": [item],
                                                          "usage": usage}})
