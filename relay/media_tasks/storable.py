"""What PostgreSQL can keep: a task's request is stored as JSON and looked up by ids the client sends, so text with
NUL characters or unpaired surrogates, and NaN or infinite numbers, are refused before they reach a query (where they
would fail as a server error)."""

from __future__ import annotations

import math
from typing import Any

MAX_DEPTH = 64


def storable_text(text: str) -> bool:
    """No NUL (PostgreSQL text and jsonb refuse it) and valid UTF-8 once encoded (no lone surrogates)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unstorable_field(value: Any, *, field: str = "", depth: int = 0) -> str | None:
    """The top-level field holding something that cannot be stored ("" for the body itself), or None when all of
    it can. Field names themselves are checked too."""
    if isinstance(value, str):
        return None if storable_text(value) else field
    if isinstance(value, float):
        return None if math.isfinite(value) else field
    if depth > MAX_DEPTH:
        return field
    if isinstance(value, dict):
        for key, inner in value.items():
            name = field or key
            if not storable_text(key):
                return field
            found = unstorable_field(inner, field=name, depth=depth + 1)
            if found is not None:
                return found
    elif isinstance(value, list):
        for inner in value:
            found = unstorable_field(inner, field=field, depth=depth + 1)
            if found is not None:
                return found
    return None


def storable_copy(value: Any, *, depth: int = 0) -> Any:
    """An upstream's answer as PostgreSQL can keep it: NUL characters dropped, unpaired surrogates replaced, NaN and
    infinite numbers and what lies deeper than MAX_DEPTH as null."""
    if isinstance(value, str):
        return value if storable_text(value) else (
            value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8"))
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth > MAX_DEPTH:
        return None
    if isinstance(value, dict):
        return {storable_copy(str(key)): storable_copy(inner, depth=depth + 1) for key, inner in value.items()}
    if isinstance(value, list):
        return [storable_copy(inner, depth=depth + 1) for inner in value]
    return value
