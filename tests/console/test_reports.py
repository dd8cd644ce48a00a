"""The console's read side: billing reports by local day and model, chart geometry, and money formatting."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from billing import reports
from billing.models import UsageLog
from console.charts import bar_chart, column_chart, nice_ceiling
from console.money import local_currency_text, quota_usd_text, usd_text, usd_to_quota

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _log_at(user, when: datetime, quota: int, model: str = "m") -> None:
    log = UsageLog.objects.create(user=user, model=model, endpoint="/v1/chat/completions", quota=quota,
                                  request_id=f"r{UsageLog.objects.count()}")
    UsageLog.objects.filter(pk=log.pk).update(created_at=when)


def test_days_are_local_days_and_missing_days_are_zero(user, settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    today = date(2026, 3, 10)
    _log_at(user, datetime(2026, 3, 10, 0, 30, tzinfo=SHANGHAI), 5)   # 16:30 UTC on the 9th
    _log_at(user, datetime(2026, 3, 9, 23, 59, tzinfo=SHANGHAI), 7)
    _log_at(user, datetime(2026, 2, 8, 12, 0, tzinfo=SHANGHAI), 100)  # 30 days back is Feb 9: outside
    with timezone.override(SHANGHAI):
        days = reports.spend_by_day(user_id=user.pk, days=30, today=today)
        assert len(days) == 30 and days[0].day == date(2026, 2, 9) and days[-1].day == today
        assert (days[-1].quota, days[-2].quota, sum(d.quota for d in days)) == (5, 7, 12)
        assert reports.spend_today(user_id=user.pk, today=today) == reports.Spend(quota=5, requests=1)
        assert reports.spend_this_month(user_id=user.pk, today=today) == reports.Spend(quota=12, requests=2)


def test_spend_by_model_sums_the_tail(user):
    now = timezone.now()
    for i, model in enumerate(["a", "b", "c", "d"]):
        _log_at(user, now, 100 * (4 - i), model=model)
    top, rest = reports.spend_by_model(user_id=user.pk, since=now - timedelta(days=1), limit=2)
    assert [(m.model, m.quota) for m in top] == [("a", 400), ("b", 300)]
    assert rest == reports.ModelSpend(model="", quota=300, requests=2)
    _top, rest = reports.spend_by_model(user_id=user.pk, since=now - timedelta(days=1), limit=8)
    assert rest is None


def test_log_totals_and_facets(user, other_user):
    now = timezone.now()
    _log_at(user, now, 3, model="x")
    _log_at(user, now, 4, model="y")
    _log_at(other_user, now, 100, model="z")
    totals = reports.log_totals(UsageLog.objects.filter(user=user))
    assert (totals.requests, totals.quota) == (2, 7)
    assert reports.log_facets(user_id=user.pk) == (["x", "y"], [])


def test_trial_credit_and_recent_credits(user):
    assert reports.trial_credit(user_id=user.pk) == 500_000
    assert [e.reason for e in reports.credits_recent(user_id=user.pk)] == ["signup"]


@pytest.mark.parametrize("value, expected", [
    ("0", "1"), ("0.7", "1"), ("1", "1"), ("1.5", "2"), ("2.2", "2.5"), ("3", "5"), ("7", "10"),
    ("0.000036", "0.00005"), ("120", "200"),
])
def test_nice_ceiling(value, expected):
    assert nice_ceiling(Decimal(value)) == Decimal(expected)


def test_column_chart_geometry():
    points = [(f"d{i}", Decimal(i)) for i in range(10)]
    chart = column_chart(points, fmt=lambda v: f"{v.normalize():f}", width=560, height=200, tick_count=4)
    assert len(chart.columns) == 10 and chart.columns[0].height == 0
    tallest = chart.columns[-1]
    assert tallest.y >= chart.top and tallest.y + tallest.height == chart.bottom
    assert [t.label for t in chart.ticks] == ["0", "2.5", "5", "7.5", "10"]
    assert chart.x_labels[-1].label == "d9" and not chart.empty
    assert all(chart.left <= c.x and c.x + c.width <= chart.right + 0.01 for c in chart.columns)
    assert column_chart([("a", Decimal(0))], fmt=str).empty


def test_tiny_values_stay_visible_and_bars_share_the_total():
    chart = column_chart([("a", Decimal("0.000001")), ("b", Decimal(1000))], fmt=str)
    assert chart.columns[0].height == 1.0
    bars = bar_chart([("a-very-long-model-name-for-bars", Decimal(3)), ("b", Decimal(1))], fmt=str)
    assert [r.share for r in bars.rows] == [75, 25]
    assert bars.rows[0].label.endswith("…") and bars.rows[0].title == "a-very-long-model-name-for-bars"
    assert bars.rows[1].bar_width == pytest.approx(bars.rows[0].bar_width / 3, abs=0.01)


def test_money_formatting(settings):
    assert usd_text(Decimal("1")) == "$1.00"
    assert usd_text(Decimal("1234.5")) == "$1,234.50"
    assert usd_text(Decimal("0.000036")) == "$0.000036"
    assert usd_text(Decimal("-0.5")) == "-$0.50"
    assert quota_usd_text(499_982) == "$0.999964"
    assert usd_to_quota(Decimal("2.5")) == 1_250_000
    settings.DISPLAY_CURRENCY, settings.USD_EXCHANGE_RATE = "USD", Decimal("7.2")
    assert local_currency_text(500_000) == ""
    settings.DISPLAY_CURRENCY = "CNY"
    assert local_currency_text(500_000) == "¥7.20"
