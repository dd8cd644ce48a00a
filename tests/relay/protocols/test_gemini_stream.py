"""Gemini ⇄ OpenAI streaming translation: frames, usage and errors, from fixtures and edge cases."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from openai.types.chat import ChatCompletionChunk

from relay.protocols.gemini import GeminiToOpenAIStream, OpenAIToGeminiStream

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"
CREATED = 1700000000


def _cases(folder: str) -> list:
    return [pytest.param(json.loads(p.read_text()), id=p.stem) for p in sorted((FIXTURES / folder).glob("*.json"))]


def _payloads(frames: list[bytes]) -> list:
    """Each frame must be exactly `data: <payload>\\n\\n`; JSON payloads are parsed, `[DONE]` kept as text."""
    out = []
    for frame in frames:
        assert frame.startswith(b"data: ") and frame.endswith(b"\n\n") and frame.count(b"\n") == 2, frame
        data = frame[len(b"data: "):-2].decode()
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


def _usage(stream) -> dict | None:
    usage = stream.usage
    if usage is None:
        return None
    assert usage.estimated is False
    extra = {"estimated", "cache_write_tokens", "audio_prompt_tokens", "audio_completion_tokens", "audio_seconds"}
    return {k: v for k, v in asdict(usage).items() if k not in extra or (v and k != "estimated")}


def _run(stream, chunks: list) -> list[bytes]:
    frames = []
    for chunk in chunks:
        frames += stream.feed(chunk)
    return frames + stream.finish()


@pytest.mark.parametrize("case", _cases("gemini_stream"))
def test_gemini_stream_becomes_openai_chunks(case):
    stream = GeminiToOpenAIStream(case["model"], case["include_usage"], case["id_seed"], created=CREATED)
    payloads = _payloads(_run(stream, case["chunks"]))
    envelope = {"id": f"chatcmpl-{case['id_seed']}", "object": "chat.completion.chunk", "created": CREATED,
                "model": case["model"]}
    expected = [f if f == "[DONE]" or "error" in f else {**envelope, **f} for f in case["frames"]]
    assert payloads == expected
    for payload in payloads:
        if isinstance(payload, dict) and "error" not in payload:
            ChatCompletionChunk.model_validate(payload)
    assert _usage(stream) == case["usage"]
    assert stream.text == case["text"]


@pytest.mark.parametrize("case", _cases("openai_stream"))
def test_openai_stream_becomes_gemini_responses(case):
    for chunk in case["chunks"]:
        if "error" not in chunk:
            ChatCompletionChunk.model_validate(chunk)  # the fixture itself is a real OpenAI shape
    stream = OpenAIToGeminiStream(case["model"])
    payloads = _payloads(_run(stream, case["chunks"]))
    envelope = {"modelVersion": case["model"], "responseId": case["response_id"]}
    assert payloads == [f if "error" in f else {**f, **envelope} for f in case["frames"]]
    assert "[DONE]" not in payloads
    assert _usage(stream) == case["usage"]
    assert stream.text == case["text"]


def test_finish_is_sent_once_even_if_repeated():
    stream = GeminiToOpenAIStream("m", False, "s", created=CREATED)
    done = {"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP"}]}
    frames = _payloads(stream.feed(done) + stream.feed(done))
    assert [f["choices"][0]["finish_reason"] for f in frames] == [None, None, "stop", None]


def test_parallel_candidates_stream_on_their_own_indexes():
    stream = GeminiToOpenAIStream("m", False, "s", created=CREATED)
    frames = _payloads(stream.feed({"candidates": [
        {"index": 0, "content": {"parts": [{"text": "a"}]}},
        {"index": 1, "content": {"parts": [{"text": "b"}]}, "finishReason": "MAX_TOKENS"}]}))
    assert [(f["choices"][0]["index"], f["choices"][0]["delta"], f["choices"][0]["finish_reason"]) for f in frames] == [
        (0, {"role": "assistant", "content": ""}, None), (0, {"content": "a"}, None),
        (1, {"role": "assistant", "content": ""}, None), (1, {"content": "b"}, None), (1, {}, "length")]


def test_an_error_wrapped_in_an_array_is_still_an_error():
    stream = GeminiToOpenAIStream("m", True, "s", created=CREATED)
    frames = _payloads(stream.feed([{"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}]))
    assert frames == [{"error": {"message": "quota", "type": "invalid_request_error", "param": None,
                                 "code": "RESOURCE_EXHAUSTED"}}]
    assert stream.error == "quota"


def test_usage_arriving_before_any_finish_does_not_close_the_gemini_stream():
    stream = OpenAIToGeminiStream("m")
    assert stream.feed({"id": "c", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 0}}) == []
    frames = _payloads(stream.feed({"id": "c", "choices": [{"index": 0, "delta": {"content": "x"}}]}))
    assert frames[0]["candidates"][0]["content"]["parts"] == [{"text": "x"}]
    final = _payloads(stream.finish())
    assert final[0]["usageMetadata"] == {"promptTokenCount": 3, "candidatesTokenCount": 0, "totalTokenCount": 3}
    assert stream.finish() == []


def test_tool_call_fragments_without_index_are_told_apart_by_id():
    stream = OpenAIToGeminiStream("m")
    stream.feed({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"id": "a", "function": {"name": "f", "arguments": "{\"x\":"}}]}}]})
    stream.feed({"choices": [{"index": 0, "delta": {"tool_calls": [{"function": {"arguments": "1}"}}]}}]})
    stream.feed({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"id": "b", "function": {"name": "g", "arguments": "{}"}}]}, "finish_reason": "tool_calls"}]})
    final = _payloads(stream.finish())
    assert final[0]["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"id": "a", "name": "f", "args": {"x": 1}}},
        {"functionCall": {"id": "b", "name": "g", "args": {}}}]


def test_an_empty_openai_stream_sends_nothing():
    stream = OpenAIToGeminiStream("m")
    assert _run(stream, [{"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]) == []
    assert stream.usage is None


def test_wrongly_typed_chunks_are_ignored():
    gemini = GeminiToOpenAIStream("m", True, "s", created=CREATED)
    assert gemini.feed({"candidates": 1, "promptFeedback": "x"}) == gemini.feed(None) == []
    assert gemini.finish() == [b"data: [DONE]\n\n"]
    assert gemini.finish() == []
    openai = OpenAIToGeminiStream("m")
    assert openai.feed({"choices": "x", "usage": 5}) == openai.feed([]) == []
    assert openai.feed({"choices": [{"delta": {"tool_calls": 3, "content": 7}, "finish_reason": "stop"}]}) == []
    assert _payloads(openai.finish()) == [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP", "index": 0}],
         "modelVersion": "m"}]
