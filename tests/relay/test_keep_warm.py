"""Keeping a process's caches loaded between calls (`relay.warm`): the shared snapshots and the keys and balances of
recent callers are reloaded ahead of their expiry, together, so a call after a quiet moment waits on no query."""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace

import httpx
import pytest

from relay import snapshots as snapshots_module, warm as warm_module
from relay.books import Books
from relay.snapshots import Snapshots
from relay.warm import KEEP_AHEAD, REFRESH_AHEAD, KeepWarm, Recent
from tests.billing.test_books import _balance_set
from tests.relay.test_books import _hold, _run, _until
from tests.support import settled
from tokens.keys import secret_hash
from tokens.models import ApiToken
from tokens.services import token_create

TTL = 10.0
LONG_AGO = -1e9


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch, settings):
    settings.RELAY_CACHE_SECONDS = TTL
    clock = Clock()
    monkeypatch.setattr(snapshots_module, "time", SimpleNamespace(monotonic=clock.monotonic))
    return clock


class TokenLoads:
    """Stand-ins for the token queries, one key and several keys: each answer names its load; `gone` keys have no
    token; the batch waits for `gate`."""

    def __init__(self) -> None:
        self.single: list[str] = []
        self.batches: list[list[str]] = []
        self.gone: set[str] = set()
        self.gate = asyncio.Event()
        self.gate.set()

    async def one(self, key: str) -> str | None:
        self.single.append(key)
        return None if key in self.gone else f"{key} #{len(self.single) + len(self.batches)}"

    async def several(self, keys: list[str]) -> dict[str, str | None]:
        self.batches.append(list(keys))
        await self.gate.wait()
        return {key: None if key in self.gone else f"{key} batch {len(self.batches)}" for key in keys}


class SharedLoads:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> dict[str, int]:
        self.calls += 1
        return {"version": self.calls}


def snapshots_with(tokens: TokenLoads, shared: SharedLoads) -> Snapshots:
    snapshots = Snapshots()
    snapshots._load_token, snapshots._load_tokens = tokens.one, tokens.several
    snapshots._load_prices = snapshots._load_upstreams = snapshots._load_words = shared
    return snapshots


def run(scenario) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_recent_lists_the_newest_first_within_the_window_and_the_bound(settings):
    settings.RELAY_KEEP_WARM_KEYS = 3
    recent: Recent[str] = Recent()
    for at, item in enumerate("abcdb"):
        recent.saw(item, float(at))
    assert recent.since(0, 10) == ["b", "d", "c", "a"]  # b seen again: newest, once
    assert recent.since(2, 10) == ["b", "d", "c"] and recent.since(0, 2) == ["b", "d"]
    recent.forget("d")
    assert recent.since(0, 10) == ["b", "c", "a"]
    for at in range(10, 20):
        recent.saw(f"k{at}", float(at))
    assert len(recent._seen) <= 2 * 3 and recent.since(0, 3) == ["k19", "k18", "k17"]  # the oldest dropped


def test_due_snapshots_and_recent_keys_are_reloaded_together_before_they_expire(clock):
    async def scenario():
        tokens, shared = TokenLoads(), SharedLoads()
        snapshots = snapshots_with(tokens, shared)
        for key in ("sk-a", "sk-b"):
            await snapshots.token(key)
        await snapshots.prices(), await snapshots.upstreams(), await snapshots.word_filter()
        assert tokens.single == ["sk-a", "sk-b"] and shared.calls == 3
        clock.now += TTL * (1 - KEEP_AHEAD) / 2
        await snapshots.refresh(clock.now - 60, 10)
        assert tokens.batches == [] and shared.calls == 3  # nothing due yet
        clock.now += TTL * (1 - KEEP_AHEAD) / 2
        assert KEEP_AHEAD > REFRESH_AHEAD and await snapshots.token("sk-a") == "sk-a #1"  # a hit would not reload yet
        await snapshots.refresh(clock.now - 60, 10)
        assert tokens.batches == [["sk-a", "sk-b"]] and shared.calls == 6  # one query for the keys, newest first
        clock.now += TTL * 0.6  # past the first loads' expiry: what calls find is the reload's
        assert await snapshots.token("sk-a") == "sk-a batch 1" and await snapshots.prices() == {"version": 4}
        assert tokens.single == ["sk-a", "sk-b"] and shared.calls == 6  # nobody waited on a query

    run(scenario)


def test_only_keys_used_within_the_window_are_kept_and_at_most_so_many(clock):
    async def scenario():
        tokens, shared = TokenLoads(), SharedLoads()
        snapshots = snapshots_with(tokens, shared)
        for key in ("sk-old", "sk-a", "sk-b", "sk-c"):
            await snapshots.token(key)
            clock.now += 1
        clock.now += TTL
        await snapshots.refresh(clock.now - TTL - 3.5, 2)  # sk-old was last used before the window
        assert tokens.batches == [["sk-c", "sk-b"]]

    run(scenario)


def test_a_key_whose_token_is_gone_is_no_longer_kept(clock):
    async def scenario():
        tokens, shared = TokenLoads(), SharedLoads()
        snapshots = snapshots_with(tokens, shared)
        await snapshots.token("sk-a"), await snapshots.token("sk-b")
        tokens.gone.add("sk-a")  # deleted
        clock.now += TTL
        await snapshots.refresh(clock.now - 60, 10)
        assert await snapshots.token("sk-a") is None and tokens.single == ["sk-a", "sk-b"]  # the reload's answer
        clock.now += TTL
        await snapshots.refresh(clock.now - 60, 10)
        assert tokens.batches == [["sk-b", "sk-a"], ["sk-b"]]

    run(scenario)


def test_a_call_meanwhile_joins_the_reload_rather_than_query_again(clock):
    async def scenario():
        tokens, shared = TokenLoads(), SharedLoads()
        snapshots = snapshots_with(tokens, shared)
        await snapshots.token("sk-a")
        clock.now += TTL + 1  # expired: a call now would wait
        tokens.gate.clear()
        refresh = asyncio.ensure_future(snapshots.refresh(clock.now - 60, 10))
        await asyncio.sleep(0.01)
        call = asyncio.ensure_future(snapshots.token("sk-a"))
        await asyncio.sleep(0.01)
        assert not call.done() and tokens.single == ["sk-a"]
        tokens.gate.set()
        assert await call == "sk-a batch 1" and tokens.single == ["sk-a"]
        await refresh

    run(scenario)


def test_a_change_during_the_reload_is_not_hidden_by_it(clock):
    async def scenario():
        tokens, shared = TokenLoads(), SharedLoads()
        snapshots = snapshots_with(tokens, shared)
        await snapshots.token("sk-a")
        clock.now += TTL
        tokens.gate.clear()
        refresh = asyncio.ensure_future(snapshots.refresh(clock.now - 60, 10))
        await asyncio.sleep(0.01)
        snapshots.clear()  # e.g. the key was disabled while its reload read the row
        tokens.gate.set()
        await refresh
        assert await snapshots.token("sk-a") == "sk-a #3" and tokens.single == ["sk-a", "sk-a"]  # read again

    run(scenario)


def test_a_failed_reload_reaches_a_call_waiting_on_it(clock):
    async def scenario():
        tokens, shared = TokenLoads(), SharedLoads()
        snapshots = snapshots_with(tokens, shared)
        await snapshots.token("sk-a")
        clock.now += TTL + 1

        async def away(keys):
            await asyncio.sleep(0.02)
            raise ConnectionError("database away")

        snapshots._load_tokens = away
        refresh = asyncio.ensure_future(snapshots.refresh(clock.now - 60, 10))
        await asyncio.sleep(0)
        with pytest.raises(ConnectionError):
            await snapshots.token("sk-a")
        with pytest.raises(ConnectionError):
            await refresh

    run(scenario)


@pytest.mark.django_db
def test_one_query_reads_every_key_as_its_own_load_would(make_user, settings):
    settings.RELAY_DEFAULT_RPM = 600
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from accounts.models import UserStatus
    from accounts.services import user_set_group, user_set_status
    from billing.groups import group_save
    from relay.snapshots import _tokens_load
    from tokens.models import TokenStatus

    vip = group_save(name="vip", ratio=Decimal("0.8"), rpm_limit=30, concurrency_limit=4)
    slow = group_save(name="slow", ratio=Decimal("2"), rpm_limit=5)
    owner, other, banned = make_user("owner"), make_user("other"), make_user("banned")
    user_set_group(user=other, group=slow)
    keys = {}
    for name, user, fields in [("own", owner, {"group": vip, "rpm_limit": 7, "allow_ips": ["10.0.0.0/8"],
                                                "expires_at": timezone.now() + timedelta(days=1)}),
                               ("inherits", other, {"model_limits": ["gpt-4o"], "concurrency_limit": 2}),
                               ("off", owner, {}), ("banned", banned, {})]:
        token, keys[name] = token_create(user=user, name=name, **fields)
        if name == "off":
            token.status = TokenStatus.DISABLED
            token.save()
    user_set_status(user=banned, status=UserStatus.DISABLED)
    found = _tokens_load([*keys.values(), "sk-nobody"])
    own, inherits, off, gone = (found[keys[name]] for name in ("own", "inherits", "off", "banned"))
    assert (own.group, own.group_ratio, own.rpm_limit, own.concurrency_limit) == ("vip", Decimal("0.8"), 7, 4)
    assert own.user_id == owner.pk and own.token_name == "own" and own.active and own.expires_at > time.time()
    assert own.ip_allowed("10.1.2.3") and not own.ip_allowed("192.168.0.1")
    assert (inherits.group, inherits.group_ratio, inherits.rpm_limit, inherits.concurrency_limit) == (
        "slow", Decimal("2"), 5, 2)
    assert inherits.model_limits == frozenset({"gpt-4o"}) and inherits.expires_at is None
    assert (off.active, off.refusal) == (False, "This API key has been disabled.")
    assert (gone.active, gone.refusal) == (False, "This account has been disabled.")
    assert found["sk-nobody"] is None


# ---- balances -------------------------------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_recent_callers_balances_are_read_again_together_and_admissions_wait_for_that_read(settings, make_user):
    settings.RELAY_CACHE_SECONDS, settings.RELAY_SETTLE_RETRY_SECONDS, settings.REDIS_URL = 3600, 60, ""
    first, second = make_user("first"), make_user("second")
    _balance_set(first, 1_000), _balance_set(second, 1_000)
    token, _key = token_create(user=second, name="limited", unlimited_quota=False, remain_quota=500)
    books = Books()
    reads = []
    real_read = books._read

    async def counted(**owners):
        reads.append(owners)
        await asyncio.sleep(0.05)
        return await real_read(**owners)

    books._read = counted

    async def scenario():
        await books.admit(_hold(first, "a")), await books.admit(_hold(second, "b", token=token))
        await books.drained()
        assert len(reads) == 3  # one for each wallet, as each was first needed
        await books.refresh(time.monotonic() - 60, 10)
        assert len(reads) == 3  # read (or written) just now: not due
        for wallet in (*books._users.values(), *books._keys.values()):
            wallet.read_at -= 3600  # expired: an admission now waits for a read
        refresh = asyncio.ensure_future(books.refresh(time.monotonic() - 60, 10))
        await asyncio.sleep(0.01)
        admitting = asyncio.ensure_future(books.admit(_hold(second, "c", token=token)))
        await refresh, await admitting
        assert reads[3:] == [{"user_ids": [second.pk, first.pk], "key_ids": [token.pk]}]  # one read, the newest first
        await books.drained()

    _run(scenario)
    assert books._users[second.pk].known == 1_000 - 200 and books._keys[token.pk].known == 500 - 200


# ---- the task -----------------------------------------------------------------------------------------------------

def _keep_warm_settings(settings, ttl: float, window: float) -> None:
    settings.RELAY_CACHE_SECONDS, settings.RELAY_KEEP_WARM_SECONDS, settings.RELAY_KEEP_WARM_KEYS = ttl, window, 7


def test_the_task_reloads_while_calls_come_and_stops_after_the_window(settings):
    _keep_warm_settings(settings, ttl=0.4, window=0.5)  # a look every 0.05 s

    async def scenario():
        looks = []

        async def refresh(since, most):
            looks.append((since, most, time.monotonic()))

        warm = KeepWarm(refresh, refresh)
        warm.called()
        await _until(lambda: len(looks) >= 6, timeout=3)
        (since, most, at), (since_too, most_too, _at) = looks[:2]  # both refreshers, at each look, alike
        assert (since, most) == (since_too, most_too) and most == 7 and at - since == pytest.approx(0.5, abs=0.2)
        await _until(lambda: warm._task.done(), timeout=3)  # half a second after the call
        stopped = len(looks)
        await asyncio.sleep(0.2)
        assert len(looks) == stopped
        warm.called()  # a new call starts it again
        await _until(lambda: len(looks) > stopped)
        warm._task.cancel()

    run(scenario)


@pytest.mark.parametrize("ttl, window", [(0, 300), (0.4, 0)])
def test_nothing_is_kept_warm_when_nothing_is_cached_or_when_switched_off(settings, ttl, window):
    _keep_warm_settings(settings, ttl=ttl, window=window)

    async def scenario():
        looks = []

        async def refresh(since, most):
            looks.append(since)

        warm = KeepWarm(refresh)
        warm.called()
        await asyncio.sleep(0.2)
        assert looks == [] and (warm._task is None or warm._task.done())

    run(scenario)


def test_a_failing_reload_is_logged_once_and_tried_again_less_often(settings, monkeypatch, caplog):
    _keep_warm_settings(settings, ttl=0.4, window=60)
    monkeypatch.setattr(warm_module, "PAUSE_AFTER_FAILURE", 0.3)

    async def scenario():
        looks = []

        async def refresh(since, most):
            looks.append(time.monotonic())
            if len(looks) <= 3:
                raise ConnectionError("database away")

        warm = KeepWarm(refresh)
        warm.called()
        await _until(lambda: len(looks) >= 5)
        warm._task.cancel()
        gaps = [later - earlier for earlier, later in zip(looks, looks[1:])]
        assert all(gap >= 0.3 for gap in gaps[:3]) and gaps[3] < 0.3  # paused while failing, then every 0.05 s

    with caplog.at_level(logging.WARNING, logger="relay.warm"):
        run(scenario)
    assert [r.getMessage() for r in caplog.records if r.name == "relay.warm"] == [
        "relay cache: reloading ahead failed (ConnectionError); trying again every 0.3 s"]


# ---- end to end ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("keep_warm", [True, False])
def test_after_a_quiet_moment_a_call_finds_everything_it_needs_loaded(live, bootstrap_demo, funded_key, settings,
                                                                      monkeypatch, keep_warm):
    """Two lifetimes of the caches after a call, the key, the shared snapshots and both balances are still loaded
    (reloaded meanwhile); without keeping warm, every one of them has expired and the next call would wait."""
    _keep_warm_settings(settings, ttl=0.5, window=60 if keep_warm else 0)
    user, key = funded_key(unlimited_quota=False, remain_quota=1_000_000)
    relay = live.relay
    monkeypatch.setattr(relay, "warm", KeepWarm(relay.snapshots.refresh, relay.books.refresh))  # this test's settings
    with httpx.Client(base_url=live.url, timeout=10) as client:
        answer = client.post("/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                             json={"model": "demo-chat", "messages": [{"role": "user", "content": "hi"}]})
        assert answer.status_code == 200, answer.text
    assert settled(lambda: relay.books.idle)
    time.sleep(1.0)
    snapshots, books = relay.snapshots, relay.books
    loaded = [snapshots._tokens.get(key)[0], *(cache.get(None)[0] for cache in (
        snapshots._prices, snapshots._upstreams, snapshots._words))]
    fresh = time.monotonic() - settings.RELAY_CACHE_SECONDS
    token_id = ApiToken.objects.get(key_hash=secret_hash(key)).pk
    read = [books._users[user.pk].read_at > fresh, books._keys[token_id].read_at > fresh]
    assert loaded + read == [keep_warm] * 6
    settings.RELAY_CACHE_SECONDS = 0  # the task stops at its next look
