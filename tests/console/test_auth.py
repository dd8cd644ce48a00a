"""Sign up, log in, log out and change password through the console's forms."""

from __future__ import annotations

from django.test import Client

from accounts.models import User
from billing.ledger import ledger_sum

PASSWORD = "s3cret-pass-word"


def _register(client: Client, username: str = "newbie", password: str = PASSWORD, **extra: str):
    data = {"username": username, "password": password, "password_again": password, **extra}
    return client.post("/register/", data, HTTP_ACCEPT_LANGUAGE="en")


def test_signing_up_logs_in_and_shows_the_trial_credit_once(client, default_group):
    response = _register(client)
    assert response.status_code == 302 and response["Location"] == "/dashboard/"
    user = User.objects.get(username="newbie")
    assert user.quota == 500_000 == ledger_sum(user_id=user.pk)
    page = client.get("/dashboard/").content.decode()
    assert 'id="trial-credit"' in page and "$1.00" in page and "500,000" in page
    assert 'id="trial-credit"' not in client.get("/dashboard/").content.decode()


def test_sign_up_errors_are_shown_on_the_form(client, make_user):
    make_user("taken")
    page = _register(client, username="taken").content.decode()
    assert "This username is taken." in page
    page = _register(client, username="other", password="12345678").content.decode()
    assert "entirely numeric" in page
    response = client.post("/register/", {"username": "third", "password": PASSWORD, "password_again": "different1"})
    assert "The two passwords differ." in response.content.decode()
    assert not User.objects.filter(username__in=["other", "third"]).exists()


def test_registration_can_be_closed(client, settings, default_group):
    settings.REGISTRATION_ENABLED = False
    assert "Registration is closed" in client.get("/register/").content.decode()
    _register(client)
    assert not User.objects.filter(username="newbie").exists()


def test_invite_code_from_the_link_is_recorded(client, make_user):
    inviter = make_user("inviter")
    page = client.get(f"/register/?aff={inviter.invite_code}").content.decode()
    assert f'value="{inviter.invite_code}"' in page
    _register(client, invite_code=inviter.invite_code)
    assert User.objects.get(username="newbie").invited_by == inviter


def test_login_goes_to_next_and_refuses_wrong_passwords(client, make_user):
    make_user("alice")
    page = client.post("/login/", {"username": "alice", "password": "wrong-password"}).content.decode()
    assert "Wrong username or password." in page
    response = client.post("/login/?next=/keys/", {"username": "alice", "password": PASSWORD, "next": "/keys/"})
    assert response.status_code == 302 and response["Location"] == "/keys/"


def test_login_ignores_an_offsite_next(client, make_user):
    make_user("alice")
    response = client.post("/login/", {"username": "alice", "password": PASSWORD, "next": "https://evil.example/"})
    assert response["Location"] == "/dashboard/"


def test_login_is_throttled_after_repeated_failures(client, make_user, settings):
    settings.LOGIN_ATTEMPTS_PER_MINUTE = 2
    make_user("alice")
    for _ in range(2):
        client.post("/login/", {"username": "alice", "password": "wrong-password"})
    page = client.post("/login/", {"username": "alice", "password": PASSWORD}).content.decode()
    assert "Too many failed attempts" in page


def test_first_login_of_an_api_registered_account_shows_the_trial(client, make_user):
    make_user("apiuser")
    client.post("/login/", {"username": "apiuser", "password": PASSWORD})
    assert 'id="trial-credit"' in client.get("/dashboard/").content.decode()
    client.post("/logout/")
    client.post("/login/", {"username": "apiuser", "password": PASSWORD})
    assert 'id="trial-credit"' not in client.get("/dashboard/").content.decode()


def test_logout_needs_a_post(console):
    assert console.get("/logout/").status_code == 405
    assert console.post("/logout/").status_code == 302
    assert console.get("/dashboard/")["Location"] == "/login/?next=%2Fdashboard%2F"


def test_password_change_keeps_the_session(console, user):
    page = console.post("/account/password/", {
        "old_password": "wrong", "new_password1": "an0ther-pass-word", "new_password2": "an0ther-pass-word",
    }).content.decode()
    assert "Your old password was entered incorrectly" in page
    response = console.post("/account/password/", {
        "old_password": PASSWORD, "new_password1": "an0ther-pass-word", "new_password2": "an0ther-pass-word",
    })
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("an0ther-pass-word")
    assert console.get("/settings/").status_code == 200


def test_pages_need_a_login_and_htmx_requests_redirect_the_whole_page(client, htmx):
    for path in ["/dashboard/", "/keys/", "/topup/", "/logs/", "/logs/export.csv", "/settings/",
                 "/account/password/", "/keys/1/edit/"]:
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next="), path
    response = client.post("/checkin/", **htmx(), HTTP_HX_CURRENT_URL="http://testserver/dashboard/")
    assert response.status_code == 200 and response["HX-Redirect"] == "/login/?next=%2Fdashboard%2F"


def test_every_form_carries_a_csrf_token_and_posts_without_one_are_refused(make_user, default_group):
    make_user("alice")
    anonymous = Client(enforce_csrf_checks=True)
    for path in ["/register/", "/login/"]:
        assert "csrfmiddlewaretoken" in anonymous.get(path).content.decode()
    assert anonymous.post("/login/", {"username": "alice", "password": PASSWORD}).status_code == 403
    signed_in = Client(enforce_csrf_checks=True)
    signed_in.force_login(User.objects.get(username="alice"))
    page = signed_in.get("/keys/").content.decode()
    assert page.count("<form") == page.count("csrfmiddlewaretoken")
    assert 'hx-headers=\'{"X-CSRFToken": "' in page
    assert signed_in.post("/checkin/").status_code == 403
    token = signed_in.cookies["csrftoken"].value
    assert signed_in.post("/checkin/", HTTP_X_CSRFTOKEN=token, HTTP_HX_REQUEST="true").status_code == 200
