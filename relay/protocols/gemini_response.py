"""Gemini GenerateContentResponse ⇄ OpenAI chat.completion, usage and errors (protocols.md §5, §5.1, §11). Pure."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from relay.protocols.gemini_images import image_markdown
from relay.protocols.untrusted import as_list
from relay.usage import Usage, usage_from_openai

# Every finishReason that means "a filter withheld the output" (python-genai FinishReason; the IMAGE_* and
# MODEL_ARMOR values are newer than protocols.md's table but mean the same thing to a client).
_FILTERED = ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
             "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "MODEL_ARMOR")
GEMINI_TO_OPENAI_FINISH = {"STOP": "stop", "MAX_TOKENS": "length", **{r: "content_filter" for r in _FILTERED}}
OPENAI_TO_GEMINI_FINISH = {"stop": "STOP", "tool_calls": "STOP", "function_call": "STOP", "length": "MAX_TOKENS",
                           "content_filter": "SAFETY"}

# HTTP status -> google.rpc status name (protocols.md §5 "Errors", plus the standard codes the relay itself sends).
GEMINI_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "NOT_IMPLEMENTED",
                 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def tool_call_id(seed: str, choice: int, call: int) -> str:
    """A deterministic OpenAI-style `call_…` id: Gemini function calls carry none (protocols.md §5.1)."""
    return "call_" + hashlib.sha256(f"{seed}:{choice}:{call}".encode()).hexdigest()[:24]


def finish_reason_to_openai(reason: Any, *, has_tool_calls: bool = False) -> str:
    """Gemini finishReason -> OpenAI finish_reason; a function call wins unless a filter stopped the output."""
    mapped = GEMINI_TO_OPENAI_FINISH.get(reason, "stop") if isinstance(reason, str) else "stop"
    return "tool_calls" if has_tool_calls and mapped != "content_filter" else mapped


def finish_reason_to_gemini(reason: Any) -> str:
    return OPENAI_TO_GEMINI_FINISH.get(reason, "STOP") if isinstance(reason, str) else "STOP"


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_from_gemini(meta: Any) -> Usage | None:
    """Gemini `usageMetadata` -> Usage. Thinking is billed as output but sits outside candidatesTokenCount; the
    prompt of a built-in tool's results (toolUsePromptTokenCount, e.g. search grounding) is billed as input."""
    if not isinstance(meta, dict):
        return None
    prompt = _count(meta.get("promptTokenCount")) + _count(meta.get("toolUsePromptTokenCount"))
    thoughts = _count(meta.get("thoughtsTokenCount"))
    completion = _count(meta.get("candidatesTokenCount")) + thoughts
    reported = isinstance(meta.get("promptTokenCount"), int) and not isinstance(meta["promptTokenCount"], bool)
    if not (prompt or completion or reported):
        return None  # nothing usable: let the caller estimate rather than bill zero
    return Usage(prompt, completion, min(_count(meta.get("cachedContentTokenCount")), prompt), thoughts)


def usage_to_openai(usage: Usage) -> dict:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def usage_to_gemini(usage: Usage) -> dict:
    meta = {
        "promptTokenCount": usage.prompt_tokens,
        "candidatesTokenCount": max(usage.completion_tokens - usage.reasoning_tokens, 0),
        "totalTokenCount": usage.prompt_tokens + usage.completion_tokens,
    }
    if usage.reasoning_tokens:
        meta["thoughtsTokenCount"] = usage.reasoning_tokens
    if usage.cached_tokens:
        meta["cachedContentTokenCount"] = usage.cached_tokens
    return meta


def gemini_error_body(status: int, message: str) -> dict:
    """A Gemini-shaped error body: `{"error": {"code", "message", "status"}}`."""
    name = GEMINI_STATUS.get(status) or ("INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
    return {"error": {"code": status, "message": message, "status": name}}


def gemini_error_to_openai(error: Any) -> dict:
    """A Gemini `{"error": {code, message, status}}` body -> OpenAI's `{"error": {message, type, param, code}}`."""
    err = error.get("error") if isinstance(error, dict) else None
    err = err if isinstance(err, dict) else {}
    code = err.get("code") if isinstance(err.get("code"), int) else 500
    message = err.get("message") if isinstance(err.get("message"), str) else json.dumps(error, default=str)
    return {"error": {"message": message or "upstream error",
                      "type": "server_error" if code >= 500 else "invalid_request_error",
                      "param": None, "code": err.get("status") if isinstance(err.get("status"), str) else None}}


def candidate_parts(candidate: dict) -> list[tuple[str, Any]]:
    """The parts of a candidate we translate, as ("text" | "thought" | "call" | "image", value); an image is Markdown
    text; other kinds are dropped."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    pieces: list[tuple[str, Any]] = []
    for part in as_list(parts):
        if not isinstance(part, dict):
            continue
        call = part.get("functionCall")
        if isinstance(call, dict):
            args = call.get("args")
            args = args if isinstance(args, dict) else {}
            pieces.append(("call", {"name": str(call.get("name") or ""), "args": args}))
        elif isinstance(part.get("text"), str) and part["text"]:
            pieces.append(("thought" if part.get("thought") is True else "text", part["text"]))
        elif (image := image_markdown(part)) is not None:
            pieces.append(("image", image))
    return pieces


def openai_tool_call(seed: str, choice: int, index: int, call: dict) -> dict:
    return {"id": tool_call_id(seed, choice, index), "type": "function",
            "function": {"name": call["name"], "arguments": json.dumps(call["args"], ensure_ascii=False)}}


def _choice(candidate: dict, position: int, id_seed: str) -> dict:
    index = candidate.get("index") if isinstance(candidate.get("index"), int) else position
    texts, thoughts, calls = [], [], []
    for kind, value in candidate_parts(candidate):
        {"text": texts, "image": texts, "thought": thoughts, "call": calls}[kind].append(value)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None,
                               "refusal": None}
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if calls:
        message["tool_calls"] = [openai_tool_call(id_seed, index, i, call) for i, call in enumerate(calls)]
    finish = finish_reason_to_openai(candidate.get("finishReason"), has_tool_calls=bool(calls))
    return {"index": index, "message": message, "finish_reason": finish, "logprobs": None}


def gemini_to_openai_chat_response(resp: dict, *, model: str, id_seed: str, created: int | None = None) -> dict:
    """A Gemini GenerateContentResponse as an OpenAI chat.completion (ids derived from id_seed)."""
    resp = resp if isinstance(resp, dict) else {}
    candidates = [c for c in as_list(resp.get("candidates")) if isinstance(c, dict)]
    choices = sorted((_choice(c, i, id_seed) for i, c in enumerate(candidates)), key=lambda c: c["index"])
    if not choices:
        # No candidates: the prompt itself was blocked (promptFeedback.blockReason), or the upstream sent nothing.
        feedback = resp.get("promptFeedback")
        blocked = isinstance(feedback, dict) and bool(feedback.get("blockReason"))
        choices = [{"index": 0, "message": {"role": "assistant", "content": "", "refusal": None},
                    "finish_reason": "content_filter" if blocked else "stop", "logprobs": None}]
    out = {"id": f"chatcmpl-{id_seed}", "object": "chat.completion",
           "created": int(time.time()) if created is None else created, "model": model, "choices": choices}
    usage = usage_from_gemini(resp.get("usageMetadata"))
    if usage is not None:
        out["usage"] = usage_to_openai(usage)
    return out


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some upstreams answer with content parts
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def function_call_part(call: Any) -> dict | None:
    """An OpenAI tool call -> a Gemini functionCall part (arguments parsed; invalid JSON becomes {})."""
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        return None
    args = function.get("arguments")
    if not isinstance(args, dict):  # a JSON string, as OpenAI sends; a few upstreams send the object itself
        try:
            args = json.loads(args or "{}")
        except (TypeError, ValueError):
            args = {}
    part: dict[str, Any] = {"name": str(function.get("name") or ""), "args": args if isinstance(args, dict) else {}}
    if isinstance(call.get("id"), str) and call["id"]:
        part = {"id": call["id"], **part}  # lets a Gemini client echo it back in functionResponse.id
    return {"functionCall": part}


def _candidate(choice: dict, position: int) -> dict:
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    parts: list[dict] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        parts.append({"text": reasoning, "thought": True})
    text = _message_text(message.get("content")) or _message_text(message.get("refusal"))
    if text:
        parts.append({"text": text})
    parts += [p for p in map(function_call_part, as_list(message.get("tool_calls"))) if p]
    return {"content": {"role": "model", "parts": parts or [{"text": ""}]},
            "finishReason": finish_reason_to_gemini(choice.get("finish_reason")),
            "index": choice.get("index") if isinstance(choice.get("index"), int) else position}


def openai_chat_response_to_gemini(resp: dict, *, model: str) -> dict:
    """An OpenAI chat.completion as a Gemini GenerateContentResponse."""
    resp = resp if isinstance(resp, dict) else {}
    choices = [c for c in as_list(resp.get("choices")) if isinstance(c, dict)]
    out: dict[str, Any] = {"candidates": [_candidate(c, i) for i, c in enumerate(choices)]}
    usage = usage_from_openai(resp.get("usage"))
    if usage is not None:
        out["usageMetadata"] = usage_to_gemini(usage)
    out["modelVersion"] = model
    if isinstance(resp.get("id"), str) and resp["id"]:
        out["responseId"] = resp["id"]
    return out
