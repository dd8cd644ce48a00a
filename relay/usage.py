"""One normalised usage record from every protocol; billing reads only this."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Usage:
    prompt_tokens: int = 0  # includes cached tokens
    completion_tokens: int = 0  # includes reasoning tokens
    cached_tokens: int = 0  # cache reads
    reasoning_tokens: int = 0
    estimated: bool = False
    cache_write_tokens: int = 0  # a subset of prompt_tokens (Anthropic's cache creation)
    audio_prompt_tokens: int = 0  # uncached audio input, a subset of prompt_tokens
    audio_completion_tokens: int = 0  # a subset of completion_tokens
    audio_seconds: float = 0.0  # input audio played, for transcription priced per minute


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_from_openai(data: Any) -> Usage | None:
    """OpenAI's `usage` object (chat, completions, embeddings; DeepSeek's cache fields too), or None."""
    if not isinstance(data, dict):
        return None
    prompt = _int(data.get("prompt_tokens"))
    completion = _int(data.get("completion_tokens"))
    details = data.get("prompt_tokens_details") or {}
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    cached = cached or _int(data.get("prompt_cache_hit_tokens"))
    writes = _int(details.get("cache_write_tokens")) if isinstance(details, dict) else 0  # Anthropic-backed ones
    audio_in = _int(details.get("audio_tokens")) if isinstance(details, dict) else 0
    out_details = data.get("completion_tokens_details") or {}
    reasoning = _int(out_details.get("reasoning_tokens")) if isinstance(out_details, dict) else 0
    audio_out = _int(out_details.get("audio_tokens")) if isinstance(out_details, dict) else 0
    if not (prompt or completion or "prompt_tokens" in data):
        return None
    cached = min(cached, prompt)
    return Usage(prompt, completion, cached, reasoning, cache_write_tokens=min(writes, prompt - cached),
                 audio_prompt_tokens=audio_in, audio_completion_tokens=min(audio_out, completion))


def usage_from_responses(data: Any) -> Usage | None:
    """The Responses API's `usage` (input includes cached, output includes reasoning), or None."""
    if not isinstance(data, dict) or "input_tokens" not in data:
        return None
    cached = _int((data.get("input_tokens_details") or {}).get("cached_tokens"))
    reasoning = _int((data.get("output_tokens_details") or {}).get("reasoning_tokens"))
    prompt = _int(data.get("input_tokens"))
    return Usage(prompt, _int(data.get("output_tokens")), min(cached, prompt), reasoning)
