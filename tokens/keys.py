"""Bearer secrets (API keys, access tokens, card keys): generated here, stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits
API_KEY_PREFIX = "sk-"
API_KEY_LENGTH = 48


def secret_generate(length: int, *, prefix: str = "") -> str:
    """A random secret of `length` letters and digits after `prefix`."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def secret_hash(secret: str) -> str:
    """SHA-256 hex digest; the secrets carry 190+ random bits, so no salt or stretching is needed."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_mask(prefix: str, suffix: str) -> str:
    """How a stored secret is shown after creation: its first and last characters only."""
    return f"{prefix}{'*' * 8}{suffix}"


def api_key_generate() -> str:
    return secret_generate(API_KEY_LENGTH, prefix=API_KEY_PREFIX)


def looks_like_api_key(value: str) -> bool:
    return value.startswith(API_KEY_PREFIX) and len(value) == len(API_KEY_PREFIX) + API_KEY_LENGTH
