"""Upstreams as task adapters see them, read from the database whatever their status: tasks already at an
upstream are polled to the end even after it is disabled."""

from __future__ import annotations

from relay.media_tasks.adapters.base import key_fingerprint
from relay.models import Upstream
from relay.providers import PROVIDERS
from relay.snapshots import UpstreamInfo


def upstream_info(upstream: Upstream) -> UpstreamInfo | None:
    provider = PROVIDERS.get(upstream.type)
    if provider is None:
        return None
    return UpstreamInfo(
        id=upstream.pk, name=upstream.name, type=upstream.type, provider=provider,
        base_url=(upstream.base_url or provider.default_base_url).rstrip("/"), keys=tuple(upstream.get_keys()),
        models=frozenset(upstream.served_models), model_mapping=dict(upstream.model_mapping or {}),
        groups=frozenset(), priority=upstream.priority, weight=upstream.weight,
        connect_timeout=upstream.connect_timeout, first_byte_timeout=upstream.first_byte_timeout,
        total_timeout=upstream.total_timeout, extras=dict(upstream.extras or {}),
    )


def upstream_load(upstream_id: int) -> UpstreamInfo | None:
    upstream = Upstream.objects.filter(pk=upstream_id).first()
    return upstream_info(upstream) if upstream is not None else None


def key_for(info: UpstreamInfo, fingerprint: str) -> str:
    """The key that submitted the task (an account sees only its own tasks), else the first one."""
    for key in info.keys:
        if key_fingerprint(key) == fingerprint:
            return key
    return info.keys[0] if info.keys else ""
