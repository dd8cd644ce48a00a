"""OpenAI chat.completion.chunk streams → Responses API stream events (protocols.md §0, §1.3, §2).

Items are streamed one at a time, as OpenAI does: a new item (reasoning, message or function call) closes the one
before it, and output indices count items in the order they are opened.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from relay.protocols.responses_output import (
    arguments_text,
    error_body,
    estimated_usage,
    function_call_item,
    incomplete_reason,
    item_id,
    message_item,
    new_response_id,
    refusal_part,
    response_object,
    text_part,
)
from relay.protocols.sse import frame_build
from relay.usage import Usage, usage_from_openai

PART_DONE_EVENTS = {"output_text": ("response.output_text.done", "text"),
                    "refusal": ("response.refusal.done", "refusal")}
PART_DELTA_EVENTS = {"output_text": "response.output_text.delta", "refusal": "response.refusal.delta"}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class OpenAIToResponsesStream:
    """Fed one parsed chat chunk at a time; returns `event: <type>` SSE frames, the terminal one from done()."""

    def __init__(self, model: str, request: dict, input_tokens_estimate: int, *, response_id: str | None = None,
                 created: int | None = None) -> None:
        self.model = model
        self.request = request if isinstance(request, dict) else {}
        self.input_tokens_estimate = input_tokens_estimate
        self.response_id = response_id or new_response_id()
        self.created = int(time.time()) if created is None else created
        self._sequence = 0
        self._output: list[dict[str, Any]] = []  # items in output_index order, as they stand now
        self._open: tuple[Any, ...] | None = None  # key of the open item: ("message",), ("reasoning",), ("call", k)
        self._calls: set[Any] = set()  # tool-call keys that already have an item
        self._part_open = False  # the open message item's last content part still takes deltas
        self._usage: Usage | None = None
        self._text: list[str] = []
        self._error = ""
        self._finish_reason: str | None = None
        self._started = self._closed = False

    @property
    def usage(self) -> Usage | None:
        """Usage from the upstream's usage chunk; None until (unless) one arrives."""
        return self._usage

    @property
    def text(self) -> str:
        """Everything generated so far (text, refusals, tool-call arguments, reasoning), for estimating usage."""
        return "".join(self._text)

    @property
    def error(self) -> str:
        """Empty, or the message of an upstream error that arrived mid-stream."""
        return self._error

    def feed(self, chunk: dict) -> list[bytes]:
        """One parsed chat.completion.chunk → zero or more SSE frames."""
        if self._closed or not isinstance(chunk, dict):
            return []
        frames = self._start()
        if chunk.get("error"):  # OpenAI sends `data: {"error": {...}}` after HTTP 200 (protocols.md §0)
            return frames + self._fail(chunk["error"])
        self._usage = usage_from_openai(chunk.get("usage")) or self._usage
        choices = chunk.get("choices") if isinstance(chunk.get("choices"), list) else []
        # One response per stream: other choices (n > 1) are dropped. Azure's prompt-filter chunks have none.
        for choice in [c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0][:1]:
            if isinstance(choice.get("delta"), dict):
                frames += self._delta(choice["delta"])
            if choice.get("finish_reason"):
                self._finish_reason = str(choice["finish_reason"])
                frames += self._close_item()
        return frames

    def done(self) -> list[bytes]:
        """The upstream stream ended ([DONE] or EOF): close what is open and send the terminal event, once.

        Usage comes in a last chunk after the finish_reason chunk, so the terminal event waits for this call.
        """
        if self._closed:
            return []
        frames = self._start() + self._close_item()
        self._closed = True
        status = "incomplete" if incomplete_reason(self._finish_reason) else "completed"
        usage = self._usage or estimated_usage(self.input_tokens_estimate, self.text)
        return frames + [self._event(f"response.{status}", response=self._response(status, usage=usage))]

    # --- frames -----------------------------------------------------------------------------------------------

    def _event(self, kind: str, **data: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._sequence, **data}
        self._sequence += 1
        return frame_build(_dumps(payload), kind)

    def _response(self, status: str, **extra: Any) -> dict[str, Any]:
        return response_object(self.request, response_id=self.response_id, created=self.created, model=self.model,
                               status=status, output=self._output, finish_reason=self._finish_reason, **extra)

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        return [self._event("response.created", response=self._response("in_progress")),
                self._event("response.in_progress", response=self._response("in_progress"))]

    def _fail(self, error: Any) -> list[bytes]:
        body = error_body(error)
        self._error = body["message"]
        self._closed = True
        if self._open is not None:
            self._output[-1]["status"] = "incomplete"
        return [self._event("response.failed", response=self._response("failed", usage=self._usage, error=body))]

    # --- items ------------------------------------------------------------------------------------------------

    def _where(self) -> dict[str, Any]:
        index = len(self._output) - 1
        return {"item_id": self._output[index]["id"], "output_index": index}

    def _open_item(self, key: tuple[Any, ...], prefix: str, build: Callable[[str], dict[str, Any]]) -> list[bytes]:
        """Open a new item unless `key` is already open; `build(item_id)` makes the item in its added state."""
        if self._open == key:
            return []
        frames = self._close_item()
        index = len(self._output)
        self._output.append(build(item_id(prefix, self.response_id, index)))
        self._open = key
        return frames + [self._event("response.output_item.added", output_index=index, item=self._output[index])]

    def _close_item(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        item = self._output[-1]
        frames: list[bytes] = []
        if item["type"] == "message":
            frames = self._close_part()
        elif item["type"] == "reasoning":
            part = item["summary"][0]
            frames = [self._event("response.reasoning_summary_text.done", **self._where(), summary_index=0,
                                  text=part["text"]),
                      self._event("response.reasoning_summary_part.done", **self._where(), summary_index=0,
                                  part=part)]
        else:
            item["arguments"] = arguments_text(item["arguments"])
            frames = [self._event("response.function_call_arguments.done", **self._where(),
                                  arguments=item["arguments"])]
        # Only the item being produced when the upstream stopped for length or a filter is incomplete.
        item["status"] = "incomplete" if incomplete_reason(self._finish_reason) else "completed"
        return frames + [self._event("response.output_item.done", output_index=len(self._output) - 1, item=item)]

    def _open_part(self, kind: str) -> list[bytes]:
        """Make a content part of `kind` current in the open message item."""
        content = self._output[-1]["content"]
        if self._part_open and content[-1]["type"] == kind:
            return []
        frames = self._close_part()
        content.append(text_part("") if kind == "output_text" else refusal_part(""))
        self._part_open = True
        return frames + [self._event("response.content_part.added", **self._where(), content_index=len(content) - 1,
                                     part=content[-1])]

    def _close_part(self) -> list[bytes]:
        if not self._part_open:
            return []
        self._part_open = False
        content = self._output[-1]["content"]
        part, index = content[-1], len(content) - 1
        event, field = PART_DONE_EVENTS[part["type"]]
        extra = {"logprobs": []} if part["type"] == "output_text" else {}
        return [self._event(event, **self._where(), content_index=index, **{field: part[field]}, **extra),
                self._event("response.content_part.done", **self._where(), content_index=index, part=part)]

    def _delta(self, delta: dict[str, Any]) -> list[bytes]:
        frames: list[bytes] = []
        # DeepSeek streams reasoning_content before content; OpenRouter and newer vLLM call it reasoning.
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            frames += self._reasoning_delta(reasoning)
        for kind, key in (("output_text", "content"), ("refusal", "refusal")):
            if isinstance(delta.get(key), str) and delta[key]:
                frames += self._part_delta(kind, delta[key])
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else []:
            if isinstance(call, dict):
                frames += self._tool_call(call)
        return frames

    def _reasoning_delta(self, text: str) -> list[bytes]:
        frames = self._open_item(("reasoning",), "rs", lambda id_: {"type": "reasoning", "id": id_, "summary": [],
                                                                   "status": "in_progress"})
        item = self._output[-1]
        if not item["summary"]:
            item["summary"].append({"type": "summary_text", "text": ""})
            frames.append(self._event("response.reasoning_summary_part.added", **self._where(), summary_index=0,
                                      part=item["summary"][0]))
        item["summary"][0]["text"] += text
        self._text.append(text)
        return frames + [self._event("response.reasoning_summary_text.delta", **self._where(), summary_index=0,
                                     delta=text)]

    def _part_delta(self, kind: str, text: str) -> list[bytes]:
        frames = self._open_item(("message",), "msg", lambda id_: message_item(id_, [], "in_progress"))
        frames += self._open_part(kind)
        content = self._output[-1]["content"]
        field = "text" if kind == "output_text" else "refusal"
        content[-1][field] += text
        self._text.append(text)
        extra = {"logprobs": []} if kind == "output_text" else {}
        return frames + [self._event(PART_DELTA_EVENTS[kind], **self._where(), content_index=len(content) - 1,
                                     delta=text, **extra)]

    def _tool_call(self, call: dict[str, Any]) -> list[bytes]:
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        key = call.get("index")
        if not isinstance(key, int):  # some upstreams omit the index: a new id means a new call
            key = call.get("id") or (self._open[1] if self._open and self._open[0] == "call" else len(self._calls))
        arguments = function.get("arguments") if isinstance(function.get("arguments"), str) else ""
        self._text.append(arguments)
        frames: list[bytes] = []
        if self._open != ("call", key):
            if key in self._calls:
                return []  # a late fragment of a call whose item is already done cannot be delivered
            self._calls.add(key)
            call_id = call.get("id") if isinstance(call.get("id"), str) and call["id"] else None
            name = str(function.get("name") or "")
            frames = self._open_item(("call", key), "fc", lambda id_: function_call_item(
                id_, call_id or id_.replace("fc_", "call_", 1), name, "", "in_progress"))
        item = self._output[-1]
        if not item["name"] and function.get("name"):
            item["name"] = str(function["name"])
        if arguments:
            item["arguments"] += arguments
            frames.append(self._event("response.function_call_arguments.delta", **self._where(), delta=arguments))
        return frames
