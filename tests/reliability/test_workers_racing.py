"""Two real Celery workers holding the same finished tasks at once settle each of them exactly once.

A worker's claim on a task lapses after TASK_POLL_SECONDS; when the upstream answers slower than that (the fake's
gate is closed), the other worker claims the same tasks and both get the same answers at the same moment.
"""

from __future__ import annotations

import pytest
from django.db.models import Sum

from billing.ledger import ledger_sum
from billing.models import LedgerEntry, LedgerReason, UsageLog
from relay.media_tasks.models import MediaTask
from tests.relay.media_tasks.conftest import assert_settled_once
from tests.reliability.conftest import IMAGINE_PRICE, KEY_QUOTA, submit
from tests.support import settled
from tokens.models import ApiToken

pytestmark = pytest.mark.subprocess
TASKS = 20


def test_two_workers_polling_the_same_finished_tasks_settle_each_once(live, gated, funded_key, workers):
    user, key = funded_key(unlimited_quota=False, remain_quota=KEY_QUOTA)
    tasks = [submit(live, key, f"picture {n}" + (" [fail]" if n % 4 == 0 else "")) for n in range(TASKS)]
    user.refresh_from_db()
    before = user.quota + TASKS * IMAGINE_PRICE
    gated.gate.clear()
    first = workers.start(beat=True)
    second = workers.start(beat=False)
    # Both workers' fetches, each for all 20 tasks, wait at the upstream together (a solo worker sends one at a time).
    assert gated.wait_pending(2), f"the workers did not both poll: {first.poll()=} {second.poll()=}"
    gated.gate.set()
    ids = [t.pk for t in tasks]
    assert settled(lambda: not MediaTask.objects.filter(pk__in=ids, settled_at=None).exists(), timeout=20)

    assert all(gated.answered[t.upstream_task_id] >= 2 for t in tasks)  # both workers held every task
    succeeded = [t for n, t in enumerate(tasks) if n % 4]
    for task in tasks:
        assert_settled_once(task, charged=IMAGINE_PRICE if task in succeeded else 0, refunded=task not in succeeded)
    logs = list(UsageLog.objects.filter(user=user).values_list("request_id", flat=True))
    assert sorted(logs) == sorted(t.public_id for t in tasks)  # one usage log each
    charged = len(succeeded) * IMAGINE_PRICE
    assert LedgerEntry.objects.filter(user=user, reason__in=(LedgerReason.SETTLE, LedgerReason.REFUND)).count() == TASKS
    user.refresh_from_db()
    assert user.quota == ledger_sum(user_id=user.pk) == before - charged
    assert user.used_quota == charged and user.request_count == len(succeeded)
    token = ApiToken.objects.get(user=user)
    assert token.used_quota == charged == UsageLog.objects.filter(user=user).aggregate(s=Sum("quota"))["s"]
    assert token.remain_quota == KEY_QUOTA - charged
