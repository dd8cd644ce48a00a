"""The per-key request limit is a sliding minute, the same in one process and through Redis: no burst of twice the
limit across a minute boundary, and a refused request does not push the next admission back."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from relay import limits as limits_module
from relay.limits import Limits

START = 1_800_000_059.5  # half a second before a minute boundary
token_ids = itertools.count(9_000_001)  # fresh Redis keys for every test


@pytest.fixture(params=["local", "redis"])
def limits(request, settings):
    if request.param == "redis" and not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL")
    if request.param == "local":
        settings.REDIS_URL = ""
    return Limits()


@pytest.fixture
def clock(monkeypatch):
    now = [START]
    monkeypatch.setattr(limits_module.time, "time", lambda: now[0])
    return now


def _run(scenario):
    asyncio.run(scenario())


async def _remaining(limits: Limits, token_id: int, count: int) -> list[int]:
    return [(await limits.rpm_hit(token_id, 3)).remaining for _ in range(count)]


def test_a_minute_boundary_does_not_reset_the_count(limits, clock):
    token_id = next(token_ids)

    async def scenario():
        assert await _remaining(limits, token_id, 3) == [2, 1, 0]
        clock[0] += 1  # the next calendar minute
        assert await _remaining(limits, token_id, 2) == [-1, -1]
    _run(scenario)


def test_each_request_frees_its_slot_sixty_seconds_later(limits, clock):
    token_id = next(token_ids)

    async def scenario():
        assert await _remaining(limits, token_id, 1) == [2]
        clock[0] += 30
        assert await _remaining(limits, token_id, 2) == [1, 0]
        refused = await limits.rpm_hit(token_id, 3)
        assert refused.remaining < 0 and refused.reset == int(START + 60) + 1 and refused.retry_after == 30
        clock[0] += 30.1  # the first request has left the window; the refusal was not counted
        assert await _remaining(limits, token_id, 2) == [0, -1]
        clock[0] += 30  # the other two have left
        assert await _remaining(limits, token_id, 1) == [1]
    _run(scenario)
