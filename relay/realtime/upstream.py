"""The upstream side of a realtime session: OpenAI (and OpenAI-compatible), Azure OpenAI, or the built-in demo.

Every upstream is one small interface (`UpstreamSocket`): send a frame, receive a frame, close. Failures while
connecting raise `UpstreamRefused`, so the session can try the next upstream before it starts.
"""

from __future__ import annotations

import random
from typing import Protocol
from urllib.parse import quote, urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from relay.overrides import headers_with_overrides
from relay.snapshots import UpstreamInfo

REALTIME_FAMILIES = {"openai", "azure", "demo"}
AZURE_REALTIME_API_VERSION = "2025-04-01-preview"
MAX_FRAME_BYTES = 64 * 1024 * 1024
USER_AGENT = "Modelgate realtime relay"


class UpstreamClosed(Exception):
    """The upstream socket is closed; `code` and `reason` are what it sent (1006 when it just went away)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"upstream closed ({code})")
        self.code, self.reason = code, reason


class UpstreamRefused(Exception):
    """The upstream could not be connected to (network error, timeout, or its handshake answered an HTTP error)."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


class UpstreamSocket(Protocol):
    async def send(self, data: str | bytes) -> None: ...

    async def recv(self) -> str | bytes: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class WebSocketUpstream:
    """A `websockets` client connection behind `UpstreamSocket`."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn

    @staticmethod
    def _closed(exc: ConnectionClosed) -> UpstreamClosed:
        if exc.rcvd is None:
            return UpstreamClosed(1006)
        return UpstreamClosed(exc.rcvd.code, exc.rcvd.reason)

    async def send(self, data: str | bytes) -> None:
        try:
            await self.conn.send(data)
        except ConnectionClosed as exc:
            raise self._closed(exc) from None

    async def recv(self) -> str | bytes:
        try:
            return await self.conn.recv()
        except ConnectionClosed as exc:
            raise self._closed(exc) from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.conn.close(code, reason)


def _ws_base(base_url: str) -> str:
    if base_url.startswith("https://"):
        return "wss://" + base_url.removeprefix("https://")
    if base_url.startswith("http://"):
        return "ws://" + base_url.removeprefix("http://")
    return base_url


def realtime_target(upstream: UpstreamInfo, model: str, key: str, *, beta: bool) -> tuple[str, dict[str, str]]:
    """The upstream's realtime URL and handshake headers for `model` (the name the client asked for).

    OpenAI: `{base}/v1/realtime?model=...` with a bearer key, plus `OpenAI-Beta: realtime=v1` for beta clients.
    Azure (protocols.md section 10): `{base}/openai/realtime?api-version=...&deployment=...` with `api-key`; the
    upstream's `extras` may set `realtime_api_version` and map models to `deployments`.
    """
    upstream_model = upstream.upstream_model(model)
    base = _ws_base(upstream.base_url)
    if upstream.provider.family == "azure":
        extras = upstream.extras
        deployment = (extras.get("deployments") or {}).get(model, upstream_model)
        version = extras.get("realtime_api_version") or AZURE_REALTIME_API_VERSION
        query = urlencode({"api-version": version, "deployment": deployment}, quote_via=quote)
        headers = {"api-key": key}
        url = f"{base.removesuffix('/openai')}/openai/realtime?{query}"
    else:
        url = f"{base}{upstream.provider.api_prefix}/realtime?{urlencode({'model': upstream_model}, quote_via=quote)}"
        headers = {"Authorization": f"Bearer {key}"}
    if beta:
        headers["OpenAI-Beta"] = "realtime=v1"
    return url, headers_with_overrides(headers, upstream.header_override, key)


async def upstream_open(upstream: UpstreamInfo, model: str, *, beta: bool) -> UpstreamSocket:
    """Connect to one upstream's realtime endpoint, within its connect timeout."""
    if upstream.provider.family == "demo":
        from relay.realtime.demo import DemoRealtime

        return DemoRealtime(upstream.upstream_model(model))
    key = random.choice(upstream.keys) if upstream.keys else ""
    url, headers = realtime_target(upstream, model, key, beta=beta)
    try:
        conn = await connect(url, additional_headers=headers, user_agent_header=USER_AGENT, proxy=None,
                             open_timeout=upstream.connect_timeout, compression=None, max_size=MAX_FRAME_BYTES,
                             close_timeout=5)
    except InvalidStatus as exc:
        status = exc.response.status_code
        raise UpstreamRefused(f"the upstream answered the handshake with HTTP {status}", status) from None
    except TimeoutError:
        raise UpstreamRefused("the upstream did not answer the handshake in time") from None
    except (OSError, WebSocketException) as exc:
        raise UpstreamRefused(f"could not connect ({type(exc).__name__})") from None
    return WebSocketUpstream(conn)
