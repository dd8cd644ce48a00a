"""Two-factor authentication: codes as authenticator apps make them, set up and off, and the code step of signing in."""

from __future__ import annotations

import re
import time

import pytest
from django.test import Client

from accounts.models import User
from accounts.two_factor import totp_code, two_factor_begin, two_factor_enable
from relay.key_vault import keys_decrypt

PASSWORD = "s3cret-pass-word"


def _now_code(secret: str, ahead: int = 0) -> str:
    return totp_code(secret, int(time.time()) // 30 + ahead)


def _turn_on(user: User) -> tuple[str, list[str]]:
    secret = two_factor_begin(user=user)
    return secret, two_factor_enable(user=user, code=_now_code(secret))


def test_codes_match_rfc_6238():
    secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # "12345678901234567890", the RFC's SHA-1 key
    assert totp_code(secret, 59 // 30) == "287082"  # RFC 6238 appendix B: 94287082 at T=59
    assert totp_code(secret, 1111111109 // 30) == "081804"  # 07081804


def test_setting_it_up_in_the_console_shows_the_backup_codes_once(make_user):
    user = make_user("alice")
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    assert b"Set up two-factor authentication" in client.get("/settings/").content
    page = client.get("/settings/two-factor/").content.decode()
    assert "<svg" in page
    secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', page)[1]
    assert keys_decrypt(User.objects.get(pk=user.pk).totp_secret_encrypted) == [secret]
    assert secret not in User.objects.get(pk=user.pk).totp_secret_encrypted  # encrypted at rest
    wrong = client.post("/settings/two-factor/", {"code": "000000" if _now_code(secret) != "000000" else "111111"})
    assert b"That code is not right" in wrong.content and not User.objects.get(pk=user.pk).two_factor_enabled_at
    secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', wrong.content.decode())[1]  # a fresh one
    done = client.post("/settings/two-factor/", {"code": _now_code(secret)}).content.decode()
    codes = re.findall(r"<li><code>([0-9a-f]{10})</code></li>", done)
    assert len(codes) == 10 and User.objects.get(pk=user.pk).two_factor_enabled_at
    assert codes[0] not in str(User.objects.get(pk=user.pk).backup_code_hashes)  # stored hashed
    assert b"Two-factor authentication: on" in client.get("/settings/").content
    off = client.post("/settings/two-factor/off/", {"code": codes[0]}, follow=True)
    assert b"Two-factor authentication is off." in off.content
    assert User.objects.get(pk=user.pk).two_factor_enabled_at is None


def test_console_sign_in_asks_for_the_code_and_takes_each_code_once(make_user):
    user = make_user("alice")
    secret, backup = _turn_on(user)
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    step = client.post("/login/", {"username": "alice", "password": PASSWORD, "next": "/keys/"})
    assert step.status_code == 302 and step["Location"] == "/login/code/?next=%2Fkeys%2F"
    assert client.get("/dashboard/").status_code == 302  # not signed in yet
    assert b"not right" in client.post("/login/code/", {"code": "12345"}).content
    reused = client.post("/login/code/", {"code": _now_code(secret)})  # the code that turned it on: spent
    assert b"not right" in reused.content
    signed_in = client.post("/login/code/?next=/keys/", {"code": _now_code(secret, ahead=1), "next": "/keys/"})
    assert signed_in.status_code == 302 and signed_in["Location"] == "/keys/"
    assert client.get("/dashboard/").status_code == 200
    again = Client(HTTP_ACCEPT_LANGUAGE="en")
    again.post("/login/", {"username": "alice", "password": PASSWORD})
    assert again.post("/login/code/", {"code": backup[3]}).status_code == 302
    third = Client(HTTP_ACCEPT_LANGUAGE="en")
    third.post("/login/", {"username": "alice", "password": PASSWORD})
    assert b"not right" in third.post("/login/code/", {"code": backup[3]}).content  # a backup code works once
    assert Client().get("/login/code/").status_code == 302  # no password given: back to the login page


def test_wrong_codes_are_throttled(make_user, settings):
    settings.LOGIN_ATTEMPTS_PER_MINUTE = 3
    user = make_user("alice")
    secret, _backup = _turn_on(user)
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.post("/login/", {"username": "alice", "password": PASSWORD})
    for _ in range(3):
        client.post("/login/code/", {"code": "99999999"})
    throttled = client.post("/login/code/", {"code": _now_code(secret, ahead=1)})
    assert b"Too many wrong codes" in throttled.content and client.get("/dashboard/").status_code == 302


def test_the_management_api_flow(make_user):
    make_user("alice")
    client = Client()
    client.post("/api/user/login", {"username": "alice", "password": PASSWORD}, content_type="application/json")
    setup = client.post("/api/user/2fa/setup").json()["data"]
    secret = setup["secret"]
    assert setup["uri"].startswith("otpauth://totp/") and f"secret={secret}" in setup["uri"]
    enabled = client.post("/api/user/2fa/enable", {"code": _now_code(secret)}, content_type="application/json")
    assert enabled.status_code == 200 and len(enabled.json()["data"]["backup_codes"]) == 10
    assert client.get("/api/user/2fa/status").json()["data"] == {"enabled": True, "backup_codes_left": 10}
    client.post("/api/user/logout")
    first = client.post("/api/user/login", {"username": "alice", "password": PASSWORD},
                        content_type="application/json").json()
    assert first["data"] == {"require_2fa": True} and client.get("/api/user/self").status_code in (401, 403)
    bad = client.post("/api/user/login/2fa", {"code": "000"}, content_type="application/json")
    assert bad.status_code == 401 and bad.json()["success"] is False
    good = client.post("/api/user/login/2fa", {"code": _now_code(secret, ahead=1)}, content_type="application/json")
    assert good.json()["data"]["two_factor_enabled"] is True
    assert client.get("/api/user/self").json()["data"]["username"] == "alice"
    off = client.post("/api/user/2fa/disable", {"code": enabled.json()["data"]["backup_codes"][0]},
                      content_type="application/json")
    assert off.status_code == 200 and not User.objects.get(username="alice").two_factor_enabled_at
    assert Client().post("/api/user/login/2fa", {"code": "123456"},
                         content_type="application/json").json()["message"].startswith("The sign-in expired")


@pytest.mark.django_db
def test_operators_turn_it_off_for_a_user_who_lost_their_device(make_user, admin_client):
    user = make_user("alice")
    _turn_on(user)
    response = admin_client.post("/admin/accounts/user/", {
        "action": "reset_two_factor", "_selected_action": [user.pk], "index": "0"}, follow=True)
    assert b"turned off for 1 user" in response.content
    user.refresh_from_db()
    assert user.two_factor_enabled_at is None and user.totp_secret_encrypted == "" and user.backup_code_hashes == []
