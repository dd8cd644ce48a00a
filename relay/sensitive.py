"""Sensitive-word filtering: requests whose prompt holds a word the operator lists (SENSITIVE_WORDS) are refused
before anything is reserved or sent upstream, as platforms serving the Chinese market are expected to do."""

from __future__ import annotations

import re
from typing import Any

# Where a request carries the user's words, in every protocol the relay speaks (chat messages, Anthropic's system,
# Gemini's parts, Responses input items, prompts of completions, images and tasks, rerank queries and documents).
TEXT_KEYS = frozenset({"content", "text", "prompt", "input", "instructions", "system", "query", "documents"})
MAX_SCANNED = 2_000_000  # characters of one request looked at (a larger prompt is mostly files)


class WordFilter:
    """The operator's words, matched anywhere in the text without regard to case."""

    def __init__(self, words: list[str]) -> None:
        words = sorted({w.strip() for w in words if w and w.strip()}, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, words)), re.IGNORECASE) if words else None

    def found(self, body: Any) -> str | None:
        """The first listed word in the request's text, or None."""
        if self.pattern is None:
            return None
        text = "\n".join(_texts(body, "", []))[:MAX_SCANNED]
        match = self.pattern.search(text)
        return match.group(0) if match else None


def _texts(value: Any, key: str, out: list[str]) -> list[str]:
    if isinstance(value, dict):
        for name, item in value.items():
            _texts(item, name, out)
    elif isinstance(value, list):
        for item in value:
            _texts(item, key, out)
    elif isinstance(value, str) and key in TEXT_KEYS:
        out.append(value)
    return out
