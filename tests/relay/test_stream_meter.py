"""Which frames of an OpenAI stream reach the client, and what the meter keeps for billing."""

from __future__ import annotations

import json

import pytest

from relay.protocols.openai_stream import StreamMeter


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
