"""The API keys page: list, create (key shown once), edit, enable/disable, delete; only ever one's own keys."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.groups import group_save
from tokens.keys import secret_hash
from tokens.models import ApiToken, TokenStatus
from tokens.services import token_create


def _create(console, htmx_headers=None, **fields):
    data = {"name": "my key", "unlimited": "on", **fields}
    return console.post("/keys/new/", data, **(htmx_headers or {}))


def test_the_list_shows_masked_keys_and_their_limits(console, user):
    cheap = group_save(name="cheap", ratio=Decimal("0.5"), selectable=True)
    token, key = token_create(user=user, name="limited", remain_quota=1_000_000, group=cheap,
                              expires_at=timezone.now() + timedelta(days=3))
    page = console.get("/keys/").content.decode()
    assert token.masked_key in page and key not in page
    assert "$2.00" in page and "cheap" in page and "Not yet" in page
    assert f'id="key-{token.pk}"' in page


def test_creating_a_key_shows_it_once_and_stores_only_its_hash(console, user, htmx):
    response = _create(console, htmx(), name="ci key")
    page = response.content.decode()
    assert "<html" not in page  # a partial: the form, the new key and the list swapped out of band
    token = ApiToken.objects.get(user=user)
    key = page.split('<code id="new-key">')[1].split("</code>")[0]
    assert key.startswith("sk-") and token.key_hash == secret_hash(key)
    assert 'id="new-key-slot" hx-swap-oob="true"' in page and 'id="key-list" hx-swap-oob="true"' in page
    assert key not in console.get("/keys/").content.decode()


def test_creating_a_key_without_htmx_renders_the_whole_page(console, user):
    page = _create(console, name="plain").content.decode()
    assert "<html" in page and 'id="new-key"' in page
    assert ApiToken.objects.filter(user=user, name="plain").exists()


def test_key_fields_reach_the_service(console, user):
    cheap = group_save(name="cheap", ratio=Decimal("0.5"), selectable=True)
    expires = (timezone.localtime() + timedelta(days=7)).replace(second=0, microsecond=0)
    _create(console, name="full", unlimited="", quota_usd="1.5", expires_at=expires.strftime("%Y-%m-%dT%H:%M"),
            group="cheap", model_limits="demo-chat, gpt-4o\ndemo-chat", allow_ips="10.0.0.1\n192.168.0.0/16")
    token = ApiToken.objects.get(user=user, name="full")
    assert token.unlimited_quota is False and token.remain_quota == 750_000
    assert token.expires_at == expires and token.group == cheap
    assert token.model_limits == ["demo-chat", "gpt-4o"]
    assert token.allow_ips == ["10.0.0.1/32", "192.168.0.0/16"]


@pytest.mark.parametrize("fields, message", [
    ({"name": ""}, "This field is required."),
    ({"unlimited": ""}, "Enter the key&#x27;s quota, or make it unlimited."),
    ({"allow_ips": "10.0.0.1, nonsense"}, "Not an IP address or CIDR range: nonsense"),
    ({"expires_at": "2001-01-01T00:00"}, "The expiry time is in the past."),
    ({"group": "internal"}, "Select a valid choice."),
])
def test_invalid_keys_are_refused_with_a_message(console, user, htmx, fields, message):
    group_save(name="internal", ratio=Decimal("0.1"), selectable=False)
    page = _create(console, htmx(), **fields).content.decode()
    assert message in page and "<html" not in page
    assert not ApiToken.objects.filter(user=user).exists()


def test_editing_changes_only_what_was_changed(console, user, htmx):
    token, _key = token_create(user=user, name="old", remain_quota=500_000)
    form = console.get(f"/keys/{token.pk}/edit/", **htmx()).content.decode()
    assert form.startswith("<tr") and f'id="id_key{token.pk}_name"' in form and 'value="1"' in form
    # The relay spends from the key meanwhile; an edit that leaves the quota alone must not undo that.
    ApiToken.objects.filter(pk=token.pk).update(remain_quota=400_000)
    row = console.post(f"/keys/{token.pk}/edit/", {"name": "new", "quota_usd": "1", "initial-quota_usd": "1"},
                       **htmx()).content.decode()
    assert row.startswith("<tr") and "new" in row
    token.refresh_from_db()
    assert (token.name, token.remain_quota, token.unlimited_quota) == ("new", 400_000, False)
    console.post(f"/keys/{token.pk}/edit/", {"name": "new", "quota_usd": "3", "initial-quota_usd": "1"}, **htmx())
    token.refresh_from_db()
    assert token.remain_quota == 1_500_000


def test_edit_without_htmx_is_a_page_and_redirects_back(console, user):
    token, _key = token_create(user=user, name="old", unlimited_quota=True)
    assert "<html" in console.get(f"/keys/{token.pk}/edit/").content.decode()
    response = console.post(f"/keys/{token.pk}/edit/", {"name": "renamed", "unlimited": "on"})
    assert response.status_code == 302 and response["Location"] == "/keys/"
    token.refresh_from_db()
    assert token.name == "renamed"


def test_toggle_disables_and_enables(console, user, htmx):
    token, _key = token_create(user=user, name="k", unlimited_quota=True)
    row = console.post(f"/keys/{token.pk}/toggle/", **htmx()).content.decode()
    assert "Disabled" in row and "Enable k" in row
    token.refresh_from_db()
    assert token.status == TokenStatus.DISABLED
    console.post(f"/keys/{token.pk}/toggle/", **htmx())
    token.refresh_from_db()
    assert token.status == TokenStatus.ENABLED


def test_delete_asks_first_without_javascript_and_answers_htmx_with_the_list(console, user, htmx):
    first, _ = token_create(user=user, name="first", unlimited_quota=True)
    second, _ = token_create(user=user, name="second", unlimited_quota=True)
    page = console.get(f"/keys/{first.pk}/delete/").content.decode()
    assert "Programs using it will stop working." in page and ApiToken.objects.filter(pk=first.pk).exists()
    listing = console.post(f"/keys/{first.pk}/delete/", **htmx()).content.decode()
    assert listing.startswith('<section id="key-list"') and "second" in listing and "first" not in listing
    assert console.post(f"/keys/{second.pk}/delete/")["Location"] == "/keys/"
    assert not ApiToken.objects.filter(user=user).exists()


def test_another_users_key_is_not_found(console, other_user, htmx):
    theirs, _key = token_create(user=other_user, name="theirs", unlimited_quota=True)
    assert "theirs" not in console.get("/keys/").content.decode()
    for method, path in [("get", "/"), ("get", "/edit/"), ("post", "/edit/"), ("post", "/toggle/"),
                         ("get", "/delete/"), ("post", "/delete/")]:
        response = getattr(console, method)(f"/keys/{theirs.pk}{path}", {"name": "x"}, **htmx())
        assert response.status_code == 404, path
    theirs.refresh_from_db()
    assert theirs.name == "theirs" and theirs.status == TokenStatus.ENABLED
