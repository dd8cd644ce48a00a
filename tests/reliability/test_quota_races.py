"""200 requests at once against a key (or a balance) that covers about 50 of them: each request reserves its worst
case before going upstream, so neither the key's quota nor the user's balance goes below zero, every answered
request is charged once, every refused one not at all, and the books balance."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from accounts.services import user_adjust_quota
from billing.ledger import ledger_sum
from billing.models import LedgerEntry, LedgerReason, UsageLog
from tests.support import settled
from tokens.models import ApiToken

BODY = {"model": "demo-chat", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 20}


def _probe(live, funded_key) -> tuple[int, int]:
    """What one request reserves and what it costs, measured with a probe user."""
    _probe, key = funded_key("probe")
    assert _post(live, key)[0] == 200
    assert settled(lambda: UsageLog.objects.exists())
    return -LedgerEntry.objects.filter(reason=LedgerReason.RESERVE).get().amount, UsageLog.objects.get().quota


def _post(live, key: str) -> tuple[int, dict]:
    with httpx.Client(timeout=60) as client:
        r = client.post(live.url + "/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {key}"})
    return r.status_code, r.json()


def _storm(live, key: str) -> list[tuple[int, dict]]:
    with ThreadPoolExecutor(64) as pool:
        return list(pool.map(lambda _: _post(live, key), range(200)))


@pytest.mark.parametrize("limited", ["key quota", "user balance"])
def test_two_hundred_at_once_on_quota_for_fifty(live, bootstrap_demo, funded_key, settings, limited):
    settings.DEMO_CHUNK_DELAY_MS = 0
    worst, cost = _probe(live, funded_key)
    quota = 50 * cost  # about 50 answers; fewer at once, as each first reserves its worst case
    assert worst >= cost > 0
    if limited == "key quota":
        user, key = funded_key("racer", unlimited_quota=False, remain_quota=quota)
    else:
        user, key = funded_key("racer", balance=0)
        user.refresh_from_db()
        user_adjust_quota(user=user, amount=quota - user.quota)
    user.refresh_from_db()
    start_balance = user.quota
    results = _storm(live, key)
    answered = [body for status, body in results if status == 200]
    refused = [(status, body) for status, body in results if status != 200]
    assert answered and refused  # 200 answers cannot fit: some found the quota spent or reserved
    assert all(status == 403 and body["error"]["code"] == "insufficient_quota" for status, body in refused)
    assert settled(lambda: UsageLog.objects.filter(user=user).count() == len(answered))
    logs = UsageLog.objects.filter(user=user)
    spent = sum(log.quota for log in logs)
    assert all(log.status == "success" and log.quota > 0 for log in logs)
    assert LedgerEntry.objects.filter(user=user, reason=LedgerReason.SETTLE).count() == len(answered)
    assert LedgerEntry.objects.filter(user=user, reason=LedgerReason.RESERVE).count() == len(answered)
    token = ApiToken.objects.get(user=user)
    user.refresh_from_db()
    assert user.quota == ledger_sum(user_id=user.pk) == start_balance - spent >= 0
    if limited == "key quota":
        assert token.remain_quota == quota - spent >= 0 and token.used_quota == spent
