"""Log retention: logs past LOG_RETENTION_DAYS are deleted in batches after being summed per hour, and usage
totals (`/v1/usage`) read the same before and after."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from billing.models import UsageHourly, UsageLog, UsageRollup
from billing.retention import usage_logs_prune, usage_rollup, usage_totals
from tokens.services import token_create

AGES = [timedelta(days=10), timedelta(days=8, hours=3), timedelta(days=8, hours=3, minutes=20),
        timedelta(days=6), timedelta(hours=1), timedelta(minutes=1)]


def _log(user, age: timedelta, *, model: str = "gpt-4o", provider: str = "openai", quota: int = 100,
         token=None) -> UsageLog:
    log = UsageLog.objects.create(user=user, token=token, token_name=token.name if token else "", model=model,
                                  provider=provider, endpoint="/v1/chat/completions", prompt_tokens=10,
                                  completion_tokens=5, quota=quota, request_id=f"r{UsageLog.objects.count()}")
    now = timezone.now()
    # Days-old logs are placed from 45 minutes past the current hour, so the two "8 days 3 hours" logs share an hour
    # whatever the time the test runs.
    moment = now.replace(minute=45, second=0, microsecond=0) - age if age >= timedelta(days=1) else now - age
    UsageLog.objects.filter(pk=log.pk).update(created_at=moment)
    return log


@pytest.fixture
def logs(make_user):
    user = make_user("logger")
    token, _key = token_create(user=user, name="main")
    _log(user, timedelta(days=9), model="claude", provider="anthropic", quota=7)
    for age in AGES:
        _log(user, age, token=token)
    return user


def _totals(user, days: int = 30) -> list[dict]:
    now = timezone.now()
    return usage_totals(user_id=user.pk, since=now.replace(minute=0, second=0, microsecond=0) - timedelta(days=days),
                        until=now + timedelta(hours=1))


def test_pruning_deletes_only_logs_past_retention_and_keeps_the_totals(logs):
    before = _totals(logs)
    assert before == [{"provider": "anthropic", "tokens": 15, "quota": 7, "requests": 1},
                      {"provider": "openai", "tokens": 90, "quota": 600, "requests": 6}]
    assert usage_logs_prune(retention_days=7) == 4
    left = sorted(timezone.now() - log.created_at for log in UsageLog.objects.all())
    assert len(left) == 3 and all(age < timedelta(days=7) for age in left)
    assert _totals(logs) == before
    eight_days_ago = UsageHourly.objects.filter(model="gpt-4o").order_by("hour").values_list("requests", flat=True)
    assert list(eight_days_ago)[:2] == [1, 2]  # 10 days ago; the two logs 8 days ago share an hour
    assert usage_logs_prune(retention_days=7) == 0  # a second run changes nothing
    assert _totals(logs) == before
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    by_model = usage_totals(user_id=logs.pk, since=now - timedelta(days=30), until=now + timedelta(hours=1),
                            by="model")
    assert [(r["model"], r["requests"]) for r in by_model] == [("claude", 1), ("gpt-4o", 6)]
    by_day = usage_totals(user_id=logs.pk, since=now - timedelta(days=30), until=now + timedelta(hours=1), by="day")
    assert sum(r["quota"] for r in by_day) == 607 and len(by_day) >= 4
    ten_days_ago = timezone.localdate(timezone.now() - timedelta(days=10))
    assert by_day[0] == {"day": ten_days_ago, "tokens": 15, "quota": 100, "requests": 1}


def test_logs_are_summed_once_and_recent_ones_wait_for_the_lag(logs):
    mark = usage_rollup()
    assert UsageRollup.objects.get().last_log_id == mark
    assert UsageLog.objects.filter(id__gt=mark).count() == 1  # the one a minute old is still settling
    assert usage_rollup() == mark
    summed = sum(UsageHourly.objects.values_list("requests", flat=True))
    assert summed == 6
    _log(logs, timedelta(days=12), quota=1000)  # a late, back-dated log is summed by id, not by date
    usage_rollup()  # ... and so is every log below it, the young one included
    assert sum(UsageHourly.objects.values_list("requests", flat=True)) == 8
    assert sum(r["quota"] for r in _totals(logs)) == 607 + 1000


def test_deletion_runs_in_bounded_batches(logs):
    assert usage_logs_prune(retention_days=7, batch=2, max_batches=1) == 2
    assert usage_logs_prune(retention_days=7, batch=2, max_batches=1) == 2
    assert usage_logs_prune(retention_days=7, batch=2, max_batches=1) == 0
    assert sum(r["quota"] for r in _totals(logs)) == 607


def test_usage_endpoint_answers_from_the_hourly_sums_after_pruning(live, funded_key):
    user, key = funded_key()
    from tokens.models import ApiToken

    token = ApiToken.objects.get(user=user)
    for age in AGES:
        _log(user, age, token=token)
    start = (timezone.localdate() - timedelta(days=20)).isoformat()
    headers = {"authorization": f"Bearer {key}"}
    before = httpx.get(f"{live.url}/v1/usage?start_date={start}", headers=headers).json()
    assert before["total_quota"] == 600 and before["total_tokens"] == 90
    assert usage_logs_prune(retention_days=7) == 3
    after = httpx.get(f"{live.url}/v1/usage?start_date={start}", headers=headers).json()
    assert after == before
    recent = (timezone.localdate() - timedelta(days=2)).isoformat()
    only_recent = httpx.get(f"{live.url}/v1/usage?start_date={recent}&provider=openai", headers=headers).json()
    assert only_recent["total_quota"] == 200  # an hour and a minute ago
