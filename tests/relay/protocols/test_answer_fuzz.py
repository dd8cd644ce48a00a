"""Every wire reads any upstream answer without raising: a plain answer of any JSON shape is translated, refused as
the caller's error or called unreadable (None); stream frames of any shape are passed, translated or dropped; usage,
text, error and completeness can be read afterwards. An exception here was a 500 for the caller."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.errors import RelayError
from relay.wires import ANTHROPIC, OPENAI
from relay.wires_gemini import GEMINI
from relay.wires_rerank import COHERE
from relay.wiring import wire_for

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
REQUESTS = [  # (client, operation, a valid body)
    (OPENAI, "chat/completions", CHAT), (OPENAI, "completions", {"model": "m", "prompt": "hi"}),
    (OPENAI, "embeddings", {"model": "m", "input": "hi"}), (OPENAI, "responses", {"model": "m", "input": "hi"}),
    (OPENAI, "responses/compact", {"model": "m", "input": "hi"}),
    (OPENAI, "images/generations", {"model": "m", "prompt": "a fox"}),
    (OPENAI, "rerank", {"model": "m", "query": "q", "documents": ["a", "b"]}),
    (COHERE, "rerank", {"model": "m", "query": "q", "documents": ["a", "b"]}),
    (COHERE, "chat/completions", CHAT), (COHERE, "embeddings", {"model": "m", "texts": ["hi"]}),
    (ANTHROPIC, "messages", CHAT), (GEMINI, "generateContent", GEMINI_BODY),
    (GEMINI, "embedContent", {"content": {"parts": [{"text": "hi"}]}}),
    (GEMINI, "batchEmbedContents", {"requests": [{"model": "models/m", "content": {"parts": [{"text": "hi"}]}}]}),
]
UPSTREAMS = [("openai", ""), ("azure", ""), ("demo", ""), ("anthropic", ""), ("gemini", ""), ("gemini", "vertex"),
             ("rerank", "cohere"), ("rerank", "jina")]


def _wires() -> list[tuple[str, Any]]:
    found = []
    for client, operation, body in REQUESTS:
        for family, upstream_type in UPSTREAMS:
            for model in ("m", "imagen-4") if operation == "images/generations" else ("m",):
                for stream in (False, True):
                    try:
                        wire = wire_for(client, family, operation, dict(body, stream=stream), model=model,
                                        stream=stream, default_max_tokens=64, input_estimate=5,
                                        upstream_type=upstream_type, request_id="r1")
                    except RelayError:
                        continue
                    if wire is not None:
                        name = f"{client}-{operation}-{family}{'-' + upstream_type if upstream_type else ''}"
                        found.append((f"{name}-{model}-{'stream' if stream else 'plain'}", wire))
    return found


WIRES = _wires()
KEYS = st.sampled_from([
    "id", "object", "model", "choices", "index", "message", "delta", "role", "content", "text", "reasoning_content",
    "tool_calls", "function", "name", "arguments", "finish_reason", "usage", "prompt_tokens", "completion_tokens",
    "total_tokens", "prompt_tokens_details", "cached_tokens", "completion_tokens_details", "reasoning_tokens",
    "type", "input", "output", "output_text", "status", "response", "item", "item_id", "output_index", "part",
    "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "stop_reason",
    "content_block", "thinking", "signature", "error", "message_delta", "candidates", "parts", "inlineData",
    "mimeType", "data", "functionCall", "args", "finishReason", "usageMetadata", "promptTokenCount",
    "candidatesTokenCount", "thoughtsTokenCount", "totalTokenCount", "thought", "predictions", "bytesBase64Encoded",
    "embedding", "embeddings", "values", "statistics", "token_count", "results", "relevance_score", "document",
    "meta", "billed_units", "search_units", "b64_json", "url", "revised_prompt", "images", "refusal", "annotations",
    "promptFeedback", "blockReason", "safetyRatings", "tokens", "segments", "duration"])
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**64), max_value=2**64)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6)
           | st.sampled_from(["text", "tool_use", "thinking", "message_start", "content_block_delta", "stop",
                              "assistant", "function_call", "output_text", "response.completed", "image/png",
                              "aGk=", "STOP", "SAFETY", "completed", "[DONE]"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=5),
                      max_leaves=20)
ANSWERS = st.dictionaries(KEYS, VALUES, max_size=6)
EVENTS = st.sampled_from(["", "message_start", "content_block_start", "content_block_delta", "content_block_stop",
                          "message_delta", "message_stop", "error", "ping", "response.output_text.delta",
                          "response.completed", "response.output_item.done", "message-start", "content-delta"])


def _frame(event: str, data: Any) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    text = data if isinstance(data, str) else json.dumps(data)
    return head + b"data: " + text.encode() + b"\n\n"


FRAMES = st.lists(st.tuples(EVENTS, st.one_of(ANSWERS, VALUES, st.sampled_from(["[DONE]", "{", ""]))), max_size=6)
FUZZ = settings(max_examples=12, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


def _read_all(reader: Any) -> None:
    for name in ("usage", "text", "error", "complete"):
        value = getattr(reader, name, None)
        if callable(value):
            value()


@pytest.mark.parametrize(("name", "wire"), WIRES, ids=[name for name, _wire in WIRES])
def test_any_plain_answer_is_read_or_refused(name, wire):
    @FUZZ
    @given(answer=st.one_of(ANSWERS, VALUES))
    def check(answer):
        try:
            plain = wire.plain(json.dumps(answer).encode())
        except RelayError:
            return
        if plain is not None:
            assert isinstance(plain.body, bytes) and isinstance(plain.text, str)

    check()


@pytest.mark.parametrize(("name", "wire"), [(name, wire) for name, wire in WIRES if name.endswith("stream")],
                         ids=[name for name, _wire in WIRES if name.endswith("stream")])
def test_any_stream_is_passed_translated_or_dropped(name, wire):
    @FUZZ
    @given(frames=FRAMES)
    def check(frames):
        try:
            reader = wire.stream()
        except RuntimeError:  # a wire whose answers are never streamed
            return
        for event, data in frames:
            assert all(isinstance(out, bytes) for out in reader.feed(_frame(event, data)))
        assert all(isinstance(out, bytes) for out in reader.finish())
        _read_all(reader)

    check()


KNOWN = [  # answers the fuzzing found to break a reader, each asked of every wire on every run
    {"choices": True}, {"choices": [{"message": "x"}]}, {"candidates": ["x"]}, {"candidates": True},
    {"content": 1}, {"output": 1}, {"output": [{"content": 1}]}, {"response": []}, {"predictions": True},
    {"predictions": [{"embeddings": {"values": [], "statistics": [1]}}]},
    {"predictions": [{"embeddings": {"values": [], "statistics": {"token_count": 1e308 * 10}}}]},
    {"results": [], "data": 5}, {"type": ["message_start"]}, {"index": [0]},
]


@pytest.mark.parametrize("answer", KNOWN, ids=[json.dumps(answer)[:40] for answer in KNOWN])
def test_known_odd_answers_are_read_or_refused(answer):
    for _name, wire in WIRES:
        try:
            wire.plain(json.dumps(answer).encode())
        except RelayError:
            pass
        reader = None
        try:
            reader = wire.stream()
        except RuntimeError:
            continue
        reader.feed(_frame("", answer))
        reader.feed(_frame(str(answer.get("type", "")) if isinstance(answer.get("type"), str) else "", answer))
        reader.finish()
        _read_all(reader)


def test_every_client_reaches_several_upstream_families():
    clients = {name.split("-")[0] for name, _wire in WIRES}
    assert clients == {OPENAI, ANTHROPIC, GEMINI, COHERE} and len(WIRES) > 40
