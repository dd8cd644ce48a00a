"""Endpoints for load balancers and monitoring: `/healthz` (the process answers), `/readyz` (the database and Redis
answer too) and `/metrics` (Prometheus text, for allowed addresses or a bearer token).

Plain ASGI: a probe never passes through Django's middleware or the relay.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from typing import Any

from django.conf import settings
from django.db import connection
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from relay.http import Receive, Scope, Send, send_json
from relay.asgi import SHUTDOWN
from relay.metrics import REGISTRY, task_queue_depth
from relay.snapshots import in_thread

PATHS = {"/healthz", "/readyz", "/metrics"}
CHECK_SECONDS = 2.0


def _database_ping() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _unsettled_count() -> int:
    from relay.media_tasks.models import MediaTask

    return MediaTask.objects.filter(settled_at=None).count()


_database_check = in_thread(_database_ping)
_unsettled_tasks = in_thread(_unsettled_count)
_redis: Any = None


async def _redis_check() -> None:
    global _redis
    if _redis is None:
        import redis.asyncio as aioredis

        _redis = aioredis.from_url(settings.REDIS_URL, socket_connect_timeout=CHECK_SECONDS)
    await _redis.ping()


async def _check(name: str, probe: Any) -> tuple[str, str]:
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            await probe()
    except Exception as exc:  # any failure means not ready; the reason is the exception's class only
        return name, f"error: {type(exc).__name__}"
    return name, "ok"


def metrics_allowed(scope: Scope) -> bool:
    """A bearer token equal to METRICS_TOKEN, or a client address inside METRICS_ALLOW_IPS (loopback by default)."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    token = settings.METRICS_TOKEN
    auth = headers.get("authorization", "")
    if token and auth[:7].lower() == "bearer " and hmac.compare_digest(auth[7:].strip(), token):
        return True
    client = scope.get("client")
    try:
        address = ipaddress.ip_address(client[0]) if client else None
    except ValueError:
        return False
    return address is not None and any(address in ipaddress.ip_network(net, strict=False)
                                       for net in settings.METRICS_ALLOW_IPS)


async def ops_app(scope: Scope, receive: Receive, send: Send) -> None:
    path = scope["path"]
    if scope["method"] not in ("GET", "HEAD"):
        await send_json(send, 405, {"status": "error", "message": "Use GET."})
    elif path == "/healthz":
        await send_json(send, 200, {"status": "ok"})
    elif path == "/readyz" and SHUTDOWN.is_set():
        await send_json(send, 503, {"status": "stopping"})
    elif path == "/readyz":
        checks = [_check("database", _database_check)]
        if settings.REDIS_URL:
            checks.append(_check("redis", _redis_check))
        results = dict(await asyncio.gather(*checks))
        ready = all(value == "ok" for value in results.values())
        await send_json(send, 200 if ready else 503, {"status": "ready" if ready else "not ready", **results})
    elif not metrics_allowed(scope):
        await send_json(send, 403, {"status": "error", "message": "Metrics are not available to this client."})
    else:
        task_queue_depth.set(await _unsettled_tasks())
        body = generate_latest(REGISTRY)
        await send_json(send, 200, None, raw=body, content_type=CONTENT_TYPE_LATEST.encode())
