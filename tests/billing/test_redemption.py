"""Card keys: a code credits its quota exactly once, whoever and however many try."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import User
from billing.ledger import ledger_sum
from billing.models import LedgerEntry, LedgerReason, RedemptionCode, RedemptionStatus
from billing.redemption import RedemptionError, redemption_batch_create, redemption_redeem, redemption_set_status


def _batch(admin, **kw):
    return redemption_batch_create(name=kw.pop("name", "promo"), quota=kw.pop("quota", 50_000),
                                   count=kw.pop("count", 1), created_by_id=admin.pk, **kw)


def test_codes_are_stored_only_as_hashes(admin):
    codes = _batch(admin, count=3)
    assert len(set(codes)) == 3 and all(len(c) == 32 for c in codes)
    stored = list(RedemptionCode.objects.values_list("code_hash", "code_hint"))
    for code in codes:
        assert all(code not in h and code != hint for h, hint in stored)


def test_redeeming_credits_the_balance_once_and_a_second_time_fails(admin, user, other_user, assert_books_balance):
    (code,) = _batch(admin, quota=70_000)
    before = user.quota
    card = redemption_redeem(user_id=user.pk, code=code)
    user.refresh_from_db()
    assert user.quota == before + 70_000
    assert card.status == RedemptionStatus.USED and card.redeemed_by_id == user.pk
    assert LedgerEntry.objects.filter(user=user, reason=LedgerReason.REDEEM, amount=70_000).count() == 1
    with pytest.raises(RedemptionError, match="already been used"):
        redemption_redeem(user_id=user.pk, code=code)
    with pytest.raises(RedemptionError, match="already been used"):
        redemption_redeem(user_id=other_user.pk, code=code)
    assert_books_balance(user, other_user)


def test_unknown_expired_and_disabled_codes_are_refused_with_clear_messages(admin, user):
    with pytest.raises(RedemptionError, match="invalid"):
        redemption_redeem(user_id=user.pk, code="x" * 32)
    (expiring,) = _batch(admin, expires_at=timezone.now() + timedelta(seconds=60))
    RedemptionCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(RedemptionError, match="expired"):
        redemption_redeem(user_id=user.pk, code=expiring)
    (disabled,) = _batch(admin, name="off")
    redemption_set_status(card=RedemptionCode.objects.get(batch_name="off"), status=RedemptionStatus.DISABLED)
    with pytest.raises(RedemptionError, match="disabled"):
        redemption_redeem(user_id=user.pk, code=disabled)
    assert not LedgerEntry.objects.filter(reason=LedgerReason.REDEEM).exists()


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_redemptions_of_one_card_credit_it_exactly_once(make_user):
    admin = make_user("ops")
    users = [make_user(f"racer{i}") for i in range(10)]
    (code,) = redemption_batch_create(name="race", quota=99_999, count=1, created_by_id=admin.pk)
    outcomes: list[str] = []
    barrier = threading.Barrier(50)

    def attempt(i: int) -> None:
        try:
            barrier.wait()
            redemption_redeem(user_id=users[i % 10].pk, code=code)
            outcomes.append("ok")
        except RedemptionError:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 1 and outcomes.count("refused") == 49
    assert LedgerEntry.objects.filter(reason=LedgerReason.REDEEM).count() == 1
    for u in User.objects.all():
        assert u.quota == ledger_sum(user_id=u.pk)
