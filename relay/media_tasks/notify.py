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


IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated (RFC 4291 2.5.5.1); never a hook's address
SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # deprecated, private in practice; Python counts it as global
LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # local-use NAT64 (RFC 8215)
IPV4_IN_IPV6 = (ipaddress.ip_network("::ffff:0:0:0/96"),  # IPv4-translated (RFC 2765)
                ipaddress.ip_network("64:ff9b::/96"))  # well-known NAT64 (RFC 6052)
IPV4_SPECIAL = ipaddress.ip_network("192.0.0.0/24")  # IETF protocol assignments; some count as global in Python


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, translated, NAT64, 6to4), which is where it ends up."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in network for network in IPV4_IN_IPV6):
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return None


def _public(address: str) -> bool:
    """A globally reachable unicast address, and so is any IPv4 address it carries."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in IPV4_COMPATIBLE or ip in SITE_LOCAL or ip in LOCAL_NAT64:
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None and not _public(str(embedded)):
            return False
    elif ip in IPV4_SPECIAL:
        return False
    return ip.is_global and not ip.is_multicast


def hook_allowed_literal(url: str) -> bool:
    """A cheap check at submit: refuses literal non-public IPs and `localhost`; names are checked at delivery."""
    if settings.TASK_NOTIFY_ALLOW_PRIVATE:
        return True
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:  # "http://[::1": not a URL the notifier could call
        return False
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
    userinfo, at, _host = parts.netloc.rpartition("@")
    netloc = f"{userinfo}{at}{netloc}"  # credentials in the hook go as Basic auth, as they do unchecked
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    name = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    host_header = f"{name}:{parts.port}" if parts.port else name  # never the URL's user:password@
    return urlunsplit(parts._replace(netloc=netloc)), {"host": host_header}, extensions


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
