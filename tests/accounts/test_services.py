"""Account services: registration rules, check-in once a day, operator adjustments."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import UserStatus
from accounts.services import (
    CheckinError, checkin_claim, user_adjust_quota, user_authenticate, user_register, user_set_status,
)
from billing.models import LedgerEntry, LedgerReason
from config.errors import ServiceError


def test_new_users_join_the_default_group_with_an_invite_code(user, default_group):
    assert user.group == default_group
    assert user.invite_code and len(user.invite_code) == 8


@pytest.mark.parametrize("username, password, message", [
    ("ab", "long-enough-pass", "3 to 32"),
    ("bad name!", "long-enough-pass", "letters, digits"),
    ("carol", "short", "too short"),
    ("carol", "12345678901", "entirely numeric"),
])
def test_registration_refuses_bad_input(db, username, password, message):
    with pytest.raises(ServiceError, match=message):
        user_register(username=username, password=password)


def test_usernames_are_unique_ignoring_case(user):
    with pytest.raises(ServiceError, match="taken"):
        user_register(username="ALICE", password="another-good-pass")


def test_daily_checkin_once_per_day(user, settings, assert_books_balance):
    settings.CHECKIN_QUOTA_MIN, settings.CHECKIN_QUOTA_MAX = 1000, 2000
    before = user.quota
    amount = checkin_claim(user=user)
    assert 1000 <= amount <= 2000 and user.quota == before + amount
    with pytest.raises(CheckinError):
        checkin_claim(user=user)
    # the next local day allows it again
    type(user).objects.filter(pk=user.pk).update(last_checkin_date=timezone.localdate() - timedelta(days=1))
    assert checkin_claim(user=user) >= 1000
    assert LedgerEntry.objects.filter(user=user, reason=LedgerReason.CHECKIN).count() == 2
    assert_books_balance(user)


def test_admin_adjustment_goes_through_the_ledger_and_cannot_overdraw(user, admin, assert_books_balance):
    before = user.quota
    user_adjust_quota(user=user, amount=-before, note="reset", by=admin)
    assert user.quota == 0
    with pytest.raises(ServiceError):
        user_adjust_quota(user=user, amount=-1, by=admin)
    entry = LedgerEntry.objects.filter(user=user, reason=LedgerReason.ADMIN_ADJUST).get()
    assert entry.ref == f"admin:{admin.pk}" and entry.note == "reset"
    assert_books_balance(user)


def test_disabled_users_cannot_log_in(user):
    user_set_status(user=user, status=UserStatus.DISABLED)
    with pytest.raises(ServiceError):
        user_authenticate(request=None, username="alice", password="s3cret-pass-word")


def test_failed_logins_are_throttled(user, settings):
    settings.LOGIN_ATTEMPTS_PER_MINUTE = 3
    for _ in range(3):
        with pytest.raises(ServiceError) as exc:
            user_authenticate(request=None, username="alice", password="wrong", client_ip="10.0.0.1")
        assert exc.value.status == 401
    with pytest.raises(ServiceError) as exc:
        user_authenticate(request=None, username="alice", password="s3cret-pass-word", client_ip="10.0.0.1")
    assert exc.value.status == 429
    assert user_authenticate(request=None, username="alice", password="s3cret-pass-word", client_ip="10.0.0.2")


def test_invitations_are_rewarded_through_the_ledger_when_the_operator_sets_rewards(user, settings, client):
    settings.NEW_USER_QUOTA, settings.INVITER_QUOTA, settings.INVITEE_QUOTA = 500_000, 250_000, 100_000
    inviter_before = user.quota
    guest = user_register(username="guest", password="another-good-pass", invite_code=user.invite_code)
    assert guest.invited_by == user and guest.quota == 600_000
    user.refresh_from_db()
    assert user.quota == inviter_before + 250_000
    rows = LedgerEntry.objects.filter(reason=LedgerReason.INVITE).order_by("id")
    assert [(r.user_id, r.amount, r.ref) for r in rows] == [
        (guest.pk, 100_000, f"invited-by:{user.pk}"), (user.pk, 250_000, f"invited:{guest.pk}")]
    stranger = user_register(username="stranger", password="another-good-pass", invite_code="nope")
    assert stranger.invited_by is None and stranger.quota == 500_000  # an unknown code is no invitation
    client.force_login(user)
    page = client.get("/settings/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "You get $0.50 for each of them." in page and "They get $0.20 extra" in page
    assert "1 person signed up with your link; you earned $0.50." in page


def test_no_rewards_by_default_and_none_for_a_disabled_inviter(user, settings):
    user_register(username="guest", password="another-good-pass", invite_code=user.invite_code)
    assert not LedgerEntry.objects.filter(reason=LedgerReason.INVITE).exists()
    settings.INVITER_QUOTA = settings.INVITEE_QUOTA = 1000
    user_set_status(user=user, status=UserStatus.DISABLED)
    guest = user_register(username="guest2", password="another-good-pass", invite_code=user.invite_code)
    assert guest.invited_by == user and not LedgerEntry.objects.filter(reason=LedgerReason.INVITE).exists()
