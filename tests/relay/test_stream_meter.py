"""Which frames of an OpenAI stream reach the client, and what the meter keeps for billing."""

from __future__ import annotations

import json
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.protocols.openai_stream import UNREAD_LIMIT, StreamMeter, _plain_delta_choices


def _frame(data) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


CONTENT = {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}], "usage": None}
USAGE_ONLY = {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3,
                                       "prompt_tokens_details": {"cached_tokens": 4}}}
AZURE_FILTER = {"id": "", "model": "", "created": 0, "choices": [], "prompt_filter_results": [{"prompt_index": 0}]}


@pytest.mark.parametrize("raw, wants_usage, forwarded", [
    (b": OPENROUTER PROCESSING\n\n", False, False),
    (_frame(CONTENT), False, True),
    (_frame(USAGE_ONLY), False, False),
    (_frame(USAGE_ONLY), True, True),
    (_frame(AZURE_FILTER), False, False),
    (_frame({"error": {"message": "overloaded"}}), False, True),
    (_frame("[DONE]"), False, True),
])
def test_frames_forwarded_or_dropped(raw, wants_usage, forwarded):
    meter = StreamMeter(client_wants_usage=wants_usage)
    assert (meter.frame(raw) is not None) == forwarded


def test_meter_keeps_usage_text_errors_and_the_end():
    meter = StreamMeter(client_wants_usage=False)
    tool = {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":1}"}}]},
                         "finish_reason": "tool_calls"}]}
    for data in (CONTENT, tool, USAGE_ONLY, "[DONE]"):
        meter.frame(_frame(data))
    assert meter.text == 'Hi{"a":1}' and meter.finished and meter.done
    assert (meter.usage.prompt_tokens, meter.usage.completion_tokens, meter.usage.cached_tokens) == (9, 3, 4)
    meter.frame(_frame({"error": {"message": "boom"}}))
    assert meter.error == "boom"


def _compact(data) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def test_plain_content_frames_are_read_only_when_usage_never_comes():
    openai_chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                    "choices": [{"index": 0, "delta": {"content": "Hi"}, "logprobs": None, "finish_reason": None}],
                    "usage": None}
    assert _plain_delta_choices(_compact(openai_chunk)) is not None
    meter = StreamMeter(client_wants_usage=False)
    assert meter.frame(_compact(openai_chunk)) == _compact(openai_chunk)
    assert meter.text == "Hi" and not meter.finished


WORDS = st.sampled_from(["usage", "error", "finish_reason", "delta", "delta:", "null", "", "Hi", '"usage":1', "\\"])
TEXT = st.one_of(WORDS, st.text(max_size=8))
DELTA = st.fixed_dictionaries({}, optional={"content": st.one_of(TEXT, st.none()), "reasoning_content": TEXT,
                                            "tool_calls": st.lists(st.fixed_dictionaries(
                                                {"index": st.integers(0, 2),
                                                 "function": st.fixed_dictionaries({"arguments": TEXT})}),
                                                max_size=2)})
CHOICE = st.fixed_dictionaries({"index": st.integers(0, 2)}, optional={
    "delta": DELTA, "text": TEXT, "finish_reason": st.one_of(st.none(), st.sampled_from(["stop", "length"]), TEXT)})
USAGE = st.one_of(st.none(), st.fixed_dictionaries({"prompt_tokens": st.integers(0, 99),
                                                    "completion_tokens": st.integers(0, 99)}))
CHUNK = st.one_of(
    st.fixed_dictionaries({"choices": st.lists(CHOICE, max_size=2)},
                          optional={"usage": USAGE, "model": TEXT, "error": st.one_of(TEXT, st.none()),
                                    "filter": st.fixed_dictionaries({"delta": TEXT})}),
    st.just("[DONE]"), st.just(": keep-alive"), st.just("{not json"),
)


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(chunks=st.lists(st.tuples(CHUNK, st.booleans()), max_size=6), wants_usage=st.booleans())
def test_reading_content_frames_late_changes_nothing(chunks, wants_usage):
    frames = []
    for chunk, compact in chunks:
        if not isinstance(chunk, dict):
            frames.append(chunk.encode() + b"\n\n" if chunk.startswith(":") else _frame(chunk))
        else:
            frames.append(_compact(chunk) if compact else _frame(chunk))
    _assert_read_alike(frames, wants_usage)


def _assert_read_alike(frames: list[bytes], wants_usage: bool) -> None:
    late, eager = StreamMeter(client_wants_usage=wants_usage), StreamMeter(client_wants_usage=wants_usage)
    with patch("relay.protocols.openai_stream._plain_delta_choices", lambda raw: None):
        eager_out = [eager.frame(raw) for raw in frames]
    assert [late.frame(raw) for raw in frames] == eager_out
    assert (late.text, late.usage, late.error, late.done, late.finished) == \
        (eager.text, eager.usage, eager.error, eager.done, eager.finished)


@pytest.mark.parametrize("raw", [
    b'data: {"choices":[{"delta":{"content":"x"},"fin\\u0069sh_reason":"stop"}]}\n\n',  # a key spelled escaped
    b'data: {"choices":[{"delta":{"content":"x"}}],"\\u0075sage":{"prompt_tokens":5,"completion_tokens":3}}\n\n',
    b'data: {"choices":[{"delta":{"content":"x"}}],"\\u0065rror":"boom"}\n\n',
    b'data: {"choices":[{"delta":{"content":"x"}}],"choices":[]}\n\n',  # the same key twice: the last counts
    b'data: {"choices":[],"x":{"choices":[{"delta":{}}]}}\n\n',  # choices nested elsewhere
    b'data: {"x":{"choices":[{"delta":{"content":"a"}}]}}\n\n',
    b'data: {"x":[{"choices":[{"delta":{"content":"a"}}]}],"y":1}\n\n',
    b'data: {"choices":[{"delta":{"content":"a\xffb"}}]}\n\n',  # not UTF-8: read with replacement characters
    b'data: {"choices":[{"delta":{"content":"a\xed\xa0\x80b"}}]}\n\n',
    b'data: {"choices":[{"delta":{},"finish_reason":null,"finish\\u005freason":"stop"}]}\n\n',
    b'data: {"choices":[{"delta":{"content":"\\u4f60\\u597d"}}]}\n\n',  # escaped Chinese: still the short way
])
def test_odd_frames_are_read_alike_either_way(raw):
    _assert_read_alike([raw], wants_usage=False)


def test_a_long_stream_keeps_a_bounded_number_of_frames_unread():
    frames = [_compact({"choices": [{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}]})
              for i in range(UNREAD_LIMIT * 2 + 5)]
    meter = StreamMeter(client_wants_usage=False)
    for raw in frames:
        meter.frame(raw)
        assert meter.unread < UNREAD_LIMIT and len(meter.text_parts) <= UNREAD_LIMIT
    assert meter.text == "".join(f"w{i} " for i in range(len(frames)))
    _assert_read_alike(frames, wants_usage=False)
