"""Fixtures for the reliability tests: a gated Midjourney upstream with its price, and killable Celery workers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.groups import group_default
from billing.models import ModelPrice, UsageLog
from relay.media_tasks.models import MediaTask
from relay.upstreams import upstream_save
from tests.reliability.gated_midjourney import SECRET, GatedMidjourney
from tests.reliability.workers import Workers
from tests.support import post

IMAGINE_PRICE = 50_000  # $0.1
KEY_QUOTA = 1_000_000  # the API key's own limit, so its counters are checked too


@pytest.fixture(scope="session")
def _gated():
    with GatedMidjourney() as up:
        yield up


@pytest.fixture
def gated(_gated, transactional_db, settings):
    """The gated Midjourney upstream (gate open), priced, as the default group's only upstream for mj_imagine."""
    _gated.reset()
    settings.TASK_POLL_SECONDS = 1
    ModelPrice.objects.create(model="mj_imagine", price_per_call=Decimal("0.1"))
    upstream_save(name="gated midjourney", type="midjourney", base_url=_gated.url, keys=SECRET,
                  served_models=["mj_imagine"], groups=[group_default().name])
    yield _gated
    _gated.gate.set()


@pytest.fixture
def workers(live, tmp_path):
    """Starts Celery workers on demand; every one is killed (with its beat) before the database is flushed."""
    with Workers(tmp_path) as started:
        yield started


def submit(live, key: str, prompt: str) -> MediaTask:
    r = post(live, "/mj/submit/imagine", key, {"prompt": prompt})
    assert r.status_code == 200 and r.json()["code"] == 1, r.text
    return MediaTask.objects.get(public_id=r.json()["result"])


def usage_logs(task: MediaTask) -> int:
    return UsageLog.objects.filter(request_id=task.public_id).count()
