"""Task writes: open (reserve and record), mark submitted, refuse (refund at once), apply what a poll saw."""

from __future__ import annotations

import secrets
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.charges import charge_reserve
from relay.key_vault import key_fingerprint
from relay.media_tasks.adapters.base import Snapshot, Submitted
from relay.media_tasks.intake import Submission
from relay.media_tasks.models import TERMINAL, MediaTask, TaskKind, TaskStatus
from relay.media_tasks.settlement import media_task_settle, task_hold
from relay.media_tasks.storable import storable_copy
from relay.snapshots import TokenContext, UpstreamInfo


def public_id_new(kind: str) -> str:
    """Midjourney clients expect numeric ids like the proxy's own; other kinds get `task_...`."""
    if kind == TaskKind.MIDJOURNEY:
        return f"{time.time_ns() // 1_000_000}{secrets.randbelow(1_000_000):06d}"
    return f"task_{secrets.token_hex(12)}"


@transaction.atomic
def media_task_open(*, ctx: TokenContext, sub: Submission, amount: int, unit_price_usd: Decimal,
                    parent: MediaTask | None, client_ip: str | None) -> MediaTask:
    """Record the task and reserve its price in one transaction (raises `InsufficientQuota` with nothing kept)."""
    now = timezone.now()
    task = MediaTask(
        public_id=public_id_new(sub.kind), user_id=ctx.user_id, token_id=ctx.token_id, token_name=ctx.token_name,
        unlimited=ctx.unlimited, kind=sub.kind, action=sub.action, model=sub.model, endpoint=sub.endpoint,
        request=sub.stored_request(), parent=parent, unit_price_usd=unit_price_usd, units=sub.units,
        group_ratio=ctx.group_ratio, quota_reserved=amount, notify_hook=sub.notify_hook, state=sub.state,
        client_ip=client_ip, poll_after=now + timedelta(seconds=settings.TASK_POLL_SECONDS),
    )
    charge_reserve(hold=task_hold(task))
    task.save()
    return task


def _notify_due(task: MediaTask, now: Any) -> dict[str, Any]:
    return {"notify_after": now, "notify_attempts": 0, "notify_error": ""} if task.notify_hook else {}


def media_task_submitted(*, task: MediaTask, upstream: UpstreamInfo, key: str, submitted: Submitted) -> MediaTask:
    """The upstream took the task: remember its id and where to poll it."""
    now = timezone.now()
    fields = {"upstream_id": upstream.id, "key_fingerprint": key_fingerprint(key),
              "upstream_model": upstream.upstream_model(task.model), "upstream_task_id": submitted.upstream_task_id,
              "status": TaskStatus.SUBMITTED,
              "result": {"properties": storable_copy(submitted.properties)} if submitted.properties else {},
              "poll_after": None if submitted.done else now, **_notify_due(task, now)}
    MediaTask.objects.filter(pk=task.pk, settled_at=None).update(**fields, updated_at=now)
    for name, value in fields.items():
        setattr(task, name, value)
    if submitted.done is not None:  # finished in the answer: settled now
        media_task_apply(task=task, snapshot=submitted.done)
        task.refresh_from_db()
    return task


def media_task_refuse(*, task: MediaTask, reason: str) -> None:
    """No upstream took the task: it fails and its reservation is refunded now."""
    now = timezone.now()
    MediaTask.objects.filter(pk=task.pk, settled_at=None).update(
        status=TaskStatus.FAILURE, fail_reason=reason[:2000], finished_at=now, progress=100, updated_at=now)
    media_task_settle(task_id=task.pk, success=False, reason=reason)
    task.refresh_from_db()


def media_task_apply(*, task: MediaTask, snapshot: Snapshot) -> bool:
    """Record a polled state; settle once it is terminal. True when the status changed."""
    now = timezone.now()
    status = snapshot.status
    changed = status != task.status
    fields: dict[str, Any] = {"status": status, "progress": max(snapshot.progress, 0 if changed else task.progress),
                              "poll_failures": 0}
    if snapshot.result:  # the upstream's words, kept as PostgreSQL can keep them
        fields["result"] = {**(task.result or {}), **storable_copy(snapshot.result)}
    if snapshot.result_url:
        fields["result_url"] = storable_copy(snapshot.result_url)
    if status == TaskStatus.FAILURE:
        fields["fail_reason"] = storable_copy(snapshot.fail_reason or "The upstream reported a failure.")[:2000]
    if status in (TaskStatus.IN_PROGRESS, *TERMINAL) and task.started_at is None:
        fields["started_at"] = now
    if status in TERMINAL:
        fields["finished_at"], fields["progress"] = now, 100
    if changed:
        fields.update(_notify_due(task, now))
    MediaTask.objects.filter(pk=task.pk, settled_at=None).update(**fields, updated_at=now)
    if status in TERMINAL:
        media_task_settle(task_id=task.pk, success=status == TaskStatus.SUCCESS,
                          delivered_seconds=snapshot.seconds, reason=fields.get("fail_reason", ""))
    return changed


def media_task_expire(*, task: MediaTask, reason: str) -> None:
    """A task that ran past its kind's timeout (or never reached an upstream) fails and is refunded."""
    now = timezone.now()
    MediaTask.objects.filter(pk=task.pk, settled_at=None).update(
        status=TaskStatus.FAILURE, fail_reason=reason[:2000], finished_at=now, progress=100, updated_at=now,
        **_notify_due(task, now))
    media_task_settle(task_id=task.pk, success=False, reason=reason)
