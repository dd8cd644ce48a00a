"""Fixture tables for the Anthropic ⇄ OpenAI translation tests, and checks against the official SDKs' types."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pydantic
import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def cases(name: str) -> list[Any]:
    """One pytest param per case in a fixture file, named after the case."""
    return [pytest.param(case, id=case["name"]) for case in fixture(name)]


def _materialise(value: Any) -> Any:
    """The SDKs type message lists as Iterable, which pydantic validates lazily: walk them so errors surface."""
    if isinstance(value, dict):
        return {key: _materialise(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_materialise(item) for item in value]
    if hasattr(value, "__next__"):
        return [_materialise(item) for item in value]
    return value


@functools.cache
def _adapter(kind: str) -> pydantic.TypeAdapter:
    if kind == "openai":
        from openai.types.chat import completion_create_params as params

        return pydantic.TypeAdapter(params.CompletionCreateParamsStreaming | params.CompletionCreateParamsNonStreaming)
    anthropic = pytest.importorskip("anthropic")
    if kind == "anthropic_request":
        from anthropic.types import message_create_params as params

        return pydantic.TypeAdapter(params.MessageCreateParamsStreaming | params.MessageCreateParamsNonStreaming)
    if kind == "anthropic_event":
        return pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)
    raise ValueError(kind)


def assert_valid_openai_request(body: dict[str, Any]) -> None:
    _materialise(_adapter("openai").validate_python(body))


def assert_valid_anthropic_request(body: dict[str, Any]) -> None:
    pytest.importorskip("anthropic")
    _materialise(_adapter("anthropic_request").validate_python(body))


def assert_valid_anthropic_event(name: str, data: dict[str, Any]) -> None:
    pytest.importorskip("anthropic")
    if name == "error":
        from anthropic.types import ErrorResponse

        ErrorResponse.model_validate(data)
    else:
        _adapter("anthropic_event").validate_python(data)
    assert data["type"] == name
