"""The beat job: poll unfinished tasks in batches per upstream, record what changed, settle the finished ones,
expire the ones past their kind's timeout, then deliver due callbacks.

Rows are claimed in a short transaction (`skip_locked`, then `poll_after` pushed ahead), so overlapping runs or
several workers poll disjoint tasks; no lock is held while upstreams are asked. A claim lapses after
TASK_POLL_SECONDS, so a slow upstream can leave two workers holding one task: settlement is once per task anyway.

A task whose final status is recorded but not settled (its worker died in between) is polled again like any other;
past its timeout it is settled as recorded, not expired: a success the upstream reported is charged.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from relay.media_tasks.adapters import adapter_for
from relay.media_tasks.adapters.base import Snapshot, TaskRef
from relay.media_tasks.models import MediaTask, TaskStatus
from relay.media_tasks.notify import media_task_notifications_deliver
from relay.media_tasks.services import media_task_apply, media_task_expire
from relay.media_tasks.settlement import media_task_settle
from relay.media_tasks.upstreams import key_for, upstream_info
from relay.snapshots import UpstreamInfo
from relay.upstream_client import upstream_client

logger = logging.getLogger("relay.tasks")
T = TypeVar("T")
SUBMIT_GRACE = timedelta(minutes=10)  # a task still without an upstream id after this never reached one


def _claim(batch: int) -> list[MediaTask]:
    now = timezone.now()
    with transaction.atomic():
        tasks = list(MediaTask.objects.select_for_update(skip_locked=True, of=("self",)).select_related("upstream")
                     .filter(settled_at=None).filter(Q(poll_after=None) | Q(poll_after__lte=now))
                     .order_by("poll_after", "pk")[:batch])
        MediaTask.objects.filter(pk__in=[t.pk for t in tasks]).update(
            poll_after=now + timedelta(seconds=settings.TASK_POLL_SECONDS))
    return tasks


def _timeout_minutes(task: MediaTask) -> int:
    return settings.TASK_TIMEOUT_MINUTES.get(task.kind, 60)


async def _fetch_all(jobs: list[tuple[UpstreamInfo, str, list[MediaTask]]]) -> dict[int, Snapshot]:
    found: dict[int, Snapshot] = {}
    async with upstream_client() as client:
        async def one(info: UpstreamInfo, key: str, tasks: list[MediaTask]) -> None:
            adapter = adapter_for(info, tasks[0].kind)
            if adapter is None:
                return
            refs = [TaskRef(upstream_task_id=t.upstream_task_id, kind=t.kind, action=t.action,
                            operation=t.action.lower(), model=t.upstream_model,
                            request=t.request or {}, submitted_ts=t.submitted_at.timestamp()) for t in tasks]
            try:
                snapshots = await adapter.fetch(client, info, key, refs)
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                logger.warning("polling %s tasks at upstream %s failed: %s", len(tasks), info.name, exc)
                return
            except Exception:  # one upstream's surprise must not stop the others' polling
                logger.exception("polling %s tasks at upstream %s failed", len(tasks), info.name)
                return
            for task in tasks:
                if task.upstream_task_id in snapshots:
                    found[task.pk] = snapshots[task.upstream_task_id]

        await asyncio.gather(*(one(*job) for job in jobs))
    return found


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run the upstream calls to completion; on a thread of its own when this one already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def media_tasks_poll(*, batch: int | None = None) -> int:
    """One polling round; returns how many tasks changed status (expiries included)."""
    now = timezone.now()
    tasks = _claim(batch or settings.TASK_POLL_BATCH)
    changed = 0
    groups: dict[tuple[int, str, str], list[MediaTask]] = defaultdict(list)
    infos: dict[int, UpstreamInfo | None] = {}
    for task in tasks:
        if now - task.submitted_at > timedelta(minutes=_timeout_minutes(task)):
            if task.finished:  # the upstream's verdict was recorded, then its worker stopped before settling
                media_task_settle(task_id=task.pk, success=task.status == TaskStatus.SUCCESS, reason=task.fail_reason)
                continue
            media_task_expire(task=task, reason=f"The task timed out after {_timeout_minutes(task)} minutes.")
            changed += 1
        elif not task.upstream_task_id:
            if now - task.submitted_at > SUBMIT_GRACE:
                media_task_expire(task=task, reason="The task never reached an upstream.")
                changed += 1
        elif task.upstream is not None:  # an upstream deleted meanwhile: its tasks wait for their timeout
            if task.upstream_id not in infos:
                infos[task.upstream_id] = upstream_info(task.upstream)
            if infos[task.upstream_id] is not None:
                groups[(task.upstream_id, task.key_fingerprint, task.kind)].append(task)
    jobs = [(infos[up], key_for(infos[up], fp), group) for (up, fp, _kind), group in groups.items()]
    snapshots = _run(_fetch_all(jobs)) if jobs else {}
    for group in groups.values():
        for task in group:
            snapshot = snapshots.get(task.pk)
            if snapshot is None:
                MediaTask.objects.filter(pk=task.pk).update(poll_failures=task.poll_failures + 1)
            elif media_task_apply(task=task, snapshot=snapshot):
                changed += 1
    return changed


def media_tasks_tick() -> int:
    """The beat job: poll, then deliver the callbacks the poll made due."""
    changed = media_tasks_poll()
    media_task_notifications_deliver()
    return changed
