"""Asking an upstream: a one-token test request (for operators, and to re-enable auto-disabled upstreams), and the
models it lists (for operators filling in an upstream's models)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from django.utils import timezone

from relay.adapters import adapter_for
from relay.adapters.base import Call
from relay.forward import error_message, redact
from relay.invalidation import rows_changed
from relay.key_vault import key_fingerprint
from relay.models import Upstream, UpstreamStatus
from relay.overrides import headers_with_overrides, upstream_body
from relay.snapshots import upstream_info
from relay.upstreams import upstream_auto_disable, upstream_keys_enable
from relay.wires import OPENAI
from relay.wiring import wire_for


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    latency_ms: int
    message: str


async def upstream_probe(upstream: Upstream, model: str = "", key: str = "") -> ProbeResult:
    """One test request with `key` (by default the first key in use)."""
    info = upstream_info(upstream)
    model = model or upstream.test_model or next(iter(upstream.served_models), "")
    upstream_model = info.upstream_model(model) if info is not None else model
    adapter = adapter_for(info, upstream_model) if info is not None else None
    if info is None or adapter is None or not model:
        return ProbeResult(False, 0, "This upstream cannot be tested with a chat request (no adapter or model).")
    body = {"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
    operation = "chat/completions"
    wire = wire_for(OPENAI, adapter.family, operation, body, model=model, stream=False, default_max_tokens=1,
                    input_estimate=1, upstream_type=info.type, native_responses=False)
    if wire is not None:  # in the upstream's own format (Anthropic's, Gemini's), as the relay would send it
        body, operation = wire.request(upstream_model, adapter.supports_stream_usage), wire.operation
    else:
        body = dict(body, model=upstream_model)
    body = upstream_body(body, info, adapter.family, operation)
    call = Call(upstream=info, key=key or (info.keys[0] if info.keys else ""), operation=operation, body=body,
                stream=False, model=upstream_model)
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
    Upstream.objects.filter(pk=upstream.pk).update(last_test_latency_ms=result.latency_ms, last_tested_at=timezone.now())
    # put back only if still auto-disabled: an operator may have disabled it while it was being probed
    if result.ok and reenable and Upstream.objects.filter(pk=upstream.pk, status=UpstreamStatus.AUTO_DISABLED).update(
            status=UpstreamStatus.ENABLED, status_reason=""):
        rows_changed()
    return result


def upstreams_test_all() -> tuple[int, int]:
    """Test every enabled upstream (its latency recorded); one that fails is disabled automatically, and put back by
    the retest when it answers. Returns (tested, disabled)."""
    tested = disabled = 0
    for upstream in Upstream.objects.filter(status=UpstreamStatus.ENABLED).exclude(type="demo"):
        info = upstream_info(upstream)
        if info is None or info.provider.family in UNTESTED_FAMILIES or not (upstream.test_model or
                                                                            upstream.served_models):
            continue  # no chat model to ask: rerank and generation-task upstreams
        result = upstream_test(upstream=upstream)
        tested += 1
        if not result.ok:
            upstream_auto_disable(upstream_id=upstream.pk, reason=f"Scheduled test failed: {result.message}")
            disabled += 1
    return tested, disabled


def upstreams_retest() -> int:
    """Probe every auto-disabled upstream, and every disabled key of the enabled ones; returns how many came back."""
    back = 0
    for upstream in Upstream.objects.filter(status=UpstreamStatus.AUTO_DISABLED):
        back += upstream_test(upstream=upstream, reenable=True).ok
    for upstream in Upstream.objects.filter(status=UpstreamStatus.ENABLED):
        for key in upstream.get_keys() if upstream.disabled_keys else []:
            fingerprint = key_fingerprint(key)
            if fingerprint in upstream.disabled_keys and asyncio.run(upstream_probe(upstream, key=key)).ok:
                back += upstream_keys_enable(upstream=upstream, fingerprints=[fingerprint])
    return back


@dataclass(frozen=True)
class ModelList:
    ok: bool
    models: list[str]
    message: str = ""


UNTESTED_FAMILIES = frozenset({"rerank", "task"})  # no one-token chat request to make of them
MODEL_PAGES = 20  # Gemini lists in pages; enough for every model it has


def _listing_url(info: Any, family: str) -> str:
    if family == "gemini":
        return f"{info.base_url.removesuffix('/v1beta')}/v1beta/models"
    adapter = adapter_for(info)
    return adapter.url(Call(upstream=info, key="", operation="models", body={}, stream=False))


def _listed(family: str, data: Any) -> tuple[list[str], str]:
    """One page of a model list: its names, and the token of the next page (Gemini pages; the others do not)."""
    if not isinstance(data, dict):
        return [], ""
    if family == "gemini":  # {"models": [{"name": "models/..."}], "nextPageToken"}
        rows, name, prefix, token = data.get("models"), "name", "models/", str(data.get("nextPageToken") or "")
    else:  # {"data": [{"id": ...}]}
        rows, name, prefix, token = data.get("data"), "id", "", ""
    names = [str(row.get(name) or "").removeprefix(prefix) for row in rows if isinstance(row, dict)] \
        if isinstance(rows, list) else []
    return names, token


async def upstream_models_fetch(upstream: Upstream) -> ModelList:
    """The model names the upstream itself lists (OpenAI-compatible, Anthropic and Gemini upstreams)."""
    info = upstream_info(upstream)
    adapter = adapter_for(info) if info is not None else None
    listed = info is not None and info.provider.family in ("openai", "anthropic", "gemini")
    if info is None or adapter is None or not listed or not info.keys:
        return ModelList(False, [], "This upstream does not list its models.")
    call = Call(upstream=info, key=info.keys[0], operation="models", body={}, stream=False)
    headers = headers_with_overrides(adapter.headers(call), info.header_override, call.key)
    headers.pop("content-type", None)
    url, params, names = _listing_url(info, adapter.family), {"pageSize": "1000"}, []
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=info.connect_timeout + info.first_byte_timeout) as client:
            for _page in range(MODEL_PAGES):
                response = await client.get(url, headers=headers, params=params if adapter.family == "gemini" else None)
                if response.status_code >= 400:
                    message = redact(error_message(response.content), info.keys)
                    return ModelList(False, [], f"HTTP {response.status_code}: {message}")
                page, token = _listed(adapter.family, response.json())
                names += page
                if not token:
                    break
                params = {"pageSize": "1000", "pageToken": str(token)}
    except (httpx.HTTPError, ValueError) as exc:
        return ModelList(False, [], f"unreachable or unreadable: {type(exc).__name__}")
    return ModelList(True, sorted({name for name in names if name}))
