"""Property-based bad input on every relay route: whatever the body, the answer is never a 5xx, every error comes
in the caller's protocol's shape, and the books still balance (checked by the `live` fixture)."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

CHAT = {"model": "demo-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
ROUTES = [  # (path, protocol, a valid body that the fuzzer mutates one field at a time)
    ("/v1/chat/completions", "openai", CHAT), ("/v1/completions", "openai", {"model": "demo-chat", "prompt": "hi"}),
    ("/v1/embeddings", "openai", {"model": "demo-embedding", "input": "hi"}),
    ("/v1/moderations", "openai", {"model": "demo-chat", "input": "hi"}),
    ("/v1/responses", "openai", {"model": "demo-chat", "input": "hi"}),
    ("/v1/images/generations", "openai", {"model": "demo-chat", "prompt": "a fox"}),
    ("/v1/audio/speech", "openai", {"model": "demo-chat", "input": "hi", "voice": "alloy"}),
    ("/v1/rerank", "openai", {"model": "demo-chat", "query": "q", "documents": ["a", "b"]}),
    ("/v1/messages", "anthropic", CHAT), ("/v1/messages/count_tokens", "anthropic", CHAT),
    ("/v1beta/models/demo-chat:generateContent", "gemini", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
    ("/v1/models/demo-chat:streamGenerateContent", "gemini", {"contents": [{"parts": [{"text": "hi"}]}]}),
    ("/v1beta/models/demo-embedding:embedContent", "gemini", {"content": {"parts": [{"text": "hi"}]}}),
    ("/v1/models/demo-embedding:batchEmbedContents", "gemini",
     {"requests": [{"model": "models/demo-embedding", "content": {"parts": [{"text": "hi"}]}}]}),
    ("/v1beta/models/demo-chat:countTokens", "gemini", {"contents": [{"parts": [{"text": "hi"}]}]}),
    ("/v2/rerank", "cohere", {"model": "demo-chat", "query": "q", "documents": ["a", "b"]}),
    ("/v2/chat", "cohere", CHAT), ("/v2/embed", "cohere", {"model": "demo-embedding", "texts": ["hi"]}),
]
FIELDS = ["model", "messages", "max_tokens", "stream", "n", "input", "prompt", "contents", "documents", "query",
          "top_n", "temperature", "tools", "stream_options", "system", "voice", "size", "generationConfig",
          "max_output_tokens", "instructions", "provider", "requests", "content", "outputDimensionality",
          "generateContentRequest", "texts", "embedding_types", "tool_choice", "p", "stop_sequences"]
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40)
           | st.sampled_from(["demo-chat", "demo-embedding", "gpt-9", "", "\x00", "😀" * 20, "user", "assistant"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(FIELDS + ["role", "content", "text", "parts", "type"]),
                                        inner, max_size=4), max_leaves=12)
BODIES = st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=8)
RAW = st.one_of(BODIES.map(lambda b: json.dumps(b, allow_nan=True).encode()), st.binary(max_size=64),
                st.sampled_from([b"", b"[]", b"null", b"{", b'"x"', b"1e999999", b'{"model": "demo-chat"']))


def mutated(valid: dict) -> st.SearchStrategy[bytes]:
    """The valid body with one field replaced (or added) by any value."""
    return st.tuples(st.sampled_from(sorted(set(valid) | set(FIELDS))), VALUES).map(
        lambda change: json.dumps({**valid, change[0]: change[1]}, allow_nan=True).encode())


def _shape_ok(protocol: str, body: object) -> bool:
    if protocol == "anthropic":
        return isinstance(body, dict) and body.get("type") == "error" and isinstance(body.get("error"), dict)
    if protocol == "gemini":
        return isinstance(body, dict) and isinstance(body.get("error"), dict) and "status" in body["error"]
    if protocol == "cohere":
        return isinstance(body, dict) and isinstance(body.get("message"), str)
    return isinstance(body, dict) and isinstance(body.get("error"), dict) and "message" in body["error"]


@pytest.mark.parametrize(("path", "protocol", "valid"), ROUTES)
def test_no_body_makes_a_server_error(live, bootstrap_demo, funded_key, path, protocol, valid):
    _user, key = funded_key()
    client = httpx.Client(base_url=live.url, timeout=30,
                          headers={"authorization": f"Bearer {key}", "content-type": "application/json"})

    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(raw=st.one_of(RAW, mutated(valid)))
    def check(raw: bytes) -> None:
        with client.stream("POST", path, content=raw) as response:
            response.read()
        assert response.status_code < 500, (raw, response.status_code, response.text[:500])
        if response.status_code >= 400:
            assert _shape_ok(protocol, response.json()), (raw, response.text[:500])

    check()
