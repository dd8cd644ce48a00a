"""Billing reports for one user: spend by day and by model, totals of a log filter, recent balance credits.

Days are local days (TIME_ZONE), the same boundary the daily check-in uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.contrib.auth import get_user_model
from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.models import LedgerEntry, LedgerReason, UsageLog
from billing.retention import usage_totals

# Balance changes a user makes or receives themselves, as opposed to the per-request reserve/settle rows.
CREDIT_REASONS = (LedgerReason.SIGNUP, LedgerReason.CHECKIN, LedgerReason.REDEEM, LedgerReason.TOPUP,
                  LedgerReason.INVITE, LedgerReason.ADMIN_ADJUST)


@dataclass(frozen=True)
class Spend:
    quota: int
    requests: int


@dataclass(frozen=True)
class DaySpend:
    day: date
    quota: int
    requests: int


@dataclass(frozen=True)
class ModelSpend:
    model: str
    quota: int
    requests: int


@dataclass(frozen=True)
class LogTotals:
    requests: int
    prompt_tokens: int
    completion_tokens: int
    quota: int


def local_day_start(day: date) -> datetime:
    """The first instant of a local day, as an aware datetime."""
    return timezone.make_aware(datetime.combine(day, time.min))


def _spend(qs: QuerySet[UsageLog]) -> Spend:
    row = qs.aggregate(quota=Coalesce(Sum("quota"), 0), requests=Count("id"))
    return Spend(quota=row["quota"], requests=row["requests"])


def spend_since(*, user_id: int | None, since: datetime) -> Spend:
    """Quota charged and requests made since `since`, by one user or (None) by everyone."""
    logs = UsageLog.objects.filter(created_at__gte=since)
    return _spend(logs.filter(user_id=user_id) if user_id is not None else logs)


def spend_today(*, user_id: int | None, today: date | None = None) -> Spend:
    """Quota charged and requests made since the start of the local day."""
    today = today or timezone.localdate()
    return spend_since(user_id=user_id, since=local_day_start(today))


def spend_this_month(*, user_id: int | None, today: date | None = None) -> Spend:
    """Quota charged and requests made since the first of the local month."""
    today = today or timezone.localdate()
    return spend_since(user_id=user_id, since=local_day_start(today.replace(day=1)))


def spend_by_day(*, user_id: int | None, days: int = 30, today: date | None = None) -> list[DaySpend]:
    """One point per local day for the last `days` days (today included), days without requests as zero; from the
    hourly sums plus the logs not summed yet, so the chart outlives log retention."""
    today = today or timezone.localdate()
    first = today - timedelta(days=days - 1)
    rows = usage_totals(user_id=user_id, since=local_day_start(first),
                        until=local_day_start(today + timedelta(days=1)), by="day")
    by_day = {row["day"]: row for row in rows}
    points = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = by_day.get(day)
        points.append(DaySpend(day=day, quota=row["quota"] if row else 0, requests=row["requests"] if row else 0))
    return points


def spend_by_model(*, user_id: int | None, since: datetime,
                   limit: int = 8) -> tuple[list[ModelSpend], ModelSpend | None]:
    """The `limit` models that cost most since `since` (from the start of its hour), and the rest summed as one
    entry (None when no rest). Read from the hourly sums plus the logs not summed yet, so it outlives log retention."""
    hour = since.replace(minute=0, second=0, microsecond=0)
    rows = sorted(usage_totals(user_id=user_id, since=hour, until=timezone.now() + timedelta(hours=1), by="model"),
                  key=lambda r: (-r["quota"], -r["requests"], r["model"]))
    top = [ModelSpend(model=r["model"], quota=r["quota"], requests=r["requests"]) for r in rows[:limit]]
    rest = rows[limit:]
    if not rest:
        return top, None
    return top, ModelSpend(model="", quota=sum(r["quota"] for r in rest), requests=sum(r["requests"] for r in rest))


def log_totals(logs: QuerySet[UsageLog]) -> LogTotals:
    """Requests, tokens and quota over a filtered log queryset (see `billing.selectors.usage_logs`)."""
    row = logs.order_by().aggregate(
        requests=Count("id"), prompt=Coalesce(Sum("prompt_tokens"), 0),
        completion=Coalesce(Sum("completion_tokens"), 0), quota=Coalesce(Sum("quota"), 0),
    )
    return LogTotals(requests=row["requests"], prompt_tokens=row["prompt"], completion_tokens=row["completion"],
                     quota=row["quota"])


def log_facets(*, user_id: int) -> tuple[list[str], list[str]]:
    """The model names and key names that occur in a user's logs, for filter menus."""
    logs = UsageLog.objects.filter(user_id=user_id).order_by()
    models = sorted(set(logs.values_list("model", flat=True).distinct()))
    tokens = sorted(set(logs.exclude(token_name="").values_list("token_name", flat=True).distinct()))
    return models, tokens


def credits_recent(*, user_id: int, limit: int = 10) -> list[LedgerEntry]:
    """The user's latest balance credits and adjustments (trial, check-in, card keys, top-ups, operator)."""
    return list(LedgerEntry.objects.filter(user_id=user_id, reason__in=CREDIT_REASONS).order_by("-id")[:limit])


def trial_credit(*, user_id: int) -> int:
    """The trial quota credited when the user registered (0 when there was none)."""
    row = LedgerEntry.objects.filter(user_id=user_id, reason=LedgerReason.SIGNUP).aggregate(total=Sum("amount"))
    return row["total"] or 0


@dataclass(frozen=True)
class Invitations:
    count: int  # accounts that signed up with the user's invite code
    earned: int  # quota the user was credited for them


def invitations(*, user_id: int) -> Invitations:
    """How many accounts the user invited, and what the invitations earned them."""
    earned = LedgerEntry.objects.filter(user_id=user_id, reason=LedgerReason.INVITE, ref__startswith="invited:")
    return Invitations(count=get_user_model().objects.filter(invited_by_id=user_id).count(),
                       earned=earned.aggregate(total=Sum("amount"))["total"] or 0)
