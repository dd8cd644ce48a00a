"""Charging usage as it happens, for sessions that bill many responses against one standing reservation.

A realtime session holds a reservation (see `billing.charges`) for its whole life and pays for each response the
moment its usage is known: one CHARGE row per response, with its own reference, the counters and the usage log in
the same transaction. The charge may take the balance below zero, because the response has already been served;
the caller keeps that to a bound by checking `funds_of` before it lets another response start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing.ledger import ledger_apply
from billing.models import LedgerReason, UsageLog
from tokens.models import ApiToken


@dataclass(frozen=True)
class Funds:
    """What a user and their token have left; `token_remain` is None for a token without its own limit."""

    balance: int
    token_remain: int | None

    def covers(self, amount: int) -> bool:
        return self.balance >= amount and (self.token_remain is None or self.token_remain >= amount)


def funds_of(*, user_id: int, token_id: int | None, unlimited: bool) -> Funds:
    """The user's balance and the token's remaining quota (None when the token is unlimited)."""
    balance = get_user_model().objects.filter(pk=user_id).values_list("quota", flat=True).first() or 0
    remain = None
    if token_id is not None and not unlimited:
        remain = ApiToken.objects.filter(pk=token_id).values_list("remain_quota", flat=True).first() or 0
    return Funds(balance=balance, token_remain=remain)


@transaction.atomic
def usage_charge(*, user_id: int, token_id: int | None, unlimited: bool, cost: int, ref: str, request_id: str,
                 log: dict[str, Any]) -> Funds:
    """Debit `cost` for usage already served (below zero if need be), count it and write its usage log.

    `ref` names the ledger row (`rt:<session>:<n>`), `request_id` the usage log row; a zero cost writes no ledger
    row. Returns the funds left afterwards.
    """
    if not isinstance(cost, int) or isinstance(cost, bool) or cost < 0:
        raise ValueError("a usage charge is a non-negative integer quota")
    # Rows are locked in the order reservations and settlements lock them (token, then user): another order
    # deadlocks against them when one key is used by several sessions or requests at once.
    if token_id is not None:
        token_fields: dict[str, Any] = {"used_quota": F("used_quota") + cost, "last_used_at": timezone.now()}
        if not unlimited:
            token_fields["remain_quota"] = F("remain_quota") - cost
        ApiToken.objects.filter(pk=token_id).update(**token_fields)
    if cost:
        ledger_apply(user_id=user_id, amount=-cost, reason=LedgerReason.CHARGE, ref=ref, token_id=token_id,
                     allow_negative=True)
    get_user_model().objects.filter(pk=user_id).update(used_quota=F("used_quota") + cost,
                                                       request_count=F("request_count") + 1)
    UsageLog.objects.create(user_id=user_id, token_id=token_id, quota=cost, request_id=request_id, **log)
    return funds_of(user_id=user_id, token_id=token_id, unlimited=unlimited)
