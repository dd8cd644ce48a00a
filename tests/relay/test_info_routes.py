"""Usage totals, dashboard routes, moderations, n > 1 and the operator's upstream test."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import httpx
import openai
import pytest
from django.utils import timezone

from billing.groups import group_default
from billing.models import ModelPrice
from billing.models import UsageLog
from relay.upstreams import upstream_save
from tests.fakes.openai_upstream import FakeOpenAI
from tests.support import post, settled


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI(api_key="sk-up") as up:
        yield up


@pytest.fixture
def openai_upstream(fake, transactional_db):
    fake.reset()
    ModelPrice.objects.update_or_create(model="gpt-4o", defaults={"model_ratio": 1, "completion_ratio": 2})
    ModelPrice.objects.update_or_create(model="omni-moderation-latest", defaults={"price_per_call": Decimal("0.001")})
    return upstream_save(name="oa", type="openai", base_url=fake.url, keys="sk-up", test_model="gpt-4o",
                         served_models=["gpt-4o", "omni-moderation-latest"], groups=[group_default().name])


def test_usage_totals_by_provider_and_date_range(live, bootstrap_demo, openai_upstream, funded_key):
    _user, key = funded_key()
    for model in ("gpt-4o", "gpt-4o", "demo-chat"):
        post(live, "/v1/chat/completions", key, {"model": model, "messages": [{"role": "user", "content": "x"}]})
    assert settled(lambda: UsageLog.objects.count() == 3)
    headers = {"authorization": f"Bearer {key}"}
    data = httpx.get(live.url + "/v1/usage", headers=headers).json()
    providers = {row["provider"]: row for row in data["by_provider"]}
    assert set(providers) == {"openai", "demo"}
    # the fake reports 17 + 5 tokens; gpt-4o here: 1 x (17 + 5 x 2) = 27 quota per call
    assert providers["openai"] == {"provider": "openai", "tokens": 44, "quota": 54, "cost": "0.000108"}
    assert data["total_quota"] == sum(log.quota for log in UsageLog.objects.all())
    since = (timezone.localdate() - timedelta(days=40)).isoformat()
    only = httpx.get(live.url + f"/v1/usage?provider=openai&start_date={since}", headers=headers).json()
    assert only["total_tokens"] == 44 and only["period"]["start_date"] == since
    past = httpx.get(live.url + "/v1/usage?start_date=2020-01-01&end_date=2020-01-31", headers=headers).json()
    assert past["total_tokens"] == 0 and past["by_provider"] == []
    bad = httpx.get(live.url + "/v1/usage?start_date=yesterday", headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "start_date"


def test_dashboard_routes_for_chat_clients(live, bootstrap_demo, funded_key):
    _user, key = funded_key("limited", unlimited_quota=False, remain_quota=1_000_000)
    headers = {"authorization": f"Bearer {key}"}
    sub = httpx.get(live.url + "/v1/dashboard/billing/subscription", headers=headers).json()
    assert sub["hard_limit_usd"] == 2.0 and sub["access_until"] == 0
    post(live, "/v1/chat/completions", key, {"model": "demo-chat", "messages": [{"role": "user", "content": "x"}]})
    assert settled(lambda: UsageLog.objects.exists())
    used = httpx.get(live.url + "/v1/dashboard/billing/usage", headers=headers).json()
    assert used["total_usage"] == pytest.approx(UsageLog.objects.get().quota / 500_000 * 100)
    # clients whose base URL has no /v1 (NextChat) ask the same two at the root; the console's /dashboard/ stays
    assert httpx.get(live.url + "/dashboard/billing/subscription", headers=headers).json() == sub
    assert httpx.get(live.url + "/dashboard/billing/usage", headers=headers).json() == used
    assert httpx.get(live.url + "/dashboard/billing/usage").json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(live.url + "/dashboard/").status_code == 302  # the console's page: to the login first


def test_moderations_priced_per_call_and_n_choices(live, openai_upstream, funded_key):
    _user, key = funded_key()
    client = openai.OpenAI(api_key=key, base_url=live.url + "/v1", max_retries=0)
    assert client.moderations.create(model="omni-moderation-latest", input="hello").results
    reply = client.chat.completions.create(model="gpt-4o", n=2, messages=[{"role": "user", "content": "x"}])
    assert [c.index for c in reply.choices] == [0, 1]
    assert settled(lambda: UsageLog.objects.count() == 2)
    assert UsageLog.objects.get(model="omni-moderation-latest").quota == 500  # $0.001 x 500,000
    assert UsageLog.objects.get(model="gpt-4o").completion_tokens == 10


def test_operators_can_test_an_upstream(openai_upstream, admin, client_for, fake):
    client = client_for(admin)
    r = client.get(f"/api/channel/test/{openai_upstream.pk}")
    assert r.status_code == 200 and r.json()["success"] is True and fake.requests[-1].json["max_tokens"] == 1
    fake.behave("gpt-4o", status=500, error_message="down for maintenance")
    r = client.get(f"/api/channel/test/{openai_upstream.pk}")
    assert r.json()["success"] is False and "down for maintenance" in r.json()["message"]
    openai_upstream.refresh_from_db()
    assert openai_upstream.last_test_latency_ms is not None


def test_operators_can_test_upstreams_from_admin(openai_upstream, admin_client, fake):
    r = admin_client.post("/admin/relay/upstream/", {"action": "test_upstreams", "_selected_action": [openai_upstream.pk]},
                          follow=True)
    assert r.status_code == 200 and "a: answered (" in r.content.decode()
    assert fake.requests[-1].path == "/v1/chat/completions"
