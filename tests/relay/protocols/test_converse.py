"""Converse <-> Anthropic Messages: the pure translations under the Bedrock Converse adapter."""

from __future__ import annotations

import json

import pytest

from relay.protocols.converse import (
    ConverseToAnthropicStream,
    ConverseUnsupported,
    anthropic_to_converse,
    converse_to_anthropic,
)


def _events(frames: list[bytes]) -> list[dict]:
    return [json.loads(frame.split(b"data: ", 1)[1]) for frame in frames]


def test_requests_keep_blocks_tools_and_settings():
    body = {"model": "x", "max_tokens": 99, "top_p": 0.5, "stop_sequences": ["END"], "system": [
        {"type": "text", "text": "Be brief."}, {"type": "text", "text": " "}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": {"type": "tool", "name": "f"},
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "look"}, {"type": "thinking", "thinking": "dropped"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"}}]}]}
    out = anthropic_to_converse(body)
    assert out["system"] == [{"text": "Be brief."}]
    assert out["inferenceConfig"] == {"maxTokens": 99, "topP": 0.5, "stopSequences": ["END"]}
    assert out["messages"][0]["content"] == [{"text": "look"},
                                             {"image": {"format": "jpeg", "source": {"bytes": "AAAA"}}}]
    assert out["toolConfig"]["toolChoice"] == {"tool": {"name": "f"}}
    assert "toolConfig" not in anthropic_to_converse({**body, "tool_choice": {"type": "none"}})
    with pytest.raises(ConverseUnsupported):
        anthropic_to_converse({"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]}]})


def test_answers_become_messages_with_every_usage_count():
    data = {"output": {"message": {"role": "assistant", "content": [
        {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "sig"}}}, {"text": "Hi"},
        {"toolUse": {"toolUseId": "t1", "name": "f", "input": {"a": 1}}}]}},
        "stopReason": "guardrail_intervened",
        "usage": {"inputTokens": 3, "outputTokens": 4, "cacheReadInputTokens": 5, "cacheWriteInputTokens": 6}}
    message = converse_to_anthropic(data, "m")
    assert [b["type"] for b in message["content"]] == ["thinking", "text", "tool_use"]
    assert message["stop_reason"] == "refusal"
    assert message["usage"] == {"input_tokens": 3, "output_tokens": 4, "cache_read_input_tokens": 5,
                                "cache_creation_input_tokens": 6}


def test_streams_open_blocks_as_deltas_come_and_close_the_message_with_the_usage():
    stream = ConverseToAnthropicStream("m")
    frames = stream.feed("messageStart", {"role": "assistant"})
    frames += stream.feed("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "h"}}})
    frames += stream.feed("contentBlockDelta", {"contentBlockIndex": 0,
                                                "delta": {"reasoningContent": {"signature": "s"}}})
    frames += stream.feed("contentBlockStop", {"contentBlockIndex": 0})
    frames += stream.feed("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "Hi"}})
    frames += stream.feed("messageStop", {"stopReason": "max_tokens"})
    frames += stream.feed("metadata", {"usage": {"inputTokens": 7, "outputTokens": 2}})
    events = _events(frames)
    assert [e["type"] for e in events] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert events[1]["content_block"]["type"] == "thinking" and events[3]["delta"]["type"] == "signature_delta"
    assert events[8]["delta"]["stop_reason"] == "max_tokens" and events[8]["usage"]["input_tokens"] == 7
    assert stream.finish() == []


def test_a_stream_that_stopped_without_metadata_still_closes_and_one_cut_short_does_not():
    stopped = ConverseToAnthropicStream("m")
    stopped.feed("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}})
    stopped.feed("messageStop", {"stopReason": "end_turn"})
    assert [e["type"] for e in _events(stopped.finish())][-2:] == ["message_delta", "message_stop"]
    cut = ConverseToAnthropicStream("m")
    cut.feed("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}})
    assert cut.finish() == []
