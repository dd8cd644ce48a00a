"""Upstreams as task adapters see them, read from the database whatever their status: tasks already at an
upstream are polled to the end even after it is disabled."""

from __future__ import annotations

from relay.key_vault import key_fingerprint
from relay.models import Upstream
from relay.snapshots import UpstreamInfo, upstream_info


def upstream_load(upstream_id: int) -> UpstreamInfo | None:
    upstream = Upstream.objects.filter(pk=upstream_id).first()
    return upstream_info(upstream) if upstream is not None else None


def key_for(info: UpstreamInfo, fingerprint: str) -> str:
    """The key that submitted the task (an account sees only its own tasks), else the first one."""
    for key in info.keys:
        if key_fingerprint(key) == fingerprint:
            return key
    return info.keys[0] if info.keys else ""
