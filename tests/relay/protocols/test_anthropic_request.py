"""Anthropic Messages requests ⇄ OpenAI chat requests, table-driven from fixtures/anthropic/*.json."""

from __future__ import annotations

import copy

import pytest

from relay.protocols.anthropic_request import anthropic_request_to_openai_chat, openai_chat_to_anthropic
from tests.relay.protocols.anthropic_cases import assert_valid_anthropic_request, assert_valid_openai_request, cases

OPENAI_TO_ANTHROPIC = cases("openai_chat_to_anthropic.json")
ANTHROPIC_TO_OPENAI = cases("anthropic_request_to_openai_chat.json")


@pytest.mark.parametrize("case", OPENAI_TO_ANTHROPIC)
def test_openai_request_becomes_the_expected_anthropic_request(case):
    assert openai_chat_to_anthropic(case["input"], default_max_tokens=case["default_max_tokens"]) == case["expected"]


@pytest.mark.parametrize("case", OPENAI_TO_ANTHROPIC)
def test_translated_openai_request_is_valid_for_the_anthropic_sdk(case):
    assert_valid_anthropic_request(case["expected"])


@pytest.mark.parametrize("case", ANTHROPIC_TO_OPENAI)
def test_anthropic_request_becomes_the_expected_openai_request(case):
    assert anthropic_request_to_openai_chat(case["input"]) == case["expected"]


@pytest.mark.parametrize("case", ANTHROPIC_TO_OPENAI)
def test_translated_anthropic_request_is_valid_for_the_openai_sdk(case):
    assert_valid_openai_request(case["expected"])


@pytest.mark.parametrize("case", OPENAI_TO_ANTHROPIC + ANTHROPIC_TO_OPENAI)
def test_translation_leaves_the_client_body_untouched(case):
    body = copy.deepcopy(case["input"])
    if "default_max_tokens" in case:
        openai_chat_to_anthropic(body, default_max_tokens=case["default_max_tokens"])
    else:
        anthropic_request_to_openai_chat(body)
    assert body == case["input"]


def test_a_tool_loop_survives_a_round_trip_through_anthropic():
    openai_body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18°C"},
        ],
        "tools": [{"type": "function", "function": {"name": "w", "description": "weather",
                                                    "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": "auto",
        "max_tokens": 300,
    }
    back = anthropic_request_to_openai_chat(openai_chat_to_anthropic(openai_body, default_max_tokens=1))
    assert back == openai_body


def test_missing_messages_still_yield_a_sendable_request():
    out = openai_chat_to_anthropic({"model": "m"}, default_max_tokens=64)
    placeholder = {"role": "user", "content": [{"type": "text", "text": "..."}]}
    assert out == {"model": "m", "max_tokens": 64, "messages": [placeholder]}
    assert anthropic_request_to_openai_chat({"model": "m"}) == {"model": "m", "messages": []}


@pytest.mark.parametrize("wrong", [1.5, 7, True, {"a": 1}, "text"])
def test_list_fields_of_another_type_are_ignored_not_a_crash(wrong):
    """Found by the relay fuzzer: `"tools": 1.5` made a 500. A list field holding anything else counts as empty."""
    anthropic = anthropic_request_to_openai_chat({"model": "m", "max_tokens": 8, "tools": wrong,
                                                  "stop_sequences": wrong, "messages": [{"role": "user",
                                                                                         "content": "hi"}]})
    assert "tools" not in anthropic and "stop" not in anthropic
    assert anthropic_request_to_openai_chat({"model": "m", "messages": wrong})["messages"] == []
    openai = openai_chat_to_anthropic({"model": "m", "tools": wrong, "messages": [
        {"role": "assistant", "content": "x", "tool_calls": wrong}, {"role": "user", "content": "hi"}]},
        default_max_tokens=8)
    assert "tools" not in openai
