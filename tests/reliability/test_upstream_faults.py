"""Every way an upstream can fail, against the live relay: the client gets a failover answer or a clean error in
its protocol, the log row says what happened, and each request's books balance (reserved = settled + refunded)."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from billing.groups import group_default, price_save
from billing.models import LedgerEntry, LedgerReason, UsageLog
from relay.upstreams import upstream_save
from tests.fakes.openai_upstream import FakeOpenAI
from tests.reliability.fault_servers import ResettingServer, TricklingServer, refused_url
from tests.support import settled

KEY = "sk-upstream-faults"
CONTENT = "one two three four five six seven eight nine ten"

# A fault that happens before anything reaches the client: how to cause it on the fake (or the URL to use instead),
# the reason the log row gives for it, and what a client gets when no other upstream can take over.
BEFORE_THE_ANSWER = {
    "connection refused": ({"url": "refused"}, "connection error", 502, "upstream_error"),
    "reset before headers": ({"url": "reset"}, "connection error", 502, "upstream_error"),
    "slow headers": ({"delay_before_headers": 3}, "timeout", 504, "upstream_error"),
    "slow first frame": ({"latency_ms": 3000}, "timeout", 504, "upstream_error"),
    "invalid JSON": ({"raw_body": b'{"id": "chatcmpl-1", "choices": [{"mess'}, "unreadable answer", 502,
                     "upstream_error"),
    "429 with Retry-After": ({"status": 429, "retry_after": 7}, "HTTP 429", 429, "upstream_rate_limited"),
    "5xx": ({"status": 503}, "HTTP 503", 502, "upstream_error"),
}


@pytest.fixture(scope="module")
def servers():
    with FakeOpenAI(api_key=KEY) as faulty, FakeOpenAI(api_key=KEY) as healthy, ResettingServer() as resetting:
        yield faulty, healthy, resetting


@pytest.fixture
def fakes(servers, transactional_db):
    faulty, healthy, _ = servers
    faulty.reset()
    healthy.reset()
    price_save(model="gpt-4o", model_ratio=Decimal("1.25"), completion_ratio=Decimal(4))
    return servers


def _upstream(name: str, url: str, *, priority: int = 0, **fields) -> int:
    fields = {"first_byte_timeout": 0.5, **fields}
    return upstream_save(name=name, type="openai", base_url=url, keys=KEY, served_models=["gpt-4o"],
                         priority=priority, groups=[group_default().name], **fields).pk


def _faulty(fakes, fault: dict, **fields) -> int:
    faulty, _healthy, resetting = fakes
    fault = dict(fault)
    url = {"refused": refused_url(), "reset": resetting.url}.get(fault.pop("url", None), faulty.url)
    if fault:
        faulty.behave("gpt-4o", content=CONTENT, chunks=10, **fault)
    return _upstream("faulty", url, priority=10, **fields)


def _call(live, key: str, *, stream: bool) -> tuple[httpx.Response, str]:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    with httpx.stream("POST", live.url + "/v1/chat/completions", json=body, timeout=30,
                      headers={"authorization": f"Bearer {key}"}) as response:
        return response, response.read().decode()


def _text(response: httpx.Response, raw: str, stream: bool) -> str:
    if not stream:
        return response.json()["choices"][0]["message"]["content"]
    frames = [line[6:] for line in raw.splitlines() if line.startswith("data: ") and line != "data: [DONE]"]
    return "".join(json.loads(f)["choices"][0]["delta"].get("content") or "" for f in frames if json.loads(f)["choices"])


def _one_log() -> UsageLog:
    assert settled(lambda: UsageLog.objects.count() == 1)
    return UsageLog.objects.get()


def _books_balance_for(log: UsageLog) -> None:
    """The request's ledger rows: one reservation and one closing row, netting to exactly what the log charged."""
    rows = list(LedgerEntry.objects.filter(ref=f"req:{log.request_id}"))
    reasons = sorted(row.reason for row in rows)
    assert reasons in ([LedgerReason.REFUND, LedgerReason.RESERVE], [LedgerReason.RESERVE, LedgerReason.SETTLE])
    assert sum(row.amount for row in rows) == -log.quota


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("fault", BEFORE_THE_ANSWER)
def test_a_fault_before_the_answer_fails_over_and_the_log_names_it(live, fakes, funded_key, fault, stream):
    how, reason, _status, _code = BEFORE_THE_ANSWER[fault]
    faulty_id = _faulty(fakes, how)
    healthy_id = _upstream("healthy", fakes[1].url)
    fakes[1].behave("gpt-4o", content=CONTENT, chunks=10)
    user, key = funded_key()
    before = user.quota
    response, raw = _call(live, key, stream=stream)
    assert response.status_code == 200 and _text(response, raw, stream) == CONTENT
    log = _one_log()
    assert log.status == "success" and log.upstream_id == healthy_id and log.quota > 0
    assert log.error == f"failed over after upstream #{faulty_id}: {reason}"
    _books_balance_for(log)
    user.refresh_from_db()
    assert user.quota == before - log.quota


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("fault", BEFORE_THE_ANSWER)
def test_a_fault_with_no_other_upstream_is_a_clean_error_and_a_full_refund(live, fakes, funded_key, fault, stream):
    how, reason, status, code = BEFORE_THE_ANSWER[fault]
    faulty_id = _faulty(fakes, how)
    user, key = funded_key()
    before = user.quota
    response, raw = _call(live, key, stream=stream)
    assert response.status_code == status and response.headers["content-type"].startswith("application/json")
    error = json.loads(raw)["error"]
    assert error["code"] == code and error["message"] and KEY not in raw
    if status == 429:
        assert response.headers["retry-after"] == "7" and error["type"] == "rate_limit_error"
    log = _one_log()
    assert log.status == "error" and log.status_code == status and log.quota == 0
    assert log.error.endswith(f"(attempts: upstream #{faulty_id}: {reason})")
    _books_balance_for(log)
    user.refresh_from_db()
    assert user.quota == before


def test_a_5xx_burst_fails_only_the_requests_inside_it(live, fakes, funded_key, settings):
    settings.UPSTREAM_FAILURES_TO_DISABLE = 100
    _faulty(fakes, {"status": 500, "fail_times": 2})
    user, key = funded_key()
    before = user.quota
    statuses = [_call(live, key, stream=False)[0].status_code for _ in range(4)]
    assert statuses == [502, 502, 200, 200]
    assert settled(lambda: UsageLog.objects.count() == 4)
    logs = list(UsageLog.objects.order_by("id"))
    assert [log.status for log in logs] == ["error", "error", "success", "success"]
    for log in logs:
        _books_balance_for(log)
    user.refresh_from_db()
    assert user.quota == before - sum(log.quota for log in logs) and logs[0].quota == 0 < logs[2].quota


# A fault after the stream began: nothing can fail over; the client gets an error event at the end of what it
# received, and is billed for what was produced.
DURING_THE_STREAM = {
    "cut mid-way": ({"cut_after_chunks": 4}, {}, "The upstream stream broke off."),
    "error event after 200": ({"error_after_chunks": 4, "error_message": f"overloaded (key {KEY})"}, {},
                              "overloaded"),
    "never ends": ({"never_end": True, "chunk_delay_ms": 20}, {"total_timeout": 1},
                   "The upstream stream took longer than the total timeout."),
}


@pytest.mark.parametrize("fault", DURING_THE_STREAM)
def test_a_fault_during_the_stream_ends_it_with_an_error_and_bills_what_was_produced(live, fakes, funded_key, fault):
    how, fields, message = DURING_THE_STREAM[fault]
    _faulty(fakes, how, **fields)
    _upstream("healthy", fakes[1].url)  # too late to fail over once the client has bytes
    user, key = funded_key()
    before = user.quota
    response, raw = _call(live, key, stream=True)
    assert response.status_code == 200 and KEY not in raw
    frames = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: {")]
    assert frames[0]["choices"][0]["delta"] and "error" in frames[-1] and message in frames[-1]["error"]["message"]
    assert not fakes[1].requests
    log = _one_log()
    assert log.status == "error" and message in log.error and KEY not in log.error
    assert log.completion_tokens > 0 and log.quota > 0
    _books_balance_for(log)
    user.refresh_from_db()
    assert user.quota == before - log.quota


def test_a_plain_answer_slower_than_the_total_timeout_is_cut_and_refunded(live, fakes, funded_key):
    """Each byte of the body comes sooner than the read timeout; the whole would take longer than the total one."""
    with TricklingServer(gap=0.1, seconds=5) as trickling:
        upstream_id = _upstream("trickling", trickling.url, total_timeout=1)
        user, key = funded_key()
        before = user.quota
        response, raw = _call(live, key, stream=False)
    assert response.status_code == 504 and json.loads(raw)["error"]["message"] == "The upstream timed out."
    log = _one_log()
    assert log.status == "error" and log.quota == 0 and log.error.endswith(f"upstream #{upstream_id}: timeout)")
    _books_balance_for(log)
    user.refresh_from_db()
    assert user.quota == before
