"""Sign-in with GitHub, LINUX DO and OpenID Connect in the console, against a fake provider on loopback."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from accounts.models import OAuthIdentity, User
from accounts.two_factor import two_factor_begin
from billing.models import LedgerEntry, LedgerReason
from tests.fakes.oauth_provider import CLIENTS, FakeOAuth

PASSWORD = "pass-word-42"


@pytest.fixture(scope="module")
def provider():
    with FakeOAuth() as fake:
        yield fake


@pytest.fixture
def providers(provider, settings, db):
    provider.reset()
    settings.GITHUB_CLIENT_ID, settings.GITHUB_CLIENT_SECRET = CLIENTS["github"]
    settings.GITHUB_OAUTH_URL = settings.GITHUB_API_URL = provider.url
    settings.LINUXDO_CLIENT_ID, settings.LINUXDO_CLIENT_SECRET = CLIENTS["linuxdo"]
    settings.LINUXDO_OAUTH_URL = provider.url
    settings.OIDC_CLIENT_ID, settings.OIDC_CLIENT_SECRET = CLIENTS["oidc"]
    settings.OIDC_AUTHORIZATION_ENDPOINT = f"{provider.url}/oidc/authorize"
    settings.OIDC_TOKEN_ENDPOINT = f"{provider.url}/oidc/token"
    settings.OIDC_USERINFO_ENDPOINT = f"{provider.url}/oidc/userinfo"
    settings.OIDC_LABEL = "Company SSO"
    return provider


def _sign_in(client, fake, key, profile, *, start="", tamper_state=False):
    """Start at the console, 'agree' at the provider, come back with the code; the final response."""
    away = client.get(f"/oauth/{key}/{start}")
    assert away.status_code == 302
    query = parse_qs(urlsplit(away["Location"]).query)
    assert query["client_id"] == [CLIENTS[key][0]] and query["response_type"] == ["code"]
    code = fake.issue(key, profile, query["redirect_uri"][0])
    state = "forged" if tamper_state else query["state"][0]
    return client.get(f"/oauth/{key}/callback/", {"code": code, "state": state})


def test_github_sign_in_opens_an_account_once_and_then_signs_it_in(providers):
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    page = client.get("/login/").content.decode()
    assert "Continue with GitHub" in page and "Continue with LINUX DO" in page and "Continue with Company SSO" in page
    r = _sign_in(client, providers, "github", {"id": 583231, "login": "octocat", "email": "octo@example.com"})
    assert r.status_code == 302 and r["Location"] == "/dashboard/"
    user = User.objects.get(username="octocat")
    assert user.email == "octo@example.com" and not user.has_usable_password()
    assert OAuthIdentity.objects.get(user=user).subject == "583231"
    assert LedgerEntry.objects.filter(user=user, reason=LedgerReason.SIGNUP).count() == 1
    assert client.get("/dashboard/").status_code == 200

    other = Client(HTTP_ACCEPT_LANGUAGE="en")
    r = _sign_in(other, providers, "github", {"id": 583231, "login": "octocat-renamed"})
    assert r.status_code == 302 and User.objects.count() == 1
    assert int(other.session["_auth_user_id"]) == user.pk


def test_a_forged_state_or_a_refused_code_signs_no_one_in(providers):
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    r = _sign_in(client, providers, "github", {"id": 1, "login": "mallory"}, tamper_state=True)
    assert r.status_code == 302 and r["Location"] == "/login/"
    assert "_auth_user_id" not in client.session and not User.objects.exists()
    client.get("/oauth/github/")
    state = client.session["oauth_pending"]["state"]
    r = client.get("/oauth/github/callback/", {"code": "never-issued", "state": state}, follow=True)
    assert b"The code passed is incorrect or expired." in r.content and not User.objects.exists()


def test_linuxdo_and_oidc_use_basic_client_credentials_and_their_own_fields(providers, settings):
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    r = _sign_in(client, providers, "oidc", {"sub": "u-77", "preferred_username": "ana", "email": "ana@corp.example"})
    assert r.status_code == 302 and User.objects.get(username="ana").oauth_identities.get().provider == "oidc"
    settings.LINUXDO_MIN_TRUST_LEVEL = 2
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    r = _sign_in(client, providers, "linuxdo", {"id": 9, "username": "newcomer", "trust_level": 1})
    assert r.status_code == 302 and r["Location"] == "/login/" and not User.objects.filter(username="newcomer")
    r = _sign_in(client, providers, "linuxdo", {"id": 10, "username": "regular", "trust_level": 2})
    assert r.status_code == 302 and User.objects.filter(username="regular").exists()


def test_names_and_addresses_already_taken_are_not_reused(providers, make_user):
    taken = make_user("octocat")
    User.objects.filter(pk=taken.pk).update(email="octo@example.com")
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    _sign_in(client, providers, "github", {"id": 5, "login": "octocat", "email": "octo@example.com"})
    user = OAuthIdentity.objects.get(subject="5").user
    assert user.username.startswith("octocat_") and user.email == ""


def test_closed_registration_lets_linked_accounts_in_but_opens_none(providers, settings):
    settings.REGISTRATION_ENABLED = False
    r = _sign_in(Client(HTTP_ACCEPT_LANGUAGE="en"), providers, "github", {"id": 8, "login": "late"})
    assert r["Location"] == "/login/" and not User.objects.exists()


def test_linking_and_unlinking_in_settings(providers, make_user):
    user = make_user("linker")
    user.set_password(PASSWORD)
    user.save()
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    r = _sign_in(client, providers, "github", {"id": 42, "login": "linker-gh"})
    assert r["Location"] == "/settings/" and OAuthIdentity.objects.get(user=user).login == "linker-gh"
    page = client.get("/settings/").content.decode()
    assert "linker-gh" in page and "Unlink" in page
    someone = make_user("someone")
    other = Client(HTTP_ACCEPT_LANGUAGE="en")
    other.force_login(someone)
    r = _sign_in(other, providers, "github", {"id": 42, "login": "linker-gh"})  # already someone else's
    assert r["Location"] == "/settings/" and not OAuthIdentity.objects.filter(user=someone).exists()
    assert client.post("/oauth/github/unlink/").status_code == 302
    assert not OAuthIdentity.objects.filter(user=user).exists()


def test_the_only_way_in_cannot_be_unlinked(providers):
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    _sign_in(client, providers, "github", {"id": 3, "login": "solo"})
    r = client.post("/oauth/github/unlink/", follow=True)
    assert b"Set a password first" in r.content and OAuthIdentity.objects.count() == 1


def test_two_factor_still_applies(providers, make_user):
    user = make_user("careful")
    OAuthIdentity.objects.create(user=user, provider="github", subject="77", login="careful")
    two_factor_begin(user=user)
    User.objects.filter(pk=user.pk).update(two_factor_enabled_at="2026-01-01T00:00:00Z")
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    r = _sign_in(client, providers, "github", {"id": 77, "login": "careful"})
    assert r.status_code == 302 and r["Location"].startswith("/login/code/")
    assert "_auth_user_id" not in client.session


def test_status_names_the_providers(providers, api_client):
    data = api_client.get("/api/status").json()["data"]
    assert data["github_oauth"] is True and data["github_client_id"] == "gh-client"
    assert data["linuxdo_oauth"] is True and data["oidc_enabled"] is True


def test_unknown_or_unconfigured_providers_are_404(db, settings):
    settings.GITHUB_CLIENT_ID = ""
    client = Client()
    assert client.get("/oauth/github/").status_code == 404
    assert client.get("/oauth/facebook/").status_code == 404


def test_an_account_opened_by_a_provider_sets_a_password_without_an_old_one(providers):
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    _sign_in(client, providers, "github", {"id": 11, "login": "newpass"})
    assert b"old_password" not in client.get("/account/password/").content
    r = client.post("/account/password/", {"new_password1": PASSWORD, "new_password2": PASSWORD})
    assert r.status_code == 302 and User.objects.get(username="newpass").check_password(PASSWORD)
    assert client.post("/oauth/github/unlink/").status_code == 302  # now it may go
    assert not OAuthIdentity.objects.exists()


BOT_TOKEN = "123456:ABC-bot-token"


@pytest.fixture
def telegram(settings, db):
    settings.TELEGRAM_BOT_NAME, settings.TELEGRAM_BOT_TOKEN = "modelgate_bot", BOT_TOKEN


def _widget_data(user_id: int, username: str, *, age: int = 10, token: str = BOT_TOKEN) -> dict[str, str]:
    """What the Telegram Login Widget hands the page, signed as Telegram signs it (computed here from scratch)."""
    data = {"id": str(user_id), "first_name": "Tg", "username": username, "auth_date": str(int(time.time()) - age)}
    check = "\n".join(f"{k}={data[k]}" for k in sorted(data)).encode()
    data["hash"] = hmac.new(hashlib.sha256(token.encode()).digest(), check, hashlib.sha256).hexdigest()
    return data


def test_telegram_widget_data_signs_in_once_verified(telegram):
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    page = client.get("/login/").content.decode()
    assert 'data-telegram-login="modelgate_bot"' in page and 'id="telegram-form"' in page
    r = client.post("/oauth/telegram/", _widget_data(9001, "tguser"))
    assert r.status_code == 302 and r["Location"] == "/dashboard/"
    assert OAuthIdentity.objects.get(provider="telegram").user.username == "tguser"
    for forged in (_widget_data(9002, "forger", token="wrong-token"), {**_widget_data(9003, "x"), "id": "9004"},
                   _widget_data(9005, "stale", age=2 * 86_400)):
        r = Client(HTTP_ACCEPT_LANGUAGE="en").post("/oauth/telegram/", forged)
        assert r.status_code == 302 and r["Location"] == "/login/"
    assert User.objects.count() == 1


def test_telegram_needs_the_pages_csrf_token_and_links_in_settings(telegram, make_user):
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/oauth/telegram/", _widget_data(1, "csrf")).status_code == 403
    user = make_user("tglinker")
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    assert 'data-telegram-login="modelgate_bot"' in client.get("/settings/").content.decode()
    r = client.post("/oauth/telegram/", _widget_data(77, "tglinker_tg"))
    assert r["Location"] == "/settings/" and OAuthIdentity.objects.get(user=user).subject == "77"
