"""The fake OpenAI upstream's media endpoints: speech, transcription/translation (multipart) and image edits.

Formats follow protocols.md 1.6-1.8. Multipart bodies are parsed here with the standard library's email parser,
independently of the relay's own parser, so tests see what really arrived.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import hashlib
import io
import json
import time
import wave
from typing import Any, Iterator

SPEECH_TYPES = {"mp3": "audio/mpeg", "opus": "audio/opus", "aac": "audio/aac", "flac": "audio/flac",
                "wav": "audio/wav", "pcm": "audio/pcm"}


def multipart_parse(raw: bytes, content_type: str) -> dict[str, Any]:
    """Form fields as a dict; files under "_files" as {name: [{filename, content_type, size, sha256, data}]}."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    fields: dict[str, Any] = {"_files": {}}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        data = part.get_payload(decode=True) or b""
        if filename is None:
            fields[name] = data.decode()
        else:
            fields["_files"].setdefault(name, []).append({
                "filename": filename, "content_type": part.get_content_type(), "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(), "data": data})
    return fields


def wav_seconds(data: bytes) -> float | None:
    try:
        with wave.open(io.BytesIO(data)) as reader:
            return reader.getnframes() / reader.getframerate()
    except (wave.Error, EOFError):
        return None


def tiny_wav(seconds: float, rate: int = 8000) -> bytes:
    """A silent mono 16-bit WAV file of the given length (for transcription tests)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"\0\0" * int(seconds * rate))
    return out.getvalue()


def speech_audio(text: str, fmt: str) -> bytes:
    """Deterministic bytes standing in for audio: 64 bytes per input character."""
    seed = hashlib.sha256(f"{fmt}:{text}".encode()).digest()
    return (seed * (len(text) * 2 + 1))[: len(text) * 64]


class MediaRoutes:
    """Mixed into the fake's app; uses its plumbing (`_reply`, `pause`, `header_list`, `send_missing`)."""

    def media_routes(self) -> dict[tuple[str, str], Any]:
        return {
            ("POST", "/audio/speech"): self._speech,
            ("POST", "/audio/transcriptions"): self._transcriptions,
            ("POST", "/audio/translations"): self._transcriptions,
            ("POST", "/images/edits"): self._image_edits,
        }

    async def _speech(self, request: Any, send: Any, stop: asyncio.Event, model: str, b: Any) -> None:
        body = request.body
        if not isinstance(body.get("input"), str):
            return await self.send_missing(send, "input")
        fmt = body.get("response_format") or "mp3"
        audio = speech_audio(body["input"], fmt)
        await send({"type": "http.response.start", "status": 200,
                    "headers": self.header_list({"content-type": SPEECH_TYPES.get(fmt, "audio/mpeg"), **b.headers})})
        pieces = max(b.chunks, 1)
        size = -(-len(audio) // pieces)
        for index in range(pieces):
            if index and await self.pause(stop, b.chunk_delay_ms / 1000):
                return
            await send({"type": "http.response.body", "body": audio[index * size:(index + 1) * size],
                        "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _transcriptions(self, request: Any, send: Any, stop: asyncio.Event, model: str, b: Any) -> None:
        body = request.body
        files = body.get("_files", {}).get("file")
        if not files:
            return await self.send_missing(send, "file")
        text = b.content if b.content is not None else f"Hello from {model}!"
        seconds = wav_seconds(files[0]["data"]) or 1.0
        if model.startswith("whisper"):
            usage: dict[str, Any] = {"type": "duration", "seconds": round(seconds)}
        else:
            usage = {"type": "tokens", "input_tokens": b.prompt_tokens, "output_tokens": b.completion_tokens,
                     "total_tokens": b.prompt_tokens + b.completion_tokens,
                     "input_token_details": {"text_tokens": 2, "audio_tokens": b.prompt_tokens - 2}}
        fmt = body.get("response_format") or "json"
        if body.get("stream") == "true":
            frames = [{"type": "transcript.text.delta", "delta": piece} for piece in text.split(" ")]
            frames.append({"type": "transcript.text.done", "text": text, "usage": usage})
            await send({"type": "http.response.start", "status": 200,
                        "headers": self.header_list({"content-type": "text/event-stream"})})
            for frame in frames:
                if await self.pause(stop, b.chunk_delay_ms / 1000):
                    return
                await send({"type": "http.response.body", "more_body": True,
                            "body": f"event: {frame['type']}\ndata: {json.dumps(frame)}\n\n".encode()})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if fmt in ("text", "srt", "vtt"):
            payload = text if fmt == "text" else f"1\n00:00:00,000 --> 00:00:0{min(int(seconds), 9)},000\n{text}\n"
            data = payload.encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": self.header_list({"content-type": "text/plain; charset=utf-8",
                                                 "content-length": str(len(data))})})
            await send({"type": "http.response.body", "body": data, "more_body": False})
            return
        if fmt == "verbose_json":
            result: dict[str, Any] = {"task": "transcribe", "language": "english", "duration": seconds, "text": text,
                                      "segments": [{"id": 0, "start": 0.0, "end": seconds, "text": text}]}
        else:
            result = {"text": text, "usage": usage}
        await self._reply(send, stop, b, result)

    async def _image_edits(self, request: Any, send: Any, stop: asyncio.Event, model: str, b: Any) -> None:
        body = request.body
        files = body.get("_files", {})
        if not (files.get("image") or files.get("image[]")):
            return await self.send_missing(send, "image")
        if not body.get("prompt"):
            return await self.send_missing(send, "prompt")
        if str(body.get("stream")).lower() == "true":
            return await self._stream(send, stop, b, image_events("image_edit", body, b))
        n = int(body.get("n") or 1)
        await self._reply(send, stop, b, image_result(model, n, body.get("response_format") == "b64_json", b))


def image_result(model: str, n: int, as_b64: bool, b: Any) -> dict[str, Any]:
    """An images response; GPT image models answer in base64 with token usage, DALL-E ones without."""
    gpt_image = model.startswith("gpt-image")
    data = [{"b64_json": "iVBORw0KGgo="} if as_b64 or gpt_image else {"url": f"https://images.example/{i}.png"}
            for i in range(n)]
    result: dict[str, Any] = {"created": int(time.time()), "data": data}
    if gpt_image:
        result["usage"] = {"input_tokens": b.prompt_tokens, "output_tokens": b.completion_tokens * n,
                           "total_tokens": b.prompt_tokens + b.completion_tokens * n,
                           "input_tokens_details": {"text_tokens": b.prompt_tokens, "image_tokens": 0}}
    return result


def image_events(prefix: str, body: dict[str, Any], b: Any) -> Iterator[dict[str, Any]]:
    """A streamed GPT image: `partial_images` partial events, then the completed one with the token usage."""
    shared = {"background": "opaque", "created_at": int(time.time()), "output_format": "png", "quality": "medium",
              "size": "1024x1024"}
    for index in range(int(body.get("partial_images") or 0)):
        yield {"type": f"{prefix}.partial_image", "b64_json": "iVBORw0KGgo=", "partial_image_index": index, **shared}
    yield {"type": f"{prefix}.completed", "b64_json": "iVBORw0KGgo=", **shared,
           "usage": {"input_tokens": b.prompt_tokens, "output_tokens": b.completion_tokens,
                     "total_tokens": b.prompt_tokens + b.completion_tokens,
                     "input_tokens_details": {"text_tokens": b.prompt_tokens, "image_tokens": 0}}}
