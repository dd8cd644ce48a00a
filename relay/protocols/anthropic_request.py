"""Anthropic Messages requests ⇄ OpenAI chat requests (protocols.md §4.1, "Request" tables)."""

from __future__ import annotations

from typing import Any

from relay.protocols.anthropic_response import arguments_from_tool_input, tool_input_from_arguments

PLACEHOLDER_TEXT = "..."  # new-api's stand-in where Anthropic needs a user turn the client did not send
THINKING_BUDGET_SHARE = 0.8  # new-api: reasoning_effort → thinking budget of 80% of max_tokens
MIN_THINKING_BUDGET = 1024  # Anthropic rejects smaller budgets (and budgets ≥ max_tokens)
NO_THINKING_EFFORTS = frozenset({"none", "minimal"})
# Anthropic thinking budget → OpenAI reasoning_effort; the lower bounds of "medium" and "high".
# Claude Code asks for 4000 ("think"), 10000 ("think hard") and 31999 ("ultrathink").
EFFORT_BUDGETS = ((24576, "high"), (8192, "medium"), (0, "low"))


def _items(value: Any) -> list[Any]:
    """A list field of an untrusted request: the list, or nothing (a number or an object where a list belongs)."""
    return value if isinstance(value, list) else []


def _positive_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _text_block(text: Any, part: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Anthropic rejects empty and whitespace-only text blocks, so those become nothing."""
    if not isinstance(text, str) or not text.strip():
        return None
    block = {"type": "text", "text": text}
    if part and isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def _data_url(url: str) -> tuple[str, str] | None:
    """`data:<media type>;base64,<data>` → (media type, data), or None for anything else."""
    header, comma, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if not comma or not data or not media_type or encoding != "base64":
        return None
    return media_type, data


def _image_block(part: dict[str, Any]) -> dict[str, Any] | None:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        return None
    if url.startswith("data:"):
        parsed = _data_url(url)
        source = {"type": "base64", "media_type": parsed[0], "data": parsed[1]} if parsed else None
    elif url.startswith(("http://", "https://")):
        source = {"type": "url", "url": url}
    else:
        source = None
    return {"type": "image", "source": source} if source else None


def _document_block(part: dict[str, Any]) -> dict[str, Any] | None:
    """OpenAI `file` parts carry inline data as a data URL; a `file_id` means nothing to Anthropic."""
    file = part.get("file")
    data = file.get("file_data") if isinstance(file, dict) else None
    parsed = _data_url(data) if isinstance(data, str) and data.startswith("data:") else None
    if not parsed:
        return None
    return {"type": "document", "source": {"type": "base64", "media_type": parsed[0], "data": parsed[1]}}


def _content_blocks(content: Any) -> list[dict[str, Any]]:
    """OpenAI message content (string or parts) → Anthropic blocks; audio and unknown parts are dropped."""
    if isinstance(content, str):
        parts: list[Any] = [{"type": "text", "text": content}]
    else:
        parts = content if isinstance(content, list) else []
    blocks = []
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            block = _text_block(part.get("text"), part)
        elif kind == "image_url":
            block = _image_block(part)
        elif kind == "file":
            block = _document_block(part)
        else:
            block = None
        if block:
            blocks.append(block)
    return blocks


def _assistant_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Text then tool_use; reasoning_content is dropped (signatures cannot be synthesised, §4.1)."""
    blocks = [b for b in _content_blocks(message.get("content")) if b["type"] == "text"]
    for call in _items(message.get("tool_calls")):
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            blocks.append({"type": "tool_use", "id": str(call.get("id") or ""), "name": str(function.get("name") or ""),
                           "input": tool_input_from_arguments(function.get("arguments"))})
    return blocks


def _tool_result_block(message: dict[str, Any]) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": str(message.get("tool_call_id") or "")}
    content = message.get("content")
    if isinstance(content, str):
        if content.strip():
            block["content"] = content
    elif blocks := [b for b in _content_blocks(content) if b["type"] in ("text", "image")]:
        block["content"] = blocks
    return block  # content may be omitted; an empty string is not sent


def _append_turn(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Anthropic wants alternating roles: consecutive same-role messages become one turn."""
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _anthropic_tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and function.get("name"):
        return {"type": "tool", "name": function["name"]}
    return None


def _anthropic_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools = []
    for tool in _items(body.get("tools")):
        is_function = isinstance(tool, dict) and tool.get("type", "function") == "function"
        function = tool.get("function") if is_function else None
        if not isinstance(function, dict) or not function.get("name"):
            continue  # custom and built-in OpenAI tools have no Anthropic counterpart
        entry = {"name": function["name"]}
        if isinstance(function.get("description"), str):
            entry["description"] = function["description"]
        parameters = function.get("parameters")
        entry["input_schema"] = parameters if isinstance(parameters, dict) else {"type": "object", "properties": {}}
        tools.append(entry)
    return tools


def _thinking_allowed(out: dict[str, Any]) -> bool:
    """Anthropic refuses thinking with forced tool use, and wants a final assistant turn (a prefill, or the turn that
    opened the current tool loop) to start with a signed thinking block, which OpenAI-format history cannot carry."""
    if out.get("tool_choice", {}).get("type") in ("any", "tool"):
        return False
    turns = out["messages"]
    assistants = [turn for turn in turns if turn["role"] == "assistant"]
    if turns[-1]["role"] == "assistant":
        return False
    return not (assistants and any(b["type"] == "tool_use" for b in assistants[-1]["content"]))


def _anthropic_turns(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI messages → (system blocks hoisted from anywhere, alternating user/assistant turns starting with user)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages if isinstance(messages, list) else []:
        role = message.get("role") if isinstance(message, dict) else None
        if role in ("system", "developer"):
            system.extend(b for b in _content_blocks(message.get("content")) if b["type"] == "text")
        elif role == "user":
            _append_turn(turns, "user", _content_blocks(message.get("content")))
        elif role == "assistant":
            _append_turn(turns, "assistant", _assistant_blocks(message))
        elif role == "tool":
            _append_turn(turns, "user", [_tool_result_block(message)])
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": [{"type": "text", "text": PLACEHOLDER_TEXT}]})
    last = turns[-1]["content"][-1]
    if turns[-1]["role"] == "assistant" and last["type"] == "text":
        last["text"] = last["text"].rstrip()  # Anthropic: a final assistant turn cannot end with whitespace
    return system, turns


def openai_chat_to_anthropic(body: dict[str, Any], *, default_max_tokens: int) -> dict[str, Any]:
    """An OpenAI chat request → an Anthropic Messages request (fields without a counterpart are dropped)."""
    system, turns = _anthropic_turns(body.get("messages"))
    max_tokens = (_positive_int(body.get("max_completion_tokens")) or _positive_int(body.get("max_tokens"))
                  or default_max_tokens)
    out: dict[str, Any] = {"model": body.get("model"), "max_tokens": max_tokens, "messages": turns}
    if system:  # blocks only when needed to keep cache_control; a plain string suits every Anthropic-compatible API
        cached = any("cache_control" in block for block in system)
        out["system"] = system if cached else "\n\n".join(block["text"] for block in system)
    temperature = body.get("temperature")
    if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
        out["temperature"] = min(max(temperature, 0), 1)
    for key in ("top_p", "top_k"):
        if isinstance(body.get(key), (int, float)) and not isinstance(body.get(key), bool):
            out[key] = body[key]
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    if stops := [s for s in stops if isinstance(s, str) and s]:
        out["stop_sequences"] = stops
    if isinstance(body.get("user"), str) and body["user"]:
        out["metadata"] = {"user_id": body["user"]}
    if "stream" in body:
        out["stream"] = bool(body["stream"])
    if tools := _anthropic_tools(body):
        out["tools"] = tools
        choice = _anthropic_tool_choice(body.get("tool_choice"))
        if body.get("parallel_tool_calls") is False and (choice or {}).get("type") != "none":
            choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
        if choice:
            out["tool_choice"] = choice
    effort = body.get("reasoning_effort")
    budget = int(max_tokens * THINKING_BUDGET_SHARE)
    if isinstance(effort, str) and effort not in NO_THINKING_EFFORTS and budget >= MIN_THINKING_BUDGET \
            and _thinking_allowed(out):
        out["thinking"] = {"type": "enabled", "budget_tokens": budget}
        out["temperature"] = 1  # Anthropic accepts no other temperature, nor top_p/top_k changes, with thinking
        out.pop("top_p", None)
        out.pop("top_k", None)
    return out


# --- Anthropic → OpenAI (an Anthropic-speaking client served by an OpenAI-compatible upstream) ---------------------


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    blocks = content if isinstance(content, list) else []
    return [b["text"] for b in blocks
            if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)]


def _openai_part(block: dict[str, Any]) -> dict[str, Any] | None:
    kind, source = block.get("type"), block.get("source")
    source = source if isinstance(source, dict) else {}
    if kind == "text" and isinstance(block.get("text"), str):
        return {"type": "text", "text": block["text"]}
    data_url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    if kind == "image" and source.get("type") == "base64":
        return {"type": "image_url", "image_url": {"url": data_url}}
    if kind == "image" and source.get("type") == "url":
        return {"type": "image_url", "image_url": {"url": source.get("url")}}
    if kind == "document" and source.get("type") == "base64":
        file = {"file_data": data_url}
        if isinstance(block.get("title"), str):
            file["filename"] = block["title"]
        return {"type": "file", "file": file}
    if kind == "document" and source.get("type") == "text" and isinstance(source.get("data"), str):
        return {"type": "text", "text": source["data"]}
    return None  # thinking, server-tool results, search results…: nothing an OpenAI upstream understands


def _openai_user_messages(content: Any) -> list[dict[str, Any]]:
    """One Anthropic user turn → a tool message per tool_result (first, as OpenAI requires), then a user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}] if content else []
    messages, parts = [], []
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_result":
            messages.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id") or ""),
                             "content": "\n".join(_texts(block.get("content")))})
        elif part := _openai_part(block):
            parts.append(part)
    if parts and all(p["type"] == "text" for p in parts):
        messages.append({"role": "user", "content": "\n".join(p["text"] for p in parts)})
    elif parts:
        messages.append({"role": "user", "content": parts})
    return messages


def _openai_assistant_message(content: Any) -> dict[str, Any] | None:
    """Text and tool_use survive; thinking is dropped (OpenAI-compatible reasoners reject it as input)."""
    text = "".join(_texts(content))
    calls = [{"id": str(b.get("id") or ""), "type": "function",
              "function": {"name": str(b.get("name") or ""), "arguments": arguments_from_tool_input(b.get("input"))}}
             for b in (content if isinstance(content, list) else [])
             if isinstance(b, dict) and b.get("type") == "tool_use"]
    if not text and not calls:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _openai_tool_choice(choice: dict[str, Any]) -> Any:
    kind = choice.get("type")
    if kind == "tool" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    return {"auto": "auto", "any": "required", "none": "none"}.get(kind) if isinstance(kind, str) else None


def _openai_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Client tools only: server tools (web_search_…, bash_…; they carry a versioned `type`) run at Anthropic."""
    tools = []
    for tool in _items(body.get("tools")):
        if not isinstance(tool, dict) or not tool.get("name") or tool.get("type", "custom") != "custom":
            continue
        function = {"name": tool["name"]}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        schema = tool.get("input_schema")
        function["parameters"] = schema if isinstance(schema, dict) else {"type": "object", "properties": {}}
        tools.append({"type": "function", "function": function})
    return tools


def _reasoning_effort(thinking: Any) -> str | None:
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "adaptive":
        return "medium"
    if kind != "enabled":
        return None
    budget = _positive_int(thinking.get("budget_tokens"))
    return next(effort for floor, effort in EFFORT_BUDGETS if budget >= floor)


def anthropic_request_to_openai_chat(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages request → an OpenAI chat request (new-api `service/convert.go` behaviour)."""
    messages: list[dict[str, Any]] = []
    if system := "\n\n".join(t for t in _texts(body.get("system")) if t):
        messages.append({"role": "system", "content": system})
    for message in _items(body.get("messages")):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "user":
            messages.extend(_openai_user_messages(message.get("content")))
        elif role == "assistant" and (converted := _openai_assistant_message(message.get("content"))):
            messages.append(converted)
    out: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if max_tokens := _positive_int(body.get("max_tokens")):
        out["max_tokens"] = max_tokens
    for key in ("temperature", "top_p"):
        if isinstance(body.get(key), (int, float)) and not isinstance(body.get(key), bool):
            out[key] = body[key]
    if stops := [s for s in _items(body.get("stop_sequences")) if isinstance(s, str) and s]:
        out["stop"] = stops
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}  # Anthropic clients always get usage in the stream
    elif "stream" in body:
        out["stream"] = False
    if tools := _openai_tools(body):
        out["tools"] = tools
        choice = body.get("tool_choice") if isinstance(body.get("tool_choice"), dict) else {}
        if (converted_choice := _openai_tool_choice(choice)) is not None:
            out["tool_choice"] = converted_choice
        if choice.get("disable_parallel_tool_use") is True:
            out["parallel_tool_calls"] = False
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str) and metadata["user_id"]:
        out["user"] = metadata["user_id"]
    if effort := _reasoning_effort(body.get("thinking")):
        out["reasoning_effort"] = effort
    return out
