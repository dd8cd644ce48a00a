"""Upstream API keys are encrypted at rest (Fernet, keyed by UPSTREAM_KEY_SECRET) and never shown again."""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


class KeyVaultError(Exception):
    """The stored keys cannot be decrypted with the configured UPSTREAM_KEY_SECRET."""


@lru_cache(maxsize=4)
def _fernet(secret: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))


def keys_parse(raw: str | list[str]) -> list[str]:
    """Keys given one per line (or as a list), blanks and surrounding spaces dropped."""
    items = raw if isinstance(raw, list) else str(raw).splitlines()
    return [item.strip() for item in items if isinstance(item, str) and item.strip()]


def keys_encrypt(keys: list[str]) -> str:
    if not keys:
        return ""
    return _fernet(settings.UPSTREAM_KEY_SECRET).encrypt("\n".join(keys).encode()).decode()


def keys_decrypt(blob: str) -> list[str]:
    if not blob:
        return []
    try:
        return _fernet(settings.UPSTREAM_KEY_SECRET).decrypt(blob.encode()).decode().split("\n")
    except InvalidToken as exc:
        raise KeyVaultError("upstream keys cannot be decrypted: UPSTREAM_KEY_SECRET changed?") from exc
