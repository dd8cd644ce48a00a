"""The fake Gemini upstream speaks the wire format the official google-genai SDK expects (protocols.md section 5)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import httpx2
import pytest
from google import genai
from google.genai import errors, types

from tests.fakes.gemini_upstream import FakeGemini

KEY = "gemini-upstream-test"
MODEL = "gemini-2.5-flash"
BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


@pytest.fixture(scope="module")
def server():
    with FakeGemini(api_key=KEY) as up:
        yield up


@pytest.fixture
def up(server):
    server.reset()
    yield server
    server.reset()


def sdk(up: FakeGemini, *, key: str = KEY, api_version: str | None = "v1beta") -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=up.url, api_version=api_version,
                                                                    timeout=5000))


@pytest.fixture
def client(up):
    return sdk(up)


def test_generate_content_returns_text_and_usage_and_records_the_request(up, client):
    up.behave(MODEL, prompt_tokens=30, candidates_tokens=4)

    response = client.models.generate_content(model=MODEL, contents="hi",
                                              config=types.GenerateContentConfig(temperature=0.5))

    assert response.text == f"Hello from {MODEL}!"
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.model_version == MODEL and response.response_id
    usage = response.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (30, 4, 34)
    assert usage.thoughts_token_count is None and usage.cached_content_token_count is None  # zeros are left out
    recorded = up.requests[-1]
    assert (recorded.method, recorded.path, recorded.query) == ("POST", f"/v1beta/models/{MODEL}:generateContent", {})
    assert recorded.headers["x-goog-api-key"] == KEY
    assert recorded.body == {**BODY, "generationConfig": {"temperature": 0.5}}


def test_stream_sends_new_fragments_with_partial_then_final_usage(up, client):
    up.behave(MODEL, thoughts="Pondering.", thoughts_tokens=40, cached_content_tokens=8, chunks=2)

    chunks = list(client.models.generate_content_stream(model=MODEL, contents="hi"))

    parts = [part for chunk in chunks for part in chunk.candidates[0].content.parts]
    assert [(part.text, bool(part.thought)) for part in parts] == [
        ("Ponde", True), ("ring.", True), ("Hello from gem", False), ("ini-2.5-flash!", False)]
    assert up.requests[-1].path == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert up.requests[-1].query == {"alt": "sse"}
    *early, last = chunks
    assert all(chunk.candidates[0].finish_reason is None for chunk in early)
    assert all(chunk.usage_metadata.candidates_token_count is None for chunk in early)
    assert early[0].usage_metadata.prompt_token_count == 17
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    usage = last.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.thoughts_token_count) == (17, 5, 40)
    assert (usage.cached_content_token_count, usage.total_token_count) == (8, 62)


def test_raw_sse_frames_and_the_json_array_stream(up):
    sse = httpx.post(up.url + f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse", json=BODY,
                     headers={"x-goog-api-key": KEY})
    array = httpx.post(up.url + f"/v1/models/{MODEL}:streamGenerateContent?key={KEY}", json=BODY)

    assert sse.headers["content-type"] == "text/event-stream"
    frames = [frame for frame in sse.text.split("\r\n\r\n") if frame]
    assert all(frame.startswith("data: {") for frame in frames) and len(frames) == 3
    assert "[DONE]" not in sse.text
    assert array.headers["content-type"].startswith("application/json")
    elements = json.loads(array.text)
    assert [json.loads(frame.removeprefix("data: "))["candidates"][0]["content"] for frame in frames] == [
        element["candidates"][0]["content"] for element in elements]
    assert elements[-1]["candidates"][0]["finishReason"] == "STOP"


def test_function_call_comes_back_as_a_part_with_object_args(up, client):
    up.behave(MODEL, function_call={"name": "get_weather", "args": {"city": "Paris"}}, thought_signature="c2ln")

    response = client.models.generate_content(model=MODEL, contents="weather?")
    streamed = list(client.models.generate_content_stream(model=MODEL, contents="weather?"))

    call = response.function_calls[0]
    assert (call.name, call.args) == ("get_weather", {"city": "Paris"})
    assert response.candidates[0].content.parts[0].thought_signature == b"sig"
    assert response.text is None
    assert len(streamed) == 1  # a function call arrives whole
    assert streamed[0].function_calls[0].args == {"city": "Paris"}
    assert streamed[0].candidates[0].finish_reason == types.FinishReason.STOP


def test_blocked_prompt_has_prompt_feedback_and_no_candidates(up, client):
    up.behave(MODEL, block_reason="SAFETY")

    response = client.models.generate_content(model=MODEL, contents="bad")
    streamed = list(client.models.generate_content_stream(model=MODEL, contents="bad"))

    assert response.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    assert response.candidates is None and response.text is None
    assert response.usage_metadata.prompt_token_count == 17
    assert [chunk.prompt_feedback.block_reason for chunk in streamed] == [types.BlockedReason.SAFETY]


@pytest.mark.parametrize("reason", ["MAX_TOKENS", "SAFETY"])
def test_finish_reason_can_be_overridden(up, client, reason):
    up.behave(MODEL, finish_reason=reason, content="")

    response = client.models.generate_content(model=MODEL, contents="hi")

    assert response.candidates[0].finish_reason == reason
    assert response.candidates[0].content.parts is None


def test_wrong_key_is_a_400_client_error_with_error_info(up):
    wrong = sdk(up, key="wrong")  # keep a reference: a dropped Client closes its HTTP client

    with pytest.raises(errors.ClientError) as caught:
        wrong.models.generate_content(model=MODEL, contents="hi")

    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert caught.value.message == "API key not valid. Please pass a valid API key."
    assert caught.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    missing = httpx.post(up.url + f"/v1beta/models/{MODEL}:generateContent", json=BODY)
    assert (missing.status_code, missing.json()["error"]["status"]) == (403, "PERMISSION_DENIED")


def test_error_mid_stream_is_raw_json_and_the_sdk_raises(up, client):
    up.behave(MODEL, error_after_chunks=2, chunks=4)
    received = []

    with pytest.raises(errors.ServerError) as caught:
        for chunk in client.models.generate_content_stream(model=MODEL, contents="hi"):
            received.append(chunk.text)

    assert (caught.value.code, caught.value.status) == (503, "UNAVAILABLE")
    assert received == ["Hello f", "rom gem"]
    raw = httpx.post(up.url + f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse", json=BODY,
                     headers={"x-goog-api-key": KEY}).text
    assert raw.split("\r\n\r\n")[-1].startswith('{\n  "error": {\n')


def test_status_errors_map_to_client_and_server_errors(up, client):
    up.behave(MODEL, status=429, retry_after=7)
    up.behave("gemini-down", status=500)

    with pytest.raises(errors.ClientError) as limited:
        client.models.generate_content(model=MODEL, contents="hi")
    with pytest.raises(errors.ServerError) as failed:
        client.models.generate_content_stream(model="gemini-down", contents="hi").__next__()

    assert (limited.value.code, limited.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert limited.value.details["error"]["details"][0]["retryDelay"] == "7s"
    assert (failed.value.code, failed.value.status) == (500, "INTERNAL")


@pytest.mark.parametrize(("body", "message"), [
    ({}, "contents is not specified"),
    ({"contents": [{"role": "user", "parts": []}]}, "contents.parts must not be empty"),
    ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "Please use a valid role: user, model."),
])
def test_invalid_contents_are_invalid_arguments(up, body, message):
    response = httpx.post(up.url + f"/v1beta/models/{MODEL}:generateContent", json=body,
                          headers={"x-goog-api-key": KEY})

    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert message in response.json()["error"]["message"]


def test_v1_routes_answer_too(up):
    v1 = sdk(up, api_version="v1")

    response = v1.models.generate_content(model=MODEL, contents="hi")

    assert response.text == f"Hello from {MODEL}!"
    assert up.requests[-1].path == f"/v1/models/{MODEL}:generateContent"


def test_models_list_get_and_count_tokens(up, client):
    up.behave("gemini-custom", prompt_tokens=42)

    names = [model.name for model in client.models.list()]
    model = client.models.get(model=MODEL)
    counted = client.models.count_tokens(model="gemini-custom", contents="hi")
    page = httpx.get(up.url + "/v1beta/models", params={"pageSize": 2, "key": KEY}).json()

    assert names[:1] == [f"models/{MODEL}"] and "models/gemini-custom" in names
    assert "generateContent" in model.supported_actions
    assert counted.total_tokens == 42
    assert len(page["models"]) == 2 and page["nextPageToken"] == "2"


def test_cut_stream_gives_chunks_then_an_error(up, client):
    up.behave(MODEL, cut_after_chunks=2)
    received = []

    with pytest.raises(httpx2.RemoteProtocolError, match="incomplete chunked read"):
        for chunk in client.models.generate_content_stream(model=MODEL, contents="hi"):
            received.append(chunk.text)

    assert received == ["Hello from", " gemini-2"]


def test_never_ending_stream_stops_when_the_client_leaves(up, client):
    up.behave(MODEL, never_end=True, chunk_delay_ms=5)
    stream = client.models.generate_content_stream(model=MODEL, contents="hi")
    received = [chunk for _, chunk in zip(range(20), stream)]
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
        [sys.executable, "-m", "tests.fakes.gemini_upstream", "--port", "0", "--chunks", "4", "--api-key", KEY],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2],
    )
    try:
        base_url = process.stdout.readline().split()[-1]
        client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=base_url, api_version="v1beta"))
        chunks = list(client.models.generate_content_stream(model="bench", contents="hi"))
        assert "".join(chunk.text for chunk in chunks) == "Hello from bench!"
        assert len(chunks) == 4
    finally:
        process.terminate()
        process.wait(timeout=10)
