"""Charging a relayed request: reserve the worst case, then settle to the real cost or refund, exactly once.

A request's ledger rows share the reference `req:<request id>`: one RESERVE row, then one closing row (SETTLE or
REFUND). A partial unique index allows only one closing row per reference, so a second settlement of the same
request (a retry, a second worker, the sweeper) fails and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone
from django.utils.translation import gettext as _

from billing import charges_sql
from billing.ledger import InsufficientQuota, ledger_apply
from billing.models import LedgerEntry, LedgerReason, UsageLog
from tokens.models import ApiToken

CLOSING = (LedgerReason.SETTLE, LedgerReason.REFUND)


@dataclass(frozen=True)
class Hold:
    """A reservation in force for one request."""

    request_id: str
    user_id: int
    token_id: int | None
    unlimited: bool
    amount: int

    @property
    def ref(self) -> str:
        return f"req:{self.request_id}"


def _one_statement() -> bool:
    """PostgreSQL takes each charge as one statement (billing.charges_sql); elsewhere the ORM does it."""
    return ONE_STATEMENT and connection.vendor == "postgresql"


ONE_STATEMENT = True  # tests switch it off to run the same checks against the ORM versions on PostgreSQL


@transaction.atomic
def charge_reserve(*, hold: Hold) -> None:
    """Take the worst-case cost from the balance and from the token's own quota, or refuse with nothing taken."""
    if _one_statement():
        short = charges_sql.reserve(user_id=hold.user_id, token_id=hold.token_id,
                                    limited=hold.token_id is not None and not hold.unlimited, amount=hold.amount,
                                    ref=hold.ref)
        if short == "token":
            raise InsufficientQuota(_("This API key's quota is used up."), code="token_quota_exhausted")
        if short:  # raising undoes the key's part, taken in the same statement
            raise InsufficientQuota(_("Your balance is too low for this request; please top up."))
        return
    if hold.token_id is not None and not hold.unlimited:
        taken = ApiToken.objects.filter(pk=hold.token_id, remain_quota__gte=hold.amount).update(
            remain_quota=F("remain_quota") - hold.amount
        )
        if taken != 1:
            raise InsufficientQuota(_("This API key's quota is used up."), code="token_quota_exhausted")
    try:
        ledger_apply(user_id=hold.user_id, amount=-hold.amount, reason=LedgerReason.RESERVE, ref=hold.ref,
                     token_id=hold.token_id)
    except InsufficientQuota:
        raise InsufficientQuota(_("Your balance is too low for this request; please top up.")) from None


def charge_settle(*, hold: Hold, cost: int, log: dict[str, Any] | None, refund: bool = False) -> bool:
    """Close the reservation at `cost` (0 and REFUND when the call failed) and write the usage log. False if it
    was already closed."""
    reason = LedgerReason.REFUND if refund else LedgerReason.SETTLE
    if _one_statement():
        try:
            with transaction.atomic():
                charges_sql.settle(user_id=hold.user_id, token_id=hold.token_id, unlimited=hold.unlimited,
                                   amount=hold.amount, cost=cost, reason=str(reason), ref=hold.ref,
                                   request_id=hold.request_id, log=log)
        except IntegrityError as exc:
            return _already_closed(exc)
        return True
    try:
        with transaction.atomic():
            # Rows are locked in the order charge_reserve locks them (token, then user): the opposite order
            # deadlocks when reservations and settlements of one key run at once.
            if hold.token_id is not None:
                token_fields: dict[str, Any] = {"used_quota": F("used_quota") + cost, "last_used_at": timezone.now()}
                if not hold.unlimited:
                    token_fields["remain_quota"] = F("remain_quota") + (hold.amount - cost)
                ApiToken.objects.filter(pk=hold.token_id).update(**token_fields)
            token_id = _still_there(ApiToken, hold.token_id)
            ledger_apply(user_id=hold.user_id, amount=hold.amount - cost, reason=reason, ref=hold.ref,
                         token_id=token_id, allow_negative=True)
            user_model = get_user_model()
            counts = {"used_quota": F("used_quota") + cost}
            if not refund:
                counts["request_count"] = F("request_count") + 1
            user_model.objects.filter(pk=hold.user_id).update(**counts)
            if log is not None:
                UsageLog.objects.create(user_id=hold.user_id, token_id=token_id,
                                        quota=cost, request_id=hold.request_id,
                                        **{**log, "upstream_id": _still_there(UsageLog.upstream.field.related_model,
                                                                            log.get("upstream_id"))})
    except IntegrityError as exc:
        return _already_closed(exc)
    return True


def _still_there(model: type, pk: int | None) -> int | None:
    """A key or upstream deleted while its request ran is logged as gone (the log's SET_NULL), not as an error that
    would roll the charge back."""
    if pk is None or not model.objects.filter(pk=pk).exists():
        return None
    return pk


def _already_closed(exc: IntegrityError) -> bool:
    """False for the one expected violation (a second closing row for the reference); anything else is a bug and
    is raised, so the reservation stays open for the sweep rather than being taken as settled."""
    cause = exc.__cause__
    constraint = getattr(getattr(cause, "diag", None), "constraint_name", None)
    if constraint == "ledger_one_closing_row" or (constraint is None and "billing_ledgerentry.ref" in str(exc)):
        return False
    raise exc


def reservations_open(*, older_than: timedelta) -> list[LedgerEntry]:
    """Requests' RESERVE rows with no closing row, older than `older_than` (their worker stopped before settling).
    Only `req:` references: generation tasks (`task:`) run for minutes and are settled by their own poller."""
    closed = LedgerEntry.objects.filter(ref=OuterRef("ref"), reason__in=CLOSING)
    return list(
        LedgerEntry.objects.filter(reason=LedgerReason.RESERVE, ref__startswith="req:",
                                   created_at__lt=timezone.now() - older_than)
        .filter(~Exists(closed)).select_related("token")[:500]
    )


def reservations_sweep(*, older_than: timedelta) -> int:
    """Refund reservations whose request never settled; returns how many were closed here."""
    closed = 0
    for entry in reservations_open(older_than=older_than):
        token = entry.token
        hold = Hold(request_id=entry.ref.removeprefix("req:"), user_id=entry.user_id, token_id=entry.token_id,
                    unlimited=bool(token and token.unlimited_quota), amount=-entry.amount)
        closed += charge_settle(hold=hold, cost=0, log=None, refund=True)
    return closed
