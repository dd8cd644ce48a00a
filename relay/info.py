"""Read-only relay routes: /v1/models, /v1/usage and the dashboard routes third-party chat clients call."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from django.conf import settings
from django.utils import timezone

from accounts.models import User
from billing.retention import usage_totals
from billing.pricing import QUOTA_PER_USD, usd_per_million
from relay import errors
from relay.http import RelayRequest
from relay.snapshots import PriceInfo, TokenContext, in_thread
from tokens.models import ApiToken

if TYPE_CHECKING:
    from relay.asgi import RelayApp

Handler = Callable[["RelayApp", TokenContext, RelayRequest], Awaitable[tuple[int, Any]]]
CREATED = 1_700_000_000
ANTHROPIC_CREATED = "2023-11-14T22:13:20Z"  # CREATED as the RFC 3339 time Anthropic's listing carries


def _money(quota: int | Decimal) -> str:
    return f"{(Decimal(quota) / QUOTA_PER_USD).quantize(Decimal('0.000001')):f}"


def _pricing(price: PriceInfo, group_ratio: Decimal) -> dict[str, Any]:
    if price.price_per_call is not None:
        return {"currency": "USD", "per_call": f"{(price.price_per_call * group_ratio).normalize():f}"}
    def per_m(side: Decimal) -> str:
        value = usd_per_million(model_ratio=price.model_ratio, group_ratio=group_ratio, side_ratio=side)
        return f"{value.quantize(Decimal('0.000001')).normalize():f}"
    return {"currency": "USD", "unit": "1M tokens", "input": per_m(Decimal(1)),
            "output": per_m(price.completion_ratio), "cached_input": per_m(price.cache_ratio)}


async def _models(app: "RelayApp", ctx: TokenContext) -> list[dict[str, Any]]:
    prices = await app.snapshots.prices()
    upstreams = await app.snapshots.upstreams()
    served: dict[str, str] = {}
    for upstream in upstreams:
        if ctx.group in upstream.groups:
            for name in (*upstream.models, *upstream.model_mapping):
                served.setdefault(name, upstream.type)
    rows = []
    for name in sorted(served):
        if ctx.model_limits and name not in ctx.model_limits:
            continue
        price = prices.get(name)
        if price is None and not settings.RELAY_UNPRICED_MODEL_RATIO:
            continue
        row: dict[str, Any] = {"id": name, "object": "model", "created": CREATED,
                               "owned_by": (price.provider if price and price.provider else served[name]),
                               "provider": price.provider if price and price.provider else served[name],
                               "category": price.category if price else "general",
                               "context_window": price.context_window if price else None}
        if price is not None:
            row["pricing"] = _pricing(price, ctx.group_ratio)
        rows.append(row)
    return rows


def _anthropic_model(row: dict[str, Any]) -> dict[str, Any]:
    """A model as Anthropic's Models API lists it (`client.models.list()` of the Anthropic SDK)."""
    return {"type": "model", "id": row["id"], "display_name": row["id"], "created_at": ANTHROPIC_CREATED}


def _anthropic_client(req: RelayRequest) -> bool:
    """Anthropic's SDKs send `anthropic-version` on every call, their model listing included."""
    return "anthropic-version" in req.headers


async def models_list(app: "RelayApp", ctx: TokenContext, req: RelayRequest) -> tuple[int, Any]:
    rows = await _models(app, ctx)
    provider, category = req.query.get("provider", ""), req.query.get("category", "")
    rows = [r for r in rows if (not provider or r["provider"] == provider) and (not category or r["category"] == category)]
    if _anthropic_client(req):  # one page holding every model
        listed = [_anthropic_model(row) for row in rows]
        return 200, {"data": listed, "has_more": False, "first_id": listed[0]["id"] if listed else None,
                     "last_id": listed[-1]["id"] if listed else None}
    return 200, {"object": "list", "data": rows}


async def model_detail(app: "RelayApp", ctx: TokenContext, req: RelayRequest) -> tuple[int, Any]:
    name = req.path.removeprefix("/v1/models/")
    for row in await _models(app, ctx):
        if row["id"] == name:
            return 200, _anthropic_model(row) if _anthropic_client(req) else row
    raise errors.not_found(f"The model '{name}' does not exist or is not offered to this key.")


def _date(value: str, default: dt.date, name: str) -> dt.date:
    if not value:
        return default
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise errors.bad_request(f"'{name}' must be a date as YYYY-MM-DD.", param=name) from None


def _usage_totals(user_id: int, start: dt.date, end: dt.date, provider: str) -> list[dict[str, Any]]:
    tz = timezone.get_current_timezone()
    since = dt.datetime.combine(start, dt.time.min, tzinfo=tz)
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    return usage_totals(user_id=user_id, since=since, until=until, provider=provider)  # hourly sums + recent logs


async def usage(app: "RelayApp", ctx: TokenContext, req: RelayRequest) -> tuple[int, Any]:
    today = timezone.localdate()
    start = _date(req.query.get("start_date", ""), today.replace(day=1), "start_date")
    end = _date(req.query.get("end_date", ""), today, "end_date")
    if end < start:
        raise errors.bad_request("'end_date' is before 'start_date'.", param="end_date")
    if (end - start).days > 366:
        raise errors.bad_request("Ask for at most one year at a time.", param="start_date")
    rows = await in_thread(_usage_totals)(ctx.user_id, start, end, req.query.get("provider", ""))
    return 200, {
        "object": "usage", "period": {"start_date": start.isoformat(), "end_date": end.isoformat()},
        "currency": "USD", "total_tokens": sum(r["tokens"] for r in rows),
        "total_quota": sum(r["quota"] for r in rows), "total_cost": _money(sum(r["quota"] for r in rows)),
        "by_provider": [{"provider": r["provider"], "tokens": r["tokens"], "quota": r["quota"],
                         "cost": _money(r["quota"])} for r in rows],
    }


def _subscription(ctx: TokenContext) -> dict[str, Any]:
    user = User.objects.only("quota", "used_quota").get(pk=ctx.user_id)
    token = ApiToken.objects.only("remain_quota", "used_quota", "expires_at").get(pk=ctx.token_id)
    total = user.quota + user.used_quota if ctx.unlimited else token.remain_quota + token.used_quota
    limit = float(Decimal(total) / QUOTA_PER_USD)
    return {"object": "billing_subscription", "has_payment_method": True, "soft_limit_usd": limit,
            "hard_limit_usd": limit, "system_hard_limit_usd": limit,
            "access_until": int(token.expires_at.timestamp()) if token.expires_at else 0}


async def subscription(app: "RelayApp", ctx: TokenContext, req: RelayRequest) -> tuple[int, Any]:
    return 200, await in_thread(_subscription)(ctx)


def _used(ctx: TokenContext) -> int:
    if ctx.unlimited:
        return User.objects.only("used_quota").get(pk=ctx.user_id).used_quota
    return ApiToken.objects.only("used_quota").get(pk=ctx.token_id).used_quota


async def dashboard_usage(app: "RelayApp", ctx: TokenContext, req: RelayRequest) -> tuple[int, Any]:
    used = await in_thread(_used)(ctx)
    return 200, {"object": "list", "total_usage": float(Decimal(used) / QUOTA_PER_USD * 100)}


async def gemini_models(app: "RelayApp", ctx: TokenContext) -> dict[str, Any]:
    """The key's models in Google's list shape, for Gemini SDKs."""
    return {"models": [
        {"name": f"models/{row['id']}", "baseModelId": row["id"], "version": "001", "displayName": row["id"],
         "description": f"{row['provider']} via Modelgate", "inputTokenLimit": row["context_window"] or 0,
         "outputTokenLimit": 0, "supportedGenerationMethods": ["generateContent", "streamGenerateContent"]}
        for row in await _models(app, ctx)
    ]}


ROUTES: dict[str, Handler] = {
    "/v1/models": models_list,
    "/v1/usage": usage,
    "/v1/dashboard/billing/subscription": subscription,
    "/v1/dashboard/billing/usage": dashboard_usage,
    "/dashboard/billing/subscription": subscription,  # chat clients that put no /v1 before these two
    "/dashboard/billing/usage": dashboard_usage,
}
ROOT_PATHS = frozenset(path for path in ROUTES if not path.startswith("/v1/"))


def route(path: str) -> Handler | None:
    if path.startswith("/v1/models/") and len(path) > len("/v1/models/"):
        return model_detail
    return ROUTES.get(path.rstrip("/") if path != "/" else path)
