"""Helpers for tests that talk to the live server (importable: `from tests.support import ...`)."""

from __future__ import annotations

import time

import httpx


def redis_url_after(offset: int) -> str:
    """The Redis database `offset` places after the suite's own (a worker's own block under pytest-xdist), for a test
    that needs a database no other test writes to."""
    from django.conf import settings

    from tests.parallel_workers import REDIS_DATABASES_PER_WORKER, redis_url_moved

    assert 0 < offset < REDIS_DATABASES_PER_WORKER, offset
    return redis_url_moved(settings.REDIS_URL, offset)


def settled(predicate, timeout: float = 10.0):
    """Wait for work the relay does after the response (settlement, usage logs)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.02)


def post(live, path: str, key: str | None, body: dict | bytes, **headers: str) -> httpx.Response:
    if key:
        headers.setdefault("authorization", f"Bearer {key}")
    kw = {"content": body} if isinstance(body, bytes) else {"json": body}
    return httpx.post(live.url + path, headers=headers, timeout=30, **kw)
