"""Settlement: once per task whatever races it, timeouts refunded once, and the request sweeper keeps its hands off
task reservations."""

from __future__ import annotations

import threading
from datetime import timedelta

from django.db import close_old_connections
from django.utils import timezone

from billing.charges import reservations_open, reservations_sweep
from billing.models import LedgerEntry, LedgerReason
from relay.media_tasks.models import MediaTask, TaskStatus
from relay.media_tasks.settlement import media_task_settle
from tests.relay.media_tasks.conftest import assert_settled_once, poll
from tests.support import post


def _submit(live, key: str, prompt: str = "a slow video") -> MediaTask:
    r = post(live, "/v1/video/generations", key, {"model": "demo-video", "prompt": prompt, "duration": 5})
    assert r.status_code == 200, r.text
    return MediaTask.objects.get(public_id=r.json()["id"])


def test_settling_twice_charges_once(live, upstream, funded_key, tasks_env):
    upstream("demo", task_seconds=3600)
    _user, key = funded_key()
    task = _submit(live, key)
    assert media_task_settle(task_id=task.pk, success=True) is True
    assert media_task_settle(task_id=task.pk, success=True) is False
    assert media_task_settle(task_id=task.pk, success=False, reason="late failure") is False
    assert_settled_once(task, charged=25_000)  # $0.01 x 5 s
    assert task.status == TaskStatus.SUCCESS


def test_concurrent_settlements_charge_once(live, upstream, funded_key, tasks_env):
    upstream("demo", task_seconds=3600)
    _user, key = funded_key()
    tasks = [_submit(live, key, f"video {n}") for n in range(3)]
    results: list[bool] = []
    barrier = threading.Barrier(6)

    def settle(task_id: int, success: bool) -> None:
        barrier.wait(timeout=10)
        try:
            results.append(media_task_settle(task_id=task_id, success=success, reason="raced"))
        finally:
            close_old_connections()

    threads = [threading.Thread(target=settle, args=(t.pk, ok)) for t in tasks for ok in (True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert sorted(results) == [False] * 3 + [True] * 3
    for task in tasks:
        task.refresh_from_db()
        assert_settled_once(task, refunded=task.quota_charged == 0)
    assert LedgerEntry.objects.filter(ref__startswith="task:", reason__in=("settle", "refund")).count() == 3


def test_a_task_past_its_timeout_is_refunded_once(live, upstream, funded_key, tasks_env, settings):
    upstream("demo", task_seconds=3600)
    user, key = funded_key()
    before = user.quota
    task = _submit(live, key)
    poll()
    task.refresh_from_db()
    assert task.status == TaskStatus.SUBMITTED and task.settled_at is None
    settings.TASK_TIMEOUT_MINUTES = {**settings.TASK_TIMEOUT_MINUTES, "video": 1}
    MediaTask.objects.filter(pk=task.pk).update(submitted_at=timezone.now() - timedelta(minutes=2))
    poll(2)
    task.refresh_from_db()
    assert task.status == TaskStatus.FAILURE and "timed out" in task.fail_reason
    assert_settled_once(task, refunded=True)
    user.refresh_from_db()
    assert user.quota == before


def test_the_request_sweeper_leaves_task_reservations_alone(live, upstream, funded_key, tasks_env):
    upstream("demo", task_seconds=3600)
    _user, key = funded_key()
    task = _submit(live, key)
    LedgerEntry.objects.filter(ref=task.ref).update(created_at=timezone.now() - timedelta(hours=2))
    assert reservations_open(older_than=timedelta(minutes=30)) == []
    assert reservations_sweep(older_than=timedelta(minutes=30)) == 0
    assert not LedgerEntry.objects.filter(ref=task.ref, reason=LedgerReason.REFUND).exists()
    media_task_settle(task_id=task.pk, success=False, reason="cleanup")
    assert_settled_once(task, refunded=True)


def test_a_task_that_never_reached_an_upstream_is_refunded(live, upstream, funded_key, tasks_env):
    upstream("demo", task_seconds=3600)
    _user, key = funded_key()
    task = _submit(live, key)
    MediaTask.objects.filter(pk=task.pk).update(upstream_task_id="", status=TaskStatus.NOT_START,
                                                submitted_at=timezone.now() - timedelta(minutes=11))
    poll()
    task.refresh_from_db()
    assert task.status == TaskStatus.FAILURE and "never reached" in task.fail_reason
    assert_settled_once(task, refunded=True)


def test_an_upstream_answer_postgresql_cannot_keep_is_stored_cleaned_and_settled_once(live, upstream, funded_key,
                                                                                       tasks_env):
    from relay.media_tasks.adapters.base import Snapshot
    from relay.media_tasks.services import media_task_apply

    upstream("demo", task_seconds=3600)
    _user, key = funded_key()
    task = _submit(live, key)
    deep: list = []
    for _ in range(100):
        deep = [deep]
    odd = {"score": float("nan"), "big": float("inf"), "text": "a\x00b\ud800c", "k\x00": 1, "deep": deep}
    media_task_apply(task=task, snapshot=Snapshot(TaskStatus.FAILURE, 100, result_url="https://x/\x00v.mp4",
                                                  result=odd, fail_reason="bad\x00 \udfff"))
    task.refresh_from_db()
    assert task.status == TaskStatus.FAILURE and task.fail_reason == "bad ?" and task.result_url == "https://x/v.mp4"
    assert task.result["score"] is None and task.result["big"] is None and task.result["text"] == "ab?c"
    assert task.result["k"] == 1
    assert_settled_once(task, refunded=True)
