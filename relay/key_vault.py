"""Upstream API keys are encrypted at rest (Fernet, keyed by UPSTREAM_KEY_SECRET) and never shown again."""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.utils.translation import gettext as _


class KeyVaultError(Exception):
    """The stored keys cannot be decrypted with the configured UPSTREAM_KEY_SECRET."""


@lru_cache(maxsize=4)
def _fernet(secret: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))


def keys_parse(raw: str | list[Any] | dict[str, Any]) -> list[str]:
    """Keys given one per line (or as a list), blanks and surrounding spaces dropped. A JSON object (a Google
    service-account key file) is one key, a JSON array of them several; each is kept as one line of compact JSON."""
    if isinstance(raw, str) and raw.strip()[:1] in ("{", "["):
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise ValueError(_("The keys look like JSON but do not parse: %(error)s") % {"error": exc}) from exc
        raw = parsed
    if isinstance(raw, dict):
        raw = [raw]
    items = raw if isinstance(raw, list) else str(raw).splitlines()
    return [_key_text(item) for item in items if _key_text(item)]


def _key_text(item: Any) -> str:
    if isinstance(item, dict):
        return json.dumps(item, separators=(",", ":"), ensure_ascii=False)
    return item.strip() if isinstance(item, str) else ""


def key_fingerprint(key: str) -> str:
    """A key's short, one-way name, to say which key without keeping it (which key made a task, which is off)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12] if key else ""


def keys_encrypt(keys: list[str]) -> str:
    if not keys:
        return ""
    return _fernet(settings.UPSTREAM_KEY_SECRET).encrypt("\n".join(keys).encode()).decode()


def keys_decrypt(blob: str) -> list[str]:
    if not blob:
        return []
    return list(_decrypted(settings.UPSTREAM_KEY_SECRET, blob))


@lru_cache(maxsize=4096)
def _decrypted(secret: str, blob: str) -> tuple[str, ...]:
    """One stored blob's keys, decrypted once per process: a Fernet token always decrypts to the same text (each
    encryption makes a new token), and the relay reads every upstream's keys each time its snapshot expires."""
    try:
        return tuple(_fernet(secret).decrypt(blob.encode()).decode().split("\n"))
    except InvalidToken as exc:
        raise KeyVaultError("upstream keys cannot be decrypted: UPSTREAM_KEY_SECRET changed?") from exc
