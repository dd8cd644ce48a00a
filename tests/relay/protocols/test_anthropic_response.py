"""Anthropic messages ⇄ OpenAI chat.completion, stop reasons, usage and error bodies, table-driven from fixtures."""

from __future__ import annotations

import time

import pytest
from openai.types.chat import ChatCompletion

from relay.protocols.anthropic_response import (
    TokenUsage,
    anthropic_error_body,
    anthropic_error_from_openai,
    anthropic_to_openai_chat_response,
    finish_reason_from_stop_reason,
    openai_chat_response_to_anthropic,
    openai_error_from_anthropic,
    stop_reason_from_finish_reason,
    token_usage_from_anthropic,
    token_usage_from_openai,
)
from relay.usage import Usage
from tests.relay.protocols.anthropic_cases import cases, fixture

ANTHROPIC_TO_OPENAI = cases("anthropic_to_openai_chat_response.json")
OPENAI_TO_ANTHROPIC = cases("openai_chat_response_to_anthropic.json")
STOP_REASONS = fixture("stop_reasons.json")
ERRORS = fixture("errors.json")


@pytest.mark.parametrize("case", ANTHROPIC_TO_OPENAI)
def test_anthropic_message_becomes_the_expected_chat_completion(case):
    out = anthropic_to_openai_chat_response(case["input"], model=case["model"], created=1700000000)
    assert out == case["expected"]
    ChatCompletion.model_validate(out)


@pytest.mark.parametrize("case", OPENAI_TO_ANTHROPIC)
def test_chat_completion_becomes_the_expected_anthropic_message(case):
    assert openai_chat_response_to_anthropic(case["input"], model=case["model"]) == case["expected"]


@pytest.mark.parametrize("case", OPENAI_TO_ANTHROPIC)
def test_translated_chat_completion_is_a_valid_anthropic_message(case):
    anthropic = pytest.importorskip("anthropic")
    anthropic.types.Message.model_validate(case["expected"])


@pytest.mark.parametrize("case", ANTHROPIC_TO_OPENAI)
def test_anthropic_fixture_inputs_are_real_anthropic_messages(case):
    anthropic = pytest.importorskip("anthropic")
    if case["name"] not in ("unknown_blocks_ignored_empty_answer_is_empty_string", "missing_usage_and_stop_reason"):
        anthropic.types.Message.model_validate(case["input"])


def test_created_defaults_to_now():
    out = anthropic_to_openai_chat_response({"content": []}, model="m")
    assert abs(out["created"] - time.time()) < 5


@pytest.mark.parametrize(("stop_reason", "finish_reason"), STOP_REASONS["anthropic_to_openai"].items())
def test_stop_reason_maps_to_a_valid_openai_finish_reason(stop_reason, finish_reason):
    assert finish_reason_from_stop_reason(stop_reason) == finish_reason
    assert finish_reason in ("stop", "length", "tool_calls", "content_filter", "function_call")


@pytest.mark.parametrize(("finish_reason", "stop_reason"), STOP_REASONS["openai_to_anthropic"].items())
def test_finish_reason_maps_back_to_a_valid_anthropic_stop_reason(finish_reason, stop_reason):
    assert stop_reason_from_finish_reason(finish_reason) == stop_reason


def test_null_stop_reason_is_stop_and_null_finish_reason_is_end_turn():
    assert finish_reason_from_stop_reason(None) == "stop"
    assert stop_reason_from_finish_reason(None) == "end_turn"
    assert stop_reason_from_finish_reason(None, has_tool_use=True) == "tool_use"
    assert stop_reason_from_finish_reason("length", has_tool_use=True) == "max_tokens"


@pytest.mark.parametrize(("status", "error_type"), ERRORS["anthropic_error_type_by_status"].items())
def test_anthropic_error_body_uses_the_documented_type_for_each_status(status, error_type):
    body = anthropic_error_body(int(status), "something went wrong")
    assert body == {"type": "error", "error": {"type": error_type, "message": "something went wrong"}}
    anthropic = pytest.importorskip("anthropic")
    if error_type != "request_too_large":  # in Anthropic's error docs, but not in the SDK's ErrorResponse union
        anthropic.types.ErrorResponse.model_validate(body)


@pytest.mark.parametrize("case", ERRORS["openai_error_to_anthropic"])
def test_openai_error_becomes_an_anthropic_error(case):
    assert anthropic_error_from_openai(case["openai"]) == case["anthropic"]


@pytest.mark.parametrize("case", ERRORS["anthropic_error_to_openai"])
def test_anthropic_error_becomes_an_openai_error(case):
    assert openai_error_from_anthropic(case["anthropic"]) == case["openai"]


def test_usage_counts_cache_reads_and_writes_once_each_way():
    anthropic_usage = {"input_tokens": 100, "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 300,
                       "output_tokens": 50}
    usage = token_usage_from_anthropic(anthropic_usage)
    assert usage == TokenUsage(prompt_tokens=2400, completion_tokens=50, cached_tokens=2000, cache_write_tokens=300)
    openai_usage = {"prompt_tokens": 2400, "completion_tokens": 50,
                    "prompt_tokens_details": {"cached_tokens": 2000, "cache_write_tokens": 300}}
    assert token_usage_from_openai(openai_usage) == usage
    assert usage.as_usage() == Usage(prompt_tokens=2400, completion_tokens=50, cached_tokens=2000,
                                     cache_write_tokens=300)


@pytest.mark.parametrize("data", [None, {}, {"total_tokens": 3}, "12", {"server_tool_use": {}}])
def test_no_usage_is_none_not_zero(data):
    assert token_usage_from_anthropic(data) is None
    assert token_usage_from_openai(data) is None


def test_inconsistent_openai_cache_counts_are_clamped_to_the_prompt():
    usage = token_usage_from_openai({"prompt_tokens": 10, "completion_tokens": 1,
                                     "prompt_tokens_details": {"cached_tokens": 8, "cache_write_tokens": 5}})
    assert (usage.prompt_tokens, usage.cached_tokens, usage.cache_write_tokens) == (10, 8, 2)
    assert token_usage_from_openai({"prompt_tokens": -4, "completion_tokens": True}) == TokenUsage()
