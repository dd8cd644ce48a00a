"""Amazon Bedrock's Converse API as Anthropic's Messages: requests, answers and stream events, both shapes being
content blocks. Every client reaches Converse models through the Anthropic format the relay already speaks.

Converse: `messages[{role, content[{text} | {image{format, source{bytes}}} | {document} | {toolUse} |
{toolResult} | {reasoningContent}]}]`, `system[{text}]`, `inferenceConfig{maxTokens, temperature, topP,
stopSequences}`, `toolConfig{tools[{toolSpec{name, description, inputSchema{json}}}], toolChoice}`; the answer's
`output.message`, `stopReason` and `usage{inputTokens, outputTokens, cacheReadInputTokens, cacheWriteInputTokens}`;
stream events messageStart, contentBlockStart, contentBlockDelta, contentBlockStop, messageStop and metadata.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from relay.protocols.sse import frame_build
from relay.protocols.untrusted import as_list

IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                 "image/webp": "webp"}
STOP_REASONS = {"end_turn": "end_turn", "tool_use": "tool_use", "max_tokens": "max_tokens",
                "stop_sequence": "stop_sequence", "guardrail_intervened": "refusal", "content_filtered": "refusal",
                "model_context_window_exceeded": "max_tokens"}


class ConverseUnsupported(ValueError):
    """A request Converse cannot take as sent (an image by URL); the message says what to send instead."""


def _block(block: Any) -> dict[str, Any] | None:
    """One Anthropic content block as Converse's; thinking and unknown blocks are dropped."""
    if not isinstance(block, dict):
        return None
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return {"text": text} if isinstance(text, str) and text.strip() else None
    if kind in ("image", "document"):
        source = block.get("source") if isinstance(block.get("source"), dict) else {}
        if source.get("type") != "base64":
            raise ConverseUnsupported(f"This model takes {kind}s as base64 data, not by URL.")
        media = str(source.get("media_type") or "")
        if kind == "image":
            return {"image": {"format": IMAGE_FORMATS.get(media, "png"), "source": {"bytes": source.get("data")}}}
        return {"document": {"format": media.rsplit("/", 1)[-1] or "pdf", "name": "document",
                             "source": {"bytes": source.get("data")}}}
    if kind == "tool_use":
        return {"toolUse": {"toolUseId": str(block.get("id") or ""), "name": str(block.get("name") or ""),
                            "input": block.get("input") if isinstance(block.get("input"), dict) else {}}}
    if kind == "tool_result":
        content = block.get("content")
        parts = [{"text": content}] if isinstance(content, str) else [b for b in map(_block, as_list(content)) if b]
        result: dict[str, Any] = {"toolUseId": str(block.get("tool_use_id") or ""),
                                  "content": parts or [{"text": ""}]}
        if block.get("is_error"):
            result["status"] = "error"
        return {"toolResult": result}
    return None


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content.strip() else []
    return [b for b in map(_block, as_list(content)) if b]


def _tool_config(body: dict[str, Any]) -> dict[str, Any] | None:
    choice = body.get("tool_choice") if isinstance(body.get("tool_choice"), dict) else {}
    tools = [t for t in as_list(body.get("tools")) if isinstance(t, dict) and t.get("name")]
    if not tools or choice.get("type") == "none":
        return None
    specs = [{"toolSpec": {"name": t["name"], "description": str(t.get("description") or t["name"]),
                           "inputSchema": {"json": t.get("input_schema") or {"type": "object"}}}} for t in tools]
    config: dict[str, Any] = {"tools": specs}
    if choice.get("type") == "any":
        config["toolChoice"] = {"any": {}}
    elif choice.get("type") == "tool" and choice.get("name"):
        config["toolChoice"] = {"tool": {"name": str(choice["name"])}}
    elif choice.get("type") == "auto":
        config["toolChoice"] = {"auto": {}}
    return config


def anthropic_to_converse(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages request as a Converse request (the model goes in the path)."""
    out: dict[str, Any] = {"messages": []}
    for message in as_list(body.get("messages")):
        if isinstance(message, dict) and message.get("role") in ("user", "assistant"):
            blocks = _blocks(message.get("content"))
            if blocks:
                out["messages"].append({"role": message["role"], "content": blocks})
    system = body.get("system")
    texts = [system] if isinstance(system, str) else [b.get("text") for b in as_list(system) if isinstance(b, dict)]
    if any(isinstance(t, str) and t.strip() for t in texts):
        out["system"] = [{"text": t} for t in texts if isinstance(t, str) and t.strip()]
    inference = {name: body[key] for key, name in (("max_tokens", "maxTokens"), ("temperature", "temperature"),
                                                   ("top_p", "topP"), ("stop_sequences", "stopSequences"))
                 if body.get(key) is not None}
    if inference:
        out["inferenceConfig"] = inference
    tools = _tool_config(body)
    if tools:
        out["toolConfig"] = tools
    return out


def usage_to_anthropic(usage: Any) -> dict[str, int]:
    usage = usage if isinstance(usage, dict) else {}

    def count(name: str) -> int:
        value = usage.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    return {"input_tokens": count("inputTokens"), "output_tokens": count("outputTokens"),
            "cache_read_input_tokens": count("cacheReadInputTokens"),
            "cache_creation_input_tokens": count("cacheWriteInputTokens")}


def _message_id() -> str:
    return f"msg_bdrk_{uuid.uuid4().hex[:24]}"


def converse_to_anthropic(data: dict[str, Any], model: str) -> dict[str, Any]:
    """A Converse answer as an Anthropic message."""
    output = data.get("output") if isinstance(data.get("output"), dict) else {}
    message = output.get("message") if isinstance(output.get("message"), dict) else {}
    content = []
    for block in as_list(message.get("content")):
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            content.append({"type": "text", "text": block["text"]})
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            content.append({"type": "tool_use", "id": str(use.get("toolUseId") or ""), "name": str(use.get("name")),
                            "input": use.get("input") if isinstance(use.get("input"), dict) else {}})
        elif isinstance(block.get("reasoningContent"), dict):
            reasoning = block["reasoningContent"].get("reasoningText")
            reasoning = reasoning if isinstance(reasoning, dict) else {}
            content.append({"type": "thinking", "thinking": str(reasoning.get("text") or ""),
                            "signature": str(reasoning.get("signature") or "")})
    return {"id": _message_id(), "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": STOP_REASONS.get(str(data.get("stopReason")), "end_turn"), "stop_sequence": None,
            "usage": usage_to_anthropic(data.get("usage"))}


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return frame_build(json.dumps({"type": kind, **data}, ensure_ascii=False, separators=(",", ":")), event=kind)


class ConverseToAnthropicStream:
    """Converse stream events in, Anthropic stream events (as SSE frames) out; usage arrives last, in metadata,
    so message_delta and message_stop wait for it."""

    def __init__(self, model: str) -> None:
        self.model = model
        self._open: dict[int, str] = {}  # block index -> Anthropic block type, for blocks started and not stopped
        self._stop_reason = "end_turn"
        self._started = self._stopped = self._ended = False

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        message = {"id": _message_id(), "type": "message", "role": "assistant", "model": self.model, "content": [],
                   "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}
        return [_event("message_start", {"message": message})]

    def _open_block(self, index: int, block: dict[str, Any]) -> list[bytes]:
        if index in self._open:
            return []
        self._open[index] = block["type"]
        return [_event("content_block_start", {"index": index, "content_block": block})]

    def feed(self, kind: str, data: dict[str, Any]) -> list[bytes]:
        if self._ended:
            return []
        frames = self._start()
        index = data.get("contentBlockIndex") if isinstance(data.get("contentBlockIndex"), int) else 0
        if kind == "contentBlockStart":
            use = (data.get("start") or {}).get("toolUse") if isinstance(data.get("start"), dict) else None
            if isinstance(use, dict):
                frames += self._open_block(index, {"type": "tool_use", "id": str(use.get("toolUseId") or ""),
                                                   "name": str(use.get("name") or ""), "input": {}})
        elif kind == "contentBlockDelta":
            frames += self._delta(index, data.get("delta") if isinstance(data.get("delta"), dict) else {})
        elif kind == "contentBlockStop" and index in self._open:
            del self._open[index]
            frames.append(_event("content_block_stop", {"index": index}))
        elif kind == "messageStop":
            self._stop_reason, self._stopped = STOP_REASONS.get(str(data.get("stopReason")), "end_turn"), True
        elif kind == "metadata":
            frames += self._end(usage_to_anthropic(data.get("usage")))
        return frames

    def _delta(self, index: int, delta: dict[str, Any]) -> list[bytes]:
        if isinstance(delta.get("text"), str):
            return self._open_block(index, {"type": "text", "text": ""}) + [
                _event("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": delta["text"]}})]
        if isinstance(delta.get("toolUse"), dict):
            partial = str(delta["toolUse"].get("input") or "")
            return [_event("content_block_delta", {"index": index, "delta": {"type": "input_json_delta",
                                                                               "partial_json": partial}})]
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict):
            frames = self._open_block(index, {"type": "thinking", "thinking": "", "signature": ""})
            if isinstance(reasoning.get("text"), str):
                frames.append(_event("content_block_delta", {"index": index, "delta": {"type": "thinking_delta",
                                                                                       "thinking": reasoning["text"]}}))
            if isinstance(reasoning.get("signature"), str):
                frames.append(_event("content_block_delta", {"index": index, "delta": {
                    "type": "signature_delta", "signature": reasoning["signature"]}}))
            return frames
        return []

    def _end(self, usage: dict[str, int] | None) -> list[bytes]:
        self._ended = True
        frames = [_event("content_block_stop", {"index": index}) for index in list(self._open)]
        self._open.clear()
        delta: dict[str, Any] = {"delta": {"stop_reason": self._stop_reason, "stop_sequence": None}}
        if usage is not None:
            delta["usage"] = usage
        return frames + [_event("message_delta", delta), _event("message_stop", {})]

    def finish(self) -> list[bytes]:
        """At the end of the upstream's stream: close the message if it stopped but its metadata never came."""
        if self._ended or not self._stopped:
            return []
        return self._start() + self._end(None)

    def error(self, error_type: str, message: str) -> bytes:
        self._ended = True
        return _event("error", {"error": {"type": error_type, "message": message}})
