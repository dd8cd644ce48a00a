"""The caller's IP address: the peer, or the X-Forwarded-For client when the peer is a trusted proxy."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.http import HttpRequest

from relay.conf import settings


@lru_cache(maxsize=1)
def _trusted(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def ip_from(peer: str | None, forwarded_for: str | None) -> str | None:
    """Walk X-Forwarded-For from the right, skipping trusted proxies; the first untrusted hop is the client."""
    walk = _walk if len(forwarded_for or "") <= 256 else _walk.__wrapped__  # no long header values kept
    return walk(peer, forwarded_for, tuple(settings.TRUSTED_PROXIES))


@lru_cache(maxsize=4096)  # a few callers make most requests: parsing their addresses again each time adds up
def _walk(peer: str | None, forwarded_for: str | None, proxies: tuple[str, ...]) -> str | None:
    trusted = _trusted(proxies)
    hops = [peer] if peer else []
    if forwarded_for:
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()] + hops
    for hop in reversed(hops):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return None
        if not any(address in net for net in trusted):
            return str(address)
    return hops[0] if hops else None


def client_ip(request: HttpRequest) -> str | None:
    return ip_from(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"))
