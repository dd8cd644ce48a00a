"""Two relay processes on one PostgreSQL and one Redis behave as one platform: shared rate limits, a disabled key
refused everywhere within a second, spending within the documented bound across both (none beyond the balance with
RELAY_STRICT_BALANCE), every usage log written once."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from accounts.services import access_token_issue
from billing.ledger import ledger_sum
from billing.models import LedgerEntry, LedgerReason, UsageLog
from tests.processes import ServerProcesses
from tests.support import settled
from tokens.models import ApiToken


@pytest.fixture(scope="module")
def _servers(django_db_setup):
    with ServerProcesses() as processes:
        # Caches kept for a minute: a change reaches the other process through Redis, not by expiry.
        options = {"DEMO_CHUNK_DELAY_MS": "0", "RELAY_CACHE_SECONDS": "60"}
        yield processes.start(**options)[0], processes.start(**options)[0]


@pytest.fixture
def two_servers(_servers, transactional_db, bootstrap_demo):
    return _servers


def _chat(url: str, key: str, **extra) -> httpx.Response:
    body = {"model": "demo-chat", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 40, **extra}
    return httpx.post(url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}, timeout=30)


def test_a_key_rate_limit_holds_across_both_processes(two_servers, funded_key):
    a, b = two_servers
    _user, key = funded_key(rpm_limit=5)
    statuses = [_chat(url, key).status_code for url in (a, b) * 4]
    assert sorted(statuses) == [200] * 5 + [429] * 3
    assert settled(lambda: UsageLog.objects.filter(status="success").count() == 5)


def test_a_key_disabled_on_one_is_refused_by_the_other_within_a_second(two_servers, funded_key):
    a, b = two_servers
    user, key = funded_key()
    assert _chat(b, key).status_code == 200
    token = ApiToken.objects.get(user=user)
    api = httpx.put(a + "/api/token/", json={"id": token.pk, "status": "disabled"},
                    headers={"authorization": f"Bearer {access_token_issue(user=user)}"}, timeout=10)
    assert api.status_code == 200 and api.json()["success"]
    time.sleep(1.05)
    refused = _chat(b, key)
    assert refused.status_code == 401 and "disabled" in refused.json()["error"]["message"]


def _spend_race(servers, funded_key) -> tuple[ApiToken, int]:
    """40 requests, 16 at once, alternating between the two processes, on a key whose quota covers a few of them:
    the key afterwards, and the worst case one request reserves."""
    a, b = servers
    user, key = funded_key(balance=0, unlimited_quota=False, remain_quota=600)
    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(lambda i: _chat((a, b)[i % 2], key), range(40)))
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert ok and refused and all(r.status_code == 403 for r in refused)
    assert settled(lambda: LedgerEntry.objects.filter(user=user, reason=LedgerReason.SETTLE).count() == len(ok))
    assert UsageLog.objects.filter(status="success").count() == len(ok)
    assert LedgerEntry.objects.filter(user=user, reason=LedgerReason.RESERVE).count() == len(ok)
    token = ApiToken.objects.get(user=user)
    # Nothing lost: what the key lost is what the logs charged, and the balance equals the ledger.
    assert token.used_quota == sum(UsageLog.objects.values_list("quota", flat=True))
    assert 600 - token.remain_quota == token.used_quota
    user.refresh_from_db()
    assert user.quota == ledger_sum(user_id=user.pk) >= 0
    worst = -LedgerEntry.objects.filter(user=user, reason=LedgerReason.RESERVE).first().amount
    # Spent (or spent beyond its quota): the next request is refused by either process.
    assert settled(lambda: all(_chat(url, key).status_code == 403 for url in servers))
    return token, worst


def test_concurrent_spending_through_both_stays_within_the_documented_bound(two_servers, funded_key):
    token, worst = _spend_race(two_servers, funded_key)
    # Each process admits against the balance it knows and books within milliseconds; what the other process had
    # admitted and not booked yet (at most its 8 requests in flight) is the most the key can go below zero.
    assert token.remain_quota >= -8 * worst


@pytest.fixture(scope="module")
def _strict_servers(django_db_setup):
    with ServerProcesses() as processes:
        options = {"DEMO_CHUNK_DELAY_MS": "0", "RELAY_CACHE_SECONDS": "60", "RELAY_STRICT_BALANCE": "true"}
        yield processes.start(**options)[0], processes.start(**options)[0]


def test_with_strict_balance_concurrent_spending_through_both_never_goes_below_zero(_strict_servers, transactional_db,
                                                                                    bootstrap_demo, funded_key):
    token, _worst = _spend_race(_strict_servers, funded_key)
    assert token.remain_quota >= 0  # each reservation was booked (or refused) before going upstream


def test_usage_logs_from_both_land_once_each(two_servers, funded_key):
    a, b = two_servers
    user, key = funded_key()
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda i: _chat((a, b)[i % 2], key, stream=i % 3 == 0), range(24)))
    assert all(r.status_code == 200 for r in responses)
    request_ids = {r.headers["x-request-id"] for r in responses}
    assert len(request_ids) == 24
    assert settled(lambda: UsageLog.objects.count() == 24)
    assert set(UsageLog.objects.values_list("request_id", flat=True)) == request_ids
    assert LedgerEntry.objects.filter(user=user, reason=LedgerReason.SETTLE).count() == 24


def test_upstream_failures_are_counted_across_both_processes(_servers, transactional_db, funded_key):
    from billing.groups import group_default, price_save
    from relay.models import Upstream, UpstreamStatus
    from relay.upstreams import upstream_save
    from tests.fakes.openai_upstream import FakeOpenAI

    a, b = _servers
    with FakeOpenAI(api_key="sk-up") as broken:
        broken.behave("gpt-4o", status=500)
        price_save(model="gpt-4o", model_ratio=1, completion_ratio=1)
        upstream = upstream_save(name="broken", type="openai", base_url=broken.url, keys="sk-up",
                                 served_models=["gpt-4o"], groups=[group_default().name])
        _user, key = funded_key()
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
        # UPSTREAM_FAILURES_TO_DISABLE is 5: three failures through one process and two through the other.
        for url in (a, b, a, b, a):
            r = httpx.post(url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"},
                           timeout=30)
            assert r.status_code == 502
        assert Upstream.objects.get(pk=upstream.pk).status == UpstreamStatus.AUTO_DISABLED
        assert len(broken.requests) == 5
