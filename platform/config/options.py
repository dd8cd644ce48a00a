"""Run-time site options: product settings an operator changes in the admin or `/api/option/` without a restart.

Each option is a setting of the same name (its environment value is the default); a stored value overrides it.
Secrets (gateway keys, SMTP passwords) stay in the environment only.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

from django.conf import settings
from django.core.cache import BaseCache, caches
from django.core.signals import setting_changed
from django.db import DatabaseError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from config.errors import ServiceError
from config.models import SiteOption

log = logging.getLogger(__name__)
CACHE_KEY = "site-options"
CACHE_SECONDS = 5  # how long another process may serve an old value (no Redis: each process has its own cache)
MAX_TEXT = 20_000


@dataclass(frozen=True)
class Option:
    kind: str  # "int", "bool", "decimal", "list", "text"
    label: Any
    minimum: int = 0


OPTIONS: dict[str, Option] = {
    "SITE_NAME": Option("text", gettext_lazy("Site name")),
    "NOTICE": Option("text", gettext_lazy("Notice shown on the console's home page and dashboard")),
    "REGISTRATION_ENABLED": Option("bool", gettext_lazy("New accounts may register")),
    "EMAIL_VERIFICATION": Option("bool", gettext_lazy("New accounts confirm their email address with a code")),
    "EMAIL_DOMAIN_WHITELIST": Option("list", gettext_lazy("Email domains accepted for accounts (empty: any)")),
    "NEW_USER_QUOTA": Option("int", gettext_lazy("Trial credit for new accounts (quota)")),
    "CHECKIN_QUOTA_MIN": Option("int", gettext_lazy("Daily check-in reward, lowest (quota)")),
    "CHECKIN_QUOTA_MAX": Option("int", gettext_lazy("Daily check-in reward, highest (quota)")),
    "INVITER_QUOTA": Option("int", gettext_lazy("Reward for inviting an account (quota)")),
    "INVITEE_QUOTA": Option("int", gettext_lazy("Extra credit for an invited account (quota)")),
    "SENSITIVE_WORDS": Option("list", gettext_lazy("Words refused in prompts (comma-separated; empty: no filtering)")),
    "QUOTA_REMINDER_THRESHOLD": Option("int", gettext_lazy("Email users whose balance falls below (quota; 0: never)")),
    "TOPUP_PRICE": Option("decimal", gettext_lazy("Online top-up: price of one US dollar of quota")),
    "TOPUP_CURRENCY": Option("text", gettext_lazy("Online top-up: the gateway's currency")),
    "TOPUP_MIN_USD": Option("int", gettext_lazy("Online top-up: smallest amount (US dollars)"), minimum=1),
    "TOPUP_MAX_USD": Option("int", gettext_lazy("Online top-up: largest amount (US dollars)"), minimum=1),
    "TOPUP_METHODS": Option("list", gettext_lazy("Online top-up: payment types offered")),
}


class _ProcessCache:
    """The default cache, one client per process. Django's `cache` is one per thread and per task: each of the
    relay's snapshot loads (a new task, run in the thread pool) opened a Redis connection of its own, every
    second in each process."""

    def __init__(self) -> None:
        self._client: BaseCache | None = None

    def __call__(self) -> BaseCache:
        if self._client is None:
            self._client = caches.create_connection("default")
        return self._client

    def forget(self, *, setting: str, **_: Any) -> None:
        if setting == "CACHES":
            self._client = None


_cache = _ProcessCache()
setting_changed.connect(_cache.forget, weak=False)


def _stored() -> dict[str, Any]:
    try:
        values = _cache().get(CACHE_KEY)
    except Exception:  # Redis away: read the table (the relay keeps serving without Redis)
        values = None
    if values is None:
        try:
            values = dict(SiteOption.objects.values_list("name", "value"))
        except DatabaseError:  # the database is down: the environment's values, until it is back
            log.warning("site options unreadable; using the settings", exc_info=True)
            return {}
        with contextlib.suppress(Exception):
            _cache().set(CACHE_KEY, values, CACHE_SECONDS)
    return values


def _typed(name: str, value: Any) -> Any:
    return Decimal(value) if OPTIONS[name].kind == "decimal" else value


def option(name: str) -> Any:
    """The option's value: the operator's if set, else the setting's."""
    stored = _stored()
    return _typed(name, stored[name]) if name in stored else getattr(settings, name, "")


def _int(text: Any, minimum: int) -> int:
    if isinstance(text, bool) or not isinstance(text, (int, str)) or not str(text).strip().lstrip("-").isdigit():
        raise ServiceError(_("Enter a whole number."))
    value = int(text)
    if value < minimum or value > 10**15:
        raise ServiceError(_("Enter a whole number from %(min)d.") % {"min": minimum})
    return value


PARSERS: dict[str, Callable[[Any, Option], Any]] = {
    "int": lambda value, spec: _int(value, spec.minimum),
    "bool": lambda value, spec: value if isinstance(value, bool) else str(value).strip().lower() in {"1", "true",
                                                                                                      "yes", "on"},
    "list": lambda value, spec: [str(v).strip() for v in (value if isinstance(value, list) else str(value).split(","))
                                 if str(v).strip()],
    "text": lambda value, spec: str(value),
}


def option_parse(name: str, value: Any) -> Any:
    """The JSON value stored for `name` from an operator's input; a ServiceError says what is wrong."""
    spec = OPTIONS.get(name)
    if spec is None:
        raise ServiceError(_("Unknown option: %(name)s") % {"name": name}, status=404, code="not_found")
    if spec.kind == "decimal":
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise ServiceError(_("Enter a number.")) from None
        if not number.is_finite() or number <= 0 or number > 10**9:
            raise ServiceError(_("Enter a positive number."))
        return str(number)
    parsed = PARSERS[spec.kind](value, spec)
    if spec.kind == "text" and (len(parsed) > MAX_TEXT or "\x00" in parsed):
        raise ServiceError(_("The text is too long or holds a null character."))
    return parsed


def option_set(*, name: str, value: Any) -> Any:
    """Store an operator's value (None: back to the setting's); every process sees it within CACHE_SECONDS."""
    if value is None:
        if name not in OPTIONS:
            raise ServiceError(_("Unknown option: %(name)s") % {"name": name}, status=404, code="not_found")
        SiteOption.objects.filter(name=name).delete()
    else:
        SiteOption.objects.update_or_create(name=name, defaults={"value": option_parse(name, value)})
    options_changed()
    return option(name)


def options_changed() -> None:
    """Forget the cached options (this process at once, the others within CACHE_SECONDS without Redis)."""
    with contextlib.suppress(Exception):  # unreachable Redis: its copy expires within CACHE_SECONDS anyway
        _cache().delete(CACHE_KEY)


def options_all() -> list[dict[str, Any]]:
    """Every option with its value, the setting's default and whether an operator set it."""
    stored = _stored()
    rows = []
    for name, spec in OPTIONS.items():
        default = getattr(settings, name, "")
        value = _typed(name, stored[name]) if name in stored else default
        rows.append({"key": name, "kind": spec.kind, "label": str(spec.label), "value": option_shown(value),
                     "default": option_shown(default), "overridden": name in stored})
    return rows


def option_shown(value: Any) -> Any:
    """An option's value as JSON carries it (a price as its exact decimal text)."""
    return str(value) if isinstance(value, Decimal) else value
