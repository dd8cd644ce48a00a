"""Fixtures for generation tasks: the fake task upstreams, priced models, upstreams, and helpers to poll and
check the books."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.groups import group_default
from billing.models import LedgerEntry, LedgerReason, ModelPrice
from relay.media_tasks.models import MediaTask
from relay.media_tasks.poller import media_tasks_poll
from relay.upstreams import upstream_save
from tests.fakes import task_upstreams as fakes
from tests.fakes.task_upstreams import FakeTasks

PRICES = {
    "mj_imagine": "0.1", "mj_upload": "0.02", "mj_upscale": "0.05", "mj_variation": "0.1", "mj_reroll": "0.1",
    "mj_shorten": "0.01",
    "swap_face": "0.02", "suno_music": "0.1", "suno_lyrics": "0.01",
    "kling-v1": "0.028", "jimeng-v1": "0.03", "sora-2": "0.1", "demo-video": "0.01", "demo-music": "0.02",
    "demo-audio": "0.001",
}
KEYS = {"midjourney": fakes.MJ_SECRET, "suno": fakes.SUNO_KEY, "kling": f"{fakes.KLING_AK}|{fakes.KLING_SK}",
        "jimeng": f"{fakes.VOLC_AK}|{fakes.VOLC_SK}", "openai": fakes.OPENAI_KEY}
MODELS = {"midjourney": ["mj_imagine", "mj_upload", "mj_upscale", "mj_variation", "mj_reroll", "mj_shorten",
                        "swap_face"], "suno": ["suno_music", "suno_lyrics"],
          "kling": ["kling-v1"], "jimeng": ["jimeng-v1"], "openai": ["sora-2"]}


@pytest.fixture(scope="session")
def fake():
    with FakeTasks() as up:
        yield up


@pytest.fixture
def tasks_env(transactional_db, fake, settings):
    """Prices for the task models and polling without waiting (every poll may claim every task)."""
    fake.reset()
    settings.TASK_POLL_SECONDS = 0
    settings.TASK_NOTIFY_ALLOW_PRIVATE = False
    settings.TASK_NOTIFY_BACKOFF_SECONDS = 0
    for model, price in PRICES.items():
        ModelPrice.objects.create(model=model, price_per_call=Decimal(price),
                                  price_variants={"pro": "0.049"} if model == "kling-v1" else {})
    return fake


@pytest.fixture
def upstream(tasks_env):
    """`upstream("kling")`: an upstream of that type on the fake server (or a demo one with its settings)."""

    def make(kind: str, **extras):
        if kind == "demo":
            return upstream_save(name="demo tasks", type="demo", served_models=["demo-video", "demo-music",
                                 "demo-audio", "mj_imagine"], extras=extras, groups=[group_default().name])
        return upstream_save(name=kind, type=kind, base_url=tasks_env.url, keys=KEYS[kind], served_models=MODELS[kind],
                             extras=extras, groups=[group_default().name])

    return make


def poll(times: int = 1) -> None:
    for _ in range(times):
        media_tasks_poll()


def closing_rows(task: MediaTask) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(ref=task.ref, reason__in=(LedgerReason.SETTLE, LedgerReason.REFUND)))


def assert_settled_once(task: MediaTask, *, charged: int | None = None, refunded: bool = False) -> None:
    """One reservation and exactly one closing row; the task records what the ledger did."""
    task.refresh_from_db()
    reserve = LedgerEntry.objects.filter(ref=task.ref, reason=LedgerReason.RESERVE)
    assert reserve.count() == 1 and reserve.get().amount == -task.quota_reserved
    rows = closing_rows(task)
    assert len(rows) == 1, rows
    assert rows[0].reason == (LedgerReason.REFUND if refunded else LedgerReason.SETTLE)
    assert task.settled_at is not None
    assert task.quota_charged == task.quota_reserved - rows[0].amount
    if charged is not None:
        assert task.quota_charged == charged
    if refunded:
        assert task.quota_charged == 0
