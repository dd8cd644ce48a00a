"""An operator deleting an upstream, or a user deleting their key, while a request through it is streaming: the
request is still settled once, with its usage log (the upstream or key named as gone), not left to the sweeper's
refund with no log."""

from __future__ import annotations

import httpx
import pytest

from billing.ledger import ledger_sum
from billing.models import LedgerEntry, LedgerReason, UsageLog
from relay.models import Upstream
from tests.support import settled
from tokens.models import ApiToken


@pytest.mark.parametrize("deleted", ["upstream", "key"])
def test_a_request_whose_upstream_or_key_is_deleted_mid_stream_is_settled_once(live, bootstrap_demo, funded_key,
                                                                               settings, deleted):
    settings.DEMO_CHUNK_DELAY_MS = 50
    user, key = funded_key()
    body = {"model": "demo-chat", "messages": [{"role": "user", "content": "hello"}], "stream": True}
    with httpx.stream("POST", live.url + "/v1/chat/completions", json=body, timeout=30,
                      headers={"authorization": f"Bearer {key}"}) as response:
        chunks = response.iter_raw()
        next(chunks)  # the upstream is answering
        (Upstream.objects.filter(type="demo") if deleted == "upstream" else ApiToken.objects.filter(user=user)).delete()
        text = b"".join(chunks)
    assert response.status_code == 200 and b"[DONE]" in text
    ref = f"req:{response.headers['x-request-id']}"
    assert settled(lambda: LedgerEntry.objects.filter(ref=ref, reason=LedgerReason.SETTLE).exists(), timeout=5)
    log = UsageLog.objects.get(request_id=response.headers["x-request-id"])
    assert log.quota > 0 and (log.upstream_id if deleted == "upstream" else log.token_id) is None
    assert LedgerEntry.objects.filter(ref=ref).count() == 2  # the reservation and its settlement
    user.refresh_from_db()
    assert user.quota == ledger_sum(user_id=user.pk)
