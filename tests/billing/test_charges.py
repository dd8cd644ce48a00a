"""Reserve, settle and refund: the same checks against the one-statement PostgreSQL versions and the ORM versions."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing import charges
from billing.charges import Hold, charge_reserve, charge_settle
from billing.ledger import InsufficientQuota, ledger_sum
from billing.models import LedgerEntry, LedgerReason, UsageLog
from tokens.services import token_create

LOG = {"token_name": "main", "upstream_id": None, "provider": "openai", "model": "gpt-4o", "upstream_model": "gpt-4o",
       "endpoint": "/v1/chat/completions", "is_stream": True, "prompt_tokens": 10, "completion_tokens": 5,
       "cached_tokens": 2, "cache_write_tokens": 1, "audio_prompt_tokens": 0, "audio_completion_tokens": 0,
       "group_ratio": Decimal("1"), "model_ratio": Decimal("1.25"), "completion_ratio": Decimal("4"),
       "cache_ratio": Decimal("0.5"), "price_per_call": None, "usage_estimated": False, "latency_ms": 120,
       "first_byte_ms": 30, "status": "success", "status_code": 200, "error": "", "client_ip": "203.0.113.9"}


@pytest.fixture(params=["one statement", "orm"], autouse=True)
def implementation(request, monkeypatch):
    monkeypatch.setattr(charges, "ONE_STATEMENT", request.param == "one statement")
    return request.param


@pytest.fixture
def key(user):
    token, _key = token_create(user=user, name="main", unlimited_quota=False, remain_quota=1_000)
    return token


def _hold(user, token, amount, request_id="r1", unlimited=False):
    return Hold(request_id=request_id, user_id=user.pk, token_id=token.pk if token else None, unlimited=unlimited,
                amount=amount)


def test_reserve_then_settle_moves_exactly_the_cost(user, key):
    start = user.quota
    hold = _hold(user, key, 400)
    charge_reserve(hold=hold)
    user.refresh_from_db()
    key.refresh_from_db()
    assert (user.quota, key.remain_quota) == (start - 400, 600)
    assert charge_settle(hold=hold, cost=150, log=LOG)
    user.refresh_from_db()
    key.refresh_from_db()
    assert (user.quota, user.used_quota, user.request_count) == (start - 150, 150, 1)
    assert (key.remain_quota, key.used_quota, key.last_used_at is not None) == (850, 150, True)
    assert user.quota == ledger_sum(user_id=user.pk)
    reserve, settle = LedgerEntry.objects.filter(ref="req:r1").order_by("id")
    assert (reserve.reason, reserve.amount, reserve.balance_after) == (LedgerReason.RESERVE, -400, start - 400)
    assert (settle.reason, settle.amount, settle.balance_after) == (LedgerReason.SETTLE, 250, start - 150)
    log = UsageLog.objects.get()
    assert (log.quota, log.request_id, log.token_id, log.prompt_tokens, log.cache_write_tokens) == (150, "r1", key.pk,
                                                                                                  10, 1)
    assert (log.model_ratio, log.client_ip, log.first_byte_ms, log.created_at is not None) == (
        Decimal("1.25"), "203.0.113.9", 30, True)


def test_a_second_closing_changes_nothing(user, key):
    hold = _hold(user, key, 300)
    charge_reserve(hold=hold)
    assert charge_settle(hold=hold, cost=100, log=LOG)
    user.refresh_from_db()
    before = (user.quota, user.used_quota, user.request_count)
    assert not charge_settle(hold=hold, cost=0, log=LOG, refund=True)
    assert not charge_settle(hold=hold, cost=100, log=None)
    user.refresh_from_db()
    key.refresh_from_db()
    assert (user.quota, user.used_quota, user.request_count) == before and key.remain_quota == 900
    assert UsageLog.objects.count() == 1 and LedgerEntry.objects.filter(ref="req:r1").count() == 2


def test_refund_gives_everything_back_and_counts_no_request(user, key):
    start = user.quota
    hold = _hold(user, key, 300)
    charge_reserve(hold=hold)
    assert charge_settle(hold=hold, cost=0, log=dict(LOG, status="error"), refund=True)
    user.refresh_from_db()
    key.refresh_from_db()
    assert (user.quota, user.request_count, key.remain_quota) == (start, 0, 1_000)
    assert LedgerEntry.objects.get(reason=LedgerReason.REFUND).amount == 300


def test_a_key_short_of_quota_takes_nothing(user, key):
    start = user.quota
    with pytest.raises(InsufficientQuota) as caught:
        charge_reserve(hold=_hold(user, key, 1_001))
    assert caught.value.code == "token_quota_exhausted"
    user.refresh_from_db()
    key.refresh_from_db()
    assert (user.quota, key.remain_quota) == (start, 1_000) and not LedgerEntry.objects.filter(ref="req:r1").exists()


def test_a_balance_too_low_takes_nothing_from_the_key_either(user, key):
    key.remain_quota = 10**12
    key.save()
    with pytest.raises(InsufficientQuota) as caught:
        charge_reserve(hold=_hold(user, key, user.quota + 1))
    assert caught.value.code == "insufficient_quota"
    key.refresh_from_db()
    assert key.remain_quota == 10**12 and not LedgerEntry.objects.filter(ref="req:r1").exists()


def test_unlimited_keys_and_keyless_holds(user, key):
    start = user.quota
    for request_id, token, unlimited in (("u1", key, True), ("u2", None, True)):
        hold = _hold(user, token, 200, request_id, unlimited=unlimited)
        charge_reserve(hold=hold)
        assert charge_settle(hold=hold, cost=50, log=None)
    user.refresh_from_db()
    key.refresh_from_db()
    assert user.quota == start - 100 == ledger_sum(user_id=user.pk)
    assert (key.remain_quota, key.used_quota) == (1_000, 50)  # unlimited: counted, not taken


def test_settling_above_the_reservation_may_go_below_zero(user, key):
    """The documented bound: a call costs what it used even past its reservation (a stream that ran long)."""
    user.quota = 0
    user.save()
    LedgerEntry.objects.filter(user=user).delete()
    hold = _hold(user, None, 0)
    charge_reserve(hold=hold)
    assert charge_settle(hold=hold, cost=70, log=None)
    user.refresh_from_db()
    assert user.quota == -70 == ledger_sum(user_id=user.pk)


def test_a_log_with_only_some_fields_gets_the_defaults(user, key):
    hold = _hold(user, key, 100)
    charge_reserve(hold=hold)
    assert charge_settle(hold=hold, cost=40, log={"model": "mj", "endpoint": "/mj/submit/imagine", "status": "success"})
    log = UsageLog.objects.get()
    assert (log.quota, log.prompt_tokens, log.usage_estimated, log.token_name, log.first_byte_ms) == (40, 0, False, "",
                                                                                                     None)


def test_an_unexpected_integrity_error_is_raised_not_taken_for_settled(user, key):
    from django.db import IntegrityError

    hold = _hold(user, key, 100)
    charge_reserve(hold=hold)
    with pytest.raises(IntegrityError):
        charge_settle(hold=hold, cost=40, log=dict(LOG, status_code=-1))  # a CHECK constraint, not a second closing
    assert not LedgerEntry.objects.filter(ref="req:r1", reason=LedgerReason.SETTLE).exists()
    assert charge_settle(hold=hold, cost=40, log=LOG)
