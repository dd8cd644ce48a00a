"""A server process told to stop (SIGTERM), Daphne or uvicorn, finishes its streams within the grace period, or ends
them cleanly and bills what was sent; nothing is left reserved."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time

import httpx
import pytest

from billing.groups import group_default, price_save
from billing.models import LedgerEntry, LedgerReason, UsageLog
from relay.upstreams import upstream_save
from tests.fakes.openai_upstream import FakeOpenAI
from tests.processes import ServerProcesses

UPSTREAM_KEY = "sk-upstream-stop"


@pytest.fixture(params=["daphne", "uvicorn"])
def server(request, transactional_db):
    with ServerProcesses() as processes:
        yield lambda **options: processes.start(server=request.param, **options)


@pytest.fixture
def slow_upstream(transactional_db):
    with FakeOpenAI(api_key=UPSTREAM_KEY) as fake:
        price_save(model="gpt-4o", model_ratio=1, completion_ratio=1)
        upstream_save(name="slow", type="openai", base_url=fake.url, keys=UPSTREAM_KEY, served_models=["gpt-4o"],
                      groups=[group_default().name])
        yield fake


def _stream_in_thread(url: str, key: str, lines: list[str]) -> threading.Thread:
    def read() -> None:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30,
                          headers={"authorization": f"Bearer {key}"}) as response:
            for line in response.iter_lines():
                if line:
                    lines.append(line)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def _stop_after_first_chunk(proc: subprocess.Popen, lines: list[str]) -> None:
    deadline = time.monotonic() + 10
    while len(lines) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(lines) >= 2, "the stream did not start"
    proc.send_signal(signal.SIGTERM)


def test_streams_in_flight_finish_within_the_grace_period(server, slow_upstream, funded_key):
    slow_upstream.behave("gpt-4o", content="one two three four five six", chunks=6, chunk_delay_ms=150)
    user, key = funded_key()
    url, proc = server(grace=15)
    lines: list[str] = []
    reader = _stream_in_thread(url, key, lines)
    _stop_after_first_chunk(proc, lines)
    reader.join(timeout=15)
    assert lines[-1] == "data: [DONE]" and not any("restarting" in line for line in lines)
    assert proc.wait(timeout=15) is not None
    log = UsageLog.objects.get()
    assert (log.status, log.usage_estimated, log.completion_tokens) == ("success", False, 5)
    assert LedgerEntry.objects.filter(user=user, reason=LedgerReason.SETTLE).count() == 1


def test_streams_past_the_grace_period_end_cleanly_and_bill_what_was_sent(server, slow_upstream, funded_key):
    slow_upstream.behave("gpt-4o", content="word " * 60, chunks=60, chunk_delay_ms=100)
    user, key = funded_key()
    url, proc = server(grace=0.5)
    lines: list[str] = []
    reader = _stream_in_thread(url, key, lines)
    _stop_after_first_chunk(proc, lines)
    reader.join(timeout=15)
    assert "restarting" in lines[-1]  # an error event in the stream's own format, then the end
    assert proc.wait(timeout=15) is not None
    log = UsageLog.objects.get()
    assert log.status == "error" and log.usage_estimated and 0 < log.completion_tokens < 60 and log.quota > 0
    settle = LedgerEntry.objects.get(user=user, reason=LedgerReason.SETTLE)
    reserve = LedgerEntry.objects.get(user=user, reason=LedgerReason.RESERVE)
    assert -reserve.amount - settle.amount == log.quota  # charged exactly the logged cost


def test_a_realtime_session_open_when_the_server_stops_is_told_and_closed_with_1012(server, funded_key):
    from decimal import Decimal

    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    from billing.models import ModelPrice
    from tests.fakes.realtime_upstream import FakeRealtime

    with FakeRealtime(api_key=UPSTREAM_KEY) as fake:
        ModelPrice.objects.create(model="gpt-rt", provider="openai", category="realtime", model_ratio=Decimal("2.5"))
        upstream_save(name="realtime", type="openai", base_url=fake.url, keys=UPSTREAM_KEY, served_models=["gpt-rt"],
                      groups=[group_default().name])
        user, key = funded_key()
        url, proc = server(grace=0.5)
        with connect(url.replace("http://", "ws://") + "/v1/realtime?model=gpt-rt", open_timeout=5, proxy=None,
                     additional_headers={"Authorization": f"Bearer {key}"}) as ws:
            assert json.loads(ws.recv(timeout=5))["type"] == "session.created"
            proc.send_signal(signal.SIGTERM)
            events = []
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    events.append(json.loads(ws.recv(timeout=10)))
        assert events[-1]["type"] == "error" and events[-1]["error"]["code"] == "server_restart"
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1012, "server_restart")
        assert proc.wait(timeout=15) is not None
    held = LedgerEntry.objects.filter(user=user, reason__in=[LedgerReason.RESERVE, LedgerReason.REFUND,
                                                              LedgerReason.CHARGE])
    assert sorted(held.values_list("reason", flat=True)) == ["refund", "reserve"]
    assert sum(held.values_list("amount", flat=True)) == 0  # the hold returned whole: nothing was used
