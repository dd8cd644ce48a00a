"""Responses API ⇄ OpenAI chat: requests, responses and streams, each read back through the openai SDK's own types."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import httpx
import openai
import pydantic
import pytest
from openai.lib.streaming.responses import ResponseStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent, response_create_params

from relay.protocols.responses_chat import (
    OpenAIToResponsesStream,
    ProtocolError,
    openai_chat_response_to_responses,
    responses_request_to_openai_chat,
)
from relay.usage import Usage
from tests.relay.protocols.anthropic_cases import assert_valid_openai_request

FIXTURES = Path(__file__).parent / "fixtures" / "responses"
CREATED = 1700000000
RESPONSE_ID = "resp_test"
MODEL = "client-model"
REQUEST = {"model": MODEL, "input": "Hi", "stream": True}
TERMINAL = ("response.completed", "response.incomplete", "response.failed")
EVENTS = pydantic.TypeAdapter(ResponseStreamEvent)
REQUESTS = pydantic.TypeAdapter(
    response_create_params.ResponseCreateParamsNonStreaming | response_create_params.ResponseCreateParamsStreaming)


def _cases(name: str) -> list:
    return [pytest.param(case, id=case["name"]) for case in json.loads((FIXTURES / name).read_text("utf-8"))]


# --- Requests ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("requests.json"))
def test_responses_request_becomes_a_chat_request(case):
    REQUESTS.validate_python(case["body"])  # the fixture is a real Responses request
    before = copy.deepcopy(case["body"])
    chat = responses_request_to_openai_chat(case["body"])
    assert chat == case["expected"]
    assert case["body"] == before
    assert_valid_openai_request(chat)


@pytest.mark.parametrize("case", _cases("rejected.json"))
def test_requests_this_upstream_cannot_serve_are_rejected(case):
    with pytest.raises(ProtocolError, match=re.escape(case["error"])):
        responses_request_to_openai_chat(case["body"])


def test_protocol_errors_are_value_errors():
    assert issubclass(ProtocolError, ValueError)


# --- Non-streaming responses ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("chat_to_responses.json"))
def test_chat_completion_becomes_a_response(case):
    if "quirk" not in case:
        ChatCompletion.model_validate(case["chat"])
    out = openai_chat_response_to_responses(case["chat"], model=MODEL, request={"model": MODEL, "input": "x"},
                                            response_id=RESPONSE_ID, created=CREATED)
    assert (out["id"], out["object"], out["created_at"], out["model"]) == (RESPONSE_ID, "response", CREATED, MODEL)
    assert out["status"] == case["status"]
    assert out["incomplete_details"] == case["incomplete_details"]
    assert out["output"] == case["output"]
    assert out["usage"] == case["usage"]
    assert out["error"] is None
    assert Response.model_validate(out).output_text == case["output_text"]


def test_response_echoes_the_request_settings_the_sdk_needs():
    request = {"model": MODEL, "input": "x", "instructions": "Be brief.", "temperature": 0.3, "top_p": 0.8,
               "max_output_tokens": 100, "parallel_tool_calls": False, "metadata": {"ticket": "7"}, "user": "u1",
               "tool_choice": {"type": "function", "name": "f"}, "reasoning": {"effort": "low", "summary": "auto"},
               "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": False}],
               "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}, "strict": True}}}
    REQUESTS.validate_python(request)
    chat = {"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "{}"}}]}
    out = openai_chat_response_to_responses(chat, model=MODEL, request=request, response_id=RESPONSE_ID,
                                            created=CREATED)
    for key in ("instructions", "temperature", "top_p", "max_output_tokens", "parallel_tool_calls", "metadata",
                "user", "tool_choice", "reasoning", "tools", "text"):
        assert out[key] == request[key], key
    parsed = Response.model_validate(out)
    assert parsed.output_text == "{}"
    assert parsed.usage is None


def test_response_defaults_tools_and_settings_for_a_bare_request():
    out = openai_chat_response_to_responses({"choices": []}, model=MODEL, request={}, response_id=RESPONSE_ID,
                                            created=CREATED)
    assert (out["tools"], out["tool_choice"], out["parallel_tool_calls"]) == ([], "auto", True)
    assert out["text"] == {"format": {"type": "text"}}
    assert (out["output"], out["status"]) == ([], "completed")
    Response.model_validate(out)


def test_malformed_chat_completions_give_an_empty_response():
    for chat in ({"choices": 3}, {"choices": [None, {"index": 0, "message": {"tool_calls": 3, "content": 5}}]},
                 {"choices": [{"index": 0, "message": {"tool_calls": [None, {"id": "x"}]}}], "usage": "many"}):
        out = openai_chat_response_to_responses(chat, model=MODEL, request={"tools": 1}, response_id=RESPONSE_ID,
                                                created=CREATED)
        assert (out["output"], out["usage"], out["tools"]) == ([], None, [])
        Response.model_validate(out)


def test_response_id_and_created_default_sensibly():
    chat = {"created": 1712345678, "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}}]}
    out = openai_chat_response_to_responses(chat, model=MODEL, request={})
    assert re.fullmatch(r"resp_[0-9a-f]{32}", out["id"])
    assert out["created_at"] == 1712345678
    assert out["output"][0]["id"] == f"msg_{out['id'][5:]}_0"
    other = openai_chat_response_to_responses({"choices": []}, model=MODEL, request={})
    assert other["id"] != out["id"] and other["created_at"] > CREATED


# --- Streams -------------------------------------------------------------------------------------------------------


def _chunk(delta: dict | None = None, finish: str | None = None, index: int = 0) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": CREATED, "model": "up-model",
            "choices": [{"index": index, "delta": delta or {}, "finish_reason": finish}]}


def _call(index: int, arguments: str, call_id: str | None = None, name: str | None = None) -> dict:
    call: dict = {"index": index, "function": {"arguments": arguments}}
    if call_id:
        call.update(id=call_id, type="function")
        call["function"]["name"] = name
    return call


def _usage_chunk(prompt: int, completion: int, **details) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": CREATED, "model": "up-model",
            "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                     "total_tokens": prompt + completion, **details}}


def _events(frames: list[bytes]) -> list[dict]:
    """Each frame is exactly `event: <type>\\ndata: <json>\\n\\n`, and the JSON's type is the event name."""
    events = []
    for frame in frames:
        assert frame.endswith(b"\n\n") and frame.count(b"\n") == 3, frame
        head, data = frame[:-2].split(b"\n")
        assert head.startswith(b"event: ") and data.startswith(b"data: "), frame
        event = json.loads(data[len(b"data: "):])
        assert event["type"] == head[len(b"event: "):].decode()
        events.append(event)
    return events


def _sdk_replay(events: list[dict]) -> Response | None:
    """Validate every event with the SDK's types and replay them through the SDK's own stream accumulator."""
    state = ResponseStreamState(input_tools=openai.omit, text_format=openai.omit)
    final = None
    for event in events:
        for handled in state.handle_event(EVENTS.validate_python(event)):
            if handled.type in TERMINAL:
                final = handled.response
    return final


def _run(chunks: list, request: dict | None = None, estimate: int = 10):
    """Feed the chunks, then done(); return the stream, its events (sequence checked) and the SDK's final response."""
    for chunk in chunks:
        if isinstance(chunk, dict) and "error" not in chunk and chunk.get("object") == "chat.completion.chunk":
            ChatCompletionChunk.model_validate(chunk)  # the fixture is a real chat chunk
    stream = OpenAIToResponsesStream(MODEL, request or REQUEST, estimate, response_id=RESPONSE_ID, created=CREATED)
    frames = [frame for chunk in chunks for frame in stream.feed(chunk)] + stream.done()
    events = _events(frames)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "response.created" and events[1]["type"] == "response.in_progress"
    for start in events[:2]:
        assert (start["response"]["status"], start["response"]["output"]) == ("in_progress", [])
    assert events[-1]["type"] in TERMINAL and not any(e["type"] in TERMINAL for e in events[:-1])
    return stream, events, _sdk_replay(events)


def _types(events: list[dict]) -> list[str]:
    return [e["type"].removeprefix("response.") for e in events]


TEXT_CHUNKS = [_chunk({"role": "assistant", "content": "", "refusal": None}), _chunk({"content": "Hel"}),
               _chunk({"content": "lo!"}), _chunk(finish="stop"),
               _usage_chunk(9, 3, prompt_tokens_details={"cached_tokens": 2})]


def test_streaming_text():
    stream, events, final = _run(TEXT_CHUNKS)
    assert _types(events) == ["created", "in_progress", "output_item.added", "content_part.added",
                              "output_text.delta", "output_text.delta", "output_text.done", "content_part.done",
                              "output_item.done", "completed"]
    added, part, delta = events[2], events[3], events[4]
    assert added["item"] == {"type": "message", "id": "msg_test_0", "status": "in_progress", "role": "assistant",
                             "content": []}
    assert part["part"] == {"type": "output_text", "text": "", "annotations": []}
    assert delta == {"type": "response.output_text.delta", "sequence_number": 4, "item_id": "msg_test_0",
                     "output_index": 0, "content_index": 0, "delta": "Hel", "logprobs": []}
    assert events[6]["text"] == "Hello!"
    assert events[8]["item"]["status"] == "completed"
    response = events[-1]["response"]
    assert (response["id"], response["status"], response["created_at"]) == (RESPONSE_ID, "completed", CREATED)
    assert response["usage"] == {"input_tokens": 9,
                                 "input_tokens_details": {"cached_tokens": 2, "cache_write_tokens": 0},
                                 "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 0},
                                 "total_tokens": 12}
    assert final.output_text == "Hello!"
    assert stream.usage == Usage(prompt_tokens=9, completion_tokens=3, cached_tokens=2)
    assert (stream.text, stream.error) == ("Hello!", "")


def test_the_terminal_event_waits_for_done_so_late_usage_is_included():
    stream = OpenAIToResponsesStream(MODEL, REQUEST, 10, response_id=RESPONSE_ID, created=CREATED)
    frames = [frame for chunk in TEXT_CHUNKS[:4] for frame in stream.feed(chunk)]
    assert _types(_events(frames))[-1] == "output_item.done"  # the item closes on finish_reason...
    assert stream.feed(TEXT_CHUNKS[4]) == []  # ...and the usage chunk adds nothing to send
    assert _events(stream.done())[0]["response"]["usage"]["output_tokens"] == 3


def test_streaming_two_parallel_tool_calls_with_split_arguments():
    request = {**REQUEST, "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]}
    stream, events, final = _run([
        _chunk({"role": "assistant", "content": None,
                "tool_calls": [_call(0, "", "call_a", "get_weather")]}),
        _chunk({"tool_calls": [_call(0, '{"city":')]}),
        _chunk({"tool_calls": [_call(0, '"Paris"}')]}),
        _chunk({"tool_calls": [_call(1, "", "call_b", "get_weather")]}),
        _chunk({"tool_calls": [_call(1, '{"city":')]}),
        _chunk({"tool_calls": [_call(1, '"Rome"}')]}),
        _chunk(finish="tool_calls"), _usage_chunk(40, 30)], request)
    assert _types(events) == ["created", "in_progress",
                              "output_item.added", "function_call_arguments.delta", "function_call_arguments.delta",
                              "function_call_arguments.done", "output_item.done",
                              "output_item.added", "function_call_arguments.delta", "function_call_arguments.delta",
                              "function_call_arguments.done", "output_item.done", "completed"]
    assert events[2]["item"] == {"type": "function_call", "id": "fc_test_0", "call_id": "call_a",
                                 "name": "get_weather", "arguments": "", "status": "in_progress"}
    assert [e["delta"] for e in events if e["type"].endswith("arguments.delta")] == [
        '{"city":', '"Paris"}', '{"city":', '"Rome"}']
    assert [(e["output_index"], e["arguments"]) for e in events if e["type"].endswith("arguments.done")] == [
        (0, '{"city":"Paris"}'), (1, '{"city":"Rome"}')]
    calls = [(o.id, o.call_id, o.name, json.loads(o.arguments), o.status) for o in final.output]
    assert calls == [("fc_test_0", "call_a", "get_weather", {"city": "Paris"}, "completed"),
                     ("fc_test_1", "call_b", "get_weather", {"city": "Rome"}, "completed")]
    assert final.tools[0].name == "get_weather"
    assert stream.text == '{"city":"Paris"}{"city":"Rome"}'


def test_text_then_a_tool_call_are_numbered_in_the_order_opened():
    _, events, final = _run([
        _chunk({"content": "Let me check."}),
        _chunk({"tool_calls": [_call(0, '{"q":1}', "call_a", "search")]}),
        _chunk(finish="tool_calls"), _usage_chunk(5, 5)])
    assert [(e["type"], e["output_index"], e["item"]["type"]) for e in events if "item" in e] == [
        ("response.output_item.added", 0, "message"), ("response.output_item.done", 0, "message"),
        ("response.output_item.added", 1, "function_call"), ("response.output_item.done", 1, "function_call")]
    assert [o.type for o in final.output] == ["message", "function_call"]
    assert final.output_text == "Let me check."


def test_streaming_reasoning_content_becomes_a_reasoning_summary():
    stream, events, final = _run([
        _chunk({"role": "assistant", "content": None, "reasoning_content": "Six"}),
        _chunk({"reasoning_content": " times seven."}),
        _chunk({"content": "42"}), _chunk(finish="stop"),
        _usage_chunk(10, 20, completion_tokens_details={"reasoning_tokens": 15})])
    assert _types(events) == ["created", "in_progress", "output_item.added", "reasoning_summary_part.added",
                              "reasoning_summary_text.delta", "reasoning_summary_text.delta",
                              "reasoning_summary_text.done", "reasoning_summary_part.done", "output_item.done",
                              "output_item.added", "content_part.added", "output_text.delta", "output_text.done",
                              "content_part.done", "output_item.done", "completed"]
    assert events[6]["text"] == "Six times seven."
    assert final.output[0].summary[0].text == "Six times seven."
    assert final.output_text == "42"
    assert final.usage.output_tokens_details.reasoning_tokens == 15
    assert stream.text == "Six times seven.42"


def test_openrouter_reasoning_field_is_read_too():
    _, _, final = _run([_chunk({"reasoning": "Hm."}), _chunk({"content": "ok"}), _chunk(finish="stop")])
    assert (final.output[0].type, final.output[0].summary[0].text, final.output_text) == ("reasoning", "Hm.", "ok")


def test_streaming_refusal():
    _, events, final = _run([_chunk({"refusal": "I can't"}), _chunk({"refusal": " help."}), _chunk(finish="stop")])
    assert _types(events)[2:-1] == ["output_item.added", "content_part.added", "refusal.delta", "refusal.delta",
                                    "refusal.done", "content_part.done", "output_item.done"]
    assert events[-2]["item"]["content"] == [{"type": "refusal", "refusal": "I can't help."}]
    assert final.output_text == ""


def test_length_finish_is_incomplete():
    _, events, final = _run([_chunk({"content": "Once upon"}), _chunk(finish="length"), _usage_chunk(5, 2)],
                            {**REQUEST, "max_output_tokens": 2})
    assert events[-1]["type"] == "response.incomplete"
    assert events[-2]["item"]["status"] == "incomplete"
    assert (final.status, final.incomplete_details.reason, final.max_output_tokens) == (
        "incomplete", "max_output_tokens", 2)
    assert final.output_text == "Once upon"


def test_content_filter_finish_is_incomplete():
    _, events, final = _run([_chunk(finish="content_filter")])
    assert _types(events) == ["created", "in_progress", "incomplete"]
    assert (final.status, final.incomplete_details.reason, final.output) == ("incomplete", "content_filter", [])


def test_stream_without_usage_completes_with_an_estimate():
    stream, events, final = _run([_chunk({"content": "abcdefghi"}), _chunk(finish="stop")], estimate=42)
    assert events[-1]["type"] == "response.completed"
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (42, 3, 45)
    assert stream.usage is None  # the relay bills from its own estimate when no usage arrived


def test_stream_cut_before_finish_still_closes_its_items():
    _, events, final = _run([_chunk({"content": "partial"})])
    assert _types(events)[-4:] == ["output_text.done", "content_part.done", "output_item.done", "completed"]
    assert final.output_text == "partial"


def test_error_chunk_mid_stream_fails_the_response():
    stream = OpenAIToResponsesStream(MODEL, REQUEST, 10, response_id=RESPONSE_ID, created=CREATED)
    frames = stream.feed(_chunk({"content": "Hel"}))
    frames += stream.feed({"error": {"message": "Rate limit reached", "type": "requests",
                                     "code": "rate_limit_exceeded", "param": None}})
    events = _events(frames)
    assert _types(events) == ["created", "in_progress", "output_item.added", "content_part.added",
                              "output_text.delta", "failed"]
    response = events[-1]["response"]
    assert response["status"] == "failed"
    assert response["error"] == {"code": "rate_limit_exceeded", "message": "Rate limit reached"}
    assert response["output"][0]["status"] == "incomplete"
    assert "error" not in events[-1]  # the SDK raises on a top-level `error` key instead of reading the event
    final = _sdk_replay(events)
    assert (final.status, final.error.message) == ("failed", "Rate limit reached")
    assert stream.error == "Rate limit reached"
    assert stream.feed(_chunk({"content": "lo"})) == []
    assert stream.done() == []


def test_error_before_any_output_still_opens_the_response():
    stream = OpenAIToResponsesStream(MODEL, REQUEST, 10, response_id=RESPONSE_ID, created=CREATED)
    events = _events(stream.feed({"error": {"message": "boom", "type": "server_error", "code": "weird_code"}}))
    assert _types(events) == ["created", "in_progress", "failed"]
    assert events[-1]["response"]["error"] == {"code": "server_error", "message": "boom"}
    assert _sdk_replay(events).error.code == "server_error"
    assert stream.error == "boom"


def test_done_is_idempotent():
    stream = OpenAIToResponsesStream(MODEL, REQUEST, 7, response_id=RESPONSE_ID, created=CREATED)
    events = _events(stream.done())
    assert _types(events) == ["created", "in_progress", "completed"]
    assert events[-1]["response"]["usage"]["input_tokens"] == 7
    assert _sdk_replay(events).output == []
    assert stream.done() == []
    assert stream.feed(_chunk({"content": "late"})) == []


def test_chunks_that_carry_nothing_for_the_client_are_ignored():
    stream, _, final = _run([
        {"id": "", "object": "", "created": 0, "model": "", "choices": [],  # Azure's prompt-filter chunk
         "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]},
        None, [], {"choices": "x", "usage": 5},
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "other choice"}, index=1),  # n > 1: only the first choice is a Responses answer
        {"choices": [{"delta": {"content": "ok", "tool_calls": 3, "reasoning": 4}}]}, _chunk(finish="stop")])
    assert final.output_text == "ok"
    assert stream.text == "ok"


def test_tool_calls_without_index_are_told_apart_by_id():
    _, _, final = _run([
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"id": "a", "function": {"name": "f", "arguments": "{\"x\":"}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"function": {"arguments": "1}"}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"id": "b", "function": {"name": "g", "arguments": ""}}]},
                      "finish_reason": "tool_calls"}]}])
    assert [(o.call_id, o.name, o.arguments) for o in final.output] == [("a", "f", '{"x":1}'), ("b", "g", "{}")]


def test_a_late_fragment_of_a_finished_call_is_not_sent_but_is_counted():
    stream, _, final = _run([
        _chunk({"tool_calls": [_call(0, "{}", "call_a", "f")]}),
        _chunk({"tool_calls": [_call(1, "{}", "call_b", "g")]}),
        _chunk({"tool_calls": [_call(0, " ")]}), _chunk(finish="tool_calls")])
    assert [o.arguments for o in final.output] == ["{}", "{}"]
    assert stream.text == "{}{} "


def test_a_call_without_id_gets_one():
    _, _, final = _run([_chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{}"}}]})])
    assert (final.output[0].id, final.output[0].call_id) == ("fc_test_0", "call_test_0")


# --- The openai SDK reads what we send over HTTP ------------------------------------------------------------------


def _client(body: bytes, content_type: str) -> openai.OpenAI:
    transport = httpx.MockTransport(lambda request: httpx.Response(
        200, headers={"content-type": content_type}, content=body))
    return openai.OpenAI(api_key="sk-test", base_url="http://relay.test/v1", max_retries=0,
                         http_client=httpx.Client(transport=transport))


def test_openai_sdk_streams_our_events():
    stream = OpenAIToResponsesStream(MODEL, REQUEST, 10, response_id=RESPONSE_ID, created=CREATED)
    frames = [frame for chunk in TEXT_CHUNKS for frame in stream.feed(chunk)] + stream.done()
    client = _client(b"".join(frames), "text/event-stream")
    with client.responses.stream(model=MODEL, input="Hi") as events:
        deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
        final = events.get_final_response()
    assert deltas == ["Hel", "lo!"]
    assert (final.id, final.output_text, final.usage.total_tokens) == (RESPONSE_ID, "Hello!", 12)


def test_openai_sdk_reads_our_response():
    chat = {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Sure.", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}]}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}
    body = openai_chat_response_to_responses(chat, model=MODEL, request={"model": MODEL, "input": "x"})
    response = _client(json.dumps(body).encode(), "application/json").responses.create(model=MODEL, input="x")
    assert response.output_text == "Sure."
    assert [(o.type, getattr(o, "call_id", None)) for o in response.output] == [("message", None),
                                                                                ("function_call", "call_a")]
    assert response.usage.input_tokens == 3
