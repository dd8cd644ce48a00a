"""Cohere's v2 chat and embed (the `cohere.ClientV2` SDK) as OpenAI chat completions and embeddings, both ways.

v2 chat messages are close to OpenAI's: roles system, user, assistant (with `tool_calls` and `tool_plan`) and tool
(`tool_call_id`, content a string or text/document parts); tools are OpenAI's function shape; `p`, `k`,
`stop_sequences`, `tool_choice` REQUIRED/NONE. Answers: `{id, finish_reason, message{role, content[{type: text}],
tool_calls}, usage{billed_units, tokens}}`; streams: message-start, content-start/-delta/-end,
tool-call-start/-delta/-end, message-end (finish reason and usage). Embed: `texts` and `embedding_types` in,
`{id, embeddings{float}, texts, meta{billed_units}}` out.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from relay import errors
from relay.protocols.sse import frame_build
from relay.usage import Usage, usage_from_openai

FINISH = {"stop": "COMPLETE", "length": "MAX_TOKENS", "tool_calls": "TOOL_CALL", "function_call": "TOOL_CALL",
          "content_filter": "ERROR"}
TOOL_CHOICE = {"REQUIRED": "required", "NONE": "none"}


def _text(content: Any) -> str:
    """A tool result's content: a string, or text and document parts joined."""
    if isinstance(content, str):
        return content
    out = []
    for part in content if isinstance(content, list) else []:
        if isinstance(part, dict) and part.get("type") == "text":
            out.append(str(part.get("text") or ""))
        elif isinstance(part, dict) and part.get("type") == "document":
            document = part.get("document")
            data = document.get("data", document) if isinstance(document, dict) else document
            out.append(data if isinstance(data, str) else json.dumps(data, ensure_ascii=False))
    return "\n".join(out)


def _message(message: Any) -> dict[str, Any]:
    if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant", "tool"):
        raise errors.bad_request("Each message needs role system, user, assistant or tool.", param="messages")
    role, content = message["role"], message.get("content")
    if role == "tool":
        return {"role": "tool", "tool_call_id": str(message.get("tool_call_id") or ""), "content": _text(content)}
    out: dict[str, Any] = {"role": role, "content": content if isinstance(content, (str, list)) else ""}
    if role == "assistant" and isinstance(message.get("tool_calls"), list):
        out["tool_calls"] = message["tool_calls"]
        out["content"] = out["content"] or message.get("tool_plan") or None
    return out


def cohere_chat_to_openai(body: dict[str, Any]) -> dict[str, Any]:
    """A v2 chat request as an OpenAI chat completion request."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise errors.bad_request("'messages' is required and must be a non-empty array.", param="messages")
    out: dict[str, Any] = {"model": body.get("model"), "messages": [_message(m) for m in messages]}
    for source, target in (("max_tokens", "max_tokens"), ("temperature", "temperature"), ("p", "top_p"),
                           ("seed", "seed"), ("frequency_penalty", "frequency_penalty"),
                           ("presence_penalty", "presence_penalty"), ("stop_sequences", "stop"), ("tools", "tools"),
                           ("stream", "stream")):
        if body.get(source) is not None:
            out[target] = body[source]
    choice = body.get("tool_choice")
    if isinstance(choice, str) and choice in TOOL_CHOICE:
        out["tool_choice"] = TOOL_CHOICE[choice]
    format_ = body.get("response_format")
    if isinstance(format_, dict) and format_.get("type") == "json_object":
        schema = format_.get("json_schema") or format_.get("schema")
        out["response_format"] = ({"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
                                  if isinstance(schema, dict) else {"type": "json_object"})
    return out


def cohere_embed_to_openai(body: dict[str, Any]) -> dict[str, Any]:
    """A v2 embed request (texts, float embeddings) as an OpenAI embeddings request."""
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        raise errors.bad_request("'texts' must be a non-empty array of strings.", param="texts")
    kinds = body.get("embedding_types") or ["float"]
    if kinds != ["float"]:
        raise errors.bad_request("Only float embeddings are offered here.", param="embedding_types")
    out: dict[str, Any] = {"model": body.get("model"), "input": texts, "encoding_format": "float"}
    if isinstance(body.get("output_dimension"), int):
        out["dimensions"] = body["output_dimension"]
    return out


def cohere_request_to_openai(body: dict[str, Any], operation: str) -> dict[str, Any]:
    return cohere_embed_to_openai(body) if operation == "embeddings" else cohere_chat_to_openai(body)


def usage_to_cohere(usage: Usage | None) -> dict[str, Any]:
    prompt, completion = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
    counts = {"input_tokens": prompt, "output_tokens": completion}
    return {"billed_units": counts, "tokens": counts, "cached_tokens": usage.cached_tokens if usage else 0}


def openai_chat_response_to_cohere(data: dict[str, Any]) -> dict[str, Any]:
    choices = data.get("choices") if isinstance(data.get("choices"), list) else []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    out_message: dict[str, Any] = {"role": "assistant", "content": []}
    if message.get("content"):
        out_message["content"] = [{"type": "text", "text": str(message["content"])}]
    if isinstance(message.get("tool_calls"), list) and message["tool_calls"]:
        out_message["tool_calls"] = [{"id": c.get("id"), "type": "function", "function": c.get("function")}
                                     for c in message["tool_calls"] if isinstance(c, dict)]
    return {"id": str(data.get("id") or uuid.uuid4()), "finish_reason": FINISH.get(str(choice.get("finish_reason")),
                                                                                    "COMPLETE"),
            "message": out_message, "usage": usage_to_cohere(usage_from_openai(data.get("usage")))}


def openai_embeddings_to_cohere(data: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    rows = [r for r in data.get("data") if isinstance(r, dict)] if isinstance(data.get("data"), list) else []
    rows.sort(key=lambda r: r.get("index") if isinstance(r.get("index"), int) else 0)
    usage = usage_from_openai(data.get("usage"))
    return {"id": str(uuid.uuid4()), "response_type": "embeddings_by_type",
            "embeddings": {"float": [r.get("embedding") for r in rows]}, "texts": texts,
            "meta": {"api_version": {"version": "2"},
                     "billed_units": {"input_tokens": usage.prompt_tokens if usage else 0}}}


def _event(data: dict[str, Any]) -> bytes:
    return frame_build(json.dumps(data, ensure_ascii=False, separators=(",", ":")), event=data["type"])


class OpenAIToCohereStream:
    """OpenAI chat chunks in, Cohere v2 stream events out (one text content block, tool calls by index)."""

    def __init__(self) -> None:
        self.id = str(uuid.uuid4())
        self.usage: Usage | None = None
        self.error = ""
        self._started = self._text_open = False
        self._calls: set[int] = set()
        self._finish = "COMPLETE"
        self._text: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self._text)

    def feed(self, chunk: dict[str, Any]) -> list[bytes]:
        frames: list[bytes] = []
        if not self._started:
            self._started = True
            frames.append(_event({"type": "message-start", "id": self.id,
                                  "delta": {"message": {"role": "assistant", "content": [], "tool_calls": []}}}))
        if isinstance(chunk.get("error"), dict):
            self.error = str(chunk["error"].get("message") or "upstream error")
            return frames + [_event({"type": "message-end", "delta": {"finish_reason": "ERROR",
                                                                      "error": self.error}})]
        self.usage = usage_from_openai(chunk.get("usage")) or self.usage
        choices = chunk.get("choices") if isinstance(chunk.get("choices"), list) else []
        for choice in (c for c in choices if isinstance(c, dict)):
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            if isinstance(delta.get("content"), str) and delta["content"]:
                if not self._text_open:
                    self._text_open = True
                    frames.append(_event({"type": "content-start", "index": 0, "delta": {
                        "message": {"content": {"type": "text", "text": ""}}}}))
                self._text.append(delta["content"])
                frames.append(_event({"type": "content-delta", "index": 0, "delta": {
                    "message": {"content": {"text": delta["content"]}}}}))
            calls = delta.get("tool_calls") if isinstance(delta.get("tool_calls"), list) else []
            for call in (c for c in calls if isinstance(c, dict)):
                frames += self._tool_call(call)
            if choice.get("finish_reason"):
                self._finish = FINISH.get(str(choice["finish_reason"]), "COMPLETE")
        return frames

    def _tool_call(self, call: dict[str, Any]) -> list[bytes]:
        index = call.get("index") if isinstance(call.get("index"), int) else 0
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        arguments = str(function.get("arguments") or "")
        self._text.append(arguments)
        if index not in self._calls:
            self._calls.add(index)
            start = {"id": call.get("id"), "type": "function",
                     "function": {"name": function.get("name"), "arguments": arguments}}
            return [_event({"type": "tool-call-start", "index": index, "delta": {"message": {"tool_calls": start}}})]
        return [_event({"type": "tool-call-delta", "index": index,
                        "delta": {"message": {"tool_calls": {"function": {"arguments": arguments}}}}})] \
            if arguments else []

    def finish(self) -> list[bytes]:
        if self.error:
            return []
        frames = [_event({"type": "content-end", "index": 0})] if self._text_open else []
        frames += [_event({"type": "tool-call-end", "index": index}) for index in sorted(self._calls)]
        return frames + [_event({"type": "message-end", "delta": {"finish_reason": self._finish,
                                                                   "usage": usage_to_cohere(self.usage)}})]
