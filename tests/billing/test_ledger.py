"""The ledger: every balance change is a row, balances never go below zero, books always balance."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from accounts.models import User
from billing.ledger import InsufficientQuota, ledger_apply, ledger_credit, ledger_sum
from billing.models import LedgerEntry, LedgerReason
from config.errors import ServiceError


def test_registration_credits_trial_quota_through_the_ledger(make_user, settings, assert_books_balance):
    settings.NEW_USER_QUOTA = 123_456
    user = make_user("trial")
    entry = LedgerEntry.objects.get(user=user)
    assert (entry.amount, entry.reason, entry.balance_after) == (123_456, LedgerReason.SIGNUP, 123_456)
    assert user.quota == 123_456
    assert_books_balance(user)


def test_debit_past_balance_is_refused_and_changes_nothing(user, assert_books_balance):
    before = user.quota
    with pytest.raises(InsufficientQuota):
        ledger_apply(user_id=user.pk, amount=-(before + 1), reason=LedgerReason.RESERVE)
    user.refresh_from_db()
    assert user.quota == before
    assert LedgerEntry.objects.filter(user=user).count() == 1
    assert_books_balance(user)


def test_balance_after_tracks_each_change(user, assert_books_balance):
    start = user.quota
    a = ledger_credit(user_id=user.pk, amount=1000, reason=LedgerReason.TOPUP)
    b = ledger_apply(user_id=user.pk, amount=-300, reason=LedgerReason.RESERVE, ref="req:1")
    c = ledger_apply(user_id=user.pk, amount=100, reason=LedgerReason.REFUND, ref="req:1")
    assert [a.balance_after, b.balance_after, c.balance_after] == [start + 1000, start + 700, start + 800]
    assert_books_balance(user)


def test_amounts_must_be_integers_and_credits_positive(user):
    with pytest.raises(TypeError):
        ledger_apply(user_id=user.pk, amount=1.5, reason=LedgerReason.TOPUP)
    with pytest.raises(ServiceError):
        ledger_credit(user_id=user.pk, amount=0, reason=LedgerReason.TOPUP)


def test_unknown_user_is_not_found(db):
    with pytest.raises(ServiceError) as exc:
        ledger_credit(user_id=987654, amount=5, reason=LedgerReason.TOPUP)
    assert exc.value.status == 404


@pytest.mark.django_db(transaction=True)
def test_concurrent_credits_and_debits_keep_balance_equal_to_ledger(make_user, settings):
    settings.NEW_USER_QUOTA = 1_000
    user = make_user("busy")
    refused = []

    def worker(i: int) -> None:
        try:
            for _ in range(10):
                try:
                    ledger_apply(user_id=user.pk, amount=-150 if i % 2 else 100, reason=LedgerReason.ADMIN_ADJUST)
                except InsufficientQuota:
                    refused.append(i)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    user = User.objects.get(pk=user.pk)
    assert user.quota >= 0
    assert user.quota == ledger_sum(user_id=user.pk)
    entries = LedgerEntry.objects.filter(user=user).count()
    assert entries == 1 + 16 * 10 - len(refused)
