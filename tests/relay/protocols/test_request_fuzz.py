"""A request body that passes the relay's checks is carried to every upstream family that takes it, or refused as
the caller's error: checking, estimating and translating a body of any shape never raises anything else (which
was a 500 for the caller)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay import gate
from relay.errors import RelayError
from relay.protocols.cohere_chat import cohere_request_to_openai
from relay.wires_rerank import COHERE
from relay.wiring import wire_for
from tests.relay.protocols.test_answer_fuzz import REQUESTS, UPSTREAMS

FIELDS = ["model", "messages", "max_tokens", "max_completion_tokens", "stream", "stream_options", "n", "input",
          "prompt", "instructions", "tools", "tool_choice", "response_format", "reasoning", "reasoning_effort",
          "system", "thinking", "stop_sequences", "temperature", "top_p", "contents", "systemInstruction",
          "generationConfig", "safetySettings", "toolConfig", "content", "requests", "documents", "query", "top_n",
          "texts", "input_type", "embedding_types", "dimensions", "encoding_format", "size", "quality", "modalities",
          "metadata", "user", "text", "previous_response_id", "store", "include", "parallel_tool_calls"]
KEYS = st.sampled_from(FIELDS + ["role", "content", "type", "text", "parts", "image_url", "url", "function", "name",
                                 "arguments", "tool_calls", "tool_call_id", "input_schema", "parameters",
                                 "functionCall", "functionResponse", "inlineData", "source", "data", "id",
                                 "tool_use_id", "budget_tokens", "effort", "include_usage", "thinkingConfig"])
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**64), max_value=2**64)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6)
           | st.sampled_from(["user", "assistant", "system", "tool", "text", "image_url", "function", "tool_use",
                              "tool_result", "image", "input_text", "function_call", "auto", "required", "any",
                              "none", "enabled", "data:image/png;base64,aGk=", "m"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
                      max_leaves=16)
FUZZ = settings(max_examples=25, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


def _carried(client: str, operation: str, body: dict) -> None:
    if client == COHERE and operation != "rerank":
        body = cohere_request_to_openai(body, operation)
    gate.validate(body, operation)
    gate.worst_case(body, operation)
    gate.calls_of(body, operation)
    gate.shape_of(body, operation)
    for family, upstream_type in UPSTREAMS:
        stream = bool(body.get("stream"))
        wire = wire_for(client, family, operation, body, model="m", stream=stream, default_max_tokens=64,
                        input_estimate=5, upstream_type=upstream_type, request_id="r1")
        if wire is not None:
            for stream_usage in (False, True):
                json.dumps(wire.request("m", stream_usage))


@pytest.mark.parametrize(("client", "operation", "valid"), REQUESTS, ids=[f"{c}-{o}" for c, o, _v in REQUESTS])
def test_a_body_of_any_shape_is_carried_or_refused(client, operation, valid):
    @FUZZ
    @given(field=st.sampled_from(sorted(set(valid) | set(FIELDS))), value=VALUES, stream=st.booleans())
    def check(field, value, stream):
        body = json.loads(json.dumps({**valid, "stream": stream, field: value}))
        try:
            _carried(client, operation, body)
        except RelayError:
            pass

    check()
