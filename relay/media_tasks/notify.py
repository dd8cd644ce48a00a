"""notifyHook callbacks: POST the task on each status change, with retries and backoff.

Hooks may not reach private, loopback, link-local or otherwise non-public addresses unless the operator allows it
(TASK_NOTIFY_ALLOW_PRIVATE): the host is resolved once, every address checked, and the connection made to the
checked address (the name kept for Host and TLS), so a DNS answer cannot change between check and use.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from relay.media_tasks.models import MediaTask
from relay.media_tasks.render import notify_body

logger = logging.getLogger("relay.tasks")
LEASE = timedelta(minutes=2)


@dataclass(frozen=True)
class Delivery:
    ok: bool
    error: str = ""
    final: bool = False  # no point retrying (the address is refused)


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def hook_allowed_literal(url: str) -> bool:
    """A cheap check at submit: refuses literal non-public IPs and `localhost`; names are checked at delivery."""
    if settings.TASK_NOTIFY_ALLOW_PRIVATE:
        return True
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return _public(host)
    except ValueError:
        return bool(host)


def hook_target(url: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """The URL to connect to, extra headers and request extensions; raises ValueError when the hook is refused."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the hook is not an http(s) URL")
    if settings.TASK_NOTIFY_ALLOW_PRIVATE:
        return url, {}, {}
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ValueError(f"the hook's host does not resolve: {exc}") from None
    addresses = [info[4][0] for info in infos]
    if not addresses or not all(_public(a) for a in addresses):
        raise ValueError("the hook resolves to a private, loopback or link-local address")
    address = addresses[0]
    host = f"[{address}]" if ":" in address else address
    netloc = f"{host}:{parts.port}" if parts.port else host
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    return urlunsplit(parts._replace(netloc=netloc)), {"host": parts.netloc}, extensions


def hook_post(url: str, body: dict) -> Delivery:
    """One delivery attempt; a 2xx answer counts as delivered."""
    try:
        target, headers, extensions = hook_target(url)
    except ValueError as exc:
        return Delivery(False, str(exc), final=True)
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    try:
        with httpx.Client(trust_env=False, follow_redirects=False,
                          timeout=settings.TASK_NOTIFY_TIMEOUT_SECONDS) as client:
            response = client.post(target, content=raw, extensions=extensions,
                                   headers={**headers, "content-type": "application/json",
                                            "user-agent": "Modelgate-notify/1"})
    except httpx.HTTPError as exc:
        return Delivery(False, f"{type(exc).__name__}: {exc}"[:255])
    if 200 <= response.status_code < 300:
        return Delivery(True)
    return Delivery(False, f"HTTP {response.status_code}")


def _claim(limit: int) -> list[tuple[MediaTask, object]]:
    now = timezone.now()
    with transaction.atomic():
        tasks = list(MediaTask.objects.select_for_update(skip_locked=True)
                     .filter(notify_after__lte=now).exclude(notify_hook="").order_by("notify_after")[:limit])
        lease = now + LEASE
        MediaTask.objects.filter(pk__in=[t.pk for t in tasks]).update(notify_after=lease)
    return [(task, lease) for task in tasks]


def media_task_notifications_deliver(*, limit: int = 100) -> int:
    """Deliver due callbacks; a failure is retried with backoff up to TASK_NOTIFY_RETRIES times. A status change
    during delivery makes the callback due again (the lease no longer matches), so the newest state is sent."""
    delivered = 0
    for task, lease in _claim(limit):
        outcome = hook_post(task.notify_hook, notify_body(task))
        mine = MediaTask.objects.filter(pk=task.pk, notify_after=lease)
        if outcome.ok:
            delivered += mine.update(notify_after=None, notify_attempts=0, notify_error="")
            continue
        attempts = task.notify_attempts + 1
        logger.info("notify hook for task %s failed (attempt %s): %s", task.public_id, attempts, outcome.error)
        if outcome.final or attempts > settings.TASK_NOTIFY_RETRIES:
            mine.update(notify_after=None, notify_attempts=attempts, notify_error=outcome.error[:255])
        else:
            backoff = settings.TASK_NOTIFY_BACKOFF_SECONDS * 2 ** (attempts - 1)
            mine.update(notify_after=timezone.now() + timedelta(seconds=backoff), notify_attempts=attempts,
                        notify_error=outcome.error[:255])
    return delivered
