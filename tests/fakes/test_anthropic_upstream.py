"""The fake Anthropic upstream speaks the wire format the official SDK expects (protocols.md section 4)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import httpx
import httpx2
import pytest

from tests.fakes.anthropic_upstream import FakeAnthropic

KEY = "sk-ant-upstream-test"
HELLO = [{"role": "user", "content": "hi"}]
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def server():
    with FakeAnthropic(api_key=KEY) as up:
        yield up


@pytest.fixture
def up(server):
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def client(up):
    with anthropic.Anthropic(api_key=KEY, base_url=up.url, max_retries=0, timeout=5) as sdk:
        yield sdk


def raw_events(up: FakeAnthropic, body: dict) -> list[tuple[str, dict]]:
    """(event name, data) pairs exactly as sent."""
    response = httpx.post(up.url + "/v1/messages", json={"stream": True, **body}, headers=HEADERS)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for frame in response.text.split("\n\n"):
        if frame:
            name, data = frame.split("\n")
            events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    assert all(name == data["type"] for name, data in events)
    return events


def test_create_returns_a_message_with_usage_and_records_the_request(up, client):
    up.behave("claude-x", input_tokens=30, output_tokens=4, cache_creation_input_tokens=7, cache_read_input_tokens=9)

    message = client.messages.create(model="claude-x", max_tokens=64, messages=HELLO, system="Be terse.")

    assert (message.type, message.role, message.model) == ("message", "assistant", "claude-x")
    assert message.id.startswith("msg_")
    assert [(block.type, block.text) for block in message.content] == [("text", "Hello from claude-x!")]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens) == (30, 4)
    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (7, 9)
    recorded = up.requests[-1]
    assert (recorded.method, recorded.path) == ("POST", "/v1/messages")
    assert recorded.headers["authorization"] == f"Bearer {KEY}"  # this SDK sends api_key as a bearer token
    assert "x-api-key" not in recorded.headers
    assert recorded.headers["anthropic-version"]
    assert recorded.body == {"model": "claude-x", "max_tokens": 64, "messages": HELLO, "system": "Be terse."}


def test_stream_sends_the_exact_event_sequence_with_ping_and_cumulative_usage(up):
    up.behave("m", input_tokens=25, output_tokens=15, cache_read_input_tokens=3, chunks=2)

    events = raw_events(up, {"model": "m", "max_tokens": 64, "messages": HELLO})

    assert [name for name, _ in events] == [
        "message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop",
    ]
    start = events[0][1]["message"]
    assert (start["content"], start["stop_reason"]) == ([], None)
    assert start["usage"]["input_tokens"] == 25 and start["usage"]["output_tokens"] == 1
    assert start["usage"]["cache_read_input_tokens"] == 3
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    assert "".join(data["delta"]["text"] for name, data in events if name == "content_block_delta") == "Hello from m!"
    assert events[-2][1] == {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                             "usage": {"output_tokens": 15}}


def test_sdk_stream_gives_text_and_the_final_message_usage(up, client):
    up.behave("m", content="Streaming works.", input_tokens=11, output_tokens=6, cache_creation_input_tokens=2,
              usage_in_delta=True, chunks=4)

    with client.messages.stream(model="m", max_tokens=64, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == "Streaming works."
    assert final.content[0].text == "Streaming works."
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.cache_creation_input_tokens) == (11, 6, 2)


def test_tool_use_streams_input_json_fragments_starting_empty(up, client):
    calls = [{"name": "get_weather", "input": {"city": "Paris", "unit": "C"}, "id": "toolu_1"}]
    up.behave("m", tool_use=calls, content="Let me check.", chunks=3)

    with client.messages.stream(model="m", max_tokens=64, messages=HELLO) as stream:
        final = stream.get_final_message()
    plain = client.messages.create(model="m", max_tokens=64, messages=HELLO)
    events = raw_events(up, {"model": "m", "max_tokens": 64, "messages": HELLO})

    for message in (final, plain):
        assert [block.type for block in message.content] == ["text", "tool_use"]
        tool = message.content[1]
        assert (tool.id, tool.name, tool.input) == ("toolu_1", "get_weather", {"city": "Paris", "unit": "C"})
        assert message.stop_reason == "tool_use"
    starts = [data for name, data in events if name == "content_block_start"]
    assert starts[1]["content_block"] == {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
    fragments = [data["delta"]["partial_json"] for name, data in events
                 if name == "content_block_delta" and data["index"] == 1]
    assert fragments[0] == "" and len(fragments) == 4
    assert json.loads("".join(fragments)) == {"city": "Paris", "unit": "C"}


def test_thinking_block_with_signature_comes_before_the_text(up, client):
    up.behave("m", thinking="Pondering.", signature="sig-1", output_tokens=40)

    with client.messages.stream(model="m", max_tokens=64, messages=HELLO) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    default = client.messages.create(model="other", max_tokens=2048, messages=HELLO,
                                     thinking={"type": "enabled", "budget_tokens": 1024})

    assert [block.type for block in final.content] == ["thinking", "text"]
    assert (final.content[0].thinking, final.content[0].signature) == ("Pondering.", "sig-1")
    assert kinds.index("signature") < kinds.index("text")
    assert final.usage.output_tokens == 40
    assert [block.type for block in default.content] == ["thinking", "text"]  # enabled by the request


@pytest.mark.parametrize("name", ["error_event_after_chunks", "error_after_chunks"])
def test_error_event_mid_stream_makes_the_sdk_raise(up, client, name):
    up.behave("m", **{name: 4})
    received = []

    with pytest.raises(anthropic.APIStatusError) as caught:
        with client.messages.stream(model="m", max_tokens=64, messages=HELLO) as stream:
            for event in stream:
                received.append(event.type)

    assert caught.value.status_code == 200  # the error came after the headers
    assert caught.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert "message_start" in received and "message_stop" not in received


def test_wrong_key_is_an_authentication_error(up):
    sdk = anthropic.Anthropic(api_key="sk-wrong", base_url=up.url, max_retries=0)

    with pytest.raises(anthropic.AuthenticationError) as caught:
        sdk.messages.create(model="m", max_tokens=8, messages=HELLO)

    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "authentication_error"
    assert caught.value.body["request_id"] == caught.value.response.headers["request-id"]


def test_x_api_key_is_accepted_and_a_missing_version_is_a_bad_request(up):
    body = {"model": "m", "max_tokens": 8, "messages": HELLO}

    ok = httpx.post(up.url + "/v1/messages", json=body, headers=HEADERS)
    unversioned = httpx.post(up.url + "/v1/messages", json=body, headers={"x-api-key": KEY})
    keyless = httpx.post(up.url + "/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})

    assert ok.status_code == 200
    assert unversioned.status_code == 400
    assert unversioned.json()["error"] == {"type": "invalid_request_error",
                                           "message": "anthropic-version: header is required"}
    assert keyless.status_code == 401


def test_status_529_is_an_overloaded_error(up, client):
    up.behave("m", status=529)

    with pytest.raises(anthropic.OverloadedError) as caught:
        client.messages.create(model="m", max_tokens=8, messages=HELLO)

    assert isinstance(caught.value, anthropic.InternalServerError)
    assert caught.value.status_code == 529
    assert caught.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}


def test_rate_limit_carries_retry_after(up, client):
    up.behave("m", status=429, retry_after=7)

    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model="m", max_tokens=8, messages=HELLO)

    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.body["error"]["type"] == "rate_limit_error"


@pytest.mark.parametrize(("body", "message"), [
    ({"model": "m", "messages": HELLO}, "max_tokens: Field required"),
    ({"model": "m", "max_tokens": 8}, "messages: Field required"),
    ({"max_tokens": 8, "messages": HELLO}, "model: Field required"),
    ({"model": "m", "max_tokens": 8, "messages": [{"role": "system", "content": "x"}]},
     "messages.0.role: Input should be 'user' or 'assistant'"),
    ({"model": "m", "max_tokens": 8, "messages": HELLO, "temperature": 1.5}, "temperature: range: 0..1"),
])
def test_invalid_bodies_are_bad_requests(up, body, message):
    response = httpx.post(up.url + "/v1/messages", json=body, headers=HEADERS)

    assert response.status_code == 400
    assert response.json()["error"] == {"type": "invalid_request_error", "message": message}


def test_count_tokens_and_models(up, client):
    up.behave("claude-custom", input_tokens=42)

    counted = client.messages.count_tokens(model="claude-custom", messages=HELLO)
    ids = [model.id for model in client.models.list()]

    assert counted.input_tokens == 42
    assert up.requests[0].path == "/v1/messages/count_tokens"
    assert "claude-custom" in ids and "claude-sonnet-4-5" in ids
    assert client.models.retrieve("claude-anything").display_name == "Claude Anything"


def test_cut_stream_gives_events_then_a_protocol_error(up, client):
    up.behave("m", cut_after_chunks=3)
    received = []

    with pytest.raises(httpx2.RemoteProtocolError, match="incomplete chunked read"):  # not wrapped by this SDK
        for event in client.messages.create(model="m", max_tokens=8, messages=HELLO, stream=True):
            received.append(event.type)

    assert received == ["message_start", "content_block_start"]  # the ping is sent but not yielded


def test_never_ending_stream_stops_when_the_client_leaves(up, client):
    up.behave("m", never_end=True, chunk_delay_ms=5)
    stream = client.messages.create(model="m", max_tokens=8, messages=HELLO, stream=True)
    received = [event for _, event in zip(range(20), stream)]
    assert up.open_streams == 1

    stream.close()

    assert up.wait_streams_closed(timeout=2)
    sent = up.stream_frames_sent
    time.sleep(0.05)
    assert up.stream_frames_sent == sent
    assert len(received) == 20


@pytest.mark.subprocess
def test_command_line_server_streams():
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.anthropic_upstream", "--port", "0", "--chunks", "4", "--api-key", KEY],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2],
    )
    try:
        base_url = process.stdout.readline().split()[-1]
        sdk = anthropic.Anthropic(api_key=KEY, base_url=base_url, max_retries=0, timeout=5)
        with sdk.messages.stream(model="bench", max_tokens=8, messages=HELLO) as stream:
            assert "".join(stream.text_stream) == "Hello from bench!"
    finally:
        process.terminate()
        process.wait(timeout=10)
