"""Accounts through the management API: register, log in by session, access tokens, top-up, check-in."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from billing.redemption import redemption_batch_create


def test_register_then_login_sets_a_session_that_reads_self(api_client, settings, db):
    settings.NEW_USER_QUOTA = 250_000
    r = api_client.post("/api/user/register", {"username": "newbie", "password": "pass-word-42"}, format="json")
    assert r.status_code == 201 and r.json()["success"] is True
    assert r.json()["data"]["quota"] == 250_000
    assert api_client.get("/api/user/self").status_code in (401, 403)  # registering does not log in
    r = api_client.post("/api/user/login", {"username": "newbie", "password": "pass-word-42"}, format="json")
    assert r.status_code == 200 and r.json()["data"]["username"] == "newbie"
    me = api_client.get("/api/user/self").json()["data"]
    assert me["group"] == "default" and me["quota"] == 250_000
    api_client.get("/api/user/logout")
    assert api_client.get("/api/user/self").status_code in (401, 403)


def test_bad_registration_and_login_answer_in_the_envelope(api_client, user):
    r = api_client.post("/api/user/register", {"username": "alice", "password": "pass-word-42"}, format="json")
    assert r.status_code == 400 and r.json() == {"success": False, "message": "This username is taken.", "data": None}
    r = api_client.post("/api/user/register", {"username": "zed"}, format="json")
    assert r.status_code == 400 and "password" in r.json()["message"]
    r = api_client.post("/api/user/login", {"username": "alice", "password": "nope"}, format="json")
    assert r.status_code == 401 and r.json()["success"] is False
    r = api_client.post("/api/user/login", "not json", content_type="application/json")
    assert r.status_code == 400 and r.json()["success"] is False


def test_registration_can_be_closed(api_client, settings, db):
    settings.REGISTRATION_ENABLED = False
    r = api_client.post("/api/user/register", {"username": "late", "password": "pass-word-42"}, format="json")
    assert r.status_code == 403


def test_session_writes_need_csrf(user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/api/user/self").status_code == 200
    assert client.post("/api/user/checkin").status_code == 403


def test_access_token_is_shown_once_and_replaces_the_previous_one(user):
    client = APIClient()
    client.force_login(user)
    first = client.get("/api/user/token").json()["data"]
    second = client.get("/api/user/token").json()["data"]
    assert first != second and len(second) == 40
    user.refresh_from_db()
    assert second not in (user.access_token_hash, user.access_token_hint)
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {second}")
    assert bearer.get("/api/user/self").json()["data"]["username"] == "alice"
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {first}")
    r = bearer.get("/api/user/self")
    assert r.status_code == 401 and r.json()["success"] is False
    assert bearer.post("/api/user/checkin").status_code == 401  # no CSRF exemption for a bad token


def test_topup_redeems_a_card_once(user, admin, client_for, assert_books_balance):
    (code,) = redemption_batch_create(name="b", quota=80_000, count=1, created_by_id=admin.pk)
    client = client_for(user)
    before = client.get("/api/user/self").json()["data"]["quota"]
    r = client.post("/api/user/topup", {"key": code}, format="json")
    assert r.status_code == 200 and r.json()["data"] == {"quota": 80_000, "balance": before + 80_000}
    r = client.post("/api/user/topup", {"key": code}, format="json")
    assert r.status_code == 400 and r.json()["message"] == "This card key has already been used."
    assert_books_balance(user)


def test_checkin_once_per_day(user, client_for):
    client = client_for(user)
    first = client.post("/api/user/checkin")
    assert first.status_code == 200 and first.json()["data"]["quota"] > 0
    again = client.post("/api/user/checkin")
    assert again.status_code == 400 and again.json()["message"] == "You have already checked in today."


@pytest.mark.parametrize("path", ["/api/user/self", "/api/token/", "/api/log/self", "/api/user/topup"])
def test_anonymous_callers_are_refused(api_client, db, path):
    r = api_client.get(path)
    assert r.status_code in (401, 403) and r.json()["success"] is False


def test_unknown_api_paths_answer_in_the_envelope(api_client, db):
    r = api_client.get("/api/nope")
    assert r.status_code == 404 and r.json()["success"] is False


def test_status_and_schema_are_public(api_client, db):
    data = api_client.get("/api/status").json()["data"]
    assert data["quota_per_unit"] == 500_000 and "new_user_quota" in data
    schema = api_client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/token/" in schema.content
