"""Gemini streamGenerateContent (alt=sse) ⇄ OpenAI chat.completion.chunk streams (protocols.md §0, §1.3, §5.1).

Both translators are fed parsed JSON chunks (one dict per upstream frame) and return the SSE frames to send.
"""

from __future__ import annotations

import json
import time
from typing import Any

from relay.protocols.gemini_response import (
    as_list,
    candidate_parts,
    finish_reason_to_gemini,
    finish_reason_to_openai,
    function_call_part,
    gemini_error_body,
    gemini_error_to_openai,
    openai_tool_call,
    usage_from_gemini,
    usage_to_gemini,
    usage_to_openai,
)
from relay.protocols.sse import frame_build
from relay.usage import Usage, usage_from_openai


def _frame(data: dict) -> bytes:
    return frame_build(json.dumps(data, ensure_ascii=False, separators=(",", ":")))


def _error_status(err: dict) -> int:
    """The HTTP status an OpenAI error object stands for (mid-stream errors carry none of their own)."""
    kinds = {str(err.get("type") or ""), str(err.get("code") or "")}
    if kinds & {"rate_limit_exceeded", "insufficient_quota"}:
        return 429
    return 400 if "invalid_request_error" in kinds else 500


class GeminiToOpenAIStream:
    """Gemini stream chunks in, OpenAI chat.completion.chunk frames out (for an OpenAI client of a Gemini upstream)."""

    def __init__(self, model: str, include_usage: bool, id_seed: str, *, created: int | None = None) -> None:
        self.model, self.include_usage, self.id_seed = model, include_usage, id_seed
        self.created = int(time.time()) if created is None else created
        self.error = ""
        self._meta: Any = None  # the last usageMetadata seen: earlier ones are partial
        self._started: set[int] = set()
        self._finished: set[int] = set()
        self._calls: dict[int, int] = {}  # choice index -> function calls sent so far
        self._text: list[str] = []
        self._closed = False

    def _chunk(self, choices: list[dict], **extra: Any) -> bytes:
        return _frame({"id": f"chatcmpl-{self.id_seed}", "object": "chat.completion.chunk", "created": self.created,
                       "model": self.model, "choices": choices, **extra})

    def _delta(self, index: int, delta: dict, finish: str | None = None) -> bytes:
        return self._chunk([{"index": index, "delta": delta, "finish_reason": finish}])

    def _start(self, index: int) -> list[bytes]:
        if index in self._started:
            return []
        self._started.add(index)
        return [self._delta(index, {"role": "assistant", "content": ""})]

    def _finish(self, index: int, reason: str) -> list[bytes]:
        if index in self._finished:
            return []
        self._finished.add(index)
        return [self._delta(index, {}, reason)]

    def feed(self, chunk: Any) -> list[bytes]:
        """One parsed Gemini chunk (or a raw Gemini error object) -> the OpenAI frames it becomes."""
        if isinstance(chunk, list) and len(chunk) == 1:  # errors sometimes arrive as a one-element JSON array
            chunk = chunk[0]
        if not isinstance(chunk, dict) or self.error or self._closed:
            return []
        if "error" in chunk:
            body = gemini_error_to_openai(chunk)
            self.error = body["error"]["message"]
            return [_frame(body)]
        if chunk.get("usageMetadata") is not None:
            self._meta = chunk["usageMetadata"]
        frames: list[bytes] = []
        candidates = [c for c in as_list(chunk.get("candidates")) if isinstance(c, dict)]
        for position, candidate in enumerate(candidates):
            index = candidate.get("index") if isinstance(candidate.get("index"), int) else position
            frames += self._start(index)
            for kind, value in candidate_parts(candidate):
                if kind == "call":
                    call = openai_tool_call(self.id_seed, index, self._calls.get(index, 0), value)
                    frames.append(self._delta(index, {"tool_calls": [{"index": self._calls.get(index, 0), **call}]}))
                    self._calls[index] = self._calls.get(index, 0) + 1
                    self._text.append(call["function"]["arguments"])
                else:
                    frames.append(self._delta(index, {"reasoning_content" if kind == "thought" else "content": value}))
                    if kind != "image":  # an estimate counts no base64: images are in the usage Gemini reports
                        self._text.append(value)
            if candidate.get("finishReason"):
                reason = finish_reason_to_openai(candidate["finishReason"], has_tool_calls=index in self._calls)
                frames += self._finish(index, reason)
        feedback = chunk.get("promptFeedback")
        if not candidates and isinstance(feedback, dict) and feedback.get("blockReason"):
            frames += self._start(0) + self._finish(0, "content_filter")  # the prompt itself was blocked
        return frames

    def finish(self) -> list[bytes]:
        """The closing frames: the usage chunk (if the client asked and usage arrived), then [DONE]; once."""
        if self._closed:
            return []
        self._closed = True
        frames = []
        usage = self.usage
        if self.include_usage and usage is not None and not self.error:
            frames.append(self._chunk([], usage=usage_to_openai(usage)))
        return frames + [b"data: [DONE]\n\n"]

    @property
    def usage(self) -> Usage | None:
        return usage_from_gemini(self._meta)

    @property
    def text(self) -> str:
        """Everything generated so far (text, thoughts, call arguments): what an estimate counts if usage is lost."""
        return "".join(self._text)


class OpenAIToGeminiStream:
    """OpenAI chunk dicts in, Gemini `data: <GenerateContentResponse>` frames out (for a Gemini client)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.error = ""
        self._usage: Usage | None = None
        self._response_id = ""
        self._held: dict[int, str] = {}  # choice index -> Gemini finishReason, held until usage arrives
        self._calls: dict[int, list[dict]] = {}  # choice index -> tool calls assembled from fragments
        self._done = False
        self._text: list[str] = []

    def _response(self, candidates: list[dict], **extra: Any) -> bytes:
        out: dict[str, Any] = {"candidates": candidates, **extra, "modelVersion": self.model}
        if self._response_id:
            out["responseId"] = self._response_id
        return _frame(out)

    def _collect_calls(self, index: int, fragments: Any) -> None:
        calls = self._calls.setdefault(index, [])
        for fragment in as_list(fragments):
            if not isinstance(fragment, dict):
                continue
            function = fragment.get("function") if isinstance(fragment.get("function"), dict) else {}
            slot = fragment.get("index")
            if not isinstance(slot, int):  # some upstreams omit index: a new id starts a new call
                slot = len(calls) if fragment.get("id") or not calls else len(calls) - 1
            while len(calls) <= slot:
                calls.append({"id": "", "function": {"name": "", "arguments": ""}})
            call = calls[slot]
            call["id"] = call["id"] or str(fragment.get("id") or "")
            call["function"]["name"] += str(function.get("name") or "")
            call["function"]["arguments"] += str(function.get("arguments") or "")
            self._text.append(str(function.get("arguments") or ""))

    def feed(self, chunk: Any) -> list[bytes]:
        """One parsed OpenAI chunk -> the Gemini frames it becomes (the finish waits for usage or finish())."""
        if not isinstance(chunk, dict) or self._done:
            return []
        if "error" in chunk:
            err = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
            self.error = str(err.get("message") or "upstream error")
            self._done = True
            return [_frame(gemini_error_body(_error_status(err), self.error))]
        if isinstance(chunk.get("id"), str) and chunk["id"]:
            self._response_id = self._response_id or chunk["id"]
        frames = []
        for position, choice in enumerate(c for c in as_list(chunk.get("choices")) if isinstance(c, dict)):
            index = choice.get("index") if isinstance(choice.get("index"), int) else position
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            parts = []
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                parts.append({"text": reasoning, "thought": True})
            if isinstance(delta.get("content"), str) and delta["content"]:
                parts.append({"text": delta["content"]})
            self._collect_calls(index, delta.get("tool_calls"))
            if parts and index not in self._held:
                self._text += [p["text"] for p in parts]
                frames.append(self._response([{"content": {"role": "model", "parts": parts}, "index": index}]))
            if choice.get("finish_reason"):
                self._held[index] = finish_reason_to_gemini(choice["finish_reason"])
        usage = usage_from_openai(chunk.get("usage"))
        if usage is not None:
            self._usage = usage
            if self._held:
                frames += self._final()
        return frames

    def _final(self) -> list[bytes]:
        self._done = True
        candidates = []
        for index in sorted(set(self._held) | {i for i, calls in self._calls.items() if calls}):
            parts = [p for p in map(function_call_part, self._calls.get(index, [])) if p]
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts or [{"text": ""}]}, "index": index}
            if index in self._held:
                candidate["finishReason"] = self._held[index]
            candidates.append(candidate)
        if not candidates and self._usage is None:
            return []
        extra = {"usageMetadata": usage_to_gemini(self._usage)} if self._usage is not None else {}
        return [self._response(candidates, **extra)]

    def finish(self) -> list[bytes]:
        """Send whatever is held (finish reasons, assembled calls) without waiting any longer for usage."""
        return [] if self._done else self._final()

    @property
    def usage(self) -> Usage | None:
        return self._usage

    @property
    def text(self) -> str:
        return "".join(self._text)
