"""Usage log retention: sum logs into hourly rows, delete logs past LOG_RETENTION_DAYS in small batches, and read
usage from both so totals survive the deletion.

Logs are summed by id: `UsageRollup.last_log_id` says every log up to that id is in UsageHourly. A reader adds the
hourly sums to the logs above the mark, in one statement (one snapshot), so a rollup running meanwhile is never
counted twice. Pruning deletes only summed logs, a batch per statement, so no long lock is taken.
"""

from __future__ import annotations

import datetime as dt
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Max, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncDate, TruncHour
from django.utils import timezone

from billing.models import UsageHourly, UsageLog, UsageRollup

ROLLUP_LAG = timedelta(minutes=5)  # logs younger than this may still be committing; they wait for the next run
ROLLUP_MAX_ROWS = 500_000
KEY = ("hour", "user_id", "token_id", "model", "upstream_id", "provider")


def _mark_locked() -> UsageRollup:
    UsageRollup.objects.get_or_create(pk=1)
    return UsageRollup.objects.select_for_update().get(pk=1)


@transaction.atomic
def usage_rollup(*, now: dt.datetime | None = None) -> int:
    """Add the logs written since the last run (older than ROLLUP_LAG) to the hourly sums; returns the new mark."""
    now = now or timezone.now()
    mark = _mark_locked()
    pending = UsageLog.objects.filter(id__gt=mark.last_log_id, created_at__lt=now - ROLLUP_LAG).order_by("id")
    upper = pending.values_list("id", flat=True)[ROLLUP_MAX_ROWS - 1:ROLLUP_MAX_ROWS].first() \
        or pending.aggregate(top=Max("id"))["top"]
    if upper is None:
        return mark.last_log_id
    sums = (
        UsageLog.objects.filter(id__gt=mark.last_log_id, id__lte=upper).order_by()
        .annotate(hour=TruncHour("created_at", tzinfo=dt.UTC), token_key=Coalesce("token_id", Value(0)),
                  upstream_key=Coalesce("upstream_id", Value(0)))
        .values("hour", "user_id", "token_key", "model", "upstream_key", "provider")
        .annotate(requests=Count("id"), prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"),
                  quota_sum=Sum("quota"), token_name=Max("token_name"))
    )
    fresh = {(r["hour"], r["user_id"], r["token_key"], r["model"], r["upstream_key"], r["provider"]): r for r in sums}
    hours = {key[0] for key in fresh}
    existing = {tuple(getattr(row, f) for f in KEY): row
                for row in UsageHourly.objects.filter(hour__in=hours, user_id__in={key[1] for key in fresh})}
    created, updated = [], []
    for key, r in fresh.items():
        row = existing.get(key)
        if row is None:
            row = UsageHourly(**dict(zip(KEY, key)), token_name=r["token_name"] or "")
            created.append(row)
        else:
            updated.append(row)
        row.requests += r["requests"]
        row.prompt_tokens += r["prompt"] or 0
        row.completion_tokens += r["completion"] or 0
        row.quota += r["quota_sum"] or 0
    UsageHourly.objects.bulk_create(created, batch_size=1000)
    UsageHourly.objects.bulk_update(updated, ["requests", "prompt_tokens", "completion_tokens", "quota"],
                                    batch_size=1000)
    mark.last_log_id = upper
    mark.save(update_fields=["last_log_id", "updated_at"])
    return upper


def usage_logs_prune(*, retention_days: int, now: dt.datetime | None = None, batch: int | None = None,
                     max_batches: int = 200) -> int:
    """Sum what is new, then delete summed logs older than `retention_days`, `batch` rows per statement (each its
    own short transaction); returns how many were deleted."""
    now = now or timezone.now()
    summed = usage_rollup(now=now)
    cutoff = now - timedelta(days=retention_days)
    batch = batch or settings.LOG_PRUNE_BATCH
    deleted = 0
    for _ in range(max_batches):
        ids = list(UsageLog.objects.filter(created_at__lt=cutoff, id__lte=summed).order_by("id")
                   .values_list("id", flat=True)[:batch])
        if not ids:
            break
        deleted += UsageLog.objects.filter(id__in=ids).delete()[0]
    return deleted


def usage_totals(*, user_id: int | None, since: dt.datetime, until: dt.datetime, provider: str = "",
                 by: str = "provider") -> list[dict]:
    """Tokens, quota and requests in [since, until) grouped by `by` ("provider", "model", "user_id", or "day": local
    days), one user's or (`user_id` None) everyone's, from the hourly sums plus the logs not summed yet. Sums are per
    whole hour, so bounds should fall on one."""
    mark = Subquery(UsageRollup.objects.filter(pk=1).values("last_log_id")[:1])
    logs = UsageLog.objects.filter(created_at__gte=since, created_at__lt=until).filter(id__gt=Coalesce(mark, Value(0)))
    hourly = UsageHourly.objects.filter(hour__gte=since, hour__lt=until)
    if user_id is not None:
        logs, hourly = logs.filter(user_id=user_id), hourly.filter(user_id=user_id)
    if provider:
        logs, hourly = logs.filter(provider=provider), hourly.filter(provider=provider)
    local = timezone.get_current_timezone()
    detail = logs.order_by().annotate(key=TruncDate("created_at", tzinfo=local) if by == "day" else F(by)) \
        .values("key").annotate(tokens=Coalesce(Sum("prompt_tokens"), 0) + Coalesce(Sum("completion_tokens"), 0),
                                quota_sum=Coalesce(Sum("quota"), 0), request_count=Count("id"))
    summed = hourly.order_by().annotate(key=TruncDate("hour", tzinfo=local) if by == "day" else F(by)) \
        .values("key").annotate(tokens=Coalesce(Sum("prompt_tokens"), 0) + Coalesce(Sum("completion_tokens"), 0),
                                quota_sum=Coalesce(Sum("quota"), 0), request_count=Coalesce(Sum("requests"), 0))
    totals: dict = {}
    for row in detail.union(summed, all=True):
        entry = totals.setdefault(row["key"], {by: row["key"], "tokens": 0, "quota": 0, "requests": 0})
        entry["tokens"] += row["tokens"]
        entry["quota"] += row["quota_sum"]
        entry["requests"] += row["request_count"]
    return [totals[k] for k in sorted(totals)]
