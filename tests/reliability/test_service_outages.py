"""PostgreSQL and Redis going away under load, as a server process sees it (its connections cut, new ones reset):
requests fail cleanly with a 503 or carry on, and once the service is back every answered request is charged once
and every refused one not at all."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import urlparse

import httpx
import pytest
from django.conf import settings

from billing.charges import reservations_open
from billing.ledger import ledger_sum
from billing.models import LedgerEntry, LedgerReason, UsageLog
from tests.processes import ServerProcesses, database_url
from tests.reliability.tcp_proxy import TcpProxy
from tests.support import settled


@pytest.fixture(scope="module")
def _proxied(django_db_setup):
    db, redis = urlparse(database_url()), urlparse(settings.REDIS_URL or "redis://")
    if not settings.REDIS_URL:
        pytest.skip("needs Redis")
    with TcpProxy(db.hostname, db.port) as pg, TcpProxy(redis.hostname, redis.port) as cache, \
            ServerProcesses() as processes:
        url, _ = processes.start(
            DATABASE_URL=database_url().replace(f":{db.port}/", f":{pg.port}/"),
            REDIS_URL=f"redis://127.0.0.1:{cache.port}{redis.path or '/0'}",  # this test worker's database
            RELAY_CACHE_SECONDS="60", DEMO_CHUNK_DELAY_MS="0", RELAY_SETTLE_RETRY_SECONDS="30", RELAY_DEFAULT_RPM="0")
        yield url, pg, cache, processes


@pytest.fixture
def proxied(_proxied, transactional_db, bootstrap_demo):
    _url, pg, cache, _processes = _proxied
    pg.up()
    cache.up()
    return _proxied


def _chat(url: str, key: str, stream: bool) -> tuple[int, str, dict]:
    body = {"model": "demo-chat", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 40,
            "stream": stream}
    try:
        r = httpx.post(url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"},
                       timeout=60)
    except httpx.HTTPError as exc:
        return 0, "", {"transport": str(exc)}
    return r.status_code, r.headers.get("x-request-id", ""), r.json() if r.status_code != 200 else {}


def _load_through(url: str, key: str, outage, seconds: float = 4.0) -> list[tuple[int, str, dict]]:
    """Requests from 6 clients for `seconds`; the outage runs from 1 s to 2.5 s into it."""
    results: list[tuple[int, str, dict]] = []
    stop = threading.Event()

    def client(i: int) -> None:
        while not stop.is_set():
            results.append(_chat(url, key, stream=i % 2 == 1))

    with ThreadPoolExecutor(6) as pool:
        for i in range(6):
            pool.submit(client, i)
        time.sleep(1)
        outage.down()
        time.sleep(1.5)
        outage.up()
        time.sleep(seconds - 2.5)
        stop.set()
    return results


def _books(user, results) -> None:
    """Answered requests: one log and one settlement each. Refused ones: nothing. Balance = ledger."""
    assert settled(lambda: not reservations_open(older_than=timedelta(0)), timeout=40), "a reservation stayed open"
    answered = {rid for status, rid, _ in results if status == 200}
    refused = {rid for status, rid, _ in results if status != 200}
    # the relay writes its rows in batches, retrying while the database was away
    assert settled(lambda: UsageLog.objects.filter(user=user).count() >= len(answered), timeout=40)
    logged = list(UsageLog.objects.filter(user=user).values_list("request_id", "quota"))
    assert {rid for rid, _ in logged} == answered and len(logged) == len(answered)
    settles = LedgerEntry.objects.filter(user=user, reason=LedgerReason.SETTLE)
    assert settles.count() == len(answered)
    # A refused request either never reserved, or its reservation (committed as the connection died) was refunded.
    for rid in refused:
        rows = list(LedgerEntry.objects.filter(ref=f"req:{rid}").values_list("reason", "amount"))
        assert rows == [] or (sorted(r for r, _ in rows) == ["refund", "reserve"] and sum(a for _, a in rows) == 0)
    user.refresh_from_db()
    assert user.quota == ledger_sum(user_id=user.pk)


def test_postgresql_going_away_refuses_cleanly_and_loses_nothing(proxied, funded_key):
    url, pg, _cache, processes = proxied
    user, key = funded_key()
    warm = _chat(url, key, stream=False)  # caches warm: the key and price are known
    assert warm[0] == 200
    results = _load_through(url, key, pg)
    statuses = {status for status, _, _ in results}
    assert statuses <= {200, 503}, processes.output()[-3000:]
    assert 503 in statuses and 200 in statuses
    for status, _rid, body in results:
        if status == 503:
            assert body["error"]["code"] == "database_unavailable" and "nothing was charged" in body["error"]["message"]
    back = _chat(url, key, stream=True)
    assert back[0] == 200  # back in service
    _books(user, [warm, *results, back])


def test_redis_going_away_degrades_to_per_process_counting(proxied, funded_key):
    url, _pg, cache, processes = proxied
    user, key = funded_key(rpm_limit=1000, concurrency_limit=50)
    results = _load_through(url, key, cache)
    assert {status for status, _, _ in results} == {200}, processes.output()[-3000:]
    assert "counting in this process" in processes.output()
    _books(user, results)
