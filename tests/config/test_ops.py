"""Health, readiness and metrics endpoints, and log lines that carry the request id."""

from __future__ import annotations

import json
import logging

import httpx
import openai
import pytest

import config.ops
from config.logs import JsonFormatter, RequestIdFilter, request_id
from tests.support import settled


def test_health_and_readiness(live):
    assert httpx.get(live.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(live.url + "/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "database": "ok", "redis": "ok"}
    assert httpx.post(live.url + "/healthz").status_code == 405


def test_not_ready_when_redis_is_gone(live, settings, monkeypatch):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
    monkeypatch.setattr(config.ops, "_redis", None)
    ready = httpx.get(live.url + "/readyz", timeout=10)
    assert ready.status_code == 503
    assert ready.json()["database"] == "ok" and ready.json()["redis"].startswith("error: ")
    monkeypatch.setattr(config.ops, "_redis", None)


SERIES = 'modelgate_relay_requests_total{endpoint="chat/completions",model="demo-chat",status="success",upstream="Demo"}'


def _scrape(live, **headers: str) -> httpx.Response:
    return httpx.get(live.url + "/metrics", headers=headers)


def _count(text: str) -> float:
    """The series' value (metrics live for the whole server process, so tests compare before and after)."""
    return next((float(line.split()[-1]) for line in text.splitlines() if line.startswith(SERIES)), 0.0)


def test_metrics_count_relay_calls_and_are_guarded(live, bootstrap_demo, funded_key, settings):
    _user, key = funded_key()
    before = _count(_scrape(live).text)
    client = openai.OpenAI(api_key=key, base_url=live.url + "/v1", max_retries=0)
    client.chat.completions.create(model="demo-chat", messages=[{"role": "user", "content": "hi"}])
    assert settled(lambda: _count(_scrape(live).text) == before + 1)
    text = _scrape(live).text
    assert "modelgate_relay_first_byte_seconds_bucket" in text and "modelgate_quota_charged_total" in text
    assert "modelgate_task_queue_depth 0.0" in text and "modelgate_realtime_sessions" in text
    settings.METRICS_ALLOW_IPS = ["10.0.0.0/8"]
    assert _scrape(live).status_code == 403
    settings.METRICS_TOKEN = "scrape-secret"
    assert _scrape(live, authorization="Bearer wrong").status_code == 403
    assert _scrape(live, authorization="Bearer scrape-secret").status_code == 200


@pytest.mark.parametrize("inside", [True, False])
def test_log_lines_carry_the_request_id_as_json(inside):
    token = request_id.set("abc123") if inside else None
    try:
        record = logging.LogRecord("relay", logging.WARNING, __file__, 1, "upstream %s failed", ("a",), None)
        RequestIdFilter().filter(record)
        line = json.loads(JsonFormatter().format(record))
    finally:
        if token is not None:
            request_id.reset(token)
    assert line["message"] == "upstream a failed" and line["level"] == "WARNING"
    assert line["request_id"] == ("abc123" if inside else "-")
