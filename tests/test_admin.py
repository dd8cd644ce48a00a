"""The Django admin: every model is reachable, secrets never show, and money moves only through the ledger."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from accounts.models import User, UserStatus
from accounts.services import access_token_issue
from billing.groups import group_default
from billing.ledger import ledger_sum
from billing.models import (
    LedgerEntry,
    LedgerReason,
    ModelPrice,
    RedemptionCode,
    RedemptionStatus,
    UsageLog,
    UserGroup,
)
from billing.redemption import RedemptionError, redemption_batch_create, redemption_redeem
from relay.models import Upstream, UpstreamStatus
from tokens.models import ApiToken
from tokens.services import token_create

UPSTREAM_KEY = "sk-upstream-PLAINTEXT-0123456789abcdef"


def changelist(model: type) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def change(obj: object) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def add(model: type) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add")


def upstream_form(**overrides: object) -> dict[str, object]:
    data = {
        "name": "main", "type": "openai", "base_url": "", "keys": "", "served_models": '["gpt-4o"]',
        "model_mapping": "{}", "groups": [group_default().pk], "priority": "0", "weight": "1", "status": "enabled",
        "status_reason": "", "test_model": "", "connect_timeout": "10", "first_byte_timeout": "60",
        "total_timeout": "600", "extras": "{}",
    }
    data.update(overrides)
    return data


def run_action(client, model: type, action: str, objects: list) -> object:
    return client.post(
        changelist(model), {"action": action, "_selected_action": [o.pk for o in objects], "index": "0"}, follow=True
    )


@pytest.fixture
def upstream(admin_client) -> Upstream:
    admin_client.post(add(Upstream), upstream_form(keys=f"{UPSTREAM_KEY}\n  \nsk-second-key\n"))
    return Upstream.objects.get(name="main")


@pytest.fixture
def records(user, upstream):
    """One row of every model, so changelists render real rows."""
    token, _key = token_create(user=user, name="laptop")
    ModelPrice.objects.create(model="gpt-4o", provider="openai")
    UsageLog.objects.create(
        user=user, token=token, token_name=token.name, upstream=upstream, model="gpt-4o",
        endpoint="/v1/chat/completions", request_id="req-1", prompt_tokens=10, completion_tokens=5, quota=30,
    )
    redemption_batch_create(name="spring", quota=1000, count=2, created_by_id=None)
    return {
        "user": user, "token": token, "upstream": upstream, "group": group_default(),
        "price": ModelPrice.objects.get(), "ledger": LedgerEntry.objects.filter(user=user).first(),
        "usage": UsageLog.objects.get(), "card": RedemptionCode.objects.first(),
    }


# --- every model is registered and renders ---

@pytest.mark.parametrize("name", ["user", "group", "price", "ledger", "usage", "card", "token", "upstream"])
def test_changelist_and_change_page_render(admin_client, records, name):
    obj = records[name]
    listing = admin_client.get(changelist(type(obj)))
    assert listing.status_code == 200
    assert change(obj) in listing.content.decode()
    assert admin_client.get(change(obj)).status_code == 200


@pytest.mark.parametrize("name, query", [
    ("user", "?q=alice&status__exact=enabled&group__id__exact={group}"),
    ("ledger", "?q=alice&reason__exact=signup"),
    ("usage", "?q=req-1&model=gpt-4o&status__exact=success"),
    ("card", "?q=spring&status__exact=unused&batch_name=spring"),
    ("token", "?q=sk-&status__exact=enabled"),
    ("upstream", "?q=main&type__exact=openai&status__exact=enabled&groups__id__exact={group}"),
    ("price", "?q=gpt&category__exact=general&provider=openai"),
    ("group", "?q=default"),
])
def test_changelist_search_and_filters_find_the_row(admin_client, records, name, query):
    obj = records[name]
    response = admin_client.get(changelist(type(obj)) + query.format(group=records["group"].pk))
    assert response.status_code == 200  # an unknown filter would redirect with ?e=1
    assert change(obj) in response.content.decode()


@pytest.mark.parametrize("model", [User, UserGroup, ModelPrice, Upstream])
def test_add_pages_render(admin_client, default_group, model):
    assert admin_client.get(add(model)).status_code == 200


def test_the_default_group_cannot_be_deleted(admin_client, default_group):
    url = reverse("admin:billing_usergroup_delete", args=[default_group.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    assert UserGroup.objects.filter(pk=default_group.pk).exists()


@pytest.mark.parametrize("model", [LedgerEntry, UsageLog, RedemptionCode, ApiToken])
def test_records_made_by_services_cannot_be_added_here(admin_client, model):
    assert admin_client.get(add(model)).status_code == 403
    assert admin_client.post(add(model), {}).status_code == 403


def test_ledger_and_usage_logs_cannot_be_edited_or_deleted(admin_client, records):
    for obj in (records["ledger"], records["usage"]):
        page = admin_client.get(change(obj)).content.decode()
        assert 'name="_save"' not in page  # a view-only page
        before = type(obj).objects.count()
        delete_url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_delete", args=[obj.pk])
        assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
        assert type(obj).objects.count() == before


# --- users ---

def test_adding_a_user_in_admin_puts_them_in_the_default_group(admin_client, default_group):
    form = admin_client.get(add(User)).content.decode()
    assert f'<option value="{default_group.pk}" selected>' in form
    response = admin_client.post(add(User), {
        "username": "carol", "usable_password": "true",
        "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase",
        "group": default_group.pk, "role": "user", "display_name": "Carol", "email": "",
    })
    assert response.status_code == 302
    carol = User.objects.get(username="carol")
    assert carol.group == default_group and carol.check_password("a-long-pass-phrase")


def test_user_change_page_hides_the_access_token_hash_and_offers_adjust_quota(admin_client, user):
    access_token_issue(user=user)
    user.refresh_from_db()
    page = admin_client.get(change(user)).content.decode()
    assert user.access_token_hash not in page
    assert reverse("admin:accounts_user_adjust_quota", args=[user.pk]) in page
    assert 'name="quota"' not in page  # the balance is read-only


def test_editing_a_user_cannot_write_the_balance(admin_client, user):
    before = user.quota
    admin_client.post(change(user), {"username": user.username, "quota": 10**9, "group": user.group_id,
                                     "role": "user", "status": "disabled", "date_joined_0": "2024-01-01",
                                     "date_joined_1": "00:00:00"})
    user.refresh_from_db()
    assert user.quota == before
    assert (user.status, user.is_active) == (UserStatus.DISABLED, False)


def test_adjusting_quota_goes_through_the_ledger(admin_client, admin_user, user):
    before = user.quota
    url = reverse("admin:accounts_user_adjust_quota", args=[user.pk])
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"amount": "-1234", "note": "refund of a mistake"}, follow=True)
    assert response.redirect_chain[-1][0] == change(user)
    assert "changed by -1234" in response.content.decode()
    user.refresh_from_db()
    entry = LedgerEntry.objects.get(user=user, reason=LedgerReason.ADMIN_ADJUST)
    assert (entry.amount, entry.note, entry.ref) == (-1234, "refund of a mistake", f"admin:{admin_user.pk}")
    assert user.quota == before - 1234 == ledger_sum(user_id=user.pk)


def test_a_debit_beyond_the_balance_is_refused_and_changes_nothing(admin_client, user):
    before = user.quota
    url = reverse("admin:accounts_user_adjust_quota", args=[user.pk])
    response = admin_client.post(url, {"amount": str(-(before + 1)), "note": ""})
    assert response.status_code == 200
    assert "Insufficient balance." in response.content.decode()
    user.refresh_from_db()
    assert user.quota == before == ledger_sum(user_id=user.pk)
    assert not LedgerEntry.objects.filter(user=user, reason=LedgerReason.ADMIN_ADJUST).exists()


def test_a_zero_adjustment_is_a_form_error(admin_client, user):
    response = admin_client.post(reverse("admin:accounts_user_adjust_quota", args=[user.pk]), {"amount": "0"})
    assert response.status_code == 200 and "must not be zero" in response.content.decode()
    assert not LedgerEntry.objects.filter(user=user, reason=LedgerReason.ADMIN_ADJUST).exists()


# --- upstreams: keys are write-only ---

def test_upstream_keys_are_stored_encrypted(upstream):
    assert upstream.get_keys() == [UPSTREAM_KEY, "sk-second-key"]
    assert upstream.key_count == 2
    assert UPSTREAM_KEY not in upstream.keys_encrypted
    assert upstream.groups.get() == group_default()


def test_upstream_pages_never_show_a_key(admin_client, upstream):
    for url in (change(upstream), changelist(Upstream), add(Upstream)):
        page = admin_client.get(url).content.decode()
        assert UPSTREAM_KEY not in page and "sk-second-key" not in page and upstream.keys_encrypted not in page


def test_a_rejected_upstream_form_does_not_echo_the_keys(admin_client, default_group):
    response = admin_client.post(add(Upstream), upstream_form(name="", keys=UPSTREAM_KEY))
    assert response.status_code == 200 and "errornote" in response.content.decode()
    assert UPSTREAM_KEY not in response.content.decode()


def test_keys_are_required_when_adding(admin_client, default_group):
    response = admin_client.post(add(Upstream), upstream_form(keys="  \n"))
    assert response.status_code == 200 and "At least one key is required." in response.content.decode()
    assert not Upstream.objects.exists()


def test_a_blank_keys_field_keeps_the_keys_and_a_new_one_replaces_them(admin_client, upstream):
    response = admin_client.post(change(upstream), upstream_form(name="renamed", keys=""))
    assert response.status_code == 302
    upstream.refresh_from_db()
    assert upstream.name == "renamed" and upstream.get_keys() == [UPSTREAM_KEY, "sk-second-key"]
    admin_client.post(change(upstream), upstream_form(name="renamed", keys="sk-new\n"))
    upstream.refresh_from_db()
    assert upstream.get_keys() == ["sk-new"] and upstream.key_count == 1


def test_enable_and_disable_actions(admin_client, upstream):
    other = Upstream.objects.create(name="spare", type="openai", status=UpstreamStatus.AUTO_DISABLED,
                                    status_reason="401 from upstream")
    response = run_action(admin_client, Upstream, "disable_upstreams", [upstream, other])
    assert "2 upstreams disabled." in response.content.decode()
    upstream.refresh_from_db()
    assert upstream.status == UpstreamStatus.DISABLED and "admin" in upstream.status_reason

    response = run_action(admin_client, Upstream, "enable_upstreams", [upstream, other])
    assert "2 upstreams enabled." in response.content.decode()
    for row in (upstream, other):
        row.refresh_from_db()
        assert (row.status, row.status_reason) == (UpstreamStatus.ENABLED, "")

    response = run_action(admin_client, Upstream, "enable_upstreams", [upstream])
    assert "0 upstreams enabled. 1 was already enabled." in response.content.decode()


# --- card keys ---

def test_card_batch_downloads_codes_that_redeem_exactly_once(admin_client, user, make_user):
    url = reverse("admin:billing_redemptioncode_batch")
    assert url in admin_client.get(changelist(RedemptionCode)).content.decode()
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"name": "spring sale", "quota": "5000", "count": "3", "expires_at": ""})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "spring-sale" in response["Content-Disposition"] and "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [list(r) for r in rows[:1]] == [["code", "quota", "batch", "expires_at"]]
    assert len(rows) == 3 and {(r["quota"], r["batch"], r["expires_at"]) for r in rows} == {("5000", "spring sale", "")}
    assert RedemptionCode.objects.filter(batch_name="spring sale", status=RedemptionStatus.UNUSED).count() == 3

    before = user.quota
    for row in rows:
        redemption_redeem(user_id=user.pk, code=row["code"])
        with pytest.raises(RedemptionError):
            redemption_redeem(user_id=make_user().pk, code=row["code"])
    user.refresh_from_db()
    assert user.quota == before + 15_000 == ledger_sum(user_id=user.pk)

    listing = admin_client.get(changelist(RedemptionCode)).content.decode()
    assert all(row["code"] not in listing for row in rows)


def test_card_batch_form_errors_create_nothing(admin_client):
    response = admin_client.post(reverse("admin:billing_redemptioncode_batch"),
                                 {"name": "too many", "quota": "5000", "count": "1001"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    response = admin_client.post(reverse("admin:billing_redemptioncode_batch"),
                                 {"name": "old", "quota": "5", "count": "1", "expires_at": "2001-01-01T00:00"})
    assert "The expiry time is in the past." in response.content.decode()
    assert not RedemptionCode.objects.exists()


def test_disabling_cards_skips_used_ones(admin_client, user):
    codes = redemption_batch_create(name="b", quota=100, count=2, created_by_id=None)
    used = redemption_redeem(user_id=user.pk, code=codes[0])
    unused = RedemptionCode.objects.exclude(pk=used.pk).get()
    response = run_action(admin_client, RedemptionCode, "disable_cards", [used, unused])
    assert "1 card key disabled." in response.content.decode()
    used.refresh_from_db()
    unused.refresh_from_db()
    assert (used.status, unused.status) == (RedemptionStatus.USED, RedemptionStatus.DISABLED)
    with pytest.raises(RedemptionError):
        redemption_redeem(user_id=user.pk, code=codes[1])


def test_a_whole_code_finds_its_card(admin_client):
    codes = redemption_batch_create(name="find-me", quota=100, count=2, created_by_id=None)
    page = admin_client.get(changelist(RedemptionCode), {"q": codes[1]}).content.decode()
    card = RedemptionCode.objects.get(code_hint=f"{codes[1][:4]}…{codes[1][-4:]}")
    assert change(card) in page and "1 result" in page


# --- API tokens ---

def test_token_pages_show_the_masked_key_never_the_hash(admin_client, user):
    token, key = token_create(user=user, name="ci")
    for url in (changelist(type(token)), change(token)):
        page = admin_client.get(url).content.decode()
        assert token.key_hash not in page and key not in page
        assert token.masked_key in page


def test_token_limits_can_be_edited(admin_client, user):
    token, _key = token_create(user=user, name="ci")
    data = {"name": "ci-2", "status": "disabled", "remain_quota": "500", "model_limits": '["gpt-4o"]',
            "allow_ips": '["10.0.0.1/8"]', "group": "", "expires_at_0": "", "expires_at_1": "",
            "rpm_limit": "", "concurrency_limit": ""}
    assert admin_client.post(change(token), data).status_code == 302
    token.refresh_from_db()
    assert (token.name, token.status, token.remain_quota, token.allow_ips) == ("ci-2", "disabled", 500, ["10.0.0.0/8"])
    bad = admin_client.post(change(token), {**data, "allow_ips": '["not-an-ip"]'})
    assert bad.status_code == 200 and "Not an IP address" in bad.content.decode()


def test_used_cards_cannot_be_deleted(admin_client, user):
    codes = redemption_batch_create(name="b", quota=100, count=1, created_by_id=None)
    card = redemption_redeem(user_id=user.pk, code=codes[0])
    url = reverse("admin:billing_redemptioncode_delete", args=[card.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    admin_client.post(changelist(RedemptionCode), {"action": "delete_selected", "_selected_action": [card.pk],
                                                    "post": "yes"})
    assert RedemptionCode.objects.filter(pk=card.pk).exists()
