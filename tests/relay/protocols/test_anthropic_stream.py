"""Streaming Anthropic ⇄ OpenAI chat state machines, table-driven from fixtures, read back by the official SDKs."""

from __future__ import annotations

import dataclasses
import json

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from relay.protocols.anthropic_stream import AnthropicToOpenAIStream, OpenAIToAnthropicStream
from relay.protocols.sse import FrameSplitter, frame_parse
from tests.relay.protocols.anthropic_cases import assert_valid_anthropic_event, cases

ANTHROPIC_TO_OPENAI = cases("anthropic_to_openai_stream.json")
OPENAI_TO_ANTHROPIC = cases("openai_to_anthropic_stream.json")
MODEL = "gpt-client-model"
CREATED = 1700000000


def _run_anthropic_to_openai(case: dict) -> tuple[AnthropicToOpenAIStream, list[bytes]]:
    stream = AnthropicToOpenAIStream(MODEL, case["include_usage"], created=CREATED)
    frames = [frame for event, data in case["events"] for frame in stream.feed(event, data)]
    if case["finish"]:
        frames += stream.finish()
    return stream, frames


def _run_openai_to_anthropic(case: dict) -> tuple[OpenAIToAnthropicStream, list[bytes]]:
    stream = OpenAIToAnthropicStream("claude-client-model", case["input_tokens_estimate"])
    frames = [frame for chunk in case["chunks"] for frame in stream.feed(chunk)]
    if case["done"]:
        frames += stream.done(output_tokens_estimate=case.get("output_tokens_estimate", 0))
    return stream, frames


def _openai_payloads(frames: list[bytes]) -> list:
    """Each frame's data: "[DONE]" as is, JSON decoded otherwise; OpenAI frames never carry an event name."""
    payloads = []
    for raw in frames:
        assert raw.endswith(b"\n\n") and raw.count(b"\n\n") == 1
        frame = frame_parse(raw)
        assert frame.event == ""
        payloads.append(frame.data if frame.data == "[DONE]" else json.loads(frame.data))
    return payloads


def _anthropic_events(frames: list[bytes]) -> list[list]:
    events = []
    for raw in frames:
        assert raw.endswith(b"\n\n") and raw.count(b"\n\n") == 1
        frame = frame_parse(raw)
        events.append([frame.event, json.loads(frame.data)])
    return events


def _compact(payload):
    """The parts of a chunk the fixtures spell out; the envelope is checked once per chunk here."""
    if not isinstance(payload, dict) or "error" in payload:
        return payload
    assert (payload["object"], payload["created"], payload["model"]) == ("chat.completion.chunk", CREATED, MODEL)
    assert isinstance(payload["id"], str)
    if not payload["choices"]:
        return {"usage": payload["usage"]}
    (choice,) = payload["choices"]
    assert choice["index"] == 0
    return {"delta": choice["delta"], "finish_reason": choice["finish_reason"]}


def _usage_dict(usage) -> dict | None:
    return None if usage is None else dataclasses.asdict(usage)


@pytest.mark.parametrize("case", ANTHROPIC_TO_OPENAI)
def test_anthropic_stream_becomes_the_expected_openai_chunks(case):
    stream, frames = _run_anthropic_to_openai(case)
    assert [_compact(p) for p in _openai_payloads(frames)] == case["expected"]
    assert _usage_dict(stream.usage) == case["usage"]
    assert stream.complete is case["complete"]
    assert stream.finish() == []  # closing twice sends nothing more


@pytest.mark.parametrize("case", ANTHROPIC_TO_OPENAI)
def test_openai_chunks_from_anthropic_are_valid_sdk_chunks(case):
    stream, frames = _run_anthropic_to_openai(case)
    for payload in _openai_payloads(frames):
        if isinstance(payload, dict) and "error" not in payload:
            ChatCompletionChunk.model_validate(payload)
            assert ("usage" in payload) is case["include_usage"]


@pytest.mark.parametrize("case", [c for c in ANTHROPIC_TO_OPENAI if not c.values[0].get("deliberately_malformed")])
def test_anthropic_fixture_events_are_real_anthropic_events(case):
    for event, data in case["events"]:
        if event != "ping":  # the SDK handles ping before its event union
            assert_valid_anthropic_event(event or data["type"], data)


@pytest.mark.parametrize("case", OPENAI_TO_ANTHROPIC)
def test_openai_stream_becomes_the_expected_anthropic_events(case):
    stream, frames = _run_openai_to_anthropic(case)
    assert _anthropic_events(frames) == case["expected"]
    assert _usage_dict(stream.usage) == case["usage"]
    assert stream.complete is case["complete"]
    assert stream.done() == []


@pytest.mark.parametrize("case", OPENAI_TO_ANTHROPIC)
def test_anthropic_events_from_openai_are_valid_sdk_events(case):
    _, frames = _run_openai_to_anthropic(case)
    for name, data in _anthropic_events(frames):
        assert_valid_anthropic_event(name, data)


@pytest.mark.parametrize("case", OPENAI_TO_ANTHROPIC)
def test_openai_fixture_chunks_are_real_openai_chunks(case):
    for chunk in case["chunks"]:
        if "error" not in chunk and chunk.get("object") == "chat.completion.chunk":
            ChatCompletionChunk.model_validate(chunk)


def test_frames_are_compact_sse_ready_to_send():
    stream = AnthropicToOpenAIStream("gpt-x", include_usage=False, created=1)
    frames = stream.feed("message_start", {"type": "message_start", "message": {"id": "msg_1", "usage": {}}})
    assert frames == [b'data: {"id":"msg_1","object":"chat.completion.chunk","created":1,"model":"gpt-x",'
                      b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n']
    frames = stream.feed("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "é"}})
    assert "é".encode() in frames[0]
    assert stream.feed("message_stop", {}) == [b"data: [DONE]\n\n"]

    reverse = OpenAIToAnthropicStream("claude-x", 3)
    frames = reverse.feed({"id": "c1", "choices": [{"index": 0, "delta": {"content": "Hi"}}]})
    assert frames[0].startswith(b'event: message_start\ndata: {"type":"message_start","message":{"id":"c1",')
    assert frames[1:] == [
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n',
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"Hi"}}\n\n',
    ]


def test_text_so_far_is_kept_for_estimating_usage():
    forward = AnthropicToOpenAIStream("m", include_usage=False, created=1)
    forward.feed("content_block_start", {"index": 0, "content_block": {"type": "thinking", "thinking": ""}})
    forward.feed("content_block_delta", {"index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm. "}})
    forward.feed("content_block_start", {"index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "f"}})
    forward.feed("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}})
    assert forward.text == "Hmm. {}"
    reverse = OpenAIToAnthropicStream("m", 0)
    reverse.feed({"choices": [{"delta": {"reasoning_content": "Hmm. ", "content": "Yes"}}]})
    assert reverse.text == "Hmm. Yes"


def test_non_dict_input_is_ignored():
    assert AnthropicToOpenAIStream("m", include_usage=True).feed("message_start", None) == []
    assert OpenAIToAnthropicStream("m", 0).feed([]) == []


# --- The official SDKs read what we send ---------------------------------------------------------------------------


def _sse_http_client(frames: list[bytes], http=httpx):
    """An HTTP client whose every response is these frames (the anthropic SDK wants its own httpx2 module)."""
    transport = http.MockTransport(lambda request: http.Response(
        200, headers={"content-type": "text/event-stream"}, content=b"".join(frames)))
    return http.Client(transport=transport)


def _anthropic_client(frames: list[bytes]):
    anthropic = pytest.importorskip("anthropic")
    http = pytest.importorskip("httpx2")
    return anthropic.Anthropic(api_key="sk-ant-test", base_url="http://relay.test", max_retries=0,
                               http_client=_sse_http_client(frames, http))


def _case(cases_list, name):
    return next(param.values[0] for param in cases_list if param.id == name)


def test_openai_sdk_reassembles_tool_calls_from_an_anthropic_stream():
    case = _case(ANTHROPIC_TO_OPENAI, "streaming_tool_input_uses_per_message_tool_ordinals")
    _, frames = _run_anthropic_to_openai(case)
    client = openai.OpenAI(api_key="sk-test", base_url="http://relay.test/v1", max_retries=0,
                           http_client=_sse_http_client(frames))
    text, calls, finish = "", {}, None
    for chunk in client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], stream=True):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": call.id, "name": call.function.name, "arguments": ""})
                entry["arguments"] += call.function.arguments or ""
            finish = choice.finish_reason or finish
    assert text == "I'll check."
    assert [(c["id"], c["name"], json.loads(c["arguments"])) for c in calls.values()] == [
        ("toolu_01A", "get_weather", {"city": "Paris"}), ("toolu_01B", "get_time", {"tz": "Asia/Tokyo"})]
    assert finish == "tool_calls"


def test_openai_sdk_sees_usage_chunk_and_raises_on_error_frame():
    case = _case(ANTHROPIC_TO_OPENAI, "streaming_text_with_ping_and_cached_usage")
    _, frames = _run_anthropic_to_openai(case)
    client = openai.OpenAI(api_key="sk-test", base_url="http://relay.test/v1", max_retries=0,
                           http_client=_sse_http_client(frames))
    chunks = list(client.chat.completions.create(model=MODEL, messages=[], stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens_details.cached_tokens == 1000

    case = _case(ANTHROPIC_TO_OPENAI, "error_mid_stream_becomes_openai_error_frame_and_ends_the_stream")
    _, frames = _run_anthropic_to_openai(case)
    client = openai.OpenAI(api_key="sk-test", base_url="http://relay.test/v1", max_retries=0,
                           http_client=_sse_http_client(frames))
    with pytest.raises(openai.APIError, match="Overloaded"):
        list(client.chat.completions.create(model=MODEL, messages=[], stream=True))


@pytest.mark.parametrize("name", [
    "parallel_tool_calls_each_get_a_block_cached_tokens_not_double_counted",
    "deepseek_reasoning_block_closed_before_text_block_usage_with_finish",
])
def test_anthropic_sdk_reassembles_the_message_from_an_openai_stream(name):
    pytest.importorskip("anthropic")
    case = _case(OPENAI_TO_ANTHROPIC, name)
    _, frames = _run_openai_to_anthropic(case)
    client = _anthropic_client(frames)
    with client.messages.stream(model="claude-client-model", max_tokens=100,
                                messages=[{"role": "user", "content": "x"}]) as stream:
        message = stream.get_final_message()
    final_delta = case["expected"][-2][1]
    assert message.stop_reason == final_delta["delta"]["stop_reason"]
    assert message.usage.input_tokens == final_delta["usage"]["input_tokens"]
    assert message.usage.cache_read_input_tokens == final_delta["usage"]["cache_read_input_tokens"]
    assert message.usage.output_tokens == final_delta["usage"]["output_tokens"]
    if name.startswith("parallel"):
        assert [(b.type, b.id, b.name, b.input) for b in message.content] == [
            ("tool_use", "call_a", "get_weather", {"city": "Paris"}), ("tool_use", "call_b", "get_time", {})]
    else:
        assert [b.type for b in message.content] == ["thinking", "text"]
        assert (message.content[0].thinking, message.content[1].text) == ("Think more", "Answer")


def test_anthropic_sdk_raises_on_the_error_event():
    anthropic = pytest.importorskip("anthropic")
    case = _case(OPENAI_TO_ANTHROPIC, "error_chunk_mid_stream_becomes_error_event")
    _, frames = _run_openai_to_anthropic(case)
    client = _anthropic_client(frames)
    with pytest.raises(anthropic.APIStatusError, match="Rate limit reached"):
        with client.messages.stream(model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}]) as stream:
            stream.get_final_message()


def test_frames_survive_the_relays_own_sse_splitter():
    case = _case(OPENAI_TO_ANTHROPIC, "parallel_tool_calls_each_get_a_block_cached_tokens_not_double_counted")
    _, frames = _run_openai_to_anthropic(case)
    blob = b"".join(frames)
    splitter = FrameSplitter()
    split = [f for i in range(0, len(blob), 7) for f in splitter.feed(blob[i:i + 7])]
    assert split == frames and splitter.rest() == b""
