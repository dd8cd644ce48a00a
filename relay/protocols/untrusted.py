"""Reading untrusted JSON (an upstream's answer, a caller's body): a field of another type than expected counts as
empty, so an odd shape is read as far as it goes instead of raising."""

from __future__ import annotations

from typing import Any


def as_list(value: Any) -> list:
    """A list, or nothing."""
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict:
    """An object, or nothing."""
    return value if isinstance(value, dict) else {}
