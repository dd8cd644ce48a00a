"""Sign-in with Telegram: the Login Widget's signed user data, checked as Telegram documents it. The data-check
string is every field but `hash`, sorted, as `key=value` lines; its HMAC-SHA256 keyed with SHA-256 of the bot token
must be `hash`, and `auth_date` recent. The console posts the widget's data with its CSRF token (never a link that
could sign someone in, or link an account, on another's behalf)."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _

from accounts.oauth import OAuthError, OAuthProvider, Profile

FIELDS = ("id", "first_name", "last_name", "username", "photo_url", "auth_date")
MAX_AGE_SECONDS = 86_400


def telegram_provider() -> OAuthProvider | None:
    """Telegram as a sign-in provider (its key and label; the rest is the widget's), when a bot is configured."""
    if not (settings.TELEGRAM_BOT_NAME and settings.TELEGRAM_BOT_TOKEN):
        return None
    return OAuthProvider("telegram", "Telegram", settings.TELEGRAM_BOT_NAME, "", "", "", "", "", "id", ("username",),
                         basic_auth=False)


def telegram_signature(data: dict[str, str], bot_token: str) -> str:
    check = "\n".join(f"{key}={data[key]}" for key in sorted(data) if key != "hash")
    return hmac.new(hashlib.sha256(bot_token.encode()).digest(), check.encode(), hashlib.sha256).hexdigest()


def telegram_profile(data: dict[str, Any], now: float | None = None) -> Profile:
    """Who the widget says signed in; OAuthError when the data is not Telegram's or is too old."""
    fields = {key: str(data[key]) for key in FIELDS if data.get(key) not in (None, "")}
    given = str(data.get("hash") or "")
    expected = telegram_signature(fields, settings.TELEGRAM_BOT_TOKEN)
    if not given or "id" not in fields or not hmac.compare_digest(expected, given):
        raise OAuthError(_("The Telegram sign-in could not be verified."), status=403)
    age = (time.time() if now is None else now) - float(fields.get("auth_date") or 0)
    if not 0 <= age <= MAX_AGE_SECONDS:
        raise OAuthError(_("The Telegram sign-in expired. Try again."), status=403)
    name = fields.get("username") or " ".join(filter(None, (fields.get("first_name"), fields.get("last_name"))))
    return Profile(subject=fields["id"], login=name[:255], email="")
