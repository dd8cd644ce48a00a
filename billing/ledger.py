"""The quota ledger: the only way a user's balance changes, one row per change."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Sum
from django.utils.translation import gettext as _

from billing.models import LedgerEntry, LedgerReason
from config.errors import ServiceError


class InsufficientQuota(ServiceError):
    status = 403
    code = "insufficient_quota"


def _balance_add(*, user_id: int, amount: int, floor: int | None) -> int | None:
    """Add `amount` to the balance in one statement; refuse (None) if it would end below `floor`."""
    table = connection.ops.quote_name(get_user_model()._meta.db_table)
    sql = f"UPDATE {table} SET quota = quota + %s WHERE id = %s"
    params: list[int] = [amount, user_id]
    if floor is not None:
        sql += " AND quota + %s >= %s"
        params += [amount, floor]
    with connection.cursor() as cursor:
        cursor.execute(sql + " RETURNING quota", params)
        row = cursor.fetchone()
    return None if row is None else row[0]


@transaction.atomic
def ledger_apply(
    *,
    user_id: int,
    amount: int,
    reason: LedgerReason | str,
    ref: str = "",
    note: str = "",
    token_id: int | None = None,
    allow_negative: bool = False,
) -> LedgerEntry:
    """Change a balance by `amount` (signed) and record it. Debits never go below zero unless allowed."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError("ledger amounts are integer quota")
    floor = None if allow_negative or amount >= 0 else 0
    balance = _balance_add(user_id=user_id, amount=amount, floor=floor)
    if balance is None:
        if not get_user_model().objects.filter(pk=user_id).exists():
            raise ServiceError(_("Unknown user."), status=404, code="not_found")
        raise InsufficientQuota(_("Insufficient balance."))
    return LedgerEntry.objects.create(
        user_id=user_id, token_id=token_id, amount=amount, reason=reason, balance_after=balance, ref=ref, note=note
    )


def ledger_credit(*, user_id: int, amount: int, reason: LedgerReason | str, ref: str = "", note: str = "") -> LedgerEntry:
    if amount <= 0:
        raise ServiceError(_("A credit must be a positive amount."))
    return ledger_apply(user_id=user_id, amount=amount, reason=reason, ref=ref, note=note)


def ledger_sum(*, user_id: int) -> int:
    """The sum of a user's ledger; it always equals their balance."""
    return LedgerEntry.objects.filter(user_id=user_id).aggregate(total=Sum("amount"))["total"] or 0
