"""An upstream account's remaining balance, asked of the provider in its own way (for operators).

- OpenRouter: `GET /api/v1/credits` (its base URL ends in /api), total credits less total usage (USD).
- DeepSeek: `GET /user/balance`, the first of `balance_infos` (its currency).
- SiliconFlow: `GET /v1/user/info`, `data.totalBalance` (CNY).
- Moonshot: `GET /v1/users/me/balance`, `data.available_balance` (CNY).
- Every other OpenAI-compatible upstream (OpenAI keys with billing access, and gateways such as this one, new-api and
  one-api): `GET /v1/dashboard/billing/subscription` and `/usage`, the hard limit less the usage (USD).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Awaitable, Callable

import httpx
from django.utils import timezone

from relay.models import Upstream
from relay.overrides import headers_with_overrides
from relay.snapshots import UpstreamInfo, upstream_info


class BalanceUnavailable(Exception):
    """The upstream would not or could not say its balance."""


@dataclass(frozen=True)
class Balance:
    amount: Decimal
    currency: str


def _number(value: Any) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise BalanceUnavailable(f"not a balance: {str(value)[:40]!r}") from None
    if not number.is_finite():
        raise BalanceUnavailable(f"not a balance: {value!r}")
    return number


async def _get(client: httpx.AsyncClient, upstream: UpstreamInfo, key: str, path: str,
               params: dict[str, str] | None = None) -> Any:
    headers = headers_with_overrides({"authorization": f"Bearer {key}"}, upstream.header_override, key)
    root = upstream.base_url.removesuffix(upstream.provider.api_prefix) if upstream.provider.api_prefix else \
        upstream.base_url
    response = await client.get(f"{root}{path}", headers=headers, params=params)
    if response.status_code >= 400:
        raise BalanceUnavailable(f"HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise BalanceUnavailable("the answer is not JSON") from None


async def _openrouter(client: httpx.AsyncClient, upstream: UpstreamInfo, key: str) -> Balance:
    data = (await _get(client, upstream, key, "/v1/credits")).get("data") or {}
    return Balance(_number(data.get("total_credits")) - _number(data.get("total_usage", 0)), "USD")


async def _deepseek(client: httpx.AsyncClient, upstream: UpstreamInfo, key: str) -> Balance:
    infos = (await _get(client, upstream, key, "/user/balance")).get("balance_infos") or []
    if not infos or not isinstance(infos[0], dict):
        raise BalanceUnavailable("no balance in the answer")
    return Balance(_number(infos[0].get("total_balance")), str(infos[0].get("currency") or "CNY"))


async def _siliconflow(client: httpx.AsyncClient, upstream: UpstreamInfo, key: str) -> Balance:
    data = (await _get(client, upstream, key, "/v1/user/info")).get("data") or {}
    return Balance(_number(data.get("totalBalance", data.get("balance"))), "CNY")


async def _moonshot(client: httpx.AsyncClient, upstream: UpstreamInfo, key: str) -> Balance:
    data = (await _get(client, upstream, key, "/v1/users/me/balance")).get("data") or {}
    return Balance(_number(data.get("available_balance")), "CNY")


async def _dashboard(client: httpx.AsyncClient, upstream: UpstreamInfo, key: str) -> Balance:
    subscription = await _get(client, upstream, key, "/v1/dashboard/billing/subscription")
    today = dt.date.today()
    usage = await _get(client, upstream, key, "/v1/dashboard/billing/usage",
                       {"start_date": (today - dt.timedelta(days=100)).isoformat(),
                        "end_date": (today + dt.timedelta(days=1)).isoformat()})
    return Balance(_number(subscription.get("hard_limit_usd")) - _number(usage.get("total_usage", 0)) / 100, "USD")


QUERIES: dict[str, Callable[[httpx.AsyncClient, UpstreamInfo, str], Awaitable[Balance]]] = {
    "openrouter": _openrouter, "deepseek": _deepseek, "siliconflow": _siliconflow, "moonshot": _moonshot,
}


async def upstream_balance(client: httpx.AsyncClient, upstream: UpstreamInfo) -> Balance:
    """The balance of the upstream's first key; raises BalanceUnavailable with the reason."""
    if upstream.provider.family != "openai" or not upstream.keys:
        raise BalanceUnavailable("this upstream does not report a balance")
    query = QUERIES.get(upstream.type, _dashboard)
    try:
        return await query(client, upstream, upstream.keys[0])
    except (httpx.HTTPError, AttributeError) as exc:
        raise BalanceUnavailable(f"unreachable or unreadable: {type(exc).__name__}") from None


def upstream_balance_refresh(*, upstream: Upstream) -> Balance:
    """Ask the upstream for its balance and keep it on the row (with the time asked)."""
    info = upstream_info(upstream)
    if info is None:
        raise BalanceUnavailable("unknown provider type")

    async def ask() -> Balance:
        timeout = httpx.Timeout(info.first_byte_timeout, connect=info.connect_timeout)
        async with httpx.AsyncClient(trust_env=False, timeout=timeout) as client:
            return await upstream_balance(client, info)

    balance = asyncio.run(ask())
    Upstream.objects.filter(pk=upstream.pk).update(balance=balance.amount, balance_currency=balance.currency,
                                                   balance_updated_at=timezone.now())
    return balance
