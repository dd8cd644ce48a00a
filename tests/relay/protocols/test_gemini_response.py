"""Gemini GenerateContentResponse ⇄ OpenAI chat.completion, usage and error bodies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openai.types.chat import ChatCompletion

from relay.protocols.gemini import (
    gemini_error_body,
    gemini_error_to_openai,
    gemini_to_openai_chat_response,
    openai_chat_response_to_gemini,
    usage_from_gemini,
)
from relay.usage import Usage

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"
CREATED = 1700000000


def _cases(folder: str) -> list:
    return [pytest.param(json.loads(p.read_text()), id=p.stem) for p in sorted((FIXTURES / folder).glob("*.json"))]


@pytest.mark.parametrize("case", _cases("gemini_to_openai_response"))
def test_gemini_response_becomes_chat_completion(case):
    out = gemini_to_openai_chat_response(case["gemini"], model=case["model"], id_seed=case["id_seed"], created=CREATED)
    assert out == case["openai"]
    ChatCompletion.model_validate(out)


@pytest.mark.parametrize("case", _cases("openai_response_to_gemini"))
def test_chat_completion_becomes_gemini_response(case):
    ChatCompletion.model_validate(case["openai"])  # the fixture itself is a real OpenAI shape
    assert openai_chat_response_to_gemini(case["openai"], model=case["model"]) == case["gemini"]


@pytest.mark.parametrize(
    "reason, expected",
    [("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
     ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
     ("IMAGE_SAFETY", "content_filter"), ("LANGUAGE", "stop"), ("OTHER", "stop"), ("MALFORMED_FUNCTION_CALL", "stop"),
     ("FINISH_REASON_UNSPECIFIED", "stop"), (None, "stop")],
)
def test_finish_reason_table(reason, expected):
    resp = {"candidates": [{"content": {"parts": [{"text": "x"}]}, **({"finishReason": reason} if reason else {})}]}
    out = gemini_to_openai_chat_response(resp, model="m", id_seed="s", created=CREATED)
    assert out["choices"][0]["finish_reason"] == expected


def test_a_filter_outranks_a_function_call():
    resp = {"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {}}}]},
                            "finishReason": "SAFETY"}]}
    out = gemini_to_openai_chat_response(resp, model="m", id_seed="s", created=CREATED)
    assert out["choices"][0]["finish_reason"] == "content_filter"


@pytest.mark.parametrize(
    "reason, expected",
    [("stop", "STOP"), ("tool_calls", "STOP"), ("function_call", "STOP"), ("length", "MAX_TOKENS"),
     ("content_filter", "SAFETY"), (None, "STOP"), ("something_new", "STOP")],
)
def test_reverse_finish_reason_table(reason, expected):
    resp = {"id": "x", "choices": [{"index": 0, "finish_reason": reason, "message": {"content": "hi"}}]}
    assert openai_chat_response_to_gemini(resp, model="m")["candidates"][0]["finishReason"] == expected


def test_call_ids_are_deterministic_and_distinct():
    calls = [{"functionCall": {"name": "f", "args": {"i": i}}} for i in range(3)]
    resp = {"candidates": [{"content": {"parts": calls}}]}
    first = gemini_to_openai_chat_response(resp, model="m", id_seed="req-9", created=CREATED)
    again = gemini_to_openai_chat_response(resp, model="m", id_seed="req-9", created=CREATED)
    other = gemini_to_openai_chat_response(resp, model="m", id_seed="req-10", created=CREATED)
    ids = [c["id"] for c in first["choices"][0]["message"]["tool_calls"]]
    assert ids == [c["id"] for c in again["choices"][0]["message"]["tool_calls"]]
    assert len(set(ids)) == 3 and all(i.startswith("call_") for i in ids)
    assert not set(ids) & {c["id"] for c in other["choices"][0]["message"]["tool_calls"]}


def test_created_defaults_to_now():
    out = gemini_to_openai_chat_response({"candidates": []}, model="m", id_seed="s")
    assert out["created"] > CREATED


@pytest.mark.parametrize(
    "meta, usage",
    [
        ({"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 40, "cachedContentTokenCount": 4,
          "totalTokenCount": 55}, Usage(10, 45, 4, 40)),
        ({"promptTokenCount": 0}, Usage(0, 0, 0, 0)),
        ({"promptTokenCount": 3, "cachedContentTokenCount": 9}, Usage(3, 0, 3, 0)),  # cached never exceeds prompt
        ({"promptTokenCount": 8, "toolUsePromptTokenCount": 120, "candidatesTokenCount": 2}, Usage(128, 2, 0, 0)),
        ({"promptTokenCount": True, "candidatesTokenCount": -4, "thoughtsTokenCount": "7"}, None),
        ({}, None),
        (None, None),
        ([1, 2], None),
    ],
)
def test_usage_counts_thoughts_as_completion_and_tool_results_as_prompt(meta, usage):
    assert usage_from_gemini(meta) == usage


@pytest.mark.parametrize(
    "status, name",
    [(400, "INVALID_ARGUMENT"), (401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED"), (404, "NOT_FOUND"),
     (429, "RESOURCE_EXHAUSTED"), (500, "INTERNAL"), (502, "UNAVAILABLE"), (503, "UNAVAILABLE"),
     (504, "DEADLINE_EXCEEDED"), (418, "INVALID_ARGUMENT"), (599, "INTERNAL")],
)
def test_gemini_error_body_names_the_status(status, name):
    assert gemini_error_body(status, "boom") == {"error": {"code": status, "message": "boom", "status": name}}


@pytest.mark.parametrize(
    "error, expected",
    [
        ({"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}},
         {"message": "API key not valid.", "type": "invalid_request_error", "param": None, "code": "INVALID_ARGUMENT"}),
        ({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}},
         {"message": "overloaded", "type": "server_error", "param": None, "code": "UNAVAILABLE"}),
        ({"error": "weird"}, {"message": '{"error": "weird"}', "type": "server_error", "param": None, "code": None}),
    ],
)
def test_gemini_error_becomes_openai_error(error, expected):
    assert gemini_error_to_openai(error) == {"error": expected}


def test_refusal_and_content_parts_become_text():
    resp = {"choices": [
        {"index": 0, "finish_reason": "stop", "message": {"content": None, "refusal": "I can't help with that."}},
        {"index": 1, "finish_reason": "stop", "message": {"content": [{"type": "text", "text": "a"},
                                                                      {"type": "text", "text": "b"}]}},
    ]}
    out = openai_chat_response_to_gemini(resp, model="m")
    parts = [c["content"]["parts"] for c in out["candidates"]]
    assert parts == [[{"text": "I can't help with that."}], [{"text": "ab"}]]
    assert "usageMetadata" not in out and "responseId" not in out


def test_a_response_translates_there_and_back():
    gemini = json.loads((FIXTURES / "gemini_to_openai_response" / "thinking.json").read_text())["gemini"]
    openai = gemini_to_openai_chat_response(gemini, model="gemini-2.5-pro", id_seed="r", created=CREATED)
    back = openai_chat_response_to_gemini(openai, model="gemini-2.5-pro")
    assert back["candidates"][0]["content"]["parts"] == [
        {"text": "**Checking divisors**\nNo divisor up to 4 divides 17.", "thought": True},
        {"text": "Yes, 17 is prime."}]
    assert back["usageMetadata"] == {"promptTokenCount": 10, "candidatesTokenCount": 7, "thoughtsTokenCount": 412,
                                     "totalTokenCount": 429}


def test_wrongly_typed_fields_are_ignored_not_raised_on():
    resp = {"candidates": 5, "usageMetadata": "x"}
    out = gemini_to_openai_chat_response(resp, model="m", id_seed="s", created=CREATED)
    assert out["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "", "refusal": None},
                               "finish_reason": "stop", "logprobs": None}]
    assert "usage" not in out
    back = openai_chat_response_to_gemini({"choices": 3, "usage": [], "id": 4}, model="m")
    assert back == {"candidates": [], "modelVersion": "m"}


def test_tool_arguments_sent_as_an_object_are_kept():
    resp = {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]}}]}
    parts = openai_chat_response_to_gemini(resp, model="m")["candidates"][0]["content"]["parts"]
    assert parts == [{"functionCall": {"id": "c", "name": "f", "args": {"x": 1}}}]
