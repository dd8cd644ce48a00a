"""Run-time site options: operators change product settings without a restart; the environment is the default."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from accounts.services import user_register
from billing.models import LedgerEntry, LedgerReason
from config.options import option, option_set


def test_an_option_overrides_its_setting_until_it_is_removed(db, settings):
    settings.NEW_USER_QUOTA = 500_000
    assert option("NEW_USER_QUOTA") == 500_000
    assert option_set(name="NEW_USER_QUOTA", value="123456") == 123_456
    assert user_register(username="newbie", password="a-long-password").quota == 123_456
    option_set(name="NEW_USER_QUOTA", value=None)
    assert option("NEW_USER_QUOTA") == 500_000
    assert option_set(name="TOPUP_PRICE", value="6.95") == Decimal("6.95")
    assert option_set(name="TOPUP_METHODS", value="alipay, usdt") == ["alipay", "usdt"]
    assert option_set(name="REGISTRATION_ENABLED", value=False) is False


@pytest.mark.parametrize("name, value, message", [
    ("NEW_USER_QUOTA", "-5", "Enter a whole number from 0."),
    ("NEW_USER_QUOTA", "1.5", "Enter a whole number."),
    ("TOPUP_MIN_USD", 0, "Enter a whole number from 1."),
    ("TOPUP_PRICE", "free", "Enter a number."),
    ("TOPUP_PRICE", "-1", "Enter a positive number."),
    ("EPAY_KEY", "x", "Unknown option: EPAY_KEY"),  # secrets stay in the environment
])
def test_bad_values_are_refused_with_a_reason(db, name, value, message):
    from config.errors import ServiceError

    with pytest.raises(ServiceError, match=message):
        option_set(name=name, value=value)


def test_operators_use_the_management_api_and_the_console_follows(admin, user, client_for, settings):
    settings.CHECKIN_QUOTA_MIN = settings.CHECKIN_QUOTA_MAX = 10_000
    client = client_for(admin)
    rows = {row["key"]: row for row in client.get("/api/option/").json()["data"]}
    assert rows["CHECKIN_QUOTA_MAX"] == {"key": "CHECKIN_QUOTA_MAX", "kind": "int", "label": rows[
        "CHECKIN_QUOTA_MAX"]["label"], "value": 10_000, "default": 10_000, "overridden": False}
    for key, value in (("CHECKIN_QUOTA_MIN", 77_000), ("CHECKIN_QUOTA_MAX", "77000"),
                       ("NOTICE", "Maintenance tonight.\nBack at 02:00."), ("REGISTRATION_ENABLED", False)):
        r = client.put("/api/option/", {"key": key, "value": value}, format="json")
        assert r.status_code == 200 and r.json()["success"], r.json()
    r = client.put("/api/option/", {"key": "CHECKIN_QUOTA_MAX", "value": "lots"}, format="json")
    assert r.status_code == 400 and r.json()["message"] == "Enter a whole number."
    assert client_for(user).get("/api/option/").status_code == 403
    assert client_for(user).post("/api/user/checkin").json()["data"]["quota"] == 77_000
    assert LedgerEntry.objects.get(reason=LedgerReason.CHECKIN).amount == 77_000
    assert Client().get("/api/notice").json()["data"] == "Maintenance tonight.\nBack at 02:00."
    status = Client().get("/api/status").json()["data"]
    assert status["registration_enabled"] is False and status["checkin_quota"] == [77_000, 77_000]
    home = Client(HTTP_ACCEPT_LANGUAGE="en").get("/").content.decode()
    assert "Maintenance tonight.<br>Back at 02:00." in home
    r = Client().post("/api/user/register", {"username": "late", "password": "a-long-password"},
                      content_type="application/json")
    assert r.status_code == 403
    client.put("/api/option/", {"key": "REGISTRATION_ENABLED", "value": None}, format="json")
    assert Client().get("/api/status").json()["data"]["registration_enabled"] is True


def test_the_admin_edits_options_in_their_own_terms(admin_client, settings):
    response = admin_client.post("/admin/config/siteoption/add/", {"name": "TOPUP_METHODS", "value": "alipay,wxpay"})
    assert response.status_code == 302
    assert option("TOPUP_METHODS") == ["alipay", "wxpay"]
    bad = admin_client.post("/admin/config/siteoption/add/", {"name": "INVITER_QUOTA", "value": "many"})
    assert b"Enter a whole number." in bad.content


def test_the_settings_answer_while_the_database_is_down(db, settings, monkeypatch):
    from django.db import OperationalError

    from config.models import SiteOption

    option_set(name="NEW_USER_QUOTA", value=1)
    settings.NEW_USER_QUOTA = 777

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(SiteOption.objects, "values_list", down)
    from django.core.cache import cache

    cache.clear()
    assert option("NEW_USER_QUOTA") == 777


def test_the_options_are_read_from_the_table_while_the_cache_is_away(db, settings, monkeypatch):
    from config import options

    option_set(name="NEW_USER_QUOTA", value=4242)

    def away(*args, **kwargs):
        raise ConnectionError("redis is gone")

    for name in ("get", "set", "delete"):
        monkeypatch.setattr(options._cache(), name, away)
    assert option("NEW_USER_QUOTA") == 4242
    assert option_set(name="NEW_USER_QUOTA", value=5) == 5


@pytest.mark.django_db(transaction=True)
def test_options_read_from_many_tasks_and_threads_share_one_cache_client(monkeypatch):
    """The relay reads the sensitive words (an option) in a new task on the thread pool every second: Django's
    per-task cache would open a Redis connection for each read."""
    import asyncio
    import contextvars

    from django.core.cache import caches

    from relay.snapshots import in_thread

    made = []
    create = caches.create_connection
    monkeypatch.setattr(caches, "create_connection", lambda alias: made.append(alias) or create(alias))
    option_set(name="SENSITIVE_WORDS", value="forbidden")
    read = in_thread(lambda: option("SENSITIVE_WORDS"))

    async def reads() -> list:
        return await asyncio.gather(*(asyncio.ensure_future(read()) for _ in range(10)))

    # as in a server, whose tasks start from an event loop's context that never touched the cache
    assert contextvars.Context().run(asyncio.run, reads()) == [["forbidden"]] * 10
    assert len(made) <= 1
    option_set(name="SENSITIVE_WORDS", value=None)
