"""Template filters for money, quota and key status in the console."""

from __future__ import annotations

from decimal import Decimal

from django import template
from django.utils.translation import gettext as _

from config.options import option
from console.money import local_currency_text, quota_usd_text, usd_text
from tokens.models import ApiToken, TokenStatus

register = template.Library()


@register.filter
def usd(quota: int | None) -> str:
    """Quota shown as USD: `{{ user.quota|usd }}` -> `$1.00`."""
    return quota_usd_text(quota or 0)


@register.filter
def usd_amount(amount: Decimal | str | None) -> str:
    """A USD amount (not quota) shown with its sign: `{{ price|usd_amount }}`."""
    return usd_text(Decimal(str(amount or 0)))


@register.filter
def local_money(quota: int | None) -> str:
    """Quota in the display currency, or empty when the display currency is USD."""
    return local_currency_text(quota or 0)


@register.filter
def number(value: int | None) -> str:
    """An integer with thousands separators: 1234567 -> 1,234,567."""
    return f"{int(value or 0):,}"


@register.simple_tag
def site_name() -> str:
    """SITE_NAME, for titles and the header."""
    return option("SITE_NAME")


@register.simple_tag
def site_notice() -> str:
    """The operator's notice (the NOTICE option), shown on the home page and the dashboard."""
    return option("NOTICE")


@register.simple_tag
def checkin_range() -> tuple[int, int]:
    """The daily check-in reward range in quota, low first."""
    low, high = sorted((option("CHECKIN_QUOTA_MIN"), option("CHECKIN_QUOTA_MAX")))
    return low, high


@register.simple_tag
def token_state(token: ApiToken) -> tuple[str, str]:
    """A key's effective state for its badge: (css class, label)."""
    if token.status != TokenStatus.ENABLED:
        return "off", str(_("Disabled"))
    if token.is_expired:
        return "warn", str(_("Expired"))
    if not token.unlimited_quota and token.remain_quota <= 0:
        return "warn", str(_("Quota used up"))
    return "on", str(_("Enabled"))


@register.filter
def ratio(value: Decimal | None) -> str:
    """A ratio without trailing zeros or exponent: Decimal('10.000000') -> 10, Decimal('0.30') -> 0.3."""
    return f"{Decimal(value or 0).normalize():f}"
