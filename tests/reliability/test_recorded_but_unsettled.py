"""A task whose final status was recorded but never settled (its worker died in between) is settled as recorded
when the poller finds it past its timeout: not expired as a failure, whatever the upstream says by then."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from relay.media_tasks.models import MediaTask, TaskStatus
from relay.media_tasks.poller import media_tasks_poll
from tests.relay.media_tasks.conftest import assert_settled_once
from tests.reliability.conftest import IMAGINE_PRICE, submit, usage_logs


@pytest.mark.parametrize("recorded", [TaskStatus.SUCCESS, TaskStatus.FAILURE])
def test_a_recorded_final_status_past_the_timeout_is_settled_as_recorded(live, gated, funded_key, recorded):
    _user, key = funded_key()
    task = submit(live, key, "a lighthouse")  # the upstream would answer SUCCESS
    gated.prompts.clear()  # ... but it no longer knows the task
    MediaTask.objects.filter(pk=task.pk).update(
        status=recorded, fail_reason="banned" if recorded == TaskStatus.FAILURE else "",
        result_url="https://cdn.example/x.png" if recorded == TaskStatus.SUCCESS else "",
        finished_at=timezone.now() - timedelta(minutes=1), submitted_at=timezone.now() - timedelta(minutes=31))
    media_tasks_poll()
    task.refresh_from_db()
    assert task.status == recorded
    if recorded == TaskStatus.SUCCESS:
        assert_settled_once(task, charged=IMAGINE_PRICE)
    else:
        assert_settled_once(task, refunded=True)
        assert task.fail_reason == "banned"  # the upstream's reason, not "timed out"
    assert usage_logs(task) == 1
    media_tasks_poll()
    assert_settled_once(task, charged=IMAGINE_PRICE if recorded == TaskStatus.SUCCESS else 0,
                        refunded=recorded == TaskStatus.FAILURE)
