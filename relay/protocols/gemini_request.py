"""OpenAI Chat requests ⇄ Gemini generateContent requests (protocols.md §5, §5.1). Pure: no I/O."""

from __future__ import annotations

import base64
import json
import re
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from relay.protocols.gemini_images import response_modalities, text_parts
from relay.protocols.gemini_response import as_list, function_call_part, tool_call_id
from relay.protocols.gemini_schema import schema_from_gemini, schema_to_gemini

# reasoning_effort -> thinkingBudget. low/medium/high are the budgets Gemini's own OpenAI-compatible endpoint uses
# (ai.google.dev/gemini-api/docs/openai); "minimal" is 512, the smallest budget every 2.5 model accepts (Pro >= 128,
# Flash-Lite >= 512); "xhigh" is capped at 24576, 2.5 Flash's maximum, so no model rejects it; "none" turns
# thinking off (2.5 Pro cannot, and answers 400: the client asked for something the model cannot do).
REASONING_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576}

# Gemini 3 rejects a functionCall part without a thought signature; for history it did not produce itself
# (OpenAI clients never see signatures) Google documents this placeholder (ai.google.dev thought-signatures).
FOREIGN_THOUGHT_SIGNATURE = "skip_thought_signature_validator"

_MIME_BY_EXTENSION = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp",
                      "gif": "image/gif", "heic": "image/heic", "heif": "image/heif", "pdf": "application/pdf",
                      "wav": "audio/wav", "mp3": "audio/mp3", "txt": "text/plain"}
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^,;]*)*?),(?P<data>.*)$", re.DOTALL)


# --- OpenAI -> Gemini ---------------------------------------------------------------------------------------------


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content] if content else []
    return [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str) and p["text"]] \
        if isinstance(content, list) else []


def _mime_from_name(name: str) -> str | None:
    path = urlsplit(name).path if "://" in name else name
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return _MIME_BY_EXTENSION.get(ext)


def _inline_from_data_url(url: str) -> dict | None:
    match = _DATA_URL.match(url)
    if not match:
        return None
    data = match["data"]
    if ";base64" not in match["params"]:
        data = base64.b64encode(unquote_to_bytes(data)).decode()
    return {"inlineData": {"mimeType": match["mime"] or "application/octet-stream", "data": data}}


def _image_part(image: Any) -> dict | None:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        return None
    if url.startswith("data:"):
        return _inline_from_data_url(url)
    mime = _mime_from_name(url)
    if mime is None:
        # Fetching is the adapter's job (no I/O here); an unguessable type cannot go in fileData, so say so in text.
        return {"text": f"[image: {url}]"}
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _file_part(file: Any) -> dict | None:
    if not isinstance(file, dict):
        return None
    data, name = file.get("file_data"), str(file.get("filename") or "")
    if isinstance(data, str) and data.startswith("data:"):
        return _inline_from_data_url(data)
    if isinstance(data, str) and data and _mime_from_name(name):
        return {"inlineData": {"mimeType": _mime_from_name(name), "data": data}}
    return {"text": f"[file: {name or file.get('file_id') or 'unnamed'}]"}


def _content_parts(content: Any) -> list[dict]:
    """OpenAI message content -> Gemini parts; empty text and unknown part types are dropped."""
    if not isinstance(content, list):
        return [part for text in _texts(content) for part in text_parts(text)]
    parts: list[dict | None] = []
    for item in content:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind in ("text", "refusal"):
            value = item.get(kind)
            parts += text_parts(value) if isinstance(value, str) else []
        elif kind == "image_url":
            parts.append(_image_part(item.get("image_url")))
        elif kind == "input_audio" and isinstance(item.get("input_audio"), dict):
            audio = item["input_audio"]
            parts.append({"inlineData": {"mimeType": f"audio/{audio.get('format') or 'wav'}",
                                         "data": str(audio.get("data") or "")}})
        elif kind == "file":
            parts.append(_file_part(item.get("file")))
    return [p for p in parts if p]


def _tool_response(content: Any) -> dict:
    """Tool output as functionResponse.response: a JSON object as is, anything else under "output" (Gemini docs)."""
    text = "\n".join(_texts(content))
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"output": text}


def _function_declarations(tools: Any) -> list[dict]:
    declarations = []
    for tool in as_list(tools):
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type", "function") == "function" \
            else None
        if not isinstance(function, dict) or not function.get("name"):
            continue
        declaration = {"name": function["name"]}
        if function.get("description"):
            declaration["description"] = function["description"]
        parameters = schema_to_gemini(function.get("parameters"))
        if parameters.get("properties"):  # empty-properties parameters are dropped (protocols.md §5.1)
            declaration["parameters"] = parameters
        declarations.append(declaration)
    return declarations


def _tool_config(choice: Any) -> dict | None:
    if choice in ("auto", "none", "required"):
        return {"functionCallingConfig": {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]}}
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict) and choice["function"].get("name"):
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]}}
    if isinstance(choice, dict) and isinstance(choice.get("allowed_tools"), dict):
        allowed = choice["allowed_tools"]
        names = [t["function"]["name"] for t in as_list(allowed.get("tools"))
                 if isinstance(t, dict) and isinstance(t.get("function"), dict) and t["function"].get("name")]
        if allowed.get("mode") == "required":
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": names}}
        return {"functionCallingConfig": {"mode": "AUTO"}}  # Gemini restricts names only in ANY mode
    return None


def _generation_config(body: dict) -> dict:
    config: dict[str, Any] = {}
    for src, dst in (("temperature", "temperature"), ("top_p", "topP"), ("seed", "seed"), ("n", "candidateCount"),
                     ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty"),
                     ("logprobs", "responseLogprobs"), ("top_logprobs", "logprobs")):
        if body.get(src) is not None:
            config[dst] = body[src]
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens:
        config["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else [s for s in as_list(stop) if isinstance(s, str)]
    if stops:
        config["stopSequences"] = stops
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        spec = fmt.get("json_schema")
        schema = schema_to_gemini(spec.get("schema")) if isinstance(spec, dict) else {}
        if schema:
            config["responseSchema"] = schema
    effort = body.get("reasoning_effort")
    budget = REASONING_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is not None:
        config["thinkingConfig"] = {"thinkingBudget": budget, **({"includeThoughts": True} if budget else {})}
    return config


def _legacy_function_call(message: dict) -> list[dict]:
    call = message.get("function_call")
    return [{"function": call}] if isinstance(call, dict) else []


def openai_chat_to_gemini(body: dict) -> tuple[str, dict]:
    """An OpenAI chat request -> (model, Gemini generateContent body); the model goes in the URL, not the body."""
    body = body if isinstance(body, dict) else {}
    model = body.get("model") if isinstance(body.get("model"), str) else ""
    messages = as_list(body.get("messages"))
    system: list[str] = []
    contents: list[dict] = []
    call_names: dict[str, str] = {}  # tool_call_id -> function name, for the tool messages that follow
    for message in (m for m in messages if isinstance(m, dict)):
        role = message.get("role")
        if role in ("system", "developer"):
            system += _texts(message.get("content"))
        elif role == "assistant":
            calls = [c for c in as_list(message.get("tool_calls")) if isinstance(c, dict)] + \
                _legacy_function_call(message)
            parts = _content_parts(message.get("content"))
            for call in calls:
                part = function_call_part(call)
                if part:
                    part["functionCall"].pop("id", None)  # ids are ours, not Gemini's
                    call_names[str(call.get("id") or "")] = part["functionCall"]["name"]
                    parts.append({**part, "thoughtSignature": FOREIGN_THOUGHT_SIGNATURE})
            if parts:
                contents.append({"role": "model", "parts": parts})
        elif role in ("tool", "function"):
            call_ref = str(message.get("tool_call_id") or "")
            name = call_names.get(call_ref) or message.get("name") or call_ref
            part = {"functionResponse": {"name": name, "response": _tool_response(message.get("content"))}}
            last = contents[-1] if contents else None
            if last and last["role"] == "user" and all("functionResponse" in p for p in last["parts"]):
                last["parts"].append(part)  # parallel calls answer in one user turn
            else:
                contents.append({"role": "user", "parts": [part]})
        else:
            parts = _content_parts(message.get("content"))
            if parts:
                contents.append({"role": "user", "parts": parts})
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": [{"text": "\n".join(system)}]}
    declarations = _function_declarations(body.get("tools"))
    if declarations:
        out["tools"] = [{"functionDeclarations": declarations}]
        tool_config = _tool_config(body.get("tool_choice"))
        if tool_config:
            out["toolConfig"] = tool_config
    config = _generation_config(body)
    if modalities := response_modalities(body, model):
        config["responseModalities"] = modalities
    if config:
        out["generationConfig"] = config
    return model, out


# --- Gemini -> OpenAI ---------------------------------------------------------------------------------------------


def _get(obj: Any, camel: str) -> Any:
    """A field by its camelCase name or the snake_case spelling the REST API also accepts."""
    if not isinstance(obj, dict):
        return None
    value = obj.get(camel)
    return obj.get(re.sub(r"([A-Z])", r"_\1", camel).lower()) if value is None else value


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = _get(content, "parts") if isinstance(content, dict) else content
    return "\n".join(p["text"] for p in as_list(parts) if isinstance(p, dict) and isinstance(p.get("text"), str))


def _openai_part(part: dict) -> dict | None:
    inline, file = _get(part, "inlineData"), _get(part, "fileData")
    if isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]} if part["text"] and not part.get("thought") else None
    if isinstance(inline, dict):
        mime, data = str(_get(inline, "mimeType") or ""), str(inline.get("data") or "")
        if mime.startswith("image/"):
            return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}
        if mime in ("audio/wav", "audio/x-wav", "audio/mp3", "audio/mpeg"):
            return {"type": "input_audio", "input_audio": {"data": data, "format": "wav" if "wav" in mime else "mp3"}}
        ext = next((e for e, m in _MIME_BY_EXTENSION.items() if m == mime), "bin")
        return {"type": "file", "file": {"filename": f"file.{ext}", "file_data": f"data:{mime};base64,{data}"}}
    if isinstance(file, dict):
        uri, mime = str(_get(file, "fileUri") or ""), str(_get(file, "mimeType") or "")
        if mime.startswith("image/") or (not mime and (_mime_from_name(uri) or "").startswith("image/")):
            return {"type": "image_url", "image_url": {"url": uri}}
        return {"type": "text", "text": f"[file: {uri}]"}
    return None


def _user_content(parts: list[dict]) -> str | list[dict]:
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)  # plain string: some OpenAI-compatible upstreams take no arrays
    return parts


def _contents_to_messages(contents: list) -> list[dict]:
    messages: list[dict] = []
    pending: list[tuple[str, str]] = []  # (id, name) of the latest model turn's calls not yet answered
    for turn, content in enumerate(c for c in contents if isinstance(c, dict)):
        parts = [p for p in as_list(_get(content, "parts")) if isinstance(p, dict)]
        if _get(content, "role") == "model":
            calls, texts = [], []
            for index, part in enumerate(parts):
                call = _get(part, "functionCall")
                if isinstance(call, dict):
                    call_ref = call.get("id") or tool_call_id("gemini-request", turn, index)
                    args = call.get("args") if isinstance(call.get("args"), dict) else {}
                    calls.append({"id": call_ref, "type": "function", "function": {
                        "name": str(call.get("name") or ""), "arguments": json.dumps(args, ensure_ascii=False)}})
                elif isinstance(part.get("text"), str) and not part.get("thought"):
                    texts.append(part["text"])
            pending = [(c["id"], c["function"]["name"]) for c in calls]
            if texts or calls:  # a model turn of thoughts only says nothing an OpenAI upstream can read
                message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
                messages.append({**message, "tool_calls": calls} if calls else message)
            continue
        user_parts = []
        for index, part in enumerate(parts):
            response = _get(part, "functionResponse")
            if isinstance(response, dict):
                name = str(response.get("name") or "")
                match = next((p for p in pending if p[0] == response.get("id")), None) or \
                    next((p for p in pending if p[1] == name), None)
                if match:
                    pending.remove(match)
                call_ref = response.get("id") or (match[0] if match else tool_call_id("gemini-request", turn, index))
                result = response.get("response")
                if isinstance(result, dict) and set(result) == {"output"} and isinstance(result["output"], str):
                    result = result["output"]
                text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
                messages.append({"role": "tool", "tool_call_id": call_ref, "content": text})
            else:
                converted = _openai_part(part)
                if converted:
                    user_parts.append(converted)
        if user_parts:
            messages.append({"role": "user", "content": _user_content(user_parts)})
    return messages


def _effort_from_thinking(thinking: Any) -> str | None:
    level = _get(thinking, "thinkingLevel")
    if isinstance(level, str) and level.lower() in ("minimal", "low", "medium", "high"):
        return level.lower()
    budget = _get(thinking, "thinkingBudget")
    if not isinstance(budget, int) or budget <= 0:
        return None  # 0 (off) and -1 (dynamic) have no portable effort: leave the upstream's default
    return "low" if budget <= 1024 else "medium" if budget <= 8192 else "high"


def _openai_tools(tools: Any) -> list[dict]:
    out = []
    for tool in as_list(tools):
        for declaration in as_list(_get(tool, "functionDeclarations")):
            if not isinstance(declaration, dict) or not declaration.get("name"):
                continue
            parameters = _get(declaration, "parametersJsonSchema")
            if parameters is None:
                parameters = schema_from_gemini(declaration.get("parameters"))
            function = {"name": declaration["name"], "parameters": parameters or {"type": "object", "properties": {}}}
            if declaration.get("description"):
                function["description"] = declaration["description"]
            out.append({"type": "function", "function": function})
    return out


def _openai_tool_choice(tool_config: Any) -> Any:
    config = _get(tool_config, "functionCallingConfig")
    mode = str(_get(config, "mode") or "").upper()
    names = _get(config, "allowedFunctionNames") or []
    if mode == "ANY" and isinstance(names, list) and len(names) == 1:
        return {"type": "function", "function": {"name": names[0]}}
    return {"AUTO": "auto", "VALIDATED": "auto", "ANY": "required", "NONE": "none"}.get(mode)


def _apply_generation_config(out: dict, config: Any) -> None:
    for src, dst in (("temperature", "temperature"), ("topP", "top_p"), ("maxOutputTokens", "max_tokens"),
                     ("seed", "seed"), ("candidateCount", "n"), ("presencePenalty", "presence_penalty"),
                     ("frequencyPenalty", "frequency_penalty"), ("responseLogprobs", "logprobs"),
                     ("logprobs", "top_logprobs"), ("stopSequences", "stop")):
        if _get(config, src) is not None:
            out[dst] = _get(config, src)
    if _get(config, "responseMimeType") == "application/json":
        schema = _get(config, "responseJsonSchema")
        schema = schema if schema is not None else schema_from_gemini(_get(config, "responseSchema"))
        out["response_format"] = {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}} \
            if schema else {"type": "json_object"}
    effort = _effort_from_thinking(_get(config, "thinkingConfig"))
    if effort:
        out["reasoning_effort"] = effort


def gemini_request_to_openai_chat(model: str, body: dict) -> dict:
    """A Gemini generateContent body (camelCase or snake_case) -> an OpenAI chat request; `stream` is the caller's."""
    messages = []
    system = _text_of(_get(body, "systemInstruction"))
    if system:
        messages.append({"role": "system", "content": system})
    contents = _get(body, "contents")
    messages += _contents_to_messages(contents if isinstance(contents, list) else [contents] if contents else [])
    out: dict[str, Any] = {"model": model.removeprefix("models/"), "messages": messages}
    tools = _openai_tools(_get(body, "tools"))
    if tools:
        out["tools"] = tools
        choice = _openai_tool_choice(_get(body, "toolConfig"))
        if choice:
            out["tool_choice"] = choice
    _apply_generation_config(out, _get(body, "generationConfig"))
    return out
