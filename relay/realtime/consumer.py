"""`wss://HOST/v1/realtime?model=...`: one Channels consumer per client socket, relayed to one upstream socket.

Opening: the key (`Authorization: Bearer sk-...`, or the browser subprotocol `openai-insecure-api-key.<key>`, which
is never echoed: `realtime` or `openai-beta.realtime-v1` is), the token's model permission and price, the rate and
concurrency limits and the hold are all checked before any upstream is contacted; then the upstreams serving the
model are tried in routing order until one accepts.

A refusal is signalled the same way every time: the socket is accepted, an `error` event in OpenAI's shape is sent
(its `code` says why: `invalid_api_key`, `model_not_allowed`, `insufficient_quota` ...) and the socket is closed
with 1008 (policy violation; 1013 for rate and concurrency limits, 1014 when no upstream accepts, 1011 on an
internal error), the reason being the same code. Browsers cannot read an HTTP status from a refused handshake, and
not every client reads close reasons, so the event is the one dependable way to tell a client why.

Frames then pass both ways as they come, text and binary. Either side closing closes the other with the same code
and reason. Money: see `relay.realtime.session`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
import weakref
from contextlib import suppress
from typing import Any
from urllib.parse import parse_qsl

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.utils import await_many_dispatch
from django.conf import settings

from billing.ledger import InsufficientQuota
from billing.models import UsageStatus
from relay import errors, gate
from relay.asgi import SHUTDOWN
from relay.client_ip import ip_from
from relay.errors import RelayError
from relay.limits import Limits
from relay.realtime.close_frames import close_reason, sendable
from relay.realtime.events import Finished, ResponseTracker, error_event, is_response_create, parse
from relay.realtime.session import SessionBilling
from relay.realtime.upstream import REALTIME_FAMILIES, UpstreamClosed, UpstreamRefused, UpstreamSocket, upstream_open
from relay.snapshots import Snapshots, UpstreamInfo

logger = logging.getLogger("relay.realtime")

KEY_SUBPROTOCOL = "openai-insecure-api-key."
BETA_SUBPROTOCOL = "openai-beta.realtime-v1"
PATHS = {"/v1/realtime", "/v1/realtime/"}
SHUTDOWN_POLL_SECONDS = 1.0  # polled: the event is shared by every loop, so it is never awaited here
SESSIONS_END_SECONDS = 10.0  # how long a stopping server waits for its realtime sessions to be told, closed and settled


OPEN_SESSIONS: weakref.WeakSet[RealtimeConsumer] = weakref.WeakSet()  # this process's sessions, for its stop


async def sessions_end_for_restart(timeout: float) -> None:
    """The server is stopping: end every open session the way `end_for_restart` does, waiting at most `timeout`
    seconds. Both servers call it before closing sockets themselves (uvicorn would close them with a bare 1012,
    Daphne without a close frame), so clients get the event and the reason and every hold is settled."""
    endings = [session.end_for_restart() for session in list(OPEN_SESSIONS)]
    if endings:
        await asyncio.wait(endings, timeout=timeout)


def client_close_code(upstream_code: int) -> int:
    """The code to close the client with when the upstream closed with `upstream_code`."""
    if upstream_code == 1005:  # closed without a code
        return 1000
    if upstream_code in {1006, 1015}:  # dropped without a closing handshake
        return 1014
    return upstream_code if sendable(upstream_code) else 1011


def upstream_close_code(client_code: int) -> int:
    """The code to close the upstream with when the client closed with `client_code`."""
    if client_code == 1005:
        return 1000
    if client_code in {1006, 1015}:
        return 1001
    return client_code if sendable(client_code) else 1000


def refusal_close_code(error: RelayError) -> int:
    if error.status == 429:
        return 1013
    if error.status == 502:
        return 1014
    return 1011 if error.status >= 500 else 1008


class RealtimeConsumer(AsyncWebsocketConsumer):
    """One realtime session. Process-wide caches and limits are passed in by `as_asgi(snapshots=, limits=)`."""

    def __init__(self, *, snapshots: Snapshots, limits: Limits, on_failure: Any = None) -> None:
        super().__init__()
        self.snapshots, self.limits = snapshots, limits
        self.on_failure = on_failure  # counts an upstream's failure toward automatic disabling (RelayApp's)
        self.session_id = uuid.uuid4().hex
        self.billing: SessionBilling | None = None
        self.upstream: UpstreamSocket | None = None
        self.tracker = ResponseTracker()
        self.client_open = False
        self.upstream_open = False
        self.slot_token: int | None = None
        self.started = self.last_frame = time.monotonic()
        self._tasks: list[asyncio.Task] = []
        self._ending: asyncio.Task | None = None
        self._client_close: tuple[int, str] = (1000, "")
        self._upstream_close: tuple[int, str] = (1000, "")
        self._notice: str | None = None
        self._quiet = asyncio.Event()  # set while no response is in progress
        self._quiet.set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Channels' loop without a channel layer (a session joins no group) and with cleanup however it ends."""
        self.scope, self.base_send, self.channel_layer = scope, send, None
        try:
            await await_many_dispatch([receive], self.dispatch)
        except StopConsumer:
            pass
        finally:
            await asyncio.shield(self._end(upstream=(1001, "")))

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch minus closing stale DB connections per frame: ORM work runs in `in_thread`."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # Opening

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        """Accept, admit the client (or refuse it with an error event), then open the upstream.

        Everything happens after the handshake, so a slow upstream or a failover cannot outlast the server's
        handshake timeout (Daphne's is 5 s); client frames sent meanwhile wait in the server's queue, in order.
        """
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in self.scope.get("headers", [])}
        offered = [str(p) for p in self.scope.get("subprotocols") or []]
        subprotocol = "realtime" if "realtime" in offered else BETA_SUBPROTOCOL if BETA_SUBPROTOCOL in offered else None
        await self.accept(subprotocol)
        self.client_open = True
        OPEN_SESSIONS.add(self)
        try:
            model, upstreams = await self._admit(headers, offered)
            beta = "realtime=v1" in headers.get("openai-beta", "").replace(" ", "") or BETA_SUBPROTOCOL in offered
            await self._connect(model, upstreams, beta=beta)
        except RelayError as exc:
            self._refuse(exc)
            return
        except Exception:
            logger.exception("realtime session %s could not open", self.session_id)
            self._refuse(RelayError(500, "Internal error; it has been logged.", type="server_error",
                                    code="server_error"))
            return
        self._tasks = [asyncio.ensure_future(self._pump_upstream()), asyncio.ensure_future(self._watch())]

    def _refuse(self, exc: RelayError) -> None:
        code = exc.code or "error"
        self._end(client=(refusal_close_code(exc), code), notice=error_event(exc.message, code=code, type=exc.type))

    async def _admit(self, headers: dict[str, str], offered: list[str]) -> tuple[str, list[UpstreamInfo]]:
        """Every check and the hold, before any upstream is contacted; raises RelayError to refuse."""
        peer = self.scope.get("client")
        client_ip = ip_from(peer[0] if peer else None, headers.get("x-forwarded-for"))
        key = gate.api_key_from(headers) or next(
            (p[len(KEY_SUBPROTOCOL):] for p in offered if p.startswith(KEY_SUBPROTOCOL)), "")
        ctx = await gate.authenticate_key(self.snapshots, key, client_ip)
        model = dict(parse_qsl(self.scope.get("query_string", b"").decode("latin-1"))).get("model", "").strip()
        if not model:
            raise errors.bad_request("Name the model in the URL: /v1/realtime?model=...", param="model")
        route = await gate.route(self.snapshots, ctx, {}, model, headers.get("x-ai-provider", ""))
        upstreams = [u for u in route.upstreams if u.provider.family in REALTIME_FAMILIES]
        if not upstreams:
            raise errors.unavailable(f"No upstream serves '{model}' over the Realtime API in group '{ctx.group}'.")
        rpm = await self.limits.rpm_hit(ctx.token_id, ctx.rpm_limit) if ctx.rpm_limit else None
        if rpm is not None and rpm.remaining < 0:
            raise errors.key_rate_limited(ctx.rpm_limit, rpm.retry_after)
        if ctx.concurrency_limit:
            if not await self.limits.concurrency_enter(ctx.token_id, ctx.concurrency_limit):
                raise errors.key_too_many_concurrent(ctx.concurrency_limit)
            self.slot_token = ctx.token_id
        self.billing = SessionBilling(session_id=self.session_id, ctx=ctx, model=model, price=route.price,
                                      client_ip=client_ip)
        try:
            await self.billing.reserve()
        except InsufficientQuota as exc:
            raise errors.forbidden(exc.message, "insufficient_quota") from None
        return model, upstreams

    async def _connect(self, model: str, upstreams: list[UpstreamInfo], *, beta: bool) -> None:
        """The first upstream, in routing order, that accepts the session."""
        assert self.billing is not None
        for upstream in upstreams:
            try:
                self.upstream = await upstream_open(upstream, model, beta=beta)
            except UpstreamRefused as exc:
                logger.warning("realtime session %s: upstream %s (%s) refused: %s", self.session_id, upstream.id,
                               upstream.name, exc.reason)
                if self.on_failure is not None:
                    await self.on_failure(upstream, exc.reason, exc.status in (401, 403))
                continue
            self.billing.upstream = upstream
            self.upstream_open = True
            self.last_frame = time.monotonic()
            return
        raise errors.upstream_failed("No upstream could open the realtime session; try again later.")

    # Relaying

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """A client frame: passed to the upstream as it is, once the hold is known to be whole for a response."""
        if self._ending is not None or self.upstream is None or self.billing is None:
            return
        self.last_frame = time.monotonic()
        if text_data is not None and is_response_create(text_data):
            try:
                funds = await self.billing.funds()
            except Exception:
                logger.exception("realtime session %s: reading the balance failed", self.session_id)
                self._end(client=(1011, "server_error"), notice=error_event(
                    "Internal error; it has been logged.", code="server_error", type="server_error"))
                return
            if not self.billing.may_respond(funds):
                self._end_for_quota()
                return
        with suppress(UpstreamClosed):  # the upstream pump sees the close and ends the session
            await self.upstream.send(text_data if text_data is not None else bytes_data or b"")

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        self.client_open = False
        code = int(message.get("code") or 1005)
        self._end(upstream=(upstream_close_code(code), close_reason(str(message.get("reason") or ""))))
        raise StopConsumer()

    async def _to_client(self, data: str | bytes) -> None:
        if not self.client_open:
            return
        try:
            if isinstance(data, str):
                await self.send(text_data=data)
            else:
                await self.send(bytes_data=data)
        except Exception:  # the client went away meanwhile; its disconnect ends the session
            self.client_open = False

    async def _pump_upstream(self) -> None:
        """Upstream frames to the client in order; each `response.done` is charged before it is passed on."""
        assert self.upstream is not None
        try:
            while True:
                data = await self.upstream.recv()
                self.last_frame = time.monotonic()
                event = parse(data) if isinstance(data, str) else None
                finished = self.tracker.observe(event) if event is not None else None
                charged = await self._charge(finished) if finished is not None else True
                await self._to_client(data)
                if self.tracker.open:
                    self._quiet.clear()
                else:
                    self._quiet.set()
                if not charged:
                    self._end_for_quota()
        except UpstreamClosed as closed:
            self.upstream_open = False
            self._quiet.set()
            self._end(client=(client_close_code(closed.code), close_reason(closed.reason)))

    async def _charge(self, finished: Finished) -> bool:
        """Charge a finished response; False when the session may not start another one."""
        assert self.billing is not None
        try:
            status = UsageStatus.ERROR if finished.status == "failed" else UsageStatus.SUCCESS
            funds = await self.billing.charge(finished.usage, latency_ms=finished.latency_ms, status=status)
        except Exception:
            logger.exception("realtime session %s: charging response %s failed", self.session_id,
                             finished.response_id)
            self._end(client=(1011, "server_error"), notice=error_event(
                "Usage could not be billed; the session is closed.", code="server_error", type="server_error"))
            return True
        return funds is None or self.billing.may_respond(funds)

    def _max_seconds(self) -> float:
        """The configured session length, kept below the age at which the sweeper refunds a forgotten hold."""
        sweep_after = max(settings.RELAY_RESERVATION_TIMEOUT_MINUTES * 60 - 60, 60)
        return min(settings.REALTIME_MAX_SESSION_SECONDS, sweep_after)

    async def _watch(self) -> None:
        """Close the session when it has been idle too long, has reached its maximum length or the server stops."""
        idle, limit = settings.REALTIME_IDLE_TIMEOUT_SECONDS, self._max_seconds()
        while True:
            now = time.monotonic()
            if SHUTDOWN.is_set():
                self.end_for_restart()
                return
            if now - self.started >= limit:
                self._end(client=(1000, "session_expired"), notice=error_event(
                    f"Your session hit the maximum duration of {limit:g} seconds.", code="session_expired"))
                return
            if now - self.last_frame >= idle:
                self._end(client=(1000, "idle_timeout"), notice=error_event(
                    f"The session was closed after {idle:g} seconds without activity.", code="idle_timeout"))
                return
            wake = min(self.started + limit, self.last_frame + idle, now + SHUTDOWN_POLL_SECONDS)
            await asyncio.sleep(max(wake - now, 0.001))

    # Closing

    def _end_for_quota(self) -> None:
        self._end(client=(1008, "insufficient_quota"), notice=error_event(
            "Your balance is too low to continue this session; please top up.", code="insufficient_quota",
            type="insufficient_quota"))

    def end_for_restart(self) -> asyncio.Future:
        """The server is stopping: tell the client (an error event, then 1012) and settle."""
        return self._end(client=(1012, "server_restart"), notice=error_event(
            "The server is restarting; please reconnect.", code="server_restart", type="server_error"))

    def _end(self, *, client: tuple[int, str] | None = None, upstream: tuple[int, str] | None = None,
             notice: str | None = None) -> asyncio.Task:
        """Start ending the session (the first caller's codes and notice win); returns the task doing it."""
        if self._ending is None:
            self._client_close = client or self._client_close
            self._upstream_close = upstream or self._upstream_close
            self._notice = notice
            self._ending = asyncio.ensure_future(self._close_all())
        return self._ending

    async def _close_all(self) -> None:
        """Close the client, let a response in progress report its usage, close the upstream, settle: once."""
        try:
            if self.client_open:
                self.client_open = False
                with suppress(Exception):
                    if self._notice:
                        await self.send(text_data=self._notice)
                    await self.close(*self._client_close)
            if self.upstream is not None:
                if self.upstream_open and self.tracker.open:
                    with suppress(Exception):
                        await self.upstream.send(json.dumps({"type": "response.cancel"}))
                        await asyncio.wait_for(self._quiet.wait(), settings.REALTIME_DRAIN_SECONDS)
                self.upstream_open = False
                with suppress(Exception):
                    await self.upstream.close(*self._upstream_close)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._settle()

    async def _settle(self) -> None:
        """Charge estimates for responses cut short, refund the hold, free the concurrency slot."""
        billing = self.billing
        try:
            if billing is not None and billing.reserved:
                for response_id, usage in self.tracker.unfinished():
                    await billing.charge(usage, status=UsageStatus.CLIENT_CLOSED,
                                         error=f"response {response_id} ended before it reported usage; estimated")
        except Exception:
            logger.exception("realtime session %s: charging an unfinished response failed", self.session_id)
        finally:
            try:
                if billing is not None:
                    await billing.close()
            except Exception:  # the periodic sweep refunds a hold left open
                logger.exception("realtime session %s: refunding the hold failed", self.session_id)
            if self.slot_token is not None:
                token, self.slot_token = self.slot_token, None
                await self.limits.concurrency_leave(token)
            if billing is not None:
                logger.info("realtime session %s ended after %d responses", self.session_id, billing.responses)


async def websocket_refused(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Any other WebSocket path: a 404 where the server can send one, else the handshake is refused (403)."""
    message = await receive()
    if message.get("type") != "websocket.connect":
        return
    if "websocket.http.response" in scope.get("extensions", {}):
        body = json.dumps({"error": {"message": f"Unknown WebSocket path: {scope.get('path')}",
                                     "type": "invalid_request_error", "code": "unknown_url", "param": None}}).encode()
        await send({"type": "websocket.http.response.start", "status": 404,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


def websocket_app(*, snapshots: Snapshots, limits: Limits, on_failure: Any = None) -> Any:
    """The ASGI app for every WebSocket: `/v1/realtime` to a session, anything else refused. `on_failure` counts
    upstream failures toward automatic disabling, as the HTTP relay does."""
    realtime = RealtimeConsumer.as_asgi(snapshots=snapshots, limits=limits, on_failure=on_failure)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("path") in PATHS:
            await realtime(scope, receive, send)
        else:
            await websocket_refused(scope, receive, send)

    return app
