"""The operators' site page: every user's spend together, top users, upstream errors; hidden from everyone else."""

from __future__ import annotations

from datetime import timedelta

from django.test import Client
from django.utils import timezone

from billing.models import UsageLog, UsageStatus
from relay.upstreams import upstream_save


def _log(user, upstream=None, **fields):
    values = {"model": "gpt-4o", "endpoint": "/v1/chat/completions", "request_id": "r", "quota": 500_000,
              "upstream": upstream} | fields
    return UsageLog.objects.create(user=user, **values)


def test_operators_see_the_whole_site(admin, make_user, default_group):
    alice, bob = make_user("alice"), make_user("bob")
    up = upstream_save(name="main-upstream", type="demo")
    _log(alice, up)
    _log(alice, up, quota=1_000_000, model="claude-sonnet-4-5")
    _log(bob, up, quota=0, status=UsageStatus.ERROR)
    old = _log(bob, up, quota=250_000)
    UsageLog.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(admin)
    page = client.get("/site/").content.decode()
    assert 'href="/site/"' in page  # in the operator's navigation
    today = page[page.index('id="site-today"'):page.index('id="site-month"')]
    assert "$3.00" in today and "3 requests" in today
    top = page[page.index('id="top-users"'):page.index('id="upstream-health"')]
    assert top.index("alice") < top.index("bob") and "$3.00" in top and "$0.50" in top
    health = page[page.index('id="upstream-health"'):]
    assert "main-upstream" in health and "33.3%" in health  # 1 error in the last day's 3 requests
    assert "claude-sonnet-4-5" in page


def test_everyone_else_gets_a_404(make_user):
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(make_user("alice"))
    assert client.get("/site/").status_code == 404
    assert 'href="/site/"' not in client.get("/dashboard/").content.decode()
