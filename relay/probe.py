"""Testing an upstream with a one-token request: for operators, and to re-enable auto-disabled upstreams."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

import httpx
from django.utils import timezone

from relay.adapters import adapter_for
from relay.adapters.base import Call
from relay.forward import error_message, redact
from relay.models import Upstream, UpstreamStatus
from relay.providers import PROVIDERS
from relay.snapshots import UpstreamInfo


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    latency_ms: int
    message: str


def _info(upstream: Upstream) -> UpstreamInfo:
    provider = PROVIDERS[upstream.type]
    return UpstreamInfo(
        id=upstream.pk, name=upstream.name, type=upstream.type, provider=provider,
        base_url=(upstream.base_url or provider.default_base_url).rstrip("/"), keys=tuple(upstream.get_keys()),
        models=frozenset(upstream.served_models), model_mapping=dict(upstream.model_mapping or {}), groups=frozenset(),
        priority=upstream.priority, weight=upstream.weight, connect_timeout=upstream.connect_timeout,
        first_byte_timeout=upstream.first_byte_timeout, total_timeout=upstream.total_timeout,
        extras=dict(upstream.extras or {}),
    )


async def upstream_probe(upstream: Upstream, model: str = "") -> ProbeResult:
    info = _info(upstream)
    adapter = adapter_for(info)
    model = model or upstream.test_model or next(iter(upstream.served_models), "")
    if adapter is None or not model:
        return ProbeResult(False, 0, "This upstream cannot be tested with a chat request (no adapter or model).")
    body = {"model": info.upstream_model(model), "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
    call = Call(upstream=info, key=info.keys[0] if info.keys else "", operation="chat/completions", body=body,
                stream=False)
    started = time.monotonic()
    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            async with asyncio.timeout(info.connect_timeout + info.first_byte_timeout):
                response = await adapter.send(client, call, json.dumps(body).encode())
                raw = await response.aread()
                await response.aclose()
    except (httpx.HTTPError, TimeoutError) as exc:
        return ProbeResult(False, int((time.monotonic() - started) * 1000), f"unreachable: {type(exc).__name__}")
    latency = int((time.monotonic() - started) * 1000)
    if response.status_code >= 400:
        return ProbeResult(False, latency, f"HTTP {response.status_code}: {redact(error_message(raw), info.keys)}")
    return ProbeResult(True, latency, "ok")


def upstream_test(*, upstream: Upstream, model: str = "", reenable: bool = False) -> ProbeResult:
    """Probe and record the latency; an auto-disabled upstream that answers is put back when `reenable`."""
    result = asyncio.run(upstream_probe(upstream, model))
    fields = {"last_test_latency_ms": result.latency_ms, "last_tested_at": timezone.now()}
    if result.ok and reenable and upstream.status == UpstreamStatus.AUTO_DISABLED:
        fields |= {"status": UpstreamStatus.ENABLED, "status_reason": ""}
    Upstream.objects.filter(pk=upstream.pk).update(**fields)
    return result


def upstreams_retest() -> int:
    """Probe every auto-disabled upstream; returns how many came back."""
    back = 0
    for upstream in Upstream.objects.filter(status=UpstreamStatus.AUTO_DISABLED):
        back += upstream_test(upstream=upstream, reenable=True).ok
    return back
