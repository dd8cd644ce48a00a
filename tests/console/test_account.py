"""Dashboard figures and charts, card-key top-up, daily check-in and the access token, from the test client."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from accounts.services import user_by_access_token
from billing.ledger import ledger_sum
from billing.models import UsageLog
from billing.redemption import redemption_batch_create


def _log(user, quota: int, model: str = "demo-chat", **fields) -> UsageLog:
    log = UsageLog.objects.create(user=user, model=model, endpoint="/v1/chat/completions", quota=quota,
                                  token_name="k", request_id=f"r{UsageLog.objects.count()}", **fields)
    if "created_at" in fields:  # auto_now_add ignores the value given on create
        UsageLog.objects.filter(pk=log.pk).update(created_at=fields["created_at"])
    return log


def test_dashboard_shows_balance_spend_and_charts(console, user, other_user):
    now = timezone.now()
    _log(user, 250_000)                                   # $0.50 today
    _log(user, 50_000, model="gpt-4o", created_at=now - timedelta(days=3))
    _log(user, 9_999_999, created_at=now - timedelta(days=45))  # outside both the month chart and 30 days
    _log(other_user, 1_000_000)                           # someone else's
    page = console.get("/dashboard/").content.decode()
    assert "$1.00" in page and "500,000" in page           # balance (no real charge was made)
    today = page.split('id="spend-today"')[1].split("</div>\n</div>")[0]
    assert "$0.50" in today and "1 request" in today
    assert page.count('class="col"') == 2                  # two days with spend in the last 30
    models = page.split('id="chart-models"')[1].split("</svg>")[0]
    assert "demo-chat" in models and "gpt-4o" in models and "83%" in models and "17%" in models


def test_a_new_account_sees_empty_charts(console):
    page = console.get("/dashboard/").content.decode()
    assert "No spend in this period yet." in page and 'class="col"' not in page


def test_redeeming_a_card_updates_the_balance_out_of_band(console, user, htmx):
    code = redemption_batch_create(name="b", quota=1_000_000, count=1, created_by_id=None)[0]
    response = console.post("/topup/redeem/", {"code": code}, **htmx())
    assert response["HX-Trigger"] == '{"balance-changed": {}}'  # the credits list reloads itself
    page = response.content.decode()
    assert "<html" not in page and 'id="redeem-ok"' in page and "$2.00" in page
    assert 'hx-swap-oob="innerHTML:[data-balance-usd]">$3.00<' in page
    assert 'hx-swap-oob="innerHTML:[data-balance-quota]">1,500,000<' in page
    user.refresh_from_db()
    assert user.quota == 1_500_000 == ledger_sum(user_id=user.pk)
    again = console.post("/topup/redeem/", {"code": code}, **htmx())
    assert "HX-Trigger" not in again
    assert "This card key has already been used." in again.content.decode()
    assert "hx-swap-oob" not in again.content.decode()
    unknown = console.post("/topup/redeem/", {"code": "nope"}, **htmx()).content.decode()
    assert "This card key is invalid." in unknown


def test_expired_cards_are_refused_with_their_reason(console, user, htmx):
    code = redemption_batch_create(name="b", quota=1000, count=1, created_by_id=None,
                                   expires_at=timezone.now() + timedelta(seconds=30))[0]
    from billing.models import RedemptionCode

    RedemptionCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    page = console.post("/topup/redeem/", {"code": code}, **htmx()).content.decode()
    assert "This card key has expired." in page


def test_redeeming_without_htmx_redirects_with_a_message(console, user):
    code = redemption_batch_create(name="b", quota=1_000_000, count=1, created_by_id=None)[0]
    response = console.post("/topup/redeem/", {"code": code}, follow=True)
    page = response.content.decode()
    assert response.redirect_chain == [("/topup/", 302)]
    assert "Card key redeemed: $2.00 added to your balance." in page and "Card key redeemed" in page


def test_check_in_once_a_day(console, user, htmx):
    page = console.get("/dashboard/").content.decode()
    assert 'id="checkin-button">Check in<' in page
    first = console.post("/checkin/", **htmx()).content.decode()
    user.refresh_from_db()
    reward = user.quota - 500_000
    assert 10_000 <= reward <= 50_000 and f"{reward:,} quota" in first
    assert 'id="checkin-button" disabled>Checked in today<' in first
    assert f'[data-balance-quota]">{user.quota:,}<' in first
    second = console.post("/checkin/", **htmx()).content.decode()
    assert "You have already checked in today." in second
    user.refresh_from_db()
    assert user.quota == 500_000 + reward == ledger_sum(user_id=user.pk)
    assert 'id="checkin-button" disabled>' in console.get("/topup/").content.decode()


def test_access_token_is_shown_once_and_replaces_the_old_one(console, user, htmx):
    assert "You have no access token yet." in console.get("/settings/").content.decode()
    page = console.post("/settings/access-token/", **htmx()).content.decode()
    token = page.split('<code id="new-access-token">')[1].split("</code>")[0]
    assert user_by_access_token(token) == user
    later = console.get("/settings/").content.decode()
    assert token not in later and user.__class__.objects.get(pk=user.pk).access_token_hint in later
    console.post("/settings/access-token/", **htmx())
    assert user_by_access_token(token) is None


def test_settings_shows_the_invite_link(console, user):
    page = console.get("/settings/").content.decode()
    assert f"/register/?aff={user.invite_code}" in page
