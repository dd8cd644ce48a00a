"""Closing a task's reservation exactly once: charge on success (at the delivered price), refund on failure.

A task's ledger rows share the reference `task:<public id>`, which the request sweeper (`req:` only) never touches.
Two guards make settlement idempotent: the task row is locked while it settles and records `settled_at`, and the
ledger allows one closing row per reference, so a retried job or a second worker changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing.charges import Hold
from billing.models import LedgerEntry, LedgerReason, UsageLog, UsageStatus
from billing.pricing import quota_for_call
from relay.media_tasks.models import MediaTask, TaskKind, TaskStatus

PER_SECOND = (TaskKind.VIDEO, TaskKind.AUDIO)


@dataclass(frozen=True)
class TaskHold(Hold):
    """A task's reservation: same ledger mechanics as a request's, under its own reference prefix."""

    @property
    def ref(self) -> str:
        return f"task:{self.request_id}"


def task_hold(task: MediaTask) -> TaskHold:
    return TaskHold(request_id=task.public_id, user_id=task.user_id, token_id=task.token_id,
                    unlimited=task.unlimited, amount=task.quota_reserved)


def task_price(*, unit_price_usd: Decimal, units: Decimal, group_ratio: Decimal) -> int:
    return quota_for_call(price_usd=unit_price_usd * units, group_ratio=group_ratio)


def task_cost(task: MediaTask, delivered_seconds: Decimal | None) -> int:
    """The charge for a finished task: the reserved price, or less when fewer seconds were delivered."""
    units = task.units
    if task.kind in PER_SECOND and delivered_seconds is not None and 0 < delivered_seconds < units:
        units = delivered_seconds.quantize(Decimal("0.001"))
    cost = task_price(unit_price_usd=task.unit_price_usd, units=units, group_ratio=task.group_ratio)
    return min(cost, task.quota_reserved)


LOG_SET_BY_SETTLEMENT = {"id", "user_id", "token_id", "quota", "request_id", "created_at"}


def _log_defaults() -> dict[str, Any]:
    """Every usage log column at its default: a task has no tokens, ratios or first byte."""
    return {f.attname: f.get_default() for f in UsageLog._meta.concrete_fields
            if f.attname not in LOG_SET_BY_SETTLEMENT}


def _log(task: MediaTask, cost: int, success: bool, reason: str) -> dict[str, Any]:
    finished = task.finished_at or timezone.now()
    upstream = task.upstream
    return _log_defaults() | {
        "token_name": task.token_name, "upstream_id": task.upstream_id, "provider": upstream.type if upstream else "",
        "model": task.model, "upstream_model": task.upstream_model, "endpoint": task.endpoint[:128],
        "is_stream": False, "group_ratio": task.group_ratio, "price_per_call": task.unit_price_usd,
        "latency_ms": min(int((finished - task.submitted_at).total_seconds() * 1000), 2_147_483_647),
        "status": (UsageStatus.SUCCESS if success else UsageStatus.ERROR).value, "status_code": 200 if success else 502,
        "error": "" if success else reason[:2000], "client_ip": task.client_ip,
    }


def media_task_settle(*, task_id: int, success: bool, delivered_seconds: Decimal | None = None,
                      reason: str = "") -> bool:
    """Charge (success) or refund (failure) the task's reservation and write its usage log; False when it was
    already settled, by this or another worker."""
    from billing.charges import charge_settle

    with transaction.atomic():
        task = MediaTask.objects.select_for_update(of=("self",)).select_related("upstream").filter(pk=task_id).first()
        if task is None or task.settled_at is not None:
            return False
        now = timezone.now()
        if not task.finished:
            task.status, task.finished_at = (TaskStatus.SUCCESS if success else TaskStatus.FAILURE), now
            task.fail_reason = task.fail_reason or ("" if success else reason)
        task.finished_at = task.finished_at or now
        cost = task_cost(task, delivered_seconds) if success else 0
        closed = charge_settle(hold=task_hold(task), cost=cost, log=_log(task, cost, success, reason or task.fail_reason),
                               refund=not success)
        if not closed:  # the ledger closed it already: record what it says
            closing = LedgerEntry.objects.filter(ref=task.ref, reason__in=(LedgerReason.SETTLE, LedgerReason.REFUND))
            entry = closing.first()
            cost = task.quota_reserved - entry.amount if entry is not None else 0
        task.quota_charged, task.settled_at, task.poll_after = cost, now, None
        task.save(update_fields=["status", "finished_at", "fail_reason", "quota_charged", "settled_at", "poll_after",
                                 "updated_at"])
        return closed
