"""The Responses API `response` object and its output items, built from OpenAI chat results (protocols.md §2)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from relay.usage import Usage, usage_from_openai

# chat finish_reason → Responses incomplete_details.reason; any other finish means "completed".
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}
# The SDK's ResponseError.code is a closed list; upstream codes outside it are reported as server_error.
ERROR_CODES = frozenset({"server_error", "rate_limit_exceeded", "invalid_prompt"})


def new_response_id() -> str:
    return f"resp_{uuid.uuid4().hex}"


def item_id(prefix: str, response_id: str, output_index: int) -> str:
    """Output item ids derive from the response id, so they are unique and repeatable for one response."""
    return f"{prefix}_{response_id.removeprefix('resp_')}_{output_index}"


def incomplete_reason(finish_reason: Any) -> str | None:
    return INCOMPLETE_REASONS.get(finish_reason) if isinstance(finish_reason, str) else None


def arguments_text(arguments: Any) -> str:
    """Tool-call arguments as a JSON string; an upstream that sends none for a parameterless call gets "{}",
    because Responses clients parse arguments as JSON."""
    if isinstance(arguments, str) and arguments.strip():
        return arguments
    if isinstance(arguments, (dict, list)):  # a few compatible upstreams send parsed arguments
        return json.dumps(arguments, ensure_ascii=False)
    return "{}"


def usage_body(usage: Usage) -> dict[str, Any]:
    """Responses usage; the SDK's InputTokensDetails also requires cache_write_tokens."""
    return {"input_tokens": usage.prompt_tokens,
            "input_tokens_details": {"cached_tokens": usage.cached_tokens,
                                     "cache_write_tokens": usage.cache_write_tokens},
            "output_tokens": usage.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            "total_tokens": usage.prompt_tokens + usage.completion_tokens}


def estimated_usage(input_tokens_estimate: int, text: str) -> Usage:
    """For a stream that ended without usage: the caller's input estimate, and about four characters a token
    (rounded up) for the output. The relay bills from its own estimate in that case."""
    return Usage(prompt_tokens=max(input_tokens_estimate, 0), completion_tokens=-(-len(text) // 4), estimated=True)


def error_body(error: Any) -> dict[str, Any]:
    """An upstream OpenAI error object → a Responses `error` ({code, message})."""
    error = error if isinstance(error, dict) else {"message": str(error)}
    code = error.get("code") if error.get("code") in ERROR_CODES else None
    if code is None and "rate_limit" in str(error.get("type") or ""):
        code = "rate_limit_exceeded"
    return {"code": code or "server_error", "message": str(error.get("message") or "upstream error")}


def response_object(request: dict, *, response_id: str, created: int, model: str, status: str,
                    output: list[dict[str, Any]], usage: Usage | None = None, finish_reason: Any = None,
                    error: dict[str, Any] | None = None) -> dict[str, Any]:
    """A whole `response` object; the request's settings are echoed because the SDK's Response model needs them."""
    reason = incomplete_reason(finish_reason) if status == "incomplete" else None
    tools = request.get("tools") if isinstance(request.get("tools"), list) else []
    tools = [t for t in tools if isinstance(t, dict) and t.get("type") == "function"]
    tool_choice = request.get("tool_choice")
    return {
        "id": response_id, "object": "response", "created_at": created, "status": status, "model": model,
        "output": output, "usage": usage_body(usage) if usage is not None else None,
        "error": error, "incomplete_details": {"reason": reason} if reason else None,
        "instructions": request.get("instructions") if isinstance(request.get("instructions"), str) else None,
        "tools": tools, "tool_choice": tool_choice if isinstance(tool_choice, (str, dict)) else "auto",
        "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
        "temperature": request.get("temperature"), "top_p": request.get("top_p"),
        "max_output_tokens": request.get("max_output_tokens"),
        "text": request["text"] if isinstance(request.get("text"), dict) else {"format": {"type": "text"}},
        "reasoning": request["reasoning"] if isinstance(request.get("reasoning"), dict) else None,
        "metadata": request["metadata"] if isinstance(request.get("metadata"), dict) else {},
        "user": request["user"] if isinstance(request.get("user"), str) else None,
        "previous_response_id": None,
        "store": False,  # nothing is kept: GET /v1/responses/{id} cannot find this response
    }


def reasoning_item(id_: str, text: str, status: str = "completed") -> dict[str, Any]:
    """DeepSeek-style reasoning_content carried as the reasoning item's summary."""
    return {"type": "reasoning", "id": id_, "summary": [{"type": "summary_text", "text": text}], "status": status}


def message_item(id_: str, content: list[dict[str, Any]], status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": id_, "status": status, "role": "assistant", "content": content}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}


def refusal_part(text: str) -> dict[str, Any]:
    return {"type": "refusal", "refusal": text}


def function_call_item(id_: str, call_id: str, name: str, arguments: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "function_call", "id": id_, "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some compatible upstreams answer with a list of text parts
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return ""


def _first_choice(data: dict) -> dict[str, Any]:
    choices = data.get("choices") if isinstance(data.get("choices"), list) else []
    choices = [c for c in choices if isinstance(c, dict)]
    return next((c for c in choices if c.get("index", 0) == 0), choices[0] if choices else {})


def openai_chat_response_to_responses(data: dict, *, model: str, request: dict, response_id: str | None = None,
                                      created: int | None = None) -> dict:
    """A chat.completion object → a Responses `response` object (object == "response")."""
    response_id = response_id or new_response_id()
    if created is None:
        upstream_created = data.get("created")
        created = upstream_created if isinstance(upstream_created, int) and upstream_created > 0 else int(time.time())
    choice = _first_choice(data)
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    output: list[dict[str, Any]] = []
    # DeepSeek names it reasoning_content; OpenRouter and newer vLLM name it reasoning (protocols.md §1.3).
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        output.append(reasoning_item(item_id("rs", response_id, len(output)), reasoning))
    parts = []
    if text := _message_text(message.get("content")):
        parts.append(text_part(text))
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        parts.append(refusal_part(message["refusal"]))
    if parts:
        output.append(message_item(item_id("msg", response_id, len(output)), parts))
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function") if isinstance(call, dict) and isinstance(call.get("function"), dict) else None
        if function is None:
            continue
        call_id = call.get("id") if isinstance(call.get("id"), str) and call["id"] else None
        output.append(function_call_item(item_id("fc", response_id, len(output)),
                                         call_id or item_id("call", response_id, len(output)),
                                         str(function.get("name") or ""), arguments_text(function.get("arguments"))))
    finish_reason = choice.get("finish_reason")
    status = "incomplete" if incomplete_reason(finish_reason) else "completed"
    if status == "incomplete" and output:
        output[-1]["status"] = "incomplete"  # the item the upstream was producing when it stopped
    return response_object(request, response_id=response_id, created=created, model=model, status=status,
                           output=output, usage=usage_from_openai(data.get("usage")), finish_reason=finish_reason)
