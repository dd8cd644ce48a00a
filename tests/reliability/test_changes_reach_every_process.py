"""An operator's change made through one relay process takes effect on another within a second: a banned (disabled)
user is refused, a user moved to another group and a changed price are billed at the new ratio.

Both Daphne processes keep their copies for a minute (RELAY_CACHE_SECONDS=60), and the process checked has the old
state cached before the change, so only the Redis invalidation can make it see the change in time.
"""

from __future__ import annotations

import time
from decimal import Decimal

import httpx
import pytest

from accounts.models import User
from accounts.services import access_token_issue
from billing.groups import group_save
from billing.models import ModelPrice, UsageLog, UsageStatus
from billing.pricing import quota_for_tokens
from relay.models import Upstream
from relay.probe import upstream_test
from relay.upstreams import upstream_auto_disable
from tests.processes import ServerProcesses
from tests.support import settled

pytestmark = pytest.mark.subprocess
PROPAGATION = 1.05  # seconds allowed for a change to reach every process


@pytest.fixture(scope="module")
def _servers(django_db_setup):
    with ServerProcesses() as processes:
        options = {"DEMO_CHUNK_DELAY_MS": "0", "RELAY_CACHE_SECONDS": "60"}
        servers = processes.start(**options)[0], processes.start(**options)[0]
        for url in servers:  # a first relay request starts each process's invalidation listener
            httpx.post(url + "/v1/chat/completions", json={}, timeout=10)
        yield servers


@pytest.fixture
def two_servers(_servers, transactional_db, bootstrap_demo):
    return _servers


@pytest.fixture
def operator(bootstrap_demo):
    """Headers for the management API as the bootstrap's admin."""
    admin = User.objects.get(username="admin")
    return {"authorization": f"Bearer {access_token_issue(user=admin)}"}


def _chat(url: str, key: str) -> httpx.Response:
    body = {"model": "demo-chat", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 40}
    return httpx.post(url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}, timeout=30)


def _log(response: httpx.Response) -> UsageLog:
    assert response.status_code == 200, response.text
    request_id = response.headers["x-request-id"]
    assert settled(lambda: UsageLog.objects.filter(request_id=request_id).exists())
    return UsageLog.objects.get(request_id=request_id)


def _billed_at(log: UsageLog, *, group_ratio: Decimal, model_ratio: Decimal) -> bool:
    price = ModelPrice.objects.get(model="demo-chat")
    expected = quota_for_tokens(prompt_tokens=log.prompt_tokens, completion_tokens=log.completion_tokens,
                                cached_tokens=log.cached_tokens, group_ratio=group_ratio, model_ratio=model_ratio,
                                completion_ratio=price.completion_ratio, cache_ratio=price.cache_ratio)
    return log.group_ratio == group_ratio and log.model_ratio == model_ratio and log.quota == expected


def test_a_user_disabled_on_one_process_is_refused_by_the_other_within_a_second(two_servers, operator, funded_key):
    a, b = two_servers
    user, key = funded_key()
    assert _chat(a, key).status_code == 200 and _chat(b, key).status_code == 200  # both have the user cached
    api = httpx.post(a + "/api/user/manage", json={"id": user.pk, "action": "disable"}, headers=operator, timeout=10)
    assert api.status_code == 200 and api.json()["success"], api.text
    time.sleep(PROPAGATION)
    for url in (b, a):
        refused = _chat(url, key)
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["message"] == "This account has been disabled."
    # Lifting the ban through the other process reaches the first one (which has the refusal cached) as fast.
    api = httpx.put(b + "/api/user/", json={"id": user.pk, "status": "enabled"}, headers=operator, timeout=10)
    assert api.status_code == 200 and api.json()["success"], api.text
    time.sleep(PROPAGATION)
    assert _chat(a, key).status_code == 200
    assert settled(lambda: UsageLog.objects.filter(user=user).count() == 3)  # refused calls cost nothing


def test_a_group_change_on_one_process_is_billed_by_the_other_within_a_second(two_servers, operator, funded_key):
    a, b = two_servers
    vip = group_save(name="vip", ratio=Decimal(3))
    Upstream.objects.get(type="demo").groups.add(vip)  # the demo upstream serves both groups
    _user, key = funded_key()
    user = User.objects.get(username="dev")
    before = _log(_chat(b, key))
    assert _billed_at(before, group_ratio=Decimal(1), model_ratio=Decimal("0.5"))
    api = httpx.put(a + "/api/user/", json={"id": user.pk, "group": "vip"}, headers=operator, timeout=10)
    assert api.status_code == 200 and api.json()["success"], api.text
    time.sleep(PROPAGATION)
    after = _log(_chat(b, key))
    assert _billed_at(after, group_ratio=Decimal(3), model_ratio=Decimal("0.5"))


def test_a_price_change_on_one_process_is_billed_by_the_other_within_a_second(two_servers, operator, funded_key):
    a, b = two_servers
    _user, key = funded_key()
    before = _log(_chat(b, key))
    assert _billed_at(before, group_ratio=Decimal(1), model_ratio=Decimal("0.5"))
    price = ModelPrice.objects.get(model="demo-chat")
    api = httpx.put(a + "/api/pricing/", json={"id": price.pk, "model_ratio": "8"}, headers=operator, timeout=10)
    assert api.status_code == 200 and api.json()["success"], api.text
    time.sleep(PROPAGATION)
    after = _log(_chat(b, key))
    assert _billed_at(after, group_ratio=Decimal(1), model_ratio=Decimal(8))


def test_an_upstream_disabled_and_put_back_outside_the_web_processes_is_seen_by_both_within_a_second(
        two_servers, funded_key):
    """The scheduled test runs in a worker: its disabling (an update, which sends no signal) and the retest's putting
    the upstream back reach every web process at once."""
    a, b = two_servers
    _user, key = funded_key()
    assert _chat(a, key).status_code == 200 and _chat(b, key).status_code == 200  # both have the upstream cached
    demo = Upstream.objects.get(type="demo")
    upstream_auto_disable(upstream_id=demo.pk, reason="Scheduled test failed: unreachable")
    time.sleep(PROPAGATION)
    for url in (a, b):
        refused = _chat(url, key)
        assert refused.status_code == 503, refused.text
    demo.refresh_from_db()
    assert upstream_test(upstream=demo, reenable=True).ok
    time.sleep(PROPAGATION)
    for url in (a, b):  # answered, and the call's rows written before the test's tables are emptied
        assert _log(_chat(url, key)).status == UsageStatus.SUCCESS
