"""The benchmark's load generator counts answers and errors right (against the fake upstream; no timings checked)."""

from __future__ import annotations

import asyncio

import pytest

from bench.loadgen import LoadProcess, Result, Scenario, run
from bench.relay import books_report, chat_body
from tests.fakes.openai_upstream import FakeOpenAI

KEY = "sk-upstream-test"


@pytest.fixture(scope="module")
def server():
    with FakeOpenAI(api_key=KEY) as up:
        yield up


@pytest.fixture
def up(server):
    server.reset()
    server.behave("*", chunks=5)
    yield server
    server.reset()


def scenario(up: FakeOpenAI, *, stream: bool, key: str = KEY, warmup: float = 0.0, seconds: float = 0.4) -> Scenario:
    return Scenario(host=up.host, port=up.port, path="/v1/chat/completions", body=chat_body(stream), key=key,
                    concurrency=2, seconds=seconds, warmup=warmup, timeout=5)


def measure(sc: Scenario) -> Result:
    return asyncio.run(run(sc))


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_every_request_the_fake_answered_is_counted_once(up, stream):
    result = measure(scenario(up, stream=stream))

    assert result.errors == 0, result.error_samples
    assert result.ok > 0
    assert result.ok == len(up.requests)  # in-flight requests are finished, not dropped, when time is up
    assert len(result.latencies) == result.ok
    assert len(result.ttfbs) == (result.ok if stream else 0)
    assert all(bool(request.json.get("stream")) is stream for request in up.requests)


def test_warm_up_requests_are_counted_apart(up):
    result = measure(scenario(up, stream=False, warmup=0.3, seconds=0.3))

    assert result.warmup_ok > 0 and result.ok > 0
    assert result.warmup_ok + result.ok == len(up.requests)
    assert len(result.latencies) == result.ok


def test_a_paused_client_waits_between_its_calls(up):
    sc = scenario(up, stream=False, seconds=0.5)
    result = measure(Scenario(**{**sc.__dict__, "concurrency": 1, "pause": 0.2}))

    assert result.errors == 0 and result.ok == len(up.requests)
    assert 2 <= result.ok <= 3  # at 0, 0.2 and 0.4 s: not a closed loop (hundreds)


@pytest.mark.parametrize(
    ("stream", "behaviour", "key"),
    [(False, {"status": 500}, KEY), (True, {"cut_after_chunks": 2}, KEY), (False, {}, "sk-wrong")],
    ids=["http-500", "stream-cut-without-done", "refused-key"],
)
def test_failed_answers_are_errors(up, stream, behaviour, key):
    up.behave("bench-model", **behaviour)

    result = measure(scenario(up, stream=stream, key=key))

    assert result.ok == 0
    assert result.errors > 0
    assert result.errors == len(up.requests)
    assert result.error_samples


def test_connection_refused_is_an_error_not_a_crash():
    with FakeOpenAI(api_key=KEY) as gone:
        port = gone.port
    sc = Scenario(host="127.0.0.1", port=port, path="/v1/chat/completions", body=chat_body(False), key=KEY,
                  concurrency=2, seconds=0.2, warmup=0, timeout=2)

    result = measure(sc)

    assert result.ok == 0 and result.errors > 0


def test_generator_process_returns_a_summary(up):
    with LoadProcess() as load:
        summary = load.run(scenario(up, stream=True, seconds=0.3))

    assert summary["errors"] == 0
    assert summary["ok"] + summary["warmup_ok"] == len(up.requests)
    assert summary["ttfb_p50"] is not None


def test_books_report_says_ok_only_when_logs_and_ledger_agree():
    books = {"rows": 10, "success_rows": 10, "sum_quota": 270, "ledger_settled": 270, "open_reservations": 0,
             "start_balance": 1000, "end_balance": 730}

    assert books_report(books, sent_ok=10, sent_errors=0)[1].endswith("books: ok")
    ok, text = books_report({**books, "success_rows": 9}, sent_ok=10, sent_errors=0)
    assert not ok and "MISMATCH" in text
    ok, text = books_report({**books, "end_balance": 700}, sent_ok=10, sent_errors=0)
    assert not ok and "start balance - end balance" in text
