"""Who may reach what: every owner-scoped route tried as anonymous, another user, the owner and an operator; nobody
reads or changes another user's keys, logs, tasks or balance, and operator routes refuse users."""

from __future__ import annotations

import pytest
from django.test import Client

from billing.models import UsageLog
from relay.media_tasks.models import MediaTask
from tokens.models import ApiToken, TokenStatus
from tokens.services import token_create

OPERATOR_ONLY = [("get", "/api/user/"), ("get", "/api/channel/"), ("get", "/api/redemption/"), ("get", "/api/log/"),
                 ("get", "/api/pricing/"), ("get", "/api/group/"), ("post", "/api/redemption/")]


@pytest.fixture
def world(user, other_user):
    token, _key = token_create(user=user, name="alice-key", unlimited_quota=True)
    UsageLog.objects.create(user=user, model="gpt-4o", endpoint="/v1/chat/completions", request_id="alice-log",
                            quota=123)
    MediaTask.objects.create(public_id="task-alice", user=user, kind="video", action="generate", model="demo-video",
                             endpoint="/v1/video/generations")
    return token


@pytest.mark.parametrize(("method", "path"), OPERATOR_ONLY)
def test_operator_routes_refuse_anonymous_and_users(method, path, user, admin, client_for, api_client):
    assert getattr(api_client, method)(path, {}, format="json").status_code in (401, 403)
    assert getattr(client_for(user), method)(path, {}, format="json").status_code == 403
    assert getattr(client_for(admin), method)(path, {}, format="json").status_code in (200, 201, 400)


def test_another_users_key_can_be_neither_read_changed_nor_deleted(world, user, other_user, client_for):
    intruder = client_for(other_user)
    assert intruder.get(f"/api/token/{world.pk}").status_code == 404
    assert intruder.put("/api/token/", {"id": world.pk, "status": "disabled", "name": "mine"},
                        format="json").status_code == 404
    assert intruder.delete(f"/api/token/{world.pk}").status_code == 404
    assert world.pk not in [t["id"] for t in intruder.get("/api/token/").json()["data"]["items"]]
    world.refresh_from_db()
    assert (world.status, world.name) == (TokenStatus.ENABLED, "alice-key")
    assert client_for(user).get(f"/api/token/{world.pk}").status_code == 200


def test_logs_and_balances_are_the_callers_own(world, user, other_user, client_for):
    intruder = client_for(other_user)
    assert "alice-log" not in intruder.get("/api/log/self").content.decode()
    assert intruder.get(f"/api/user/{user.pk}").status_code == 403
    assert intruder.post(f"/api/user/{user.pk}/quota", {"amount": 10**9}, format="json").status_code == 403
    assert "alice-log" in client_for(user).get("/api/log/self").content.decode()


def test_console_pages_show_only_the_callers_keys_logs_and_tasks(world, other_user):
    console = Client()
    console.force_login(other_user)
    for path in ("/keys/", "/logs/", "/tasks/", "/logs/export.csv"):
        page = console.get(path).content.decode()
        assert "alice-key" not in page and "alice-log" not in page and "task-alice" not in page, path
    for method, path in (("get", f"/keys/{world.pk}/"), ("get", f"/keys/{world.pk}/edit/"),
                         ("post", f"/keys/{world.pk}/toggle/"), ("post", f"/keys/{world.pk}/delete/")):
        assert getattr(console, method)(path).status_code == 404, path
    assert ApiToken.objects.filter(pk=world.pk, status=TokenStatus.ENABLED).exists()


def test_anonymous_visitors_are_sent_to_log_in(world):
    anonymous = Client()
    for path in ("/dashboard/", "/keys/", "/logs/", "/tasks/", "/topup/", "/settings/"):
        response = anonymous.get(path)
        assert response.status_code == 302 and response["location"].startswith("/login/"), path
