"""Usage logs: a user's own only, filters with totals, htmx pages and partial results, CSV export."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from django.utils import timezone

from billing.models import UsageLog, UsageStatus


def _logs(user, count: int, **fields) -> None:
    now = timezone.now()
    start = UsageLog.objects.count()
    rows = [UsageLog(user=user, model=fields.get("model", "demo-chat"), endpoint="/v1/chat/completions",
                     token_name=fields.get("token_name", "main"), quota=fields.get("quota", 100),
                     prompt_tokens=10, completion_tokens=20, status=fields.get("status", UsageStatus.SUCCESS),
                     request_id=f"req-{start + i}") for i in range(count)]
    UsageLog.objects.bulk_create(rows)
    if "created_at" in fields:
        UsageLog.objects.filter(request_id__in=[r.request_id for r in rows]).update(created_at=fields["created_at"])
    else:
        for i, row in enumerate(rows):
            UsageLog.objects.filter(request_id=row.request_id).update(created_at=now - timedelta(seconds=i))


def test_logs_show_only_ones_own_requests(console, user, other_user):
    _logs(user, 2)
    _logs(other_user, 3, model="secret-model", token_name="their key")
    page = console.get("/logs/").content.decode()
    assert page.count('class="log-row"') == 2 and "secret-model" not in page and "their key" not in page
    assert 'id="total-requests">2<' in page
    csv_text = console.get("/logs/export.csv").content.decode("utf-8-sig")
    assert "secret-model" not in csv_text and len(list(csv.reader(io.StringIO(csv_text)))) == 3


def test_filters_narrow_the_rows_and_the_totals(console, user):
    _logs(user, 3, model="demo-chat", quota=100)
    _logs(user, 2, model="gpt-4o", token_name="other", quota=1000)
    _logs(user, 1, model="gpt-4o", status=UsageStatus.ERROR, quota=0)
    _logs(user, 4, model="gpt-4o", created_at=timezone.now() - timedelta(days=5))
    page = console.get("/logs/", {"model": "gpt-4o", "token": "other"}).content.decode()
    assert page.count('class="log-row"') == 2 and 'id="total-quota">2,000<' in page
    page = console.get("/logs/", {"status": "error"}).content.decode()
    assert page.count('class="log-row"') == 1
    today = timezone.localdate().isoformat()
    page = console.get("/logs/", {"start": today, "end": today}).content.decode()
    assert 'id="total-requests">6<' in page
    page = console.get("/logs/", {"start": today, "end": "2000-01-01"}).content.decode()
    assert "The end date is before the start date." in page


def test_pages_after_the_first_come_as_rows_for_htmx(console, user, htmx):
    _logs(user, 120)
    page = console.get("/logs/").content.decode()
    assert page.count('class="log-row"') == 50 and 'id="log-more"' in page and "page=2" in page
    rows = console.get("/logs/", {"page": 2}, **htmx("log-more")).content.decode()
    assert rows.lstrip().startswith("<tr") and rows.count('class="log-row"') == 50 and "page=3" in rows
    last = console.get("/logs/", {"page": 3}, **htmx("log-more")).content.decode()
    assert last.count('class="log-row"') == 20 and 'id="log-more"' not in last
    full = console.get("/logs/", {"page": 2}).content.decode()
    assert "<html" in full and full.count('class="log-row"') == 50


def test_filtering_with_htmx_returns_only_the_results(console, user, htmx):
    _logs(user, 2)
    part = console.get("/logs/", {"model": "demo-chat"}, **htmx("log-results")).content.decode()
    assert part.startswith('<div id="log-results">') and "<html" not in part
    assert "/logs/export.csv?model=demo-chat" in part


def test_csv_export_follows_the_filters(console, user):
    _logs(user, 2, model="demo-chat", quota=250_000)
    _logs(user, 1, model="gpt-4o")
    response = console.get("/logs/export.csv", {"model": "demo-chat"})
    assert response["Content-Type"].startswith("text/csv") and "attachment" in response["Content-Disposition"]
    body = response.content.decode("utf-8")
    assert body.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert rows[0][:3] == ["Time", "API key", "Model"] and len(rows) == 3
    assert {row[2] for row in rows[1:]} == {"demo-chat"} and rows[1][8] == "250000" and rows[1][9] == "0.500000"


def test_csv_headers_follow_the_language(client, user):
    client.force_login(user)
    body = client.get("/logs/export.csv", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode("utf-8-sig")
    assert body.splitlines()[0].startswith("时间,")
