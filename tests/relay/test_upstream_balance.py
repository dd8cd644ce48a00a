"""Upstream balances: each provider asked in its own way; this platform's own billing endpoints as a real upstream."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest

from relay.providers import PROVIDERS
from relay.snapshots import UpstreamInfo
from relay.upstream_balance import Balance, BalanceUnavailable, upstream_balance
from relay.upstreams import upstream_save

ANSWERS = {
    "https://openrouter.ai/api/v1/credits": {"data": {"total_credits": 50, "total_usage": 12.25}},
    "https://api.deepseek.com/user/balance": {"is_available": True, "balance_infos": [
        {"currency": "CNY", "total_balance": "110.00", "granted_balance": "10.00", "topped_up_balance": "100.00"}]},
    "https://api.siliconflow.cn/v1/user/info": {"code": 20000, "data": {"balance": "0.88", "totalBalance": "88.88"}},
    "https://api.moonshot.cn/v1/users/me/balance": {"code": 0, "data": {"available_balance": 49.58,
                                                                        "cash_balance": 3.0}},
    "https://gw.example.com/v1/dashboard/billing/subscription": {"hard_limit_usd": 20.0},
    "https://gw.example.com/v1/dashboard/billing/usage": {"total_usage": 350.0},  # cents
}


def _info(kind: str, base_url: str = "") -> UpstreamInfo:
    provider = PROVIDERS[kind]
    return UpstreamInfo(id=1, name=kind, type=kind, provider=provider, base_url=base_url or provider.default_base_url,
                        keys=("sk-up",), models=frozenset(), model_mapping={}, groups=frozenset(), priority=0,
                        weight=1, connect_timeout=5, first_byte_timeout=5, total_timeout=5, extras={})


def _ask(info: UpstreamInfo) -> Balance:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer sk-up"
        url = str(request.url).split("?")[0]
        return httpx.Response(200, json=ANSWERS[url]) if url in ANSWERS else httpx.Response(404, json={})

    async def run() -> Balance:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            return await upstream_balance(client, info)

    return asyncio.run(run())


@pytest.mark.parametrize("kind, base_url, expected", [
    ("openrouter", "", Balance(Decimal("37.75"), "USD")),
    ("deepseek", "", Balance(Decimal("110.00"), "CNY")),
    ("siliconflow", "https://api.siliconflow.cn/v1", Balance(Decimal("88.88"), "CNY")),
    ("moonshot", "", Balance(Decimal("49.58"), "CNY")),
    ("custom", "https://gw.example.com/v1", Balance(Decimal("16.5"), "USD")),  # 20 - 350 cents
])
def test_each_provider_is_asked_in_its_own_way(kind, base_url, expected):
    assert _ask(_info(kind, base_url)) == expected


def test_upstreams_without_a_balance_say_so():
    with pytest.raises(BalanceUnavailable, match="HTTP 404"):
        _ask(_info("xai"))
    with pytest.raises(BalanceUnavailable, match="does not report a balance"):
        _ask(_info("anthropic"))


def test_another_gateway_is_asked_through_its_billing_endpoints(live, admin, client_for, funded_key):
    """This platform as the upstream of another: its balance is the key's holder's balance."""
    holder, key = funded_key("holder", balance=2_000_000)
    upstream = upstream_save(name="reseller", type="custom", base_url=f"{live.url}/v1", keys=key)
    body = client_for(admin).get(f"/api/channel/update_balance/{upstream.pk}").json()
    holder.refresh_from_db()
    assert body["success"] is True and body["data"]["currency"] == "USD"
    assert Decimal(body["data"]["balance"]) == Decimal(holder.quota) / 500_000
    upstream.refresh_from_db()
    assert upstream.balance == Decimal(holder.quota) / 500_000 and upstream.balance_updated_at
    listed = client_for(admin).get(f"/api/channel/{upstream.pk}").json()["data"]
    assert Decimal(listed["balance"]) == upstream.balance and listed["balance_currency"] == "USD"
    broken = upstream_save(name="broken", type="custom", base_url=f"{live.url}/v1", keys="sk-not-a-real-key-00000")
    refused = client_for(admin).get(f"/api/channel/update_balance/{broken.pk}").json()
    assert refused == {"success": False, "message": "HTTP 401", "data": None}
