"""The relay's in-process caches (`relay.snapshots`): a miss waits on one shared load; a hit near its expiry is
answered at once and reloads in the background, so under steady traffic no request waits on a reload; nothing is
served past RELAY_CACHE_SECONDS after it was loaded."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from relay import snapshots as snapshots_module
from relay.snapshots import REFRESH_AHEAD, Snapshots

TTL = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class Loads:
    """A stand-in for a snapshot's query: each call returns the next version, once released when `gated`."""

    def __init__(self, gated: bool = False) -> None:
        self.calls = 0
        self.fail = False
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()

    async def __call__(self) -> dict[str, int]:
        self.calls += 1
        version = self.calls
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("database away")
        return {"version": version}


@pytest.fixture
def clock(monkeypatch, settings):
    settings.RELAY_CACHE_SECONDS = TTL
    clock = Clock()
    monkeypatch.setattr(snapshots_module, "time", SimpleNamespace(monotonic=clock.monotonic))
    return clock


def cache_of(loads: Loads) -> Snapshots:
    snapshots = Snapshots()
    snapshots._load_prices = loads
    return snapshots


def run(scenario) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_a_miss_waits_on_one_load_shared_by_every_request_meanwhile(clock):
    async def scenario():
        loads = Loads(gated=True)
        snapshots = cache_of(loads)
        waiting = [asyncio.ensure_future(snapshots.prices()) for _ in range(5)]
        await asyncio.sleep(0.01)
        assert not any(w.done() for w in waiting) and loads.calls == 1
        loads.gate.set()
        assert await asyncio.gather(*waiting) == [{"version": 1}] * 5
        assert await snapshots.prices() == {"version": 1} and loads.calls == 1  # kept

    run(scenario)


def test_a_hit_near_its_expiry_is_answered_at_once_and_reloads_in_the_background(clock):
    async def scenario():
        loads = Loads()
        snapshots = cache_of(loads)
        assert await snapshots.prices() == {"version": 1}
        clock.now += TTL * (1 - REFRESH_AHEAD) - 0.01
        assert await snapshots.prices() == {"version": 1} and loads.calls == 1  # not due yet
        clock.now += 0.02
        loads.gate.clear()  # the reload waits on its query
        answers = [await snapshots.prices() for _ in range(3)]
        assert answers == [{"version": 1}] * 3  # nobody waited
        await asyncio.sleep(0.01)
        assert loads.calls == 2  # one reload for the three hits
        loads.gate.set()
        await asyncio.sleep(0.01)
        assert await snapshots.prices() == {"version": 2} and loads.calls == 2
        clock.now += TTL * (1 - REFRESH_AHEAD) + 0.01  # the reloaded entry's own life counts from its load
        assert await snapshots.prices() == {"version": 2}
        await asyncio.sleep(0.01)
        assert loads.calls == 3

    run(scenario)


def test_nothing_is_served_past_its_lifetime(clock):
    async def scenario():
        loads = Loads()
        snapshots = cache_of(loads)
        assert await snapshots.prices() == {"version": 1}
        clock.now += TTL + 0.01  # no request in the last part of its life: expired, the next one waits
        loads.gate.clear()
        waiting = asyncio.ensure_future(snapshots.prices())
        await asyncio.sleep(0.01)
        assert not waiting.done()
        loads.gate.set()
        assert await waiting == {"version": 2}

    run(scenario)


def test_a_failed_reload_is_logged_the_entry_kept_until_it_expires_then_the_error_reaches_the_request(clock, caplog):
    async def scenario():
        loads = Loads()
        snapshots = cache_of(loads)
        assert await snapshots.prices() == {"version": 1}
        loads.fail = True
        clock.now += TTL * (1 - REFRESH_AHEAD) + 0.01
        with caplog.at_level(logging.WARNING, logger="relay.snapshots"):
            assert await snapshots.prices() == {"version": 1}
            await asyncio.sleep(0.01)
        assert "a load failed (ConnectionError)" in caplog.text and "database away" not in caplog.text
        assert await snapshots.prices() == {"version": 1}  # still within its life; another reload starts
        await asyncio.sleep(0.01)
        clock.now += TTL
        with pytest.raises(ConnectionError):
            await snapshots.prices()

    run(scenario)


def test_a_reload_that_straddled_a_change_is_not_kept(clock):
    async def scenario():
        loads = Loads()
        snapshots = cache_of(loads)
        assert await snapshots.prices() == {"version": 1}
        clock.now += TTL * (1 - REFRESH_AHEAD) + 0.01
        loads.gate.clear()
        assert await snapshots.prices() == {"version": 1}  # its reload starts, and waits on its query
        await asyncio.sleep(0.01)
        snapshots.clear()  # a change was announced meanwhile: that reload may predate it
        loads.gate.set()
        assert await snapshots.prices() == {"version": 3}  # a load of its own, not the straddling one's
        await asyncio.sleep(0.01)
        assert await snapshots.prices() == {"version": 3}

    run(scenario)
