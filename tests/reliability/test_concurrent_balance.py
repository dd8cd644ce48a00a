"""Card redemptions, an operator's adjustments and relayed requests hitting one balance at once: the balance ends
equal to the sum of the ledger and to the arithmetic of what happened, each card credits once, each request closes
its one reservation once, and the key's and user's counters agree with the usage logs."""

from __future__ import annotations

import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
from django.db import connection
from django.db.models import Sum

from accounts.models import User
from accounts.services import user_adjust_quota
from billing.ledger import InsufficientQuota, ledger_sum
from billing.models import LedgerEntry, LedgerReason, UsageLog
from billing.redemption import RedemptionError, redemption_batch_create, redemption_redeem
from tests.support import settled
from tokens.models import ApiToken

CARDS, CARD_QUOTA = 30, 10_000
REQUESTS = 60
ADJUSTMENTS = (7_000, -3_000) * 15
KEY_QUOTA = 5_000_000


def test_concurrent_top_ups_adjustments_and_spending_keep_the_balance_equal_to_the_ledger(
        live, bootstrap_demo, funded_key):
    user, key = funded_key(balance=200_000, unlimited_quota=False, remain_quota=KEY_QUOTA)
    admin = User.objects.get(username="admin")
    codes = redemption_batch_create(name="race", quota=CARD_QUOTA, count=CARDS, created_by_id=admin.pk)
    user.refresh_from_db()
    start = user.quota

    def chat(n: int) -> httpx.Response:
        body = {"model": "demo-chat", "messages": [{"role": "user", "content": f"hello {n}"}], "max_tokens": 40,
                "stream": n % 3 == 0}
        return httpx.post(live.url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"},
                          timeout=30)

    def redeem(code: str) -> bool:
        try:
            redemption_redeem(user_id=user.pk, code=code)
            return True
        except RedemptionError:
            return False
        finally:
            connection.close()

    def adjust(amount: int) -> int:
        try:
            user_adjust_quota(user=User.objects.get(pk=user.pk), amount=amount, note="race", by=admin)
            return amount
        except InsufficientQuota:
            return 0
        finally:
            connection.close()

    # Every card is tried twice, the two attempts next to each other; all work is shuffled into one pool.
    jobs = ([("chat", n) for n in range(REQUESTS)] + [("redeem", c) for c in codes for _ in range(2)]
            + [("adjust", a) for a in ADJUSTMENTS])
    random.Random(7).shuffle(jobs)
    run = {"chat": chat, "redeem": redeem, "adjust": adjust}
    with ThreadPoolExecutor(max_workers=24) as pool:
        outcomes = list(pool.map(lambda job: (job[0], run[job[0]](job[1])), jobs))

    responses = [out for kind, out in outcomes if kind == "chat"]
    assert [r.status_code for r in responses] == [200] * REQUESTS
    request_ids = {r.headers["x-request-id"] for r in responses}
    assert settled(lambda: UsageLog.objects.filter(user=user).count() == REQUESTS, timeout=20)
    redeemed = sum(out for kind, out in outcomes if kind == "redeem")
    adjusted = [out for kind, out in outcomes if kind == "adjust" and out]
    assert redeemed == CARDS  # each card credited by exactly one of its two attempts

    user.refresh_from_db()
    spent = UsageLog.objects.filter(user=user).aggregate(s=Sum("quota"))["s"]
    assert user.quota == ledger_sum(user_id=user.pk)
    assert user.quota == start + CARDS * CARD_QUOTA + sum(adjusted) - spent
    assert user.used_quota == spent and user.request_count == REQUESTS
    token = ApiToken.objects.get(user=user)
    assert token.used_quota == spent and token.remain_quota == KEY_QUOTA - spent

    ledger = LedgerEntry.objects.filter(user=user)
    cards = Counter(ledger.filter(reason=LedgerReason.REDEEM).values_list("ref", flat=True))
    assert len(cards) == CARDS and set(cards.values()) == {1}
    assert ledger.filter(reason=LedgerReason.ADMIN_ADJUST, note="race").count() == len(adjusted)
    # Each request: one reservation and one closing row (a settlement), under its own reference.
    rows = Counter(ledger.filter(ref__startswith="req:").values_list("ref", "reason"))
    assert set(rows) == {(f"req:{rid}", reason) for rid in request_ids
                         for reason in (LedgerReason.RESERVE, LedgerReason.SETTLE)}
    assert set(rows.values()) == {1}
    assert set(UsageLog.objects.filter(user=user).values_list("request_id", flat=True)) == request_ids
