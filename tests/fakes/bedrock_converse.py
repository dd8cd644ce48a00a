"""The Converse half of the fake Bedrock runtime (bedrock_upstream.py): `POST /model/{id}/converse` and
`/converse-stream`, checked and answered as Bedrock documents them, from the same Behaviour as the Claude routes.

Checks: no `model` or `anthropic_version` in the body, messages alternating from `user`, every content block one
of Converse's kinds, `toolResult`s answering a `toolUse` of the turn before. Answers: `output.message`, `stopReason`,
`usage`; streams as event-stream frames messageStart, contentBlockStart/Delta/Stop, messageStop, metadata.
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.anthropic_upstream import Behaviour

BLOCK_KINDS = {"text", "image", "document", "toolUse", "toolResult", "reasoningContent", "video", "cachePoint"}


def converse_problem(body: Any) -> str | None:
    """Bedrock's ValidationException message for the first problem in a Converse request, if any."""
    if not isinstance(body, dict) or "model" in body or "anthropic_version" in body:
        return "Malformed input request: extraneous key"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "A conversation must start with a user message."
    used: set[str] = set()
    for position, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role != ("user" if position % 2 == 0 else "assistant"):
            return "A conversation must alternate between user and assistant roles."
        content = message.get("content")
        if not isinstance(content, list) or not content:
            return "The content field in the Message object is empty."
        for block in content:
            if not isinstance(block, dict) or len(block) != 1 or next(iter(block)) not in BLOCK_KINDS:
                return "The content block is not valid."
            if "toolUse" in block:
                used.add(block["toolUse"].get("toolUseId"))
            if "toolResult" in block and block["toolResult"].get("toolUseId") not in used:
                return "The toolResult blocks must answer toolUse blocks of the previous turn."
            if "text" in block and not str(block["text"]).strip():
                return "The text field in the ContentBlock object is blank."
    return None


def _blocks(model: str, b: Behaviour) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if b.thinking:
        blocks.append({"reasoningContent": {"reasoningText": {"text": b.thinking, "signature": b.signature}}})
    if b.content is not None or not b.tool_use:
        blocks.append({"text": b.content if b.content is not None else f"Hello from {model}!"})
    for n, use in enumerate(b.tool_use or []):
        blocks.append({"toolUse": {"toolUseId": use.get("id") or f"tooluse_{n}", "name": use["name"],
                                   "input": use.get("input") or {}}})
    return blocks


def _usage(b: Behaviour) -> dict[str, int]:
    usage = {"inputTokens": b.input_tokens, "outputTokens": b.output_tokens,
             "totalTokens": b.input_tokens + b.output_tokens + b.cache_read_input_tokens}
    if b.cache_read_input_tokens:
        usage["cacheReadInputTokens"] = b.cache_read_input_tokens
    return usage


def converse_answer(model: str, b: Behaviour) -> dict[str, Any]:
    return {"output": {"message": {"role": "assistant", "content": _blocks(model, b)}},
            "stopReason": "tool_use" if b.tool_use else b.stop_reason, "usage": _usage(b),
            "metrics": {"latencyMs": 10}}


def _pieces(text: str, count: int) -> list[str]:
    size = max(1, -(-len(text) // max(count, 1)))
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def converse_events(model: str, b: Behaviour) -> list[tuple[str, dict[str, Any]]]:
    """(event type, payload) in the order Bedrock sends them."""
    events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
    for index, block in enumerate(_blocks(model, b)):
        if "toolUse" in block:
            use = block["toolUse"]
            events.append(("contentBlockStart", {"contentBlockIndex": index, "start": {"toolUse": {
                "toolUseId": use["toolUseId"], "name": use["name"]}}}))
            for piece in _pieces(json.dumps(use["input"]), b.chunks):
                delta = {"toolUse": {"input": piece}}
                events.append(("contentBlockDelta", {"contentBlockIndex": index, "delta": delta}))
        elif "reasoningContent" in block:
            reasoning = block["reasoningContent"]["reasoningText"]
            for piece in _pieces(reasoning["text"], b.chunks):
                events.append(("contentBlockDelta", {"contentBlockIndex": index,
                                                     "delta": {"reasoningContent": {"text": piece}}}))
            events.append(("contentBlockDelta", {"contentBlockIndex": index,
                                                 "delta": {"reasoningContent": {"signature": reasoning["signature"]}}}))
        else:
            for piece in _pieces(block["text"], b.chunks):
                events.append(("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": piece}}))
        events.append(("contentBlockStop", {"contentBlockIndex": index}))
    events.append(("messageStop", {"stopReason": "tool_use" if b.tool_use else b.stop_reason}))
    events.append(("metadata", {"usage": _usage(b), "metrics": {"latencyMs": 10}}))
    return events
