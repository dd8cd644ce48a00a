"""A forgotten password: the address set in Settings, a one-time link by email, a new password."""

from __future__ import annotations

import re

from django.core import mail

from accounts.models import User

PASSWORD = "s3cret-pass-word"
NEW_PASSWORD = "another-long-phrase-9"
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


def _link(message) -> str:
    return re.search(r"http://testserver(/password-reset/[^/\s]+/[^/\s]+/)", message.body).group(1)


def test_the_email_address_is_set_in_settings_with_the_current_password(client, make_user):
    user = make_user("alice")
    client.force_login(user)
    page = client.post("/account/email/", {"email": "alice@EXAMPLE.com", "password": "wrong"}, **EN).content.decode()
    assert "The password is not right." in page
    assert User.objects.get(pk=user.pk).email == ""
    response = client.post("/account/email/", {"email": "alice@EXAMPLE.com", "password": PASSWORD}, **EN)
    assert response.status_code == 302 and response["Location"] == "/settings/"
    assert User.objects.get(pk=user.pk).email == "alice@example.com"  # the domain's case is not the user's
    assert "alice@example.com" in client.get("/settings/", **EN).content.decode()
    page = client.post("/account/email/", {"email": "not-an-address", "password": PASSWORD}, **EN).content.decode()
    assert "Enter a valid email address." in page
    client.post("/account/email/", {"email": "", "password": PASSWORD})
    assert User.objects.get(pk=user.pk).email == ""
    client.logout()
    assert client.get("/account/email/")["Location"].startswith("/login/")


def test_a_reset_link_sets_a_new_password_once(client, make_user, settings):
    settings.SITE_NAME = "Gateway One"
    user = make_user("bob", email="bob@example.com")
    assert "/password-reset/" in client.get("/login/", **EN).content.decode()
    response = client.post("/password-reset/", {"email": "bob@example.com"}, **EN)
    assert response.status_code == 302 and response["Location"] == "/password-reset/sent/"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["bob@example.com"] and "Gateway One" in message.subject and '"bob"' in message.body
    link = _link(message)
    form_page = client.get(link, follow=True)
    assert "New password" in form_page.content.decode()
    set_url = form_page.redirect_chain[-1][0]
    page = client.post(set_url, {"new_password1": "short", "new_password2": "short"}, **EN).content.decode()
    assert "too short" in page
    response = client.post(set_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}, **EN)
    assert response.status_code == 302 and response["Location"] == "/login/"
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD) and not user.check_password(PASSWORD)
    again = client.get(link, follow=True).content.decode()
    assert "This link has been used or has expired." in again
    assert client.post("/login/", {"username": "bob", "password": NEW_PASSWORD})["Location"] == "/dashboard/"


def test_the_request_page_tells_no_one_who_is_registered(client, make_user):
    make_user("carol", email="carol@example.com")
    make_user("dave", email="carol@example.com", is_active=False)
    for address in ("nobody@example.com", "carol@example.com"):
        response = client.post("/password-reset/", {"email": address}, **EN)
        assert response.status_code == 302 and response["Location"] == "/password-reset/sent/"
    assert [m.to for m in mail.outbox] == [["carol@example.com"]]  # the inactive account gets no link
    assert "carol" in mail.outbox[0].body and "dave" not in mail.outbox[0].body
    response = client.post("/password-reset/", {"email": "Carol@example.com"}, **EN)
    assert response["Location"] == "/password-reset/sent/" and len(mail.outbox) == 1  # one mail a minute per address


def test_the_reset_pages_speak_chinese(client, make_user):
    make_user("erin", email="erin@example.com")
    assert "忘记密码" in client.get("/password-reset/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    client.post("/password-reset/", {"email": "erin@example.com"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "设置新密码" in mail.outbox[0].subject and "仅可使用一次" in mail.outbox[0].body
