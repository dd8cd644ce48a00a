"""How the console shows quota: as USD (500,000 quota = 1 USD) and, when configured, in a local currency."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings

from billing.pricing import quota_to_usd

SYMBOLS = {"USD": "$", "CNY": "¥", "RMB": "¥", "EUR": "€", "GBP": "£", "JPY": "¥", "HKD": "HK$"}


def usd_text(amount: Decimal) -> str:
    """`$1.00`, `$0.05`, `$0.000123`: at least two decimals, up to six, nothing rounded away."""
    amount = Decimal(amount).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
    text = f"{abs(amount):,f}".rstrip("0")
    whole, _dot, frac = text.partition(".")
    sign = "-" if amount < 0 else ""
    return f"{sign}${whole}.{frac.ljust(2, '0')}"


def quota_usd_text(quota: int) -> str:
    """Quota as USD text: 500,000 -> `$1.00`."""
    return usd_text(quota_to_usd(int(quota or 0)))


def local_currency_text(quota: int) -> str:
    """The quota in DISPLAY_CURRENCY at USD_EXCHANGE_RATE (two decimals); empty when that currency is USD."""
    code = (settings.DISPLAY_CURRENCY or "USD").upper()
    if code == "USD":
        return ""
    value = (quota_to_usd(int(quota or 0)) * Decimal(settings.USD_EXCHANGE_RATE)).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP)
    symbol = SYMBOLS.get(code, code + " ")
    return f"{'-' if value < 0 else ''}{symbol}{abs(value):,f}"


def usd_to_quota(amount: Decimal) -> int:
    """A USD amount entered by a user, as whole quota (rounded half up)."""
    return int((Decimal(amount) * settings.QUOTA_PER_USD).to_integral_value(rounding=ROUND_HALF_UP))
