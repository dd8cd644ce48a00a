"""Every setting the environment can change, read in one place with a default that works on one machine."""

from __future__ import annotations

import os
import secrets
from decimal import Decimal
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("MODELGATE_VAR_DIR") or BASE_DIR / "var")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env(name: str, default: str | None = None) -> str | None:
    """A string from the environment; unset and empty both give the default."""
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_int(name: str, default: int) -> int:
    value = env(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {value!r}") from exc


def env_decimal(name: str, default: str) -> Decimal:
    return Decimal(env(name, default))


def env_bool(name: str, default: bool) -> bool:
    value = env(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def env_list(name: str, default: str = "") -> list[str]:
    """A comma-separated list; blanks dropped."""
    return [item.strip() for item in (env(name, default) or "").split(",") if item.strip()]


def var_path(*parts: str) -> Path:
    """A path under the writable `var/` folder, created on demand."""
    path = VAR_DIR.joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def persistent_secret(name: str, filename: str, length: int = 50) -> str:
    """The environment's value, else one generated on first run and kept under `var/`."""
    value = env(name)
    if value:
        return value
    path = var_path(filename)
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(length)
    path.write_text(value)
    path.chmod(0o600)
    return value
