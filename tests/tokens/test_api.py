"""API tokens through the management API: create shows the key once, lists mask it, users see only their own."""

from __future__ import annotations

import time

from tokens.keys import secret_hash
from tokens.models import ApiToken


def _create(client, **body):
    return client.post("/api/token/", {"name": "main", **body}, format="json")


def test_create_returns_the_full_key_once_and_stores_only_its_hash(user, client_for):
    client = client_for(user)
    r = _create(client, remain_quota=1000, expired_time=-1, model_limits="gpt-4o, demo-chat", allow_ips=["10.0.0.0/8"])
    assert r.status_code == 201
    data = r.json()["data"]
    key = data["key"]
    assert key.startswith("sk-") and len(key) == 51
    token = ApiToken.objects.get(pk=data["id"])
    assert token.key_hash == secret_hash(key)
    assert key not in str(ApiToken.objects.filter(pk=token.pk).values().get())
    assert data["model_limits"] == ["demo-chat", "gpt-4o"] and data["allow_ips"] == ["10.0.0.0/8"]
    listed = client.get("/api/token/").json()["data"]
    assert listed["total"] == 1
    shown = listed["items"][0]["key"]
    assert shown != key and shown.startswith(key[:7]) and shown.endswith(key[-4:]) and "*" in shown
    assert client.get(f"/api/token/{token.pk}").json()["data"]["key"] == shown


def test_update_and_delete_own_token(user, client_for):
    client = client_for(user)
    token_id = _create(client).json()["data"]["id"]
    expiry = int(time.time()) + 3600
    r = client.put("/api/token/", {"id": token_id, "name": "renamed", "status": 2, "unlimited_quota": True,
                                   "expired_time": expiry, "rpm_limit": 60}, format="json")
    data = r.json()["data"]
    assert r.status_code == 200
    assert (data["name"], data["status"], data["unlimited_quota"], data["expired_time"], data["rpm_limit"]) == (
        "renamed", "disabled", True, expiry, 60)
    assert client.delete(f"/api/token/{token_id}").status_code == 200
    assert client.get(f"/api/token/{token_id}").status_code == 404


def test_a_user_never_reaches_another_users_token(user, other_user, client_for):
    alice, bob = client_for(user), client_for(other_user)
    token_id = _create(alice).json()["data"]["id"]
    assert bob.get(f"/api/token/{token_id}").status_code == 404
    assert bob.put("/api/token/", {"id": token_id, "name": "mine"}, format="json").status_code == 404
    assert bob.delete(f"/api/token/{token_id}").status_code == 404
    assert bob.get("/api/token/").json()["data"]["total"] == 0
    assert ApiToken.objects.get(pk=token_id).name == "main"


def test_bad_token_input_is_refused_clearly(user, client_for, default_group):
    client = client_for(user)
    cases = [
        ({"name": ""}, "name"),
        ({"remain_quota": -5}, "remain_quota"),
        ({"expired_time": int(time.time()) - 10}, "past"),
        ({"expired_time": "soon"}, "expired_time"),
        ({"allow_ips": ["not-an-ip"]}, "not-an-ip"),
        ({"group": "nonexistent"}, "Unknown group"),
        ({"model_limits": 42}, "model_limits"),
    ]
    for body, fragment in cases:
        r = _create(client, **body)
        assert r.status_code in (400, 404), body
        assert r.json()["success"] is False and fragment in r.json()["message"], (body, r.json())
    assert ApiToken.objects.count() == 0


def test_only_selectable_groups_can_be_picked(user, client_for, admin):
    from billing.groups import group_save

    group_save(name="vip", ratio="0.5", selectable=False)
    group_save(name="cheap", ratio="0.3", selectable=True)
    client = client_for(user)
    assert _create(client, group="vip").status_code == 400
    assert _create(client, group="cheap").json()["data"]["group"] == "cheap"
    assert _create(client_for(admin), group="vip").status_code == 201


def test_pagination(user, client_for):
    client = client_for(user)
    for i in range(12):
        _create(client, name=f"t{i}")
    page = client.get("/api/token/?p=2&page_size=5").json()["data"]
    assert (page["total"], page["page"], page["page_size"], len(page["items"])) == (12, 2, 5, 5)
    assert client.get("/api/token/?p=9&page_size=5").json()["data"]["items"] == []
    assert client.get("/api/token/?p=abc&page_size=-3").status_code == 200
