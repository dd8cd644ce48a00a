"""Stripe Checkout for online top-ups: a hosted payment page per order, and Stripe's signed webhook back.

The session is created with Stripe's REST API (form-encoded, the secret key as a bearer token); the webhook is
checked as Stripe documents: `Stripe-Signature: t=<unix time>,v1=<HMAC-SHA256 of "t.payload" with the endpoint
secret>`, at most five minutes old. Amounts are in the currency's smallest unit, as Stripe counts it: yen and
the other zero-decimal currencies whole, the three-decimal dinars in thousandths, the rest in cents.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from django.conf import settings

SIGNATURE_TOLERANCE_SECONDS = 300
PAID_EVENTS = frozenset({"checkout.session.completed", "checkout.session.async_payment_succeeded"})


# Stripe's lists of zero-decimal and three-decimal currencies ("Supported currencies", "Minor units")
ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
                          "xaf", "xof", "xpf"})
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})


def currency_unit(currency: str) -> Decimal:
    """The smallest amount of `currency` Stripe charges: 1 (yen), 0.001 (dinars) or 0.01; prices are rounded to it
    (dinars to 0.01: Stripe wants their last digit zero)."""
    code = currency.lower()
    return Decimal(1) if code in ZERO_DECIMAL else Decimal("0.01")


def minor_units(money: Decimal, currency: str) -> int:
    """`money` in the units Stripe's `amount` fields count."""
    code = currency.lower()
    scale = 1 if code in ZERO_DECIMAL else 1000 if code in THREE_DECIMAL else 100
    return int(money * scale)


def from_minor_units(amount: int, currency: str) -> Decimal:
    code = currency.lower()
    scale = 1 if code in ZERO_DECIMAL else 1000 if code in THREE_DECIMAL else 100
    return Decimal(amount) / scale


class StripeError(Exception):
    """Stripe refused or could not be reached; the message is safe to show."""


@dataclass(frozen=True)
class StripePayment:
    trade_no: str
    money: Decimal
    currency: str
    session_id: str


def stripe_enabled() -> bool:
    return bool(settings.STRIPE_SECRET_KEY and settings.STRIPE_WEBHOOK_SECRET)


def stripe_checkout_url(*, trade_no: str, name: str, money: Decimal, success_url: str, cancel_url: str) -> str:
    """A Checkout Session for one order; the URL of its payment page."""
    form = {
        "mode": "payment", "success_url": success_url, "cancel_url": cancel_url, "client_reference_id": trade_no,
        "metadata[trade_no]": trade_no, "line_items[0][quantity]": "1",
        "line_items[0][price_data][currency]": settings.STRIPE_CURRENCY.lower(),
        "line_items[0][price_data][unit_amount]": str(minor_units(money, settings.STRIPE_CURRENCY)),
        "line_items[0][price_data][product_data][name]": name,
    }
    try:
        response = httpx.post(f"{settings.STRIPE_API_URL.rstrip('/')}/v1/checkout/sessions", data=form, timeout=20,
                              headers={"authorization": f"Bearer {settings.STRIPE_SECRET_KEY}"}, trust_env=False)
        data = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise StripeError(f"Stripe could not be reached: {type(exc).__name__}") from None
    if response.status_code != 200 or not isinstance(data, dict) or not data.get("url"):
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else f"HTTP {response.status_code}"
        raise StripeError(f"Stripe refused the payment: {message}")
    return str(data["url"])


def _signature_valid(payload: bytes, header: str, now: float) -> bool:
    parts = [item.split("=", 1) for item in header.split(",") if "=" in item]
    stamps = [value for name, value in parts if name.strip() == "t"]
    signatures = [value.strip() for name, value in parts if name.strip() == "v1"]
    if not stamps or not stamps[0].strip().isdigit() or abs(now - int(stamps[0])) > SIGNATURE_TOLERANCE_SECONDS:
        return False
    signed = stamps[0].strip().encode() + b"." + payload
    expected = hmac.new(settings.STRIPE_WEBHOOK_SECRET.encode(), signed, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)


def stripe_payment(payload: bytes, signature_header: str, now: float | None = None) -> StripePayment | None:
    """The paid order a webhook reports; None for the other events. Raises StripeError for an unsigned or forged
    request, or one older than five minutes."""
    if not stripe_enabled() or not _signature_valid(payload, signature_header, time.time() if now is None else now):
        raise StripeError("The Stripe signature does not check out.")
    try:
        event = json.loads(payload)
    except ValueError:
        raise StripeError("The event is not JSON.") from None
    session: Any = ((event.get("data") or {}).get("object") or {}) if isinstance(event, dict) else {}
    if event.get("type") not in PAID_EVENTS or session.get("payment_status") != "paid":
        return None
    trade_no = session.get("client_reference_id") or (session.get("metadata") or {}).get("trade_no") or ""
    amount = session.get("amount_total")
    if not trade_no or not isinstance(amount, int):
        raise StripeError("The event names no order or amount.")
    currency = str(session.get("currency") or "").lower()  # checked against the site's by the caller
    return StripePayment(str(trade_no), from_minor_units(amount, currency), currency, str(session.get("id") or ""))
