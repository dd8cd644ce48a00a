"""The fake OpenAI upstream speaks the wire format the official SDK expects (protocols.md section 1)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.fakes.openai_upstream import Behaviour, FakeOpenAI, embedding_vector

KEY = "sk-upstream-test"
HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server():
    with FakeOpenAI(api_key=KEY) as up:
        yield up


@pytest.fixture
def up(server):
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def client(up):
    with openai.OpenAI(api_key=KEY, base_url=up.url + "/v1", max_retries=0, timeout=5) as sdk:
        yield sdk


def raw_frames(up: FakeOpenAI, path: str, body: dict) -> list[str]:
    """The SSE data payloads exactly as sent, [DONE] included."""
    response = httpx.post(up.url + path, json=body, headers={"authorization": f"Bearer {KEY}"})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.endswith("data: [DONE]\n\n")
    return [frame.removeprefix("data: ") for frame in response.text.split("\n\n") if frame]


def test_chat_returns_completion_with_usage_and_records_the_request(up, client):
    up.behave("gpt-4o", prompt_tokens=30, completion_tokens=4, cached_tokens=10, reasoning_tokens=2)

    reply = client.chat.completions.create(model="gpt-4o", messages=HELLO, temperature=0.5)

    assert reply.object == "chat.completion"
    assert reply.model == "gpt-4o"
    assert reply.choices[0].message.content == "Hello from gpt-4o!"
    assert reply.choices[0].finish_reason == "stop"
    usage = reply.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (30, 4, 34)
    assert usage.prompt_tokens_details.cached_tokens == 10
    assert usage.completion_tokens_details.reasoning_tokens == 2
    recorded = up.requests[-1]
    assert (recorded.method, recorded.path) == ("POST", "/v1/chat/completions")
    assert recorded.headers["authorization"] == f"Bearer {KEY}"
    assert recorded.body == {"model": "gpt-4o", "messages": HELLO, "temperature": 0.5}


def test_stream_without_include_usage_has_no_usage_at_all(up, client):
    chunks = list(client.chat.completions.create(model="m", messages=HELLO, stream=True))

    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello from m!"
    assert len(chunks) == 1 + 3 + 1  # role, default 3 content pieces, finish
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices and c.usage is None for c in chunks)
    frames = raw_frames(up, "/v1/chat/completions", {"model": "m", "messages": HELLO, "stream": True})
    assert frames[-1] == "[DONE]"
    assert all("usage" not in json.loads(frame) for frame in frames[:-1])


def test_stream_with_include_usage_ends_with_a_usage_chunk_without_choices(up, client):
    up.behave("m", chunks=5)
    stream = client.chat.completions.create(
        model="m", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    *content, last = chunks
    assert last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (17, 5, 22)
    assert len(content) == 1 + 5 + 1
    assert all(c.usage is None and "usage" in c.model_fields_set for c in content)  # explicit null
    assert content[-1].choices[0].finish_reason == "stop"


def test_streamed_tool_calls_assemble_into_json_arguments(up, client):
    calls = [{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "get_time", "arguments": '{"tz":"CET"}'}]
    up.behave("m", tool_calls=calls, chunks=4)

    chunks = list(client.chat.completions.create(model="m", messages=HELLO, stream=True))

    first = chunks[0].choices[0].delta
    assert first.role == "assistant" and first.content is None
    assert first.tool_calls[0].id and first.tool_calls[0].type == "function"
    assert (first.tool_calls[0].function.name, first.tool_calls[0].function.arguments) == ("get_weather", "")
    names, arguments, ids = {}, {}, {}
    for chunk in chunks:
        for call in chunk.choices[0].delta.tool_calls or []:
            if call.id:
                ids[call.index], names[call.index] = call.id, call.function.name
            arguments[call.index] = arguments.get(call.index, "") + (call.function.arguments or "")
    assert names == {0: "get_weather", 1: "get_time"}
    assert len(set(ids.values())) == 2
    assert {i: json.loads(a) for i, a in arguments.items()} == {0: {"city": "Paris"}, 1: {"tz": "CET"}}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_calls_without_stream_have_null_content(up, client):
    up.behave("m", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_1"}])

    message = client.chat.completions.create(model="m", messages=HELLO).choices[0].message

    assert message.content is None
    assert message.tool_calls[0].id == "call_1"
    assert json.loads(message.tool_calls[0].function.arguments) == {"city": "Paris"}


def test_reasoning_content_comes_before_content(up, client):
    up.behave("r1", reasoning_content="Thinking hard.", content="42", reasoning_tokens=3)

    message = client.chat.completions.create(model="r1", messages=HELLO).choices[0].message
    chunks = list(client.chat.completions.create(model="r1", messages=HELLO, stream=True))

    assert (message.reasoning_content, message.content) == ("Thinking hard.", "42")
    kinds = [("reasoning" if getattr(c.choices[0].delta, "reasoning_content", None) else "content")
             for c in chunks[1:-1]]
    assert kinds == ["reasoning"] * 3 + ["content"] * 2
    assert "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks) == "Thinking hard."


def test_n_choices_bill_completion_tokens_per_choice(up, client):
    reply = client.chat.completions.create(model="m", messages=HELLO, n=2)
    stream = client.chat.completions.create(
        model="m", messages=HELLO, n=2, stream=True, stream_options={"include_usage": True}
    )
    texts, finishes, usage = {0: "", 1: ""}, {}, None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason

    assert [c.index for c in reply.choices] == [0, 1]
    assert reply.usage.completion_tokens == 10
    assert texts == {0: "Hello from m!", 1: "Hello from m!"}
    assert finishes == {0: "stop", 1: "stop"}
    assert usage.completion_tokens == 10


def test_legacy_completions_plain_and_streamed(up, client):
    reply = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi")
    chunks = list(client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Say hi", stream=True, stream_options={"include_usage": True}
    ))

    assert reply.object == "text_completion"
    assert reply.choices[0].text == "Hello from gpt-3.5-turbo-instruct!"
    assert reply.usage.total_tokens == 22
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Hello from gpt-3.5-turbo-instruct!"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5


def test_embeddings_base64_default_decodes_to_the_float_format(up, client):
    up.behave("text-embedding-3-small", prompt_tokens=6)

    decoded = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    sent_format = up.requests[-1].body["encoding_format"]
    floats = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"], encoding_format="float")

    assert sent_format == "base64"  # the SDK asks for base64 by itself
    assert [d.embedding for d in decoded.data] == [d.embedding for d in floats.data]
    assert floats.data[1].embedding == embedding_vector("beta")
    assert decoded.usage.prompt_tokens == decoded.usage.total_tokens == 6


def test_wrong_key_is_an_authentication_error_and_still_recorded(up):
    sdk = openai.OpenAI(api_key="sk-wrong", base_url=up.url + "/v1", max_retries=0)

    with pytest.raises(openai.AuthenticationError) as caught:
        sdk.chat.completions.create(model="m", messages=HELLO)

    assert caught.value.code == "invalid_api_key"
    assert caught.value.body["type"] == "invalid_request_error"
    assert up.requests[-1].headers["authorization"] == "Bearer sk-wrong"


def test_status_500_is_an_internal_server_error(up, client):
    up.behave("m", status=500, error_message="upstream exploded")

    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="m", messages=HELLO)

    assert caught.value.status_code == 500
    assert caught.value.body == {"message": "upstream exploded", "type": "server_error", "param": None,
                                 "code": "server_error"}


def test_rate_limit_carries_retry_after(up, client):
    up.behave("m", status=429, retry_after=7)

    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m", messages=HELLO)

    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.code == "rate_limit_exceeded"


def test_missing_messages_is_a_bad_request(up):
    response = httpx.post(up.url + "/v1/chat/completions", json={"model": "m"},
                          headers={"authorization": f"Bearer {KEY}"})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"


def test_cut_stream_gives_chunks_then_a_connection_error(up, client):
    up.behave("m", cut_after_chunks=2)
    received = []

    with pytest.raises(openai.APIConnectionError) as caught:
        for chunk in client.chat.completions.create(model="m", messages=HELLO, stream=True):
            received.append(chunk)

    assert len(received) == 2  # the role chunk and one content piece arrive before the failure
    assert "incomplete chunked read" in str(caught.value.__cause__)


def test_error_inside_stream_raises_a_plain_api_error(up, client):
    up.behave("m", error_after_chunks=1, error_message="overloaded mid-stream")
    received = []

    with pytest.raises(openai.APIError) as caught:
        for chunk in client.chat.completions.create(model="m", messages=HELLO, stream=True):
            received.append(chunk)

    assert not isinstance(caught.value, openai.APIStatusError)  # HTTP status was 200
    assert caught.value.message == "overloaded mid-stream"
    assert len(received) == 1


def test_never_ending_stream_stops_when_the_client_leaves(up, client):
    up.behave("m", never_end=True, chunk_delay_ms=5)
    stream = client.chat.completions.create(model="m", messages=HELLO, stream=True)
    received = [chunk for _, chunk in zip(range(20), stream)]
    assert up.open_streams == 1

    stream.close()

    assert up.wait_streams_closed(timeout=2)
    sent = up.stream_frames_sent
    time.sleep(0.05)
    assert up.stream_frames_sent == sent
    assert len(received) == 20


def test_delay_before_headers_times_the_client_out(up, client):
    up.behave("m", delay_before_headers=5)

    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.2).chat.completions.create(model="m", messages=HELLO)


def test_models_lists_configured_and_default_models(up, client):
    up.behave("my-model")

    ids = [model.id for model in client.models.list()]

    assert "my-model" in ids and "gpt-4o-mini" in ids
    assert client.models.retrieve("anything").id == "anything"


def test_moderation_is_not_flagged(up, client):
    result = client.moderations.create(input="hello").results[0]

    assert result.flagged is False
    assert result.categories.violence is False


def test_prefix_is_configurable_and_servers_run_side_by_side():
    with FakeOpenAI(prefix="/api/v3", default=Behaviour(content="ark")) as ark, FakeOpenAI(prefix="") as bare:
        ark_sdk = openai.OpenAI(api_key=KEY, base_url=ark.base_url, max_retries=0)
        bare_sdk = openai.OpenAI(api_key=KEY, base_url=bare.url, max_retries=0)

        assert ark.url != bare.url
        assert ark_sdk.chat.completions.create(model="doubao", messages=HELLO).choices[0].message.content == "ark"
        assert bare_sdk.chat.completions.create(model="m", messages=HELLO).choices[0].message.content
        assert ark.requests[-1].path == "/api/v3/chat/completions"
        assert bare.requests[-1].path == "/chat/completions"
        with pytest.raises(openai.NotFoundError):
            openai.OpenAI(api_key=KEY, base_url=ark.url + "/v1", max_retries=0).chat.completions.create(
                model="m", messages=HELLO
            )


@pytest.mark.subprocess
def test_command_line_server_streams():
    script = Path(__file__).with_name("openai_upstream.py")
    process = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--chunks", "4", "--api-key", KEY],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        base_url = process.stdout.readline().split()[-1]
        sdk = openai.OpenAI(api_key=KEY, base_url=base_url, max_retries=0, timeout=5)
        chunks = list(sdk.chat.completions.create(model="bench", messages=HELLO, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello from bench!"
        assert len(chunks) == 1 + 4 + 1
    finally:
        process.terminate()
        process.wait(timeout=10)
