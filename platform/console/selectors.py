"""Reads the console's pages need: the public summary, the user's groups and models, and the dashboard."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Q
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from accounts.models import User
from billing import reports
from billing.models import ModelCategory, ModelPrice, UserGroup
from billing.pricing import quota_to_usd
from billing.selectors import price_list
from console.charts import BarChart, ColumnChart, bar_chart, column_chart
from console.money import usd_text
from relay.models import Upstream, UpstreamStatus
from relay.providers import PROVIDERS

CHART_DAYS = 30


def groups_public() -> list[UserGroup]:
    """The groups anyone may pick for a key, cheapest first."""
    return list(UserGroup.objects.filter(selectable=True).order_by("ratio", "name"))


def groups_for(user: User | None) -> list[UserGroup]:
    """The groups a user's keys can use: the selectable ones and the user's own, cheapest first."""
    groups = UserGroup.objects.filter(selectable=True)
    if user is not None and user.is_authenticated:
        groups = UserGroup.objects.filter(Q(selectable=True) | Q(pk=user.group_id))
    return list(groups.order_by("ratio", "name"))


def models_served() -> dict[str, set[str]]:
    """Model name -> names of the groups that an enabled upstream serves it to."""
    served: dict[str, set[str]] = {}
    upstreams = Upstream.objects.filter(status=UpstreamStatus.ENABLED).prefetch_related("groups")
    for upstream in upstreams:
        group_names = {g.name for g in upstream.groups.all()}
        for name in (*(upstream.served_models or []), *(upstream.model_mapping or {})):
            served.setdefault(name, set()).update(group_names)
    return served


def home_summary() -> dict[str, Any]:
    """What the public home page shows: the model families served, the groups, how many models are offered."""
    types = Upstream.objects.filter(status=UpstreamStatus.ENABLED).values_list("type", flat=True).distinct()
    families = sorted({PROVIDERS[t].label for t in types if t in PROVIDERS})
    return {
        "families": families,
        "groups": groups_public(),
        "model_count": len(models_served()),
    }


@dataclass(frozen=True)
class GroupPrice:
    """A model's price in one group, as shown (USD strings); `available` is False where no upstream serves it."""

    group: str
    available: bool
    input: str = ""
    output: str = ""
    cached: str = ""
    per_call: str = ""
    per_minute: str = ""


@dataclass(frozen=True)
class ModelRow:
    """One row of the pricing table."""

    model: str
    provider: str
    category: str
    context_window: int | None
    kind: str  # per_token, per_call or per_minute
    prices: list[GroupPrice] = field(default_factory=list)
    long_context: dict[str, Any] | None = None  # past `threshold` prompt tokens, prices times the multipliers


def model_catalog(*, groups: list[UserGroup], query: str = "", category: str = "") -> list[ModelRow]:
    """Every priced model at least one of `groups` can use, with its USD price in each of them."""
    served = models_served()
    names = {g.name for g in groups}
    ratios = {g.name: g.ratio for g in groups}
    categories = dict(ModelCategory.choices)
    rows = []
    for row in price_list(groups=groups):
        offered = served.get(row["model"], set()) & names
        if not offered:
            continue
        if query and query.lower() not in row["model"].lower() and query.lower() not in row["provider"].lower():
            continue
        if category and row["category"] != category:
            continue
        per_minute = row["price_per_minute"]
        kind = "per_minute" if per_minute is not None else row["quota_type"]
        prices = []
        for group in groups:
            if group.name not in offered:
                prices.append(GroupPrice(group=group.name, available=False))
                continue
            cell = row["groups"][group.name]
            if kind == "per_minute":
                prices.append(GroupPrice(group=group.name, available=True,
                                         per_minute=usd_text(Decimal(per_minute) * ratios[group.name])))
            elif kind == "per_call":
                prices.append(GroupPrice(group=group.name, available=True,
                                         per_call=usd_text(Decimal(cell["per_call"]))))
            else:
                prices.append(GroupPrice(
                    group=group.name, available=True, input=usd_text(Decimal(cell["input_per_million"])),
                    output=usd_text(Decimal(cell["output_per_million"])),
                    cached=usd_text(Decimal(cell["cached_input_per_million"]))))
        rows.append(ModelRow(model=row["model"], provider=row["provider"],
                             category=str(categories.get(row["category"], row["category"])),
                             context_window=row["context_window"], kind=kind, prices=prices,
                             long_context=row["long_context"] if kind == "per_token" else None))
    return rows


def model_names_for(user: User | None) -> list[str]:
    """Models a user's keys can call (a visitor's: the public groups'), for form hints and the docs' examples."""
    names = {g.name for g in groups_for(user)}
    priced = set(ModelPrice.objects.values_list("model", flat=True))
    return sorted(m for m, groups in models_served().items() if groups & names and m in priced)


@dataclass(frozen=True)
class Dashboard:
    """Everything the dashboard shows besides the user's own counters."""

    today: reports.Spend
    month: reports.Spend
    daily: ColumnChart
    daily_points: list[reports.DaySpend]
    by_model: BarChart
    by_model_rows: list[reports.ModelSpend]
    checked_in_today: bool


def dashboard(*, user: User) -> Dashboard:
    """Spend today and this month, the last 30 days by day, and the same period by model."""
    today = timezone.localdate()
    daily = reports.spend_by_day(user_id=user.pk, days=CHART_DAYS, today=today)
    since = reports.local_day_start(today - timedelta(days=CHART_DAYS - 1))
    top, rest = reports.spend_by_model(user_id=user.pk, since=since, limit=8)
    by_model = list(top) + ([rest] if rest is not None else [])
    column = column_chart([(formats.date_format(p.day, "m-d"), quota_to_usd(p.quota)) for p in daily], fmt=usd_text)
    bars = bar_chart([(m.model or _("Other models"), quota_to_usd(m.quota)) for m in by_model], fmt=usd_text)
    return Dashboard(
        today=reports.spend_today(user_id=user.pk, today=today),
        month=reports.spend_this_month(user_id=user.pk, today=today),
        daily=column, daily_points=daily, by_model=bars, by_model_rows=by_model,
        checked_in_today=user.last_checkin_date == today,
    )


def checked_in_today(user: User) -> bool:
    """Whether the user has claimed today's (local day's) check-in reward."""
    return user.last_checkin_date == timezone.localdate()
