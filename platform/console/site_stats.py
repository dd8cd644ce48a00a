"""The operators' view of the whole site: spend and requests, by day and by model, the top users, and how each
upstream fared in the last day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Q
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from accounts.models import User
from billing import reports
from billing.models import UsageLog, UsageStatus
from billing.pricing import quota_to_usd
from billing.retention import usage_totals
from console.charts import BarChart, ColumnChart, bar_chart, column_chart
from console.money import usd_text
from console.selectors import CHART_DAYS
from relay.models import Upstream

TOP = 10


@dataclass(frozen=True)
class UserSpend:
    username: str
    quota: int
    requests: int


@dataclass(frozen=True)
class UpstreamHealth:
    name: str
    requests: int
    errors: int

    @property
    def error_percent(self) -> float:
        return 100 * self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class SiteStats:
    today: reports.Spend
    month: reports.Spend
    users: int
    new_users_today: int
    daily: ColumnChart
    by_model: BarChart
    top_users: list[UserSpend]
    upstreams: list[UpstreamHealth]


def _top_users(since: timezone.datetime) -> list[UserSpend]:
    rows = sorted(usage_totals(user_id=None, since=since, until=timezone.now() + timedelta(hours=1), by="user_id"),
                  key=lambda r: (-r["quota"], -r["requests"]))[:TOP]
    names = dict(User.objects.filter(pk__in=[r["user_id"] for r in rows]).values_list("pk", "username"))
    return [UserSpend(names.get(r["user_id"], str(r["user_id"])), r["quota"], r["requests"]) for r in rows]


def _upstreams_last_day() -> list[UpstreamHealth]:
    counts = UsageLog.objects.filter(created_at__gte=timezone.now() - timedelta(days=1)).exclude(
        upstream_id=None).order_by().values("upstream_id").annotate(
        requests=Count("id"), errors=Count("id", filter=Q(status=UsageStatus.ERROR)))
    names = dict(Upstream.objects.values_list("pk", "name"))
    rows = [UpstreamHealth(names.get(c["upstream_id"], f"#{c['upstream_id']}"), c["requests"], c["errors"])
            for c in counts]
    return sorted(rows, key=lambda r: (-r.requests, r.name))


def site_stats() -> SiteStats:
    """Everything the site page shows, every user together."""
    today = timezone.localdate()
    daily = reports.spend_by_day(user_id=None, days=CHART_DAYS, today=today)
    since = reports.local_day_start(today - timedelta(days=CHART_DAYS - 1))
    top, rest = reports.spend_by_model(user_id=None, since=since, limit=8)
    models = list(top) + ([rest] if rest is not None else [])
    return SiteStats(
        today=reports.spend_today(user_id=None, today=today),
        month=reports.spend_this_month(user_id=None, today=today),
        users=User.objects.count(),
        new_users_today=User.objects.filter(date_joined__gte=reports.local_day_start(today)).count(),
        daily=column_chart([(formats.date_format(p.day, "m-d"), quota_to_usd(p.quota)) for p in daily], fmt=usd_text),
        by_model=bar_chart([(m.model or _("Other models"), quota_to_usd(m.quota)) for m in models], fmt=usd_text),
        top_users=_top_users(since),
        upstreams=_upstreams_last_day(),
    )
