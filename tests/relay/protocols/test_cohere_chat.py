"""Cohere v2 chat and embed requests as OpenAI's: odd JSON types translated or refused, never a crash."""

from __future__ import annotations

import pytest

from relay.errors import RelayError
from relay.protocols.cohere_chat import cohere_chat_to_openai, cohere_embed_to_openai


def test_cohere_requests_of_odd_types_are_translated_or_refused_cleanly():
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    for odd in ([], {}, 1.5, None, "maybe"):
        out = cohere_chat_to_openai({**base, "tool_choice": odd})
        assert "tool_choice" not in out
    for bad in ({**base, "messages": "hi"}, {**base, "messages": [{"role": ["user"]}]}):
        with pytest.raises(RelayError):
            cohere_chat_to_openai(bad)
    with pytest.raises(RelayError):
        cohere_embed_to_openai({"model": "m", "texts": ["x"], "embedding_types": [["float"]]})
