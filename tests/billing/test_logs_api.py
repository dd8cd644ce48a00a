"""Usage logs through the management API: a user sees only their own; filters; operators see everyone's."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from billing.models import UsageLog


def _log(user, **kw):
    fields = {"model": "gpt-4o", "endpoint": "/v1/chat/completions", "request_id": "r", "token_name": "main",
              "quota": 10} | kw
    return UsageLog.objects.create(user=user, **fields)


def test_users_see_only_their_own_logs_with_filters(user, other_user, client_for):
    _log(user, model="gpt-4o", token_name="main")
    _log(user, model="demo-chat", token_name="ci")
    old = _log(user, model="gpt-4o", token_name="main")
    UsageLog.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    _log(other_user, model="gpt-4o")
    client = client_for(user)
    assert client.get("/api/log/self").json()["data"]["total"] == 3
    assert client.get("/api/log/self?model_name=gpt-4o").json()["data"]["total"] == 2
    assert client.get("/api/log/self?token_name=ci").json()["data"]["items"][0]["model"] == "demo-chat"
    since = int((timezone.now() - timedelta(days=1)).timestamp())
    assert client.get(f"/api/log/self?start_timestamp={since}").json()["data"]["total"] == 2
    assert client.get("/api/log/self?start_timestamp=abc").status_code == 400
    row = client.get("/api/log/self").json()["data"]["items"][0]
    assert "username" not in row and "client_ip" not in row


def test_operators_filter_all_logs(user, other_user, admin, client_for):
    _log(user)
    _log(other_user)
    client = client_for(admin)
    assert client.get("/api/log/").json()["data"]["total"] == 2
    rows = client.get("/api/log/?username=bob").json()["data"]["items"]
    assert [r["username"] for r in rows] == ["bob"]


def test_stat_sums_quota_under_the_filters_and_counts_the_last_minute(user, other_user, admin, client_for):
    _log(user, quota=10, prompt_tokens=100, completion_tokens=20)
    _log(user, quota=30, model="demo-chat", prompt_tokens=5, completion_tokens=5)
    old = _log(user, quota=1000, prompt_tokens=7)
    UsageLog.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    _log(other_user, quota=500)
    client = client_for(user)
    assert client.get("/api/log/self/stat").json()["data"] == {"quota": 1040, "rpm": 2, "tpm": 130}
    assert client.get("/api/log/self/stat?model_name=gpt-4o").json()["data"] == {"quota": 1010, "rpm": 1, "tpm": 120}
    since = int((timezone.now() - timedelta(days=1)).timestamp())
    assert client.get(f"/api/log/self/stat?start_timestamp={since}").json()["data"]["quota"] == 40
    assert client.get("/api/log/stat").status_code == 403
    assert client_for(admin).get("/api/log/stat").json()["data"] == {"quota": 1540, "rpm": 3, "tpm": 130}
    assert client_for(admin).get("/api/log/stat?username=bob").json()["data"]["quota"] == 500
