"""The relay's upstream transport for httpx: HTTP/1.1 on asyncio protocols, parsed in C by httptools, pooled per origin.

httpx's default transport goes through httpcore, h11 and anyio; at 64 concurrent streams reading each chunk that way
was a fifth of the relay's event loop. This one keeps httpx's client, requests, responses and exceptions and does the
connection work itself: one asyncio protocol per connection (`relay.upstream_connection`), body bytes handed over as they arrive (whatever arrived
since the last read, in one piece), idle connections kept per origin and dropped when their server closes them.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any, AsyncIterator

import httpx

from relay.upstream_connection import Connection, Origin


class UpstreamTransport(httpx.AsyncBaseTransport):
    """Up to `max_connections` open at once (a request waits up to its pool timeout for one), up to `max_keepalive`
    of them kept idle for `keepalive_expiry` seconds. Plain HTTP and HTTPS, HTTP/1.1 only; no proxies."""

    def __init__(self, *, max_connections: int, max_keepalive: int, keepalive_expiry: float = 5.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.max_connections, self.max_keepalive, self.keepalive_expiry = max_connections, max_keepalive, keepalive_expiry
        self._ssl_context = ssl_context
        self._idle: dict[Origin, list[Connection]] = {}
        self._idle_count = 0
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def open_connections(self) -> int:
        return self._open

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"The URL scheme {url.scheme!r} is not supported.", request=request)
        timeouts = request.extensions.get("timeout", {})
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        connection = await self._acquire(origin, request, timeouts)
        try:
            await connection.send(request, timeouts.get("write"))
            await connection.read_head(request, timeouts.get("read"))
        except BaseException:
            self._discard(connection)
            raise
        return _Response(connection.status, headers=connection.headers,
                         stream=_Body(self, connection, request, timeouts.get("read")),
                         extensions={"http_version": b"HTTP/1.1", "reason_phrase": connection.reason})

    async def aclose(self) -> None:
        for connections in list(self._idle.values()):
            for connection in list(connections):
                self._discard(connection)

    # The pool.

    async def _acquire(self, origin: Origin, request: httpx.Request, timeouts: dict) -> Connection:
        loop = asyncio.get_running_loop()
        pool_timeout = timeouts.get("pool")
        deadline = None if pool_timeout is None else loop.time() + pool_timeout
        while True:
            idle = self._idle.get(origin)
            while idle:
                connection = idle.pop()
                self._idle_count -= 1
                connection.idle = False
                if connection.reusable(loop, loop.time() - self.keepalive_expiry):
                    return connection
                self._discard(connection)
            if self._open < self.max_connections:
                self._open += 1
                try:
                    return await self._connect(origin, loop, request, timeouts.get("connect"))
                except BaseException:
                    self._open -= 1
                    self._wake_one()
                    raise
            if self._idle_count:  # the limit is held partly by idle connections to other origins: drop one
                other = next(connections for connections in self._idle.values() if connections)
                self._discard(other[0])
                continue
            await self._wait_for_room(loop, request, deadline)

    async def _wait_for_room(self, loop: asyncio.AbstractEventLoop, request: httpx.Request,
                             deadline: float | None) -> None:
        waiter = loop.create_future()
        self._waiters.append(waiter)
        woken = False
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
            woken = True
        except TimeoutError:
            raise httpx.PoolTimeout("No upstream connection became free in time.", request=request) from None
        finally:
            if not woken:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken, but leaving (cancelled, or out of time): the room goes to the next one
                else:
                    try:
                        self._waiters.remove(waiter)
                    except ValueError:
                        pass

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _connect(self, origin: Origin, loop: asyncio.AbstractEventLoop, request: httpx.Request,
                       timeout: float | None) -> Connection:
        scheme, host, port = origin
        context = self._tls() if scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(
                    lambda: Connection(self, origin, loop), host, port, ssl=context,
                    server_hostname=host if context else None)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"Connecting to {host}:{port} timed out.", request=request) from None
        except OSError as exc:  # refused, unreachable, no such host, TLS handshake or certificate failures
            raise httpx.ConnectError(f"Could not connect to {host}:{port}: {exc}", request=request) from None
        return connection

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context(trust_env=False)
        return self._ssl_context

    def _release(self, connection: Connection) -> None:
        """A response was read to its end: keep the connection for the next request to its origin, or close it."""
        if not connection.keep_alive or connection.closed or self._idle_count >= self.max_keepalive:
            self._discard(connection)
            return
        connection.start_idle()
        self._idle.setdefault(connection.origin, []).append(connection)
        self._idle_count += 1
        self._wake_one()

    def _discard(self, connection: Connection) -> None:
        """Close a connection (once) and give its place to a waiting request."""
        if connection.discarded:
            return
        connection.discarded = True
        if connection.idle:
            connection.idle = False
            self._idle[connection.origin].remove(connection)
            self._idle_count -= 1
        self._open -= 1
        connection.close()
        self._wake_one()

    def _lost(self, connection: Connection) -> None:
        if connection.idle:  # the server closed a connection we kept: forget it now
            self._discard(connection)


class _Response(httpx.Response):
    """httpx's response, its body read in one layer: httpx passes every read through three generators (content
    decoding, re-chunking, naming the request on errors), about 3% of the relay's event loop on plain answers. With a
    `chunk_size`, or a body to decode (a Content-Encoding), it reads as httpx does."""

    async def aiter_raw(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        if chunk_size is not None or self.is_stream_consumed or self.is_closed:
            async for chunk in super().aiter_raw(chunk_size):
                yield chunk
            return
        self.is_stream_consumed = True
        self._num_bytes_downloaded = 0
        try:
            async for chunk in self.stream:
                self._num_bytes_downloaded += len(chunk)
                yield chunk
        except httpx.RequestError as exc:
            if self._request is not None:  # named as httpx names it
                exc.request = self._request
            raise
        await self.aclose()

    async def aread(self) -> bytes:
        if not hasattr(self, "_content") and "content-encoding" not in self.headers:
            self._content = b"".join([chunk async for chunk in self.aiter_raw()])
        return await super().aread()


def body_arrived(response: Any) -> bool:
    """Whether all of an answer's body is here, unread: reading it waits on nothing (no timer needed). False for
    what is not this transport's answer (a demo's, one an adapter converted)."""
    stream = getattr(response, "stream", None)
    return isinstance(stream, _Body) and not stream.done and stream.connection.complete


class _Body(httpx.AsyncByteStream):
    """A response body: whatever arrived since the last read, until the response ends; the connection then goes back
    to the pool (or is closed, if the body was not read to its end)."""

    def __init__(self, pool: UpstreamTransport, connection: Connection, request: httpx.Request,
                 timeout: float | None) -> None:
        self.pool, self.connection, self.request, self.timeout = pool, connection, request, timeout
        self.done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self.connection
        try:
            while True:
                if connection.chunks:
                    yield connection.take()
                elif connection.complete:
                    break
                elif connection.error is not None:
                    raise connection.error
                else:
                    await connection.wait(self.request, self.timeout)
        except BaseException:  # an error, a timeout, the reader cancelled or gone: the connection cannot be reused
            self._end(reuse=False)
            raise
        self._end(reuse=True)

    async def aclose(self) -> None:
        self._end(reuse=False)

    def _end(self, *, reuse: bool) -> None:
        if not self.done:
            self.done = True
            if reuse:
                self.pool._release(self.connection)
            else:
                self.pool._discard(self.connection)
