"""A Celery worker SIGKILLed in the middle of settling a generation task: after a new worker starts, the task is
settled exactly once (one charge or one refund), with one usage log and the balance, key and user counters right.

The worker is stopped at a precise point without any hook in the product: either its poll waits on the upstream
(the fake's gate is closed), or its settlement transaction waits on the user's row, which the test holds locked from
a session of its own, as a concurrent transaction would.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import User
from billing.ledger import ledger_sum
from relay.media_tasks.models import MediaTask, TaskStatus
from tests.relay.media_tasks.conftest import assert_settled_once, closing_rows
from tests.reliability.conftest import IMAGINE_PRICE, KEY_QUOTA, submit, usage_logs
from tests.reliability.workers import row_locked, session_alive, sessions_blocked_by
from tests.support import settled
from tokens.models import ApiToken

pytestmark = pytest.mark.subprocess


def _settled(task: MediaTask) -> bool:
    return settled(lambda: MediaTask.objects.get(pk=task.pk).settled_at is not None, timeout=20)


def _assert_books(task: MediaTask, user: User, before: int, *, charged: int) -> None:
    """Settled once; the balance, the key and the user's counters moved by the charge, once."""
    assert_settled_once(task, charged=charged, refunded=charged == 0)
    assert usage_logs(task) == 1
    user.refresh_from_db()
    assert user.quota == ledger_sum(user_id=user.pk) == before - charged
    assert user.used_quota == charged and user.request_count == (1 if charged else 0)
    token = ApiToken.objects.get(pk=task.token_id)
    assert token.used_quota == charged and token.remain_quota == KEY_QUOTA - charged


def _kill_inside_the_settlement(workers, user: User) -> None:
    """Start a worker, let it reach the charge statement of the settlement (the user's row is locked here), kill it
    there, and wait until its database session is gone."""
    with row_locked(User._meta.db_table, user.pk) as locker:
        first = workers.start()
        blocked = settled(lambda: sessions_blocked_by(locker), timeout=20)
        assert blocked, f"no worker reached the settlement: {first.poll()=}"
        ((pid, _app, query),) = blocked
        assert "used_quota = used_quota +" in query  # the closing statement, inside media_task_settle's transaction
        workers.kill(first)
    # The lock released, the dead worker's statement runs to its end, but no COMMIT ever comes: the session ends
    # with its transaction rolled back.
    assert settled(lambda: not session_alive(pid), timeout=10)


def test_a_worker_killed_while_its_poll_waits_on_the_upstream_settles_once_after_restart(
        live, gated, funded_key, workers):
    user, key = funded_key(unlimited_quota=False, remain_quota=KEY_QUOTA)
    task = submit(live, key, "a lighthouse")
    user.refresh_from_db()
    before = user.quota + IMAGINE_PRICE  # the balance before the reservation
    gated.gate.clear()
    first = workers.start()
    assert gated.wait_pending(1), f"the worker never polled: {first.poll()=}"
    workers.kill(first)
    task.refresh_from_db()
    assert task.settled_at is None and task.status == TaskStatus.SUBMITTED and not closing_rows(task)

    gated.gate.set()
    workers.start()
    assert _settled(task)
    _assert_books(task, user, before, charged=IMAGINE_PRICE)
    assert task.status == TaskStatus.SUCCESS


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_a_worker_killed_inside_the_settlement_transaction_settles_once_after_restart(
        live, gated, funded_key, workers, outcome):
    user, key = funded_key(unlimited_quota=False, remain_quota=KEY_QUOTA)
    task = submit(live, key, "a lighthouse" if outcome == "success" else "a lighthouse [fail]")
    user.refresh_from_db()
    before = user.quota + IMAGINE_PRICE
    _kill_inside_the_settlement(workers, user)
    # The upstream's answer was recorded (its own statement), the charge or refund was not.
    task.refresh_from_db()
    assert task.status == (TaskStatus.SUCCESS if outcome == "success" else TaskStatus.FAILURE)
    assert task.settled_at is None and not closing_rows(task) and usage_logs(task) == 0

    workers.start()
    assert _settled(task)
    _assert_books(task, user, before, charged=IMAGINE_PRICE if outcome == "success" else 0)


def test_a_success_recorded_before_the_kill_is_charged_when_the_restart_comes_after_the_timeout(
        live, gated, funded_key, workers):
    """The worker died after the upstream reported success and before the charge committed, and stayed down past
    the task's timeout: the task succeeded, so it is charged (not refunded as timed out) and stays SUCCESS."""
    user, key = funded_key(unlimited_quota=False, remain_quota=KEY_QUOTA)
    task = submit(live, key, "a lighthouse")
    user.refresh_from_db()
    before = user.quota + IMAGINE_PRICE
    _kill_inside_the_settlement(workers, user)
    task.refresh_from_db()
    assert task.status == TaskStatus.SUCCESS and task.settled_at is None
    MediaTask.objects.filter(pk=task.pk).update(submitted_at=timezone.now() - timedelta(minutes=31))  # timeout: 30

    workers.start()
    assert _settled(task)
    _assert_books(task, user, before, charged=IMAGINE_PRICE)
    assert task.status == TaskStatus.SUCCESS and task.result_url.endswith(".png")
