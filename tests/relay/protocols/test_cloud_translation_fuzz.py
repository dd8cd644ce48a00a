"""The Converse and Cohere translations take any JSON shape without raising (an upstream's odd answer or a
caller's odd request is refused or read as far as it goes, never a crash)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.protocols.cohere_chat import (
    OpenAIToCohereStream,
    openai_chat_response_to_cohere,
    openai_embeddings_to_cohere,
)
from relay.protocols.converse import (
    ConverseToAnthropicStream,
    ConverseUnsupported,
    anthropic_to_converse,
    converse_to_anthropic,
)

KEYS = st.sampled_from([
    "type", "text", "source", "media_type", "data", "id", "name", "input", "content", "tool_use_id", "is_error",
    "role", "messages", "system", "tools", "tool_choice", "max_tokens", "output", "message", "stopReason", "usage",
    "toolUse", "reasoningContent", "reasoningText", "choices", "delta", "finish_reason", "tool_calls", "function",
    "arguments", "index", "embedding", "contentBlockIndex", "start", "signature", "inputTokens"])
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
           | st.sampled_from(["text", "image", "base64", "tool_use", "tool_result", "user", "assistant"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
                      max_leaves=25)


@settings(max_examples=400, deadline=None, database=None)
@given(st.dictionaries(KEYS, VALUES, max_size=6))
def test_any_shape_is_translated_or_refused(data):
    try:
        anthropic_to_converse(data)
    except ConverseUnsupported:
        pass
    converse_to_anthropic(data, "m")
    stream = ConverseToAnthropicStream("m")
    for kind in ("messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockStop", "messageStop",
                 "metadata"):
        stream.feed(kind, data)
    stream.finish()
    openai_chat_response_to_cohere(data)
    openai_embeddings_to_cohere(data, [])
    cohere = OpenAIToCohereStream()
    cohere.feed(data)
    cohere.finish()
