"""Wires for media: speech (audio bytes back), transcription and translation (multipart up), image edits
(multipart up). All go to OpenAI-compatible upstreams (and Azure) in OpenAI's own format.

Billing facts (protocols.md 1.6-1.8): speech is priced on the input's characters; transcription on the audio
duration (models with a price per minute) or on the tokens the upstream reports; image edits per image like
image generation, or on tokens for the GPT image models.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator

from relay import errors
from relay.multipart import Form
from relay.protocols.gemini_images import answer_images, answer_words
from relay.protocols.gemini_response import usage_from_gemini
from relay.protocols.untrusted import as_list
from relay.tokenizer import count_text
from relay.usage import Usage, usage_from_responses
from relay.wires import OPENAI, OpenAIPassThrough, PassThroughMeter, Plain, _json

AUDIO_TOKENS_PER_SECOND = 10  # audio input is about one token per 100 ms; used only to estimate and reserve


@dataclass(frozen=True)
class Upload:
    """A multipart request and what the relay read from it."""

    form: Form
    audio_seconds: float = 0.0
    seconds_estimated: bool = False


class _Multipart:
    """The upload passes upstream as sent; only `model` is rewritten when the upstream's name differs."""

    client = OPENAI

    def __init__(self, operation: str, upload: Upload, body: dict[str, Any]) -> None:
        self.operation, self.upload, self.client_body = operation, upload, body

    def request(self, model: str, stream_usage: bool) -> dict[str, Any]:
        return dict(self.client_body, model=model)

    def encode(self, body: dict[str, Any]) -> tuple[AsyncIterator[bytes], str, int]:
        model = body["model"] if body["model"] != self.client_body.get("model") else None
        chunks, length = self.upload.form.stream(model=model)
        return chunks, self.upload.form.content_type, length


class ImageEditWire(_Multipart):
    """`POST /v1/images/edits`: the answer is an images response, read like image generation's."""

    def plain(self, raw: bytes) -> Plain | None:
        return images_plain(raw)

    def stream(self) -> PassThroughMeter:
        return _ImageMeter()


class ImageGenerationWire(OpenAIPassThrough):
    """`POST /v1/images/generations`: JSON up as sent; a stream's usage is on its `image_generation.completed`."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__("images/generations", body)

    def stream(self) -> PassThroughMeter:
        return _ImageMeter()


IMAGEN_ASPECTS = {"1:1": 1.0, "3:4": 0.75, "4:3": 4 / 3, "9:16": 9 / 16, "16:9": 16 / 9}


def imagen_aspect(size: Any) -> str:
    """The Imagen aspect ratio nearest an OpenAI `size` ("1792x1024" is 16:9); square when none is given."""
    try:
        width, height = (int(side) for side in str(size).lower().split("x"))
        ratio = width / height
    except (ValueError, ZeroDivisionError):
        return "1:1"
    return min(IMAGEN_ASPECTS, key=lambda aspect: abs(IMAGEN_ASPECTS[aspect] - ratio))


class ImagesViaImagen:
    """`POST /v1/images/generations` served by a Gemini upstream's Imagen model (`models/{model}:predict`): images
    come back base64-encoded (`b64_json`) whatever `response_format` asked, as with the GPT image models."""

    client = OPENAI
    operation = "predict"

    def __init__(self, body: dict[str, Any]) -> None:
        self.client_body = body

    def request(self, model: str, stream_usage: bool) -> dict[str, Any]:
        parameters = {"sampleCount": self.client_body.get("n") or 1,
                      "aspectRatio": imagen_aspect(self.client_body.get("size"))}
        return {"instances": [{"prompt": self.client_body["prompt"]}], "parameters": parameters}

    def plain(self, raw: bytes) -> Plain | None:
        data = _json(raw)
        predictions = data.get("predictions") if data is not None else None
        images = [{"b64_json": p["bytesBase64Encoded"]} for p in as_list(predictions)
                  if isinstance(p, dict) and isinstance(p.get("bytesBase64Encoded"), str)]
        if not images:
            if isinstance(predictions, list) or data == {}:  # Imagen leaves filtered images out, all of them here
                raise errors.content_refused("The upstream's safety filters kept every image back.")
            return None
        body = {"created": int(time.time()), "data": images}
        return Plain(json.dumps(body).encode(), None, "")

    def stream(self) -> PassThroughMeter:
        raise RuntimeError("Imagen answers are never streamed")


class ImagesViaGeminiImage:
    """`POST /v1/images/generations` served by a Gemini image model (gemini-2.5-flash-image and the like) through
    `generateContent` asking for an image: one image a request, back as `b64_json`, billed on the tokens Gemini
    reports (an image's among them) unless the model has a price per image."""

    client = OPENAI
    operation = "generateContent"

    def __init__(self, body: dict[str, Any]) -> None:
        if (body.get("n") or 1) > 1:
            raise errors.bad_request("This model makes one image a request: set 'n' to 1.", param="n")
        if body.get("stream"):
            raise errors.bad_request("This model's images are not streamed: leave out 'stream'.", param="stream")
        self.client_body = body

    def request(self, model: str, stream_usage: bool) -> dict[str, Any]:
        config = {"responseModalities": ["TEXT", "IMAGE"],
                  "imageConfig": {"aspectRatio": imagen_aspect(self.client_body.get("size"))}}
        return {"contents": [{"role": "user", "parts": [{"text": self.client_body["prompt"]}]}],
                "generationConfig": config}

    def plain(self, raw: bytes) -> Plain | None:
        data = _json(raw)
        feedback = data.get("promptFeedback") if data is not None else None
        if isinstance(feedback, dict) and feedback.get("blockReason") and not data.get("candidates"):
            raise errors.content_refused(f"The upstream blocked the prompt ({feedback['blockReason']}).")
        if data is None or not isinstance(data.get("candidates"), list):
            return None
        images = [{"b64_json": image} for image in answer_images(data)]
        usage = usage_from_gemini(data.get("usageMetadata"))
        if not images:  # refused or filtered: the model answered in words, or not at all
            words = " ".join(answer_words(data).split())[:300]
            raise errors.content_refused(f"The model made no image: {words}" if words else
                                         "The model made no image (filtered by the upstream).")
        body = {"created": int(time.time()), "data": images}
        if usage is not None:
            body["usage"] = {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens,
                             "total_tokens": usage.prompt_tokens + usage.completion_tokens}
        return Plain(json.dumps(body).encode(), usage, "")

    def stream(self) -> PassThroughMeter:
        raise RuntimeError("Gemini image answers are not streamed here")


def images_plain(raw: bytes) -> Plain | None:
    """An images response; GPT image models report token usage, DALL-E models none (they are priced per image)."""
    data = _json(raw)
    if data is None or not isinstance(data.get("data"), list):
        return None
    return Plain(raw, usage_from_responses(data.get("usage")), "")


class _ImageMeter(PassThroughMeter):
    """Streamed GPT image generation: usage on the `*.completed` event."""

    def observe(self, event: str, data: dict[str, Any] | None, frame: bytes) -> None:
        data = data or {}
        kind = str(data.get("type") or event)
        if kind.endswith(".completed"):
            self.complete = True
            self.usage = usage_from_responses(data.get("usage")) or self.usage
        elif kind == "error":
            err = data.get("error")
            self.error = str(err.get("message") if isinstance(err, dict) else data.get("message") or "upstream error")


def transcription_usage(data: dict[str, Any] | None, upload: Upload, text: str) -> Usage:
    """Usage of a transcription: the upstream's tokens or seconds when it reports them, else an estimate from the
    upload's duration and the text produced."""
    data = data or {}
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    seconds = upload.audio_seconds
    reported_seconds = usage.get("seconds") if usage.get("type") == "duration" else data.get("duration")
    if isinstance(reported_seconds, (int, float)) and not isinstance(reported_seconds, bool) and reported_seconds > 0:
        seconds = float(reported_seconds)
    if usage.get("type") == "tokens" or "input_tokens" in usage:
        details = usage.get("input_token_details") if isinstance(usage.get("input_token_details"), dict) else {}
        tokens = usage_from_responses(usage) or Usage()
        audio = details.get("audio_tokens")
        audio = audio if isinstance(audio, int) and 0 <= audio <= tokens.prompt_tokens else tokens.prompt_tokens
        return Usage(tokens.prompt_tokens, tokens.completion_tokens, audio_prompt_tokens=audio, audio_seconds=seconds)
    audio = math.ceil(seconds * AUDIO_TOKENS_PER_SECOND)
    return Usage(audio, count_text(text), audio_prompt_tokens=audio, audio_seconds=seconds, estimated=True)


class TranscriptionWire(_Multipart):
    """`POST /v1/audio/transcriptions` and `/v1/audio/translations`. JSON formats come back as JSON; `text`, `srt`
    and `vtt` as plain text, passed on with the upstream's content type."""

    def plain(self, raw: bytes) -> Plain | None:
        data = _json(raw)
        wants_json = self.client_body.get("response_format", "json") in ("json", "verbose_json", "diarized_json")
        if wants_json and data is None:
            return None
        text = str(data.get("text") or "") if data is not None else raw.decode("utf-8", errors="replace")
        return Plain(raw, transcription_usage(data, self.upload, text), text, content_type=None)

    def stream(self) -> PassThroughMeter:
        return _TranscriptMeter(self.upload)


class _TranscriptMeter(PassThroughMeter):
    """Streamed transcription: `transcript.text.delta` events, then `transcript.text.done` with usage."""

    def __init__(self, upload: Upload) -> None:
        super().__init__()
        self.upload = upload

    def observe(self, event: str, data: dict[str, Any] | None, frame: bytes) -> None:
        data = data or {}
        kind = str(data.get("type") or event)
        if kind == "transcript.text.delta":
            self.parts.append(str(data.get("delta") or ""))
        elif kind == "transcript.text.done":
            self.complete = True
            self.usage = transcription_usage(data, self.upload, str(data.get("text") or self.text))
        elif kind == "error":
            err = data.get("error")
            self.error = str(err.get("message") if isinstance(err, dict) else data.get("message") or "upstream error")


class SpeechWire:
    """`POST /v1/audio/speech`: the audio bytes stream back with the upstream's content type."""

    client = OPENAI
    operation = "audio/speech"
    binary = True

    def __init__(self, body: dict[str, Any]) -> None:
        self.client_body = body

    def request(self, model: str, stream_usage: bool) -> dict[str, Any]:
        return dict(self.client_body, model=model)

    def usage(self) -> Usage:
        """Speech is priced on the input's characters, counted as prompt tokens."""
        return Usage(speech_characters(self.client_body), 0)


def speech_characters(body: dict[str, Any]) -> int:
    text = body.get("input")
    return len(text) if isinstance(text, str) else len(json.dumps(text))
