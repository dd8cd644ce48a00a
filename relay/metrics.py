"""Prometheus metrics of the relay, per process (each replica is scraped on its own `/metrics`).

Labels are bounded by what operators configure: operations, model names with prices, upstream names.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

requests = Counter("modelgate_relay_requests", "Relayed model calls by outcome.",
                   ["endpoint", "model", "upstream", "status"], registry=REGISTRY)
latency = Histogram("modelgate_relay_request_seconds", "Time from the request to its last byte.", ["endpoint"],
                    buckets=LATENCY_BUCKETS, registry=REGISTRY)
first_byte = Histogram("modelgate_relay_first_byte_seconds", "Time from the request to the first byte sent back.",
                       ["endpoint"], buckets=LATENCY_BUCKETS, registry=REGISTRY)
upstream_errors = Counter("modelgate_upstream_errors", "Failed upstream attempts (each one retried elsewhere or "
                          "answered as an error).", ["upstream", "reason"], registry=REGISTRY)
tokens = Counter("modelgate_tokens", "Tokens billed.", ["model", "kind"], registry=REGISTRY)
quota = Counter("modelgate_quota_charged", "Quota charged (500,000 = 1 USD).", ["model"], registry=REGISTRY)
active_streams = Gauge("modelgate_active_streams", "Streams being relayed now.", registry=REGISTRY)
task_queue_depth = Gauge("modelgate_task_queue_depth", "Generation tasks not yet settled (read at each scrape).",
                         registry=REGISTRY)
realtime_sessions = Gauge("modelgate_realtime_sessions", "Realtime WebSocket sessions open now.", registry=REGISTRY)


def request_observe(*, endpoint: str, model: str, upstream: str, status: str, seconds: float,
                    first_byte_seconds: float | None, prompt: int, completion: int, cached: int, cost: int) -> None:
    """Record one finished relay call."""
    _child(requests, endpoint, model, upstream, status).inc()
    _child(latency, endpoint).observe(seconds)
    if first_byte_seconds is not None:
        _child(first_byte, endpoint).observe(first_byte_seconds)
    for kind, count in (("prompt", prompt), ("completion", completion), ("cached", cached)):
        if count:
            _child(tokens, model, kind).inc(count)
    if cost:
        _child(quota, model).inc(cost)


@lru_cache(maxsize=4096)
def _child(metric: Any, *labels: str) -> Any:
    """A metric's series for these label values, looked up once (`labels()` checks and locks on every call)."""
    return metric.labels(*labels)
