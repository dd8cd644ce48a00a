"""Per-upstream overrides: parameters merged into what an upstream receives, headers sent with it, a system prompt.

Operators set them on an upstream ("channel") to meet a provider's quirks without touching clients: a parameter the
provider requires or refuses, a gateway's own header, a house system prompt. Parameters are a JSON Merge Patch
(RFC 7396) on the upstream's request body, in the upstream's own format: objects merge, `null` removes a key.
"""

from __future__ import annotations

import re
from typing import Any

from django.utils.translation import gettext as _

# The relay decides these itself: streaming drives how the answer is read and billed.
RESERVED_PARAMS = frozenset({"stream"})
# Headers the HTTP client owns; the rest (authorization included) an operator may set.
# accept-encoding: streams are passed on as read, so the relay asks for them uncompressed
RESERVED_HEADERS = frozenset({"host", "content-length", "content-type", "transfer-encoding", "connection",
                              "accept-encoding"})
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
API_KEY = "{api_key}"  # replaced, in header values, by the upstream key the request goes out with


def param_override_problem(value: Any) -> str:
    """What is wrong with an upstream's parameter overrides, for the operator; "" when nothing is."""
    if not isinstance(value, dict):
        return _('Parameter overrides must be a JSON object, for example {"temperature": 0.2}.')
    reserved = sorted(RESERVED_PARAMS & set(value))
    if reserved:
        return _("Parameter overrides cannot set %(names)s: the relay decides it.") % {"names": ", ".join(reserved)}
    return ""


def header_override_problem(value: Any) -> str:
    """What is wrong with an upstream's header overrides, for the operator; "" when nothing is."""
    if not isinstance(value, dict):
        return _('Header overrides must be a JSON object, for example {"X-Team": "sales"}.')
    for name, text in value.items():
        if not HEADER_NAME.match(name):
            return _("Not a header name: %(name)r.") % {"name": name}
        if name.lower() in RESERVED_HEADERS:
            return _("The %(name)s header is set by the relay.") % {"name": name}
        if not isinstance(text, str) or any(c in text for c in "\r\n\0"):
            return _("The %(name)s header needs a one-line text value.") % {"name": name}
    return ""


def status_code_mapping_problem(value: Any) -> str:
    """What is wrong with an upstream's status code mapping, for the operator; "" when nothing is."""
    if not isinstance(value, dict):
        return _('The status code mapping must be a JSON object, for example {"400": 503}.')
    for status, read_as in value.items():
        if not str(status).isdigit() or not 400 <= int(status) <= 599 or isinstance(read_as, bool) or not (
                isinstance(read_as, int) and 400 <= read_as <= 599):
            return _("Only error statuses (400 to 599) map, each to another: %(status)s.") % {"status": status}
    return ""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: `patch` applied to `target` without changing either (nested objects are copied where written)."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def headers_with_overrides(headers: dict[str, str], override: dict[str, str], key: str) -> dict[str, str]:
    """The upstream request's headers with the operator's set over them (names matched without case)."""
    if not override:
        return headers
    lowered = {name.lower() for name in override}
    out = {name: value for name, value in headers.items() if name.lower() not in lowered}
    out.update({name: value.replace(API_KEY, key) for name, value in override.items()})
    return out


def _prefixed(content: Any, prompt: str) -> Any:
    """A system prompt's content (text or a list of text parts) with `prompt` put first."""
    if isinstance(content, list):
        return [{"type": "text", "text": prompt}, *content]
    return f"{prompt}\n\n{content}" if content else prompt


def _openai_chat(body: dict[str, Any], prompt: str, prepend: bool) -> dict[str, Any]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return body
    for index, message in enumerate(messages):
        if isinstance(message, dict) and message.get("role") in ("system", "developer"):
            if not prepend:
                return body
            changed = dict(message, content=_prefixed(message.get("content"), prompt))
            return dict(body, messages=[*messages[:index], changed, *messages[index + 1:]])
    return dict(body, messages=[{"role": "system", "content": prompt}, *messages])


def _anthropic(body: dict[str, Any], prompt: str, prepend: bool) -> dict[str, Any]:
    system = body.get("system")
    if not system:
        return dict(body, system=prompt)
    return dict(body, system=_prefixed(system, prompt)) if prepend else body


def _gemini(body: dict[str, Any], prompt: str, prepend: bool) -> dict[str, Any]:
    key = "system_instruction" if "system_instruction" in body else "systemInstruction"  # the caller's spelling
    instruction = body.get(key)
    parts = instruction.get("parts") if isinstance(instruction, dict) else None
    if not parts:
        return dict(body, **{key: {"parts": [{"text": prompt}]}})
    if not prepend:
        return body
    return dict(body, **{key: dict(instruction, parts=[{"text": prompt}, *parts])})


def _responses(body: dict[str, Any], prompt: str, prepend: bool) -> dict[str, Any]:
    instructions = body.get("instructions")
    if not instructions:
        return dict(body, instructions=prompt)
    return dict(body, instructions=f"{prompt}\n\n{instructions}") if prepend else body


def with_system_prompt(body: dict[str, Any], family: str, operation: str, prompt: str,
                       prepend: bool) -> dict[str, Any]:
    """`body` (in the upstream's format) given the operator's system prompt: where the caller gave none, or before
    the caller's own when `prepend`. Requests that carry no conversation are returned as they are."""
    if operation == "responses":
        return _responses(body, prompt, prepend)
    if family == "anthropic" and "messages" in body:
        return _anthropic(body, prompt, prepend)
    if family == "gemini" and "contents" in body:
        return _gemini(body, prompt, prepend)
    if operation == "chat/completions":
        return _openai_chat(body, prompt, prepend)
    return body


def upstream_body(body: dict[str, Any], upstream: Any, family: str, operation: str) -> dict[str, Any]:
    """The request body an upstream receives once its operator's system prompt and parameters are applied."""
    if upstream.system_prompt:
        body = with_system_prompt(body, family, operation, upstream.system_prompt, upstream.system_prompt_prepend)
    if upstream.param_override:
        body = merge_patch(body, upstream.param_override)
    return body
