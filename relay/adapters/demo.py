"""The built-in `demo` upstream: no network; deterministic OpenAI-shaped answers with real token counts.

It lets a newcomer call /v1/chat/completions a minute after `make run`, and gives tests a second upstream family.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
import time
from typing import Any, AsyncIterator

import httpx
from django.conf import settings

from relay.adapters.base import Adapter, Call
from relay.tokenizer import count_text, estimate_prompt

REASONING = "The user wants a short answer. I will restate their message and add a friendly note."


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    prompt = body.get("prompt")
    return prompt if isinstance(prompt, str) else ""


def demo_reply(body: dict[str, Any]) -> str:
    said = " ".join(_last_user_text(body).split())[:200] or "nothing"
    return f"This is the Modelgate demo model. You said: {said}"


class DemoResponse:
    """An httpx-like streamed response generated in process."""

    def __init__(self, status_code: int, chunks: list[bytes], delay: float, content_type: str) -> None:
        self.status_code = status_code
        self.headers = {"content-type": content_type}
        self._chunks, self._delay = chunks, delay

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        for i, chunk in enumerate(self._chunks):
            if i and self._delay:
                await asyncio.sleep(self._delay)
            yield chunk

    async def aread(self) -> bytes:
        return b"".join(self._chunks)

    async def aclose(self) -> None:
        return None


def _sse(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {payload}\n\n".encode()


def _vector(text: str, dims: int = 16) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((b - 128) / 128, 6) for b in digest[:dims]]


class DemoAdapter(Adapter):
    family = "demo"

    async def send(self, client: httpx.AsyncClient, call: Call, content: bytes,
                   length: int | None = None) -> DemoResponse:
        body, model = call.body, str(call.body.get("model", "demo-chat"))
        if call.operation == "embeddings":
            return self._embeddings(body, model)
        if call.operation not in {"chat/completions", "completions"}:
            err = {"error": {"message": f"The demo upstream does not offer /{call.operation}.",
                             "type": "invalid_request_error", "param": None, "code": "unsupported"}}
            return DemoResponse(400, [json.dumps(err).encode()], 0, "application/json")
        text = demo_reply(body)
        reasoning = REASONING if "reason" in model else ""
        prompt = estimate_prompt(body, call.operation)
        completion = count_text(text) + count_text(reasoning)
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                 "prompt_tokens_details": {"cached_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": count_text(reasoning)}}
        created, rid = int(time.time()), "chatcmpl-demo" + hashlib.md5(text.encode()).hexdigest()[:12]
        chat = call.operation == "chat/completions"
        if not call.stream:
            if chat:
                message: dict[str, Any] = {"role": "assistant", "content": text}
                if reasoning:
                    message["reasoning_content"] = reasoning
                choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": "stop"}
                obj = "chat.completion"
            else:
                choice, obj = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}, "text_completion"
            data = {"id": rid, "object": obj, "created": created, "model": model, "choices": [choice], "usage": usage}
            return DemoResponse(200, [json.dumps(data, ensure_ascii=False).encode()], 0, "application/json")
        obj = "chat.completion.chunk" if chat else "text_completion"

        def chunk(delta: dict[str, Any] | str, finish: str | None = None) -> bytes:
            c = {"index": 0, "delta": delta, "finish_reason": finish} if chat else \
                {"index": 0, "text": delta, "finish_reason": finish, "logprobs": None}
            return _sse({"id": rid, "object": obj, "created": created, "model": model, "choices": [c],
                         "usage": None})

        frames = [chunk({"role": "assistant", "content": ""} if chat else "")]
        if reasoning and chat:
            frames += [chunk({"reasoning_content": w + " "}) for w in reasoning.split(" ")]
        words = text.split(" ")
        frames += [chunk({"content": w + (" " if i < len(words) - 1 else "")} if chat else
                         w + (" " if i < len(words) - 1 else "")) for i, w in enumerate(words)]
        frames.append(chunk({} if chat else "", "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            frames.append(_sse({"id": rid, "object": obj, "created": created, "model": model, "choices": [],
                                "usage": usage}))
        frames.append(_sse("[DONE]"))
        return DemoResponse(200, frames, settings.DEMO_CHUNK_DELAY_MS / 1000, "text/event-stream")

    def _embeddings(self, body: dict[str, Any], model: str) -> DemoResponse:
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        data = []
        for i, item in enumerate(items):
            vector = _vector(str(item))
            if body.get("encoding_format") == "base64":
                vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vector})
        tokens = estimate_prompt(body, "embeddings")
        result = {"object": "list", "model": model, "data": data,
                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        return DemoResponse(200, [json.dumps(result).encode()], 0, "application/json")
