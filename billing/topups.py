"""Online top-ups: an order per payment, credited to the balance exactly once when the gateway confirms it."""

from __future__ import annotations

import secrets
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.epay import epay_enabled
from billing.ledger import ledger_credit
from billing.models import LedgerReason, TopUpOrder, TopUpStatus
from billing.stripe import currency_unit, stripe_enabled
from config.errors import ServiceError
from config.options import option

CENT = Decimal("0.01")


class TopUpError(ServiceError):
    code = "topup_failed"


STRIPE = "stripe"


def payment_methods() -> list[str]:
    """The ways to pay this site offers: the Epay gateway's payment types, and Stripe's card payments."""
    return [*(option("TOPUP_METHODS") if epay_enabled() else []), *([STRIPE] if stripe_enabled() else [])]


def topup_price(amount_usd: int, method: str = "") -> Decimal:
    """What `amount_usd` dollars of quota cost with `method`, in its gateway's currency, to the cent (to the whole
    unit in a currency without cents, such as yen)."""
    if method == STRIPE:
        price, unit = settings.STRIPE_PRICE, currency_unit(settings.STRIPE_CURRENCY)
    else:
        price, unit = option("TOPUP_PRICE"), CENT
    return (Decimal(amount_usd) * price).quantize(unit, rounding=ROUND_HALF_UP)


def topup_currency(method: str) -> str:
    return settings.STRIPE_CURRENCY.upper() if method == STRIPE else option("TOPUP_CURRENCY")


def topup_order_create(*, user_id: int, amount_usd: int, method: str) -> TopUpOrder:
    """A pending order for `amount_usd` whole dollars of quota, paid with `method` (one of `payment_methods()`)."""
    methods = payment_methods()
    if not methods:
        raise TopUpError(_("Online top-up is not available on this site."), status=404, code="not_found")
    if method not in methods:
        raise TopUpError(_("Unknown payment method: %(method)s") % {"method": method})
    low, high = option("TOPUP_MIN_USD"), option("TOPUP_MAX_USD")
    if not low <= amount_usd <= high:
        raise TopUpError(_("The amount must be between %(min)d and %(max)d US dollars.") % {"min": low, "max": high})
    trade_no = f"MG{timezone.now():%Y%m%d%H%M%S}{secrets.token_hex(6).upper()}"
    return TopUpOrder.objects.create(
        trade_no=trade_no, user_id=user_id, method=method, amount_usd=Decimal(amount_usd),
        money=topup_price(amount_usd, method), quota=amount_usd * settings.QUOTA_PER_USD,
    )


@transaction.atomic
def topup_order_complete(*, trade_no: str, gateway_trade_no: str = "", money: Decimal | None = None) -> bool:
    """Mark an order paid and credit its quota: once, however many confirmations arrive, and concurrently too.
    `money` is what the gateway says was paid; an order whose price differs is refused. True when this call
    credited the order, False when an earlier one had."""
    order = TopUpOrder.objects.filter(trade_no=trade_no).first()
    if order is None:
        raise TopUpError(_("Unknown order."), status=404, code="not_found")
    if money is not None and money != order.money:
        raise TopUpError(_("The amount paid does not match the order."))
    claimed = TopUpOrder.objects.filter(pk=order.pk, status=TopUpStatus.PENDING).update(
        status=TopUpStatus.PAID, paid_at=timezone.now(), gateway_trade_no=gateway_trade_no[:64])
    if claimed:
        ledger_credit(user_id=order.user_id, amount=order.quota, reason=LedgerReason.TOPUP, ref=f"topup:{trade_no}")
    return bool(claimed)
