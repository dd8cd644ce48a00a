"""Billing reads: usage logs by the console's and API's filters, and the price list per group."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.models import ModelPrice, UsageLog, UserGroup
from billing.pricing import usd_per_million


@dataclass(frozen=True)
class LogFilter:
    start: datetime | None = None
    end: datetime | None = None
    model: str = ""
    token_name: str = ""
    username: str = ""
    upstream_id: int | None = None
    status: str = ""


def usage_logs(*, user_id: int | None, f: LogFilter) -> QuerySet[UsageLog]:
    """Logs newest first; one user's when `user_id` is given, everyone's otherwise (operators)."""
    qs = UsageLog.objects.all()
    if user_id is not None:
        qs = qs.filter(user_id=user_id)
    if f.start:
        qs = qs.filter(created_at__gte=f.start)
    if f.end:
        qs = qs.filter(created_at__lte=f.end)
    if f.model:
        qs = qs.filter(model=f.model)
    if f.token_name:
        qs = qs.filter(token_name=f.token_name)
    if f.username:
        qs = qs.filter(user__username=f.username)
    if f.upstream_id is not None:
        qs = qs.filter(upstream_id=f.upstream_id)
    if f.status:
        qs = qs.filter(status=f.status)
    return qs.select_related("user").order_by("-created_at", "-id")


def usage_stat(*, user_id: int | None, f: LogFilter) -> dict[str, int]:
    """The quota the filtered logs add up to, and the requests and tokens of the last minute under the same filter
    without its time range (new-api's `rpm` and `tpm`)."""
    quota = usage_logs(user_id=user_id, f=f).order_by().aggregate(total=Coalesce(Sum("quota"), 0))["total"]
    minute = replace(f, start=timezone.now() - timedelta(seconds=60), end=None)
    recent = usage_logs(user_id=user_id, f=minute).order_by().aggregate(
        requests=Count("id"), tokens=Coalesce(Sum("prompt_tokens"), 0) + Coalesce(Sum("completion_tokens"), 0))
    return {"quota": quota, "rpm": recent["requests"], "tpm": recent["tokens"]}


def price_list(*, groups: list[UserGroup]) -> list[dict]:
    """Every priced model with what it costs in each of `groups` (USD per million tokens, or per call)."""
    rows = []
    for price in ModelPrice.objects.order_by("provider", "model"):
        per_group = {}
        for group in groups:
            if price.is_per_call:
                per_group[group.name] = {"per_call": _usd(price.price_per_call * group.ratio)}
            else:
                per_group[group.name] = {
                    "input_per_million": _usd(usd_per_million(model_ratio=price.model_ratio, group_ratio=group.ratio)),
                    "output_per_million": _usd(usd_per_million(
                        model_ratio=price.model_ratio, group_ratio=group.ratio, side_ratio=price.completion_ratio)),
                    "cached_input_per_million": _usd(usd_per_million(
                        model_ratio=price.model_ratio, group_ratio=group.ratio, side_ratio=price.cache_ratio)),
                }
        rows.append({**price_render(price), "groups": per_group})
    return rows


def price_render(price: ModelPrice) -> dict:
    return {
        "id": price.pk,
        "model": price.model,
        "provider": price.provider,
        "category": price.category,
        "context_window": price.context_window,
        "model_ratio": str(price.model_ratio.normalize()),
        "completion_ratio": str(price.completion_ratio.normalize()),
        "cache_ratio": str(price.cache_ratio.normalize()),
        "cache_write_ratio": str(price.cache_write_ratio.normalize()),
        "audio_ratio": str(price.audio_ratio.normalize()),
        "audio_completion_ratio": str(price.audio_completion_ratio.normalize()),
        "price_per_call": None if price.price_per_call is None else str(price.price_per_call.normalize()),
        "price_per_minute": None if price.price_per_minute is None else str(price.price_per_minute.normalize()),
        "price_variants": dict(price.price_variants or {}),
        "long_context": None if not price.long_context_threshold else {
            "threshold": price.long_context_threshold,
            "prompt_multiplier": str(price.long_context_prompt_multiplier.normalize()),
            "completion_multiplier": str(price.long_context_completion_multiplier.normalize())},
        "quota_type": "per_call" if price.is_per_call else "per_token",
    }


def _usd(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.000001')).normalize():f}"
