"""Usage charged as it happens (realtime responses): one ledger row, the counters and the log, together."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.charges import Hold, charge_reserve, charge_settle
from billing.models import LedgerEntry, LedgerReason, UsageLog
from billing.usage_charges import Funds, funds_of, usage_charge
from tokens.models import ApiToken
from tokens.services import token_create

LOG = {"token_name": "main", "model": "gpt-rt", "endpoint": "/v1/realtime", "is_stream": True,
       "prompt_tokens": 100, "completion_tokens": 20, "audio_prompt_tokens": 30, "audio_completion_tokens": 10,
       "group_ratio": Decimal(1), "model_ratio": Decimal("2.5")}


def _charge(user, token, cost: int, n: int = 1) -> Funds:
    return usage_charge(user_id=user.pk, token_id=token.pk, unlimited=token.unlimited_quota, cost=cost,
                        ref=f"rt:sess:{n}", request_id=f"sess:{n}", log=LOG)


def test_a_charge_writes_one_ledger_row_the_counters_and_the_log(user, assert_books_balance):
    token, _key = token_create(user=user, name="main", remain_quota=10_000)
    before = user.quota
    funds = _charge(user, token, 1_234)
    entry = LedgerEntry.objects.get(reason=LedgerReason.CHARGE)
    assert (entry.amount, entry.ref, entry.token_id, entry.balance_after) == (-1_234, "rt:sess:1", token.pk,
                                                                              before - 1_234)
    user.refresh_from_db()
    token.refresh_from_db()
    assert (user.quota, user.used_quota, user.request_count) == (before - 1_234, 1_234, 1)
    assert (token.remain_quota, token.used_quota) == (10_000 - 1_234, 1_234) and token.last_used_at
    log = UsageLog.objects.get()
    assert (log.request_id, log.quota, log.audio_prompt_tokens, log.endpoint) == ("sess:1", 1_234, 30, "/v1/realtime")
    assert funds == Funds(balance=before - 1_234, token_remain=10_000 - 1_234)
    assert_books_balance(user)


def test_a_charge_may_take_the_balance_below_zero(user, assert_books_balance):
    token, _key = token_create(user=user, name="main", unlimited_quota=True)
    funds = _charge(user, token, user.quota + 500)
    assert funds == Funds(balance=-500, token_remain=None)
    assert not funds.covers(0) and Funds(balance=0, token_remain=None).covers(0)
    assert_books_balance(user)


def test_a_zero_cost_is_logged_without_a_ledger_row(user, assert_books_balance):
    token, _key = token_create(user=user, name="main", unlimited_quota=True)
    _charge(user, token, 0)
    assert not LedgerEntry.objects.filter(reason=LedgerReason.CHARGE).exists()
    assert UsageLog.objects.get().quota == 0
    user.refresh_from_db()
    assert user.request_count == 1
    assert_books_balance(user)


def test_negative_or_non_integer_costs_are_refused(user):
    token, _key = token_create(user=user, name="main")
    for cost in (-1, 1.5, True):
        with pytest.raises(ValueError):
            _charge(user, token, cost)  # type: ignore[arg-type]
    assert not LedgerEntry.objects.filter(reason=LedgerReason.CHARGE).exists()


def test_charges_against_a_standing_hold_then_one_refund(user, assert_books_balance):
    """A session's books: one RESERVE, a CHARGE per response, one REFUND; a second refund changes nothing."""
    token, _key = token_create(user=user, name="main", remain_quota=50_000)
    start = user.quota
    hold = Hold(request_id="sess", user_id=user.pk, token_id=token.pk, unlimited=False, amount=5_000)
    charge_reserve(hold=hold)
    for n in (1, 2, 3):
        _charge(user, token, 700, n)
    assert charge_settle(hold=hold, cost=0, log=None, refund=True)
    assert not charge_settle(hold=hold, cost=0, log=None, refund=True)
    reasons = sorted(LedgerEntry.objects.exclude(reason=LedgerReason.SIGNUP).values_list("reason", flat=True))
    assert reasons == sorted([LedgerReason.RESERVE, LedgerReason.REFUND] + [LedgerReason.CHARGE] * 3)
    user.refresh_from_db()
    token.refresh_from_db()
    assert user.quota == start - 2_100 and token.remain_quota == 50_000 - 2_100
    assert funds_of(user_id=user.pk, token_id=token.pk, unlimited=False) == Funds(start - 2_100, 50_000 - 2_100)
    assert ApiToken.objects.get(pk=token.pk).used_quota == 2_100
    assert_books_balance(user)
