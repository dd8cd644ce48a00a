"""Anthropic messages ⇄ OpenAI chat.completion: content, stop reasons, usage and errors (protocols.md §4.1)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from relay.protocols.untrusted import as_list
from relay.usage import Usage

# protocols.md §4.1. Unknown values fall back to the most neutral valid one on each side.
FINISH_REASON_BY_STOP_REASON = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
STOP_REASON_BY_FINISH_REASON = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
# protocols.md §4 error table; other 4xx are invalid_request_error, other 5xx api_error.
ANTHROPIC_ERROR_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
ANTHROPIC_ERROR_TYPES = frozenset(ANTHROPIC_ERROR_TYPE_BY_STATUS.values())


@dataclass(frozen=True)
class TokenUsage:
    """Usage in OpenAI terms: prompt_tokens includes both cache reads and cache writes, so nothing is counted twice."""

    prompt_tokens: int = 0
    completion_tokens: int = 0  # includes reasoning/thinking tokens
    cached_tokens: int = 0  # cache reads, a subset of prompt_tokens
    cache_write_tokens: int = 0  # cache writes, a subset of prompt_tokens
    reasoning_tokens: int = 0  # a subset of completion_tokens

    def as_usage(self) -> Usage:
        """The project-wide record (cache writes stay inside prompt_tokens and are also counted apart)."""
        return Usage(self.prompt_tokens, self.completion_tokens, self.cached_tokens, self.reasoning_tokens,
                     cache_write_tokens=self.cache_write_tokens)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def token_usage_from_anthropic(data: Any) -> TokenUsage | None:
    """Anthropic `usage` (input_tokens excludes both cache counters) → TokenUsage, or None if it is not one."""
    if not isinstance(data, dict) or not ({"input_tokens", "output_tokens"} & data.keys()):
        return None
    read = _count(data.get("cache_read_input_tokens"))
    write = _count(data.get("cache_creation_input_tokens"))
    details = data.get("output_tokens_details")
    thinking = _count(details.get("thinking_tokens")) if isinstance(details, dict) else 0
    output = _count(data.get("output_tokens"))
    return TokenUsage(_count(data.get("input_tokens")) + read + write, output, read, write, min(thinking, output))


def token_usage_from_openai(data: Any) -> TokenUsage | None:
    """OpenAI `usage` (prompt_tokens includes cached; DeepSeek's prompt_cache_hit_tokens too) → TokenUsage/None."""
    if not isinstance(data, dict) or not ({"prompt_tokens", "completion_tokens"} & data.keys()):
        return None
    prompt = _count(data.get("prompt_tokens"))
    completion = _count(data.get("completion_tokens"))
    details = data.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    cached = min(_count(details.get("cached_tokens")) or _count(data.get("prompt_cache_hit_tokens")), prompt)
    write = min(_count(details.get("cache_write_tokens")), prompt - cached)
    out_details = data.get("completion_tokens_details")
    reasoning = _count(out_details.get("reasoning_tokens")) if isinstance(out_details, dict) else 0
    return TokenUsage(prompt, completion, cached, write, min(reasoning, completion))


def openai_usage_body(usage: TokenUsage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": usage.cache_write_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def anthropic_usage_body(usage: TokenUsage) -> dict[str, Any]:
    """input_tokens is what was neither read from nor written to the cache (new-api double counts here: §4.1 ⚠)."""
    return {
        "input_tokens": max(usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens, 0),
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def finish_reason_from_stop_reason(stop_reason: Any) -> str:
    return FINISH_REASON_BY_STOP_REASON.get(stop_reason, "stop")


def stop_reason_from_finish_reason(finish_reason: Any, *, has_tool_use: bool = False) -> str:
    """Some OpenAI-compatible upstreams answer tool calls with finish_reason "stop"; Anthropic clients need tool_use."""
    stop_reason = STOP_REASON_BY_FINISH_REASON.get(finish_reason, "end_turn")
    return "tool_use" if has_tool_use and stop_reason == "end_turn" else stop_reason


def tool_input_from_arguments(arguments: Any) -> dict[str, Any]:
    """OpenAI's `arguments` JSON string → Anthropic's `input` object; anything unparsable or not an object is {}."""
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments) if isinstance(arguments, str) and arguments.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def arguments_from_tool_input(value: Any) -> str:
    return json.dumps(value if isinstance(value, dict) else {}, ensure_ascii=False, separators=(",", ":"))


def anthropic_error_type(status: int) -> str:
    return ANTHROPIC_ERROR_TYPE_BY_STATUS.get(status) or ("api_error" if status >= 500 else "invalid_request_error")


def anthropic_error_body(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": anthropic_error_type(status), "message": message}}


def openai_error_from_anthropic(error: Any) -> dict[str, Any]:
    """The `error` object of an Anthropic error event/body → an OpenAI `{"error": {...}}` envelope."""
    error = error if isinstance(error, dict) else {}
    message = error.get("message") if isinstance(error.get("message"), str) else "upstream error"
    kind = error.get("type") if isinstance(error.get("type"), str) else "api_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def anthropic_error_from_openai(error: Any) -> dict[str, Any]:
    """The `error` value of an OpenAI error chunk/body → an Anthropic `{"type": "error", ...}` body."""
    error = error if isinstance(error, dict) else {"message": str(error)}
    message = error.get("message") if isinstance(error.get("message"), str) else "upstream error"
    names = f"{error.get('type') or ''} {error.get('code') or ''}"
    if error.get("type") in ANTHROPIC_ERROR_TYPES:
        kind = error["type"]
    elif "rate_limit" in names or "insufficient_quota" in names:
        kind = "rate_limit_error"
    elif "invalid_request" in names:
        kind = "invalid_request_error"
    else:
        kind = "api_error"
    return {"type": "error", "error": {"type": kind, "message": message}}


def anthropic_to_openai_chat_response(msg: dict[str, Any], *, model: str, created: int | None = None) -> dict[str, Any]:
    """An Anthropic `message` → an OpenAI `chat.completion` (text joined, tool_use → tool_calls, thinking →
    reasoning_content)."""
    texts, thoughts, calls = [], [], []
    for block in as_list(msg.get("content")):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thoughts.append(block["thinking"])
        elif kind == "tool_use":
            calls.append({"id": str(block.get("id") or ""), "type": "function",
                          "function": {"name": str(block.get("name") or ""),
                                       "arguments": arguments_from_tool_input(block.get("input"))}})
    text = "".join(texts)
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if calls:
        message["tool_calls"] = calls
    usage = token_usage_from_anthropic(msg.get("usage")) or TokenUsage()
    return {
        "id": str(msg.get("id") or ""),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": finish_reason_from_stop_reason(msg.get("stop_reason"))}],
        "usage": openai_usage_body(usage),
    }


def openai_message_text(content: Any) -> str:
    """An OpenAI message `content` (string, or parts of which only text counts) as one string."""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "".join(p["text"] for p in parts if isinstance(p, dict) and p.get("type") == "text"
                   and isinstance(p.get("text"), str))


def openai_chat_response_to_anthropic(resp: dict[str, Any], *, model: str) -> dict[str, Any]:
    """An OpenAI `chat.completion` (its first choice) → an Anthropic `message`."""
    choices = [c for c in as_list(resp.get("choices")) if isinstance(c, dict)]
    choice = next((c for c in choices if c.get("index", 0) == 0), choices[0] if choices else {})
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    content: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        # Anthropic signs thinking; we cannot, so the signature stays empty (see §4.1 "cannot be synthesised").
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = openai_message_text(message.get("content"))
    refusal = message.get("refusal") if isinstance(message.get("refusal"), str) else ""
    if text or refusal:
        content.append({"type": "text", "text": text or refusal})
    for call in message.get("tool_calls") or []:
        if isinstance(call, dict) and isinstance(call.get("function"), dict):
            content.append({"type": "tool_use", "id": str(call.get("id") or ""),
                            "name": str(call["function"].get("name") or ""),
                            "input": tool_input_from_arguments(call["function"].get("arguments"))})
    has_tool_use = any(block["type"] == "tool_use" for block in content)
    stop_reason = stop_reason_from_finish_reason(choice.get("finish_reason"), has_tool_use=has_tool_use)
    if refusal and not text and stop_reason == "end_turn":
        stop_reason = "refusal"
    usage = token_usage_from_openai(resp.get("usage")) or TokenUsage()
    return {
        "id": str(resp.get("id") or ""),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": anthropic_usage_body(usage),
    }
