"""Sign-up protection: email verification codes (one account per address), accepted email domains, and the
Turnstile human check, through the management API and the console."""

from __future__ import annotations

import re

import httpx
import pytest
from django.core import mail
from django.test import Client

from accounts.models import User
from billing.models import LedgerEntry, LedgerReason

PASSWORD = "pass-word-42"


@pytest.fixture
def verifying(settings, db):
    settings.EMAIL_VERIFICATION = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    return settings


def _code(to: str) -> str:
    message = next(m for m in reversed(mail.outbox) if m.to == [to])
    return re.search(r"\b(\d{6})\b", message.body).group(1)


def _register(client, **body):
    return client.post("/api/user/register", {"username": "newbie", "password": PASSWORD, **body}, format="json")


def test_sign_up_needs_the_code_mailed_to_the_address(api_client, verifying):
    assert api_client.get("/api/status").json()["data"]["email_verification"] is True
    r = _register(api_client)
    assert r.status_code == 400 and "email address is required" in r.json()["message"]
    r = _register(api_client, email="new@example.com")
    assert r.status_code == 400 and "Ask for a verification code first" in r.json()["message"]

    r = api_client.get("/api/verification", {"email": "new@example.com"})
    assert r.status_code == 200 and r.json()["success"] is True
    code = _code("new@example.com")
    assert code in mail.outbox[-1].subject
    wrong = "000000" if code != "000000" else "111111"
    r = _register(api_client, email="new@example.com", verification_code=wrong)
    assert r.status_code == 400 and r.json()["message"] == "The verification code is wrong."
    r = _register(api_client, email="New@Example.com", verification_code=code)
    assert r.status_code == 201, r.json()
    user = User.objects.get(username="newbie")
    assert user.email == "New@example.com"
    assert LedgerEntry.objects.filter(user=user, reason=LedgerReason.SIGNUP).count() == 1

    r = _register(api_client, username="second", email="new@example.com", verification_code=code)
    assert r.status_code == 400 and r.json()["message"] == "This email address is already in use."
    r = api_client.get("/api/verification", {"email": "NEW@example.com"})
    assert r.status_code == 400 and r.json()["message"] == "This email address is already in use."


def test_codes_are_used_once_throttled_and_die_after_five_wrong_tries(api_client, verifying):
    assert api_client.get("/api/verification", {"email": "a@example.com"}).status_code == 200
    r = api_client.get("/api/verification", {"email": "a@example.com"})
    assert r.status_code == 429 and r.json()["success"] is False and len(mail.outbox) == 1
    code = _code("a@example.com")
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        assert _register(api_client, email="a@example.com", verification_code=wrong).status_code == 400
    r = _register(api_client, email="a@example.com", verification_code=code)
    assert r.status_code == 400 and "Too many wrong codes" in r.json()["message"]
    assert not User.objects.filter(username="newbie").exists()


def test_only_accepted_domains_and_real_addresses(api_client, verifying):
    verifying.EMAIL_DOMAIN_WHITELIST = ["qq.com", "gmail.com"]
    r = api_client.get("/api/verification", {"email": "x@example.com"})
    assert r.status_code == 400 and "qq.com, gmail.com" in r.json()["message"] and not mail.outbox
    assert api_client.get("/api/verification", {"email": "not-an-address"}).status_code == 400
    assert api_client.get("/api/verification", {"email": "x@qq.com"}).status_code == 200


def test_a_mail_that_cannot_be_sent_says_so_and_can_be_asked_again(api_client, verifying, monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("smtp down")

    monkeypatch.setattr("accounts.verification.send_mail", refuse)
    r = api_client.get("/api/verification", {"email": "b@example.com"})
    assert r.status_code == 503 and r.json()["success"] is False
    monkeypatch.undo()
    verifying.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert api_client.get("/api/verification", {"email": "b@example.com"}).status_code == 200


def test_without_verification_the_address_is_optional(api_client, settings, db):
    settings.EMAIL_VERIFICATION = False
    assert _register(api_client).status_code == 201


def test_the_console_sends_the_code_then_signs_up(verifying):
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    page = client.get("/register/").content.decode()
    assert 'name="verification_code"' in page and 'name="send_code"' in page
    r = client.post("/register/", {"username": "webby", "email": "web@example.com", "send_code": "1"})
    assert r.status_code == 200 and b"A code has been sent to web@example.com" in r.content
    assert b'value="webby"' in r.content  # what was typed stays
    form = {"username": "webby", "password": PASSWORD, "password_again": PASSWORD, "email": "web@example.com"}
    r = client.post("/register/", {**form, "verification_code": "12345x"})
    assert r.status_code == 200 and b"The verification code is wrong." in r.content
    r = client.post("/register/", {**form, "verification_code": _code("web@example.com")})
    assert r.status_code == 302 and User.objects.get(username="webby").email == "web@example.com"


def test_changing_the_address_needs_a_code_sent_to_the_new_one(settings, make_user):
    user = make_user("mover")
    other = make_user("other")
    settings.EMAIL_VERIFICATION = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    User.objects.filter(pk=other.pk).update(email="taken@example.com")
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    r = client.post("/account/email/", {"email": "taken@example.com", "send_code": "1"})
    assert b"already in use" in r.content and not mail.outbox
    r = client.post("/account/email/", {"email": "moved@example.com", "send_code": "1"})
    assert b"A code has been sent" in r.content
    password = "pass-word-42"
    user.set_password(password)
    user.save()
    client.force_login(user)
    r = client.post("/account/email/", {"email": "moved@example.com", "password": password,
                                         "verification_code": "999999x"})
    assert r.status_code == 200 and b"The verification code is wrong." in r.content
    r = client.post("/account/email/", {"email": "moved@example.com", "password": password,
                                         "verification_code": _code("moved@example.com")})
    assert r.status_code == 302
    user.refresh_from_db()
    assert user.email == "moved@example.com"


@pytest.fixture
def turnstile(settings, monkeypatch):
    settings.TURNSTILE_SITE_KEY, settings.TURNSTILE_SECRET_KEY = "0x4AAAAsite", "0x4AAAAsecret"
    seen: list[dict] = []

    def siteverify(url, *, data, **kwargs):
        seen.append({"url": url, **data})
        if data["response"] == "unreachable":
            raise httpx.ConnectError("down")
        return httpx.Response(200, json={"success": data["response"] == "good-token",
                                         "error-codes": [] if data["response"] == "good-token" else ["invalid-input"]})

    monkeypatch.setattr("accounts.turnstile.httpx.post", siteverify)
    return seen


def test_turnstile_guards_api_sign_up_and_log_in(api_client, turnstile, db):
    status = api_client.get("/api/status").json()["data"]
    assert status["turnstile_check"] is True and status["turnstile_site_key"] == "0x4AAAAsite"
    r = _register(api_client)
    assert r.status_code == 403 and r.json()["success"] is False
    assert _register(api_client, turnstile="bad-token").status_code == 403
    r = api_client.post("/api/user/register?turnstile=unreachable", {"username": "n", "password": PASSWORD},
                        format="json")
    assert r.status_code == 503
    assert api_client.post("/api/user/register?turnstile=good-token", {"username": "newbie", "password": PASSWORD},
                           format="json").status_code == 201
    assert turnstile[-1]["secret"] == "0x4AAAAsecret" and turnstile[-1]["response"] == "good-token"
    login = {"username": "newbie", "password": PASSWORD}
    assert api_client.post("/api/user/login", login, format="json").status_code == 403
    assert api_client.post("/api/user/login?turnstile=good-token", login, format="json").status_code == 200


def test_turnstile_on_the_console_forms(turnstile, make_user):
    user = make_user("walker")
    user.set_password(PASSWORD)
    user.save()
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    page = client.get("/login/").content.decode()
    assert 'data-sitekey="0x4AAAAsite"' in page and "challenges.cloudflare.com/turnstile" in page
    r = client.post("/login/", {"username": "walker", "password": PASSWORD})
    assert r.status_code == 200 and b"Complete the human check first." in r.content
    r = client.post("/login/", {"username": "walker", "password": PASSWORD, "cf-turnstile-response": "good-token"})
    assert r.status_code == 302
