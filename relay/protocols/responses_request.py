"""OpenAI Responses requests → OpenAI chat requests, for upstreams that only speak Chat (protocols.md §2, §1.3)."""

from __future__ import annotations

from typing import Any

TOOL_CHOICE_OPTIONS = frozenset({"auto", "none", "required"})
STATEFUL_FIELDS = {
    "previous_response_id": "previous_response_id is not supported by this upstream; "
                            "send the whole conversation in input",
    "conversation": "conversation is not supported by this upstream; send the whole conversation in input",
    "prompt": "stored prompt templates (prompt) are not supported by this upstream; send instructions and input",
}


class ProtocolError(ValueError):
    """A request this translation cannot honour; the message is shown to the client as a 400."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _content_part(part: Any) -> dict[str, Any]:
    """A Responses content part → a chat content part."""
    if not isinstance(part, dict):
        raise ProtocolError("content parts must be objects")
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": str(part.get("text") or "")}
    if kind == "refusal":  # an earlier answer sent back; compatible upstreams know no refusal parts, text is kept
        return {"type": "text", "text": str(part.get("refusal") or "")}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise ProtocolError("input_image needs an image_url (file_id images are not supported by this upstream)")
        image = {"url": url}
        if isinstance(part.get("detail"), str):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file" and isinstance(part.get("file_data"), str):
        file = {"file_data": part["file_data"]}
        if isinstance(part.get("filename"), str):
            file["filename"] = part["filename"]
        return {"type": "file", "file": file}
    if kind == "input_file":
        raise ProtocolError("input_file needs file_data (file_id and file_url are not supported by this upstream)")
    raise ProtocolError(f"content parts of type {kind!r} are not supported by this upstream")


def _chat_content(content: Any) -> str | list[dict[str, Any]]:
    """Text-only content becomes one string: several OpenAI-compatible upstreams (DeepSeek) accept only strings."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ProtocolError("message content must be a string or a list of content parts")
    parts = [_content_part(part) for part in content]
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _tool_output(output: Any) -> str:
    """function_call_output.output: a string, or (newer SDKs) a list of parts of which chat tools take only text."""
    if isinstance(output, str):
        return output
    content = _chat_content(output if isinstance(output, list) else [])
    if not isinstance(content, str):
        raise ProtocolError("function_call_output with images or files is not supported by this upstream")
    return content


def _tool_call(item: dict[str, Any]) -> dict[str, Any]:
    call_id, name = item.get("call_id"), item.get("name")
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise ProtocolError("function_call items need a call_id and a name")
    arguments = item.get("arguments")
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": arguments if isinstance(arguments, str) else "{}"}}


def _append_item(messages: list[dict[str, Any]], item: Any) -> None:
    """One input item → zero or more chat messages, appended in place."""
    if not isinstance(item, dict):
        raise ProtocolError("input items must be objects")
    kind = item.get("type") or "message"
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "assistant", "system", "developer"):
            raise ProtocolError(f"input messages need a role of user, assistant, system or developer, not {role!r}")
        # Many OpenAI-compatible upstreams (DeepSeek, older vLLM) reject `developer`; to them `system` means the same.
        messages.append({"role": "system" if role == "developer" else role,
                         "content": _chat_content(item.get("content"))})
    elif kind == "function_call":
        last = messages[-1] if messages else None
        # One assistant turn in Chat may carry text and several calls; Responses lists them as separate items.
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(_tool_call(item))
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [_tool_call(item)]})
    elif kind == "function_call_output":
        if not isinstance(item.get("call_id"), str) or not item["call_id"]:
            raise ProtocolError("function_call_output items need a call_id")
        messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": _tool_output(item.get("output"))})
    elif kind != "reasoning":  # reasoning items are the model's own; DeepSeek rejects reasoning sent back
        raise ProtocolError(f"input items of type {kind!r} are not supported by this upstream")


def _chat_tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise ProtocolError("tools must be a list")
    out = []
    for tool in tools:
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise ProtocolError(f"tools of type {kind!r} are not supported by this upstream; only function tools are")
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise ProtocolError("function tools need a name")
        function = {"name": tool["name"]}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                function[key] = tool[key]
        out.append({"type": "function", "function": function})
    return out


def _apply_tool_choice(out: dict[str, Any], choice: Any) -> None:
    if choice is None:
        return
    if isinstance(choice, str) and choice in TOOL_CHOICE_OPTIONS:
        out["tool_choice"] = choice
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "function" and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif kind == "allowed_tools" and choice.get("mode") in ("auto", "required"):
        # Compatible upstreams lack Chat's allowed_tools: offer only the allowed functions instead.
        listed = choice.get("tools") if isinstance(choice.get("tools"), list) else []
        allowed = {t.get("name") for t in listed if isinstance(t, dict)}
        out["tools"] = [t for t in out["tools"] if t["function"]["name"] in allowed]
        if not out["tools"]:
            raise ProtocolError("tool_choice allowed_tools names none of the function tools")
        out["tool_choice"] = choice["mode"]
    else:
        raise ProtocolError(f"tool_choice {choice!r} is not supported by this upstream")


def _response_format(text: Any) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind is None or kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        if not isinstance(fmt.get("schema"), dict):
            raise ProtocolError("text.format of type json_schema needs a schema")
        schema = {"name": fmt.get("name") or "response", "schema": fmt["schema"]}
        for key in ("description", "strict"):
            if fmt.get(key) is not None:
                schema[key] = fmt[key]
        return {"type": "json_schema", "json_schema": schema}
    raise ProtocolError(f"text.format of type {kind!r} is not supported by this upstream")


def responses_request_to_openai_chat(body: dict) -> dict:
    """Responses request → chat.completions request.

    Dropped on purpose: store, metadata, include, truncation, background, reasoning.summary, text.verbosity,
    top_logprobs, max_tool_calls, prompt_cache_key, safety_identifier and service_tier.
    """
    if not isinstance(body, dict):
        raise ProtocolError("the request body must be a JSON object")
    for key, message in STATEFUL_FIELDS.items():
        if body.get(key):
            raise ProtocolError(message)
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise ProtocolError("instructions must be a string")
    if instructions:
        messages.append({"role": "system", "content": instructions})
    given = body.get("input")
    if isinstance(given, str) and given:
        messages.append({"role": "user", "content": given})
    elif isinstance(given, list):
        for item in given:
            _append_item(messages, item)
    if len(messages) == (1 if instructions else 0):
        raise ProtocolError("input is required: a string or a non-empty list of input items")

    out: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if tools := _chat_tools(body.get("tools")):
        # OpenAI rejects tool_choice and parallel_tool_calls without tools; Responses clients send them regardless.
        out["tools"] = tools
        _apply_tool_choice(out, body.get("tool_choice"))
        if isinstance(body.get("parallel_tool_calls"), bool):
            out["parallel_tool_calls"] = body["parallel_tool_calls"]
    max_output = body.get("max_output_tokens")
    if isinstance(max_output, int) and not isinstance(max_output, bool) and max_output > 0:
        out["max_tokens"] = max_output
    for key in ("temperature", "top_p"):
        if _number(body.get(key)):
            out[key] = body[key]
    if isinstance(body.get("user"), str) and body["user"]:
        out["user"] = body["user"]
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}  # the terminal event must carry usage
    elif "stream" in body:
        out["stream"] = False
    if response_format := _response_format(body.get("text")):
        out["response_format"] = response_format
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and isinstance(reasoning.get("effort"), str):
        out["reasoning_effort"] = reasoning["effort"]
    return out
