"""OpenAI Chat requests ⇄ Gemini generateContent requests, from fixtures and edge cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from relay.protocols.gemini import gemini_request_to_openai_chat, openai_chat_to_gemini

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"


def _cases(folder: str) -> list:
    return [pytest.param(json.loads(p.read_text()), id=p.stem) for p in sorted((FIXTURES / folder).glob("*.json"))]


def _schema_keys(node: Any) -> set[str]:
    """Every key used anywhere in a schema tree, property names excluded."""
    if isinstance(node, list):
        return set().union(*map(_schema_keys, node)) if node else set()
    if not isinstance(node, dict):
        return set()
    keys = set(node)
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            keys |= set().union(*map(_schema_keys, value.values())) if value else set()
        elif key in ("items", "anyOf"):
            keys |= _schema_keys(value)
    return keys


@pytest.mark.parametrize("case", _cases("openai_to_gemini"))
def test_openai_request_becomes_gemini_request(case):
    model, body = openai_chat_to_gemini(case["openai"])
    assert model == case["model"]
    assert body == case["gemini"]
    assert "model" not in body


@pytest.mark.parametrize("case", _cases("openai_to_gemini"))
def test_gemini_schemas_carry_no_json_schema_only_keys(case):
    _, body = openai_chat_to_gemini(case["openai"])
    schemas = [d.get("parameters") for t in body.get("tools", []) for d in t["functionDeclarations"]]
    schemas.append(body.get("generationConfig", {}).get("responseSchema"))
    for schema in filter(None, schemas):
        assert not _schema_keys(schema) & {"additionalProperties", "$schema", "strict", "title", "default", "$ref",
                                           "$defs", "const", "oneOf", "allOf"}


@pytest.mark.parametrize("case", _cases("gemini_request_to_openai"))
def test_gemini_request_becomes_openai_request(case):
    assert gemini_request_to_openai_chat(case["model"], case["gemini"]) == case["openai"]


@pytest.mark.parametrize(
    "effort, thinking",
    [
        ("none", {"thinkingBudget": 0}),
        ("minimal", {"thinkingBudget": 512, "includeThoughts": True}),
        ("low", {"thinkingBudget": 1024, "includeThoughts": True}),
        ("medium", {"thinkingBudget": 8192, "includeThoughts": True}),
        ("high", {"thinkingBudget": 24576, "includeThoughts": True}),
        ("xhigh", {"thinkingBudget": 24576, "includeThoughts": True}),
        ("extreme", None),
        (None, None),
    ],
)
def test_reasoning_effort_sets_a_thinking_budget(effort, thinking):
    _, body = openai_chat_to_gemini({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                     "reasoning_effort": effort})
    assert body.get("generationConfig", {}).get("thinkingConfig") == thinking


@pytest.mark.parametrize(
    "thinking, effort",
    [
        ({"thinkingBudget": 0}, None),
        ({"thinkingBudget": -1}, None),
        ({"thinkingBudget": 512}, "low"),
        ({"thinkingBudget": 1024}, "low"),
        ({"thinkingBudget": 4096}, "medium"),
        ({"thinkingBudget": 8192}, "medium"),
        ({"thinkingBudget": 24576}, "high"),
        ({"thinkingLevel": "HIGH"}, "high"),
        ({"thinking_level": "minimal"}, "minimal"),
        ({"includeThoughts": True}, None),
    ],
)
def test_thinking_budget_becomes_a_reasoning_effort(thinking, effort):
    out = gemini_request_to_openai_chat("m", {"contents": [], "generationConfig": {"thinkingConfig": thinking}})
    assert out.get("reasoning_effort") == effort


@pytest.mark.parametrize(
    "choice, config",
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        ({"type": "function", "function": {"name": "f"}}, {"mode": "ANY", "allowedFunctionNames": ["f"]}),
        ({"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [
            {"type": "function", "function": {"name": "f"}}]}}, {"mode": "ANY", "allowedFunctionNames": ["f"]}),
        ({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}, {"mode": "AUTO"}),
        (None, None),
    ],
)
def test_tool_choice_becomes_function_calling_config(choice, config):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
                                                                        "properties": {"a": {"type": "string"}}}}}]
    _, body = openai_chat_to_gemini({"model": "m", "messages": [], "tools": tools, "tool_choice": choice})
    assert body.get("toolConfig", {}).get("functionCallingConfig") == config


@pytest.mark.parametrize(
    "mode, names, choice",
    [("AUTO", None, "auto"), ("VALIDATED", None, "auto"), ("NONE", None, "none"), ("ANY", None, "required"),
     ("ANY", ["a", "b"], "required"), ("ANY", ["a"], {"type": "function", "function": {"name": "a"}}),
     ("MODE_UNSPECIFIED", None, None)],
)
def test_function_calling_mode_becomes_tool_choice(mode, names, choice):
    config = {"mode": mode, **({"allowedFunctionNames": names} if names else {})}
    out = gemini_request_to_openai_chat("m", {"contents": [], "tools": [{"functionDeclarations": [{"name": "a"}]}],
                                              "toolConfig": {"functionCallingConfig": config}})
    assert out.get("tool_choice") == choice


def test_url_encoded_data_url_is_base64_encoded():
    _, body = openai_chat_to_gemini({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/svg+xml,%3Csvg%2F%3E"}}]}]})
    assert body["contents"][0]["parts"] == [{"inlineData": {"mimeType": "image/svg+xml", "data": "PHN2Zy8+"}}]


def test_legacy_function_call_and_function_role_are_understood():
    _, body = openai_chat_to_gemini({"model": "m", "messages": [
        {"role": "user", "content": "time?"},
        {"role": "assistant", "content": None, "function_call": {"name": "now", "arguments": "{\"tz\":\"UTC\"}"}},
        {"role": "function", "name": "now", "content": "12:00"},
    ]})
    assert body["contents"][1:] == [
        {"role": "model", "parts": [{"functionCall": {"name": "now", "args": {"tz": "UTC"}},
                                     "thoughtSignature": "skip_thought_signature_validator"}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "now", "response": {"output": "12:00"}}}]},
    ]


def test_empty_and_contentless_messages_are_dropped():
    _, body = openai_chat_to_gemini({"model": "m", "messages": [
        {"role": "user", "content": ""}, {"role": "assistant", "content": None}, {"role": "user", "content": []},
        "not a message", {"role": "user", "content": "real"}]})
    assert body == {"contents": [{"role": "user", "parts": [{"text": "real"}]}]}


def test_a_user_message_after_tool_results_starts_a_new_turn():
    _, body = openai_chat_to_gemini({"model": "m", "messages": [
        {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "{\"ok\": true}"},
        {"role": "user", "content": "and now?"}]})
    assert [c["role"] for c in body["contents"]] == ["model", "user", "user"]
    assert body["contents"][1]["parts"] == [{"functionResponse": {"name": "f", "response": {"ok": True}}}]


def test_malformed_request_bodies_translate_to_empty_requests():
    assert openai_chat_to_gemini({}) == ("", {"contents": []})
    assert openai_chat_to_gemini({"model": 3, "messages": "hi"}) == ("", {"contents": []})
    assert gemini_request_to_openai_chat("m", {}) == {"model": "m", "messages": []}


def test_conversation_survives_a_round_trip_through_gemini():
    messages = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "assistant", "content": "18°C."},
    ]
    model, body = openai_chat_to_gemini({"model": "gemini-2.5-flash", "messages": messages, "temperature": 0.3})
    back = gemini_request_to_openai_chat(model, body)
    assert back["temperature"] == 0.3
    # ids are not sent to Gemini, so they come back synthesized; everything else is intact
    call_id = back["messages"][2]["tool_calls"][0]["id"]
    assert call_id.startswith("call_") and back["messages"][3]["tool_call_id"] == call_id
    for message in back["messages"]:
        for call in message.get("tool_calls", []):
            call["id"] = "call_1"
        if message["role"] == "tool":
            message["tool_call_id"] = "call_1"
    assert back["messages"] == messages


def test_wrongly_typed_fields_are_ignored_not_raised_on():
    body = {"model": "m", "messages": [{"role": "assistant", "tool_calls": 5, "content": 3}, {"role": "tool"}],
            "tools": 7, "stop": 9, "reasoning_effort": ["high"], "response_format": "json"}
    assert openai_chat_to_gemini(body) == ("m", {"contents": [
        {"role": "user", "parts": [{"functionResponse": {"name": "", "response": {"output": ""}}}]}]})
    gemini = {"contents": [{"parts": 5}, 3], "tools": [{"functionDeclarations": 3}, 1],
              "systemInstruction": {"parts": 4}, "generationConfig": 2, "toolConfig": []}
    assert gemini_request_to_openai_chat("m", gemini) == {"model": "m", "messages": []}


def test_a_model_turn_of_thoughts_only_is_dropped():
    out = gemini_request_to_openai_chat("m", {"contents": [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "model", "parts": [{"text": "thinking...", "thought": True}, {"thoughtSignature": "abc"}]},
        {"role": "user", "parts": [{"text": "still there?"}]}]})
    assert out["messages"] == [{"role": "user", "content": "hi"}, {"role": "user", "content": "still there?"}]
