"""The relay's upstream transport for httpx: HTTP/1.1 on asyncio protocols, parsed in C by httptools, pooled per origin.

httpx's default transport goes through httpcore, h11 and anyio; at 64 concurrent streams reading each chunk that way
was a fifth of the relay's event loop. This one keeps httpx's client, requests, responses and exceptions and does the
connection work itself: one asyncio protocol per connection, body bytes handed over as they arrive (whatever arrived
since the last read, in one piece), idle connections kept per origin and dropped when their server closes them.
"""

from __future__ import annotations

import asyncio
import math
import select
import socket
import ssl
from collections import deque
from typing import AsyncIterator

import httptools
import httpx

Origin = tuple[str, str, int]  # scheme, host, port
READ_PAUSE_BYTES = 256 * 1024  # unread body bytes at which the connection stops reading until they are taken


class UpstreamTransport(httpx.AsyncBaseTransport):
    """Up to `max_connections` open at once (a request waits up to its pool timeout for one), up to `max_keepalive`
    of them kept idle for `keepalive_expiry` seconds. Plain HTTP and HTTPS, HTTP/1.1 only; no proxies."""

    def __init__(self, *, max_connections: int, max_keepalive: int, keepalive_expiry: float = 5.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.max_connections, self.max_keepalive, self.keepalive_expiry = max_connections, max_keepalive, keepalive_expiry
        self._ssl_context = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
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
        return httpx.Response(connection.status, headers=connection.headers,
                              stream=_Body(self, connection, request, timeouts.get("read")),
                              extensions={"http_version": b"HTTP/1.1", "reason_phrase": connection.reason})

    async def aclose(self) -> None:
        for connections in list(self._idle.values()):
            for connection in list(connections):
                self._discard(connection)

    # The pool.

    async def _acquire(self, origin: Origin, request: httpx.Request, timeouts: dict) -> _Connection:
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
                       timeout: float | None) -> _Connection:
        scheme, host, port = origin
        context = self._tls() if scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self, origin, loop), host, port, ssl=context,
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

    def _release(self, connection: _Connection) -> None:
        """A response was read to its end: keep the connection for the next request to its origin, or close it."""
        if not connection.keep_alive or connection.closed or self._idle_count >= self.max_keepalive:
            self._discard(connection)
            return
        connection.start_idle()
        self._idle.setdefault(connection.origin, []).append(connection)
        self._idle_count += 1
        self._wake_one()

    def _discard(self, connection: _Connection) -> None:
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

    def _lost(self, connection: _Connection) -> None:
        if connection.idle:  # the server closed a connection we kept: forget it now
            self._discard(connection)


class _Body(httpx.AsyncByteStream):
    """A response body: whatever arrived since the last read, until the response ends; the connection then goes back
    to the pool (or is closed, if the body was not read to its end)."""

    def __init__(self, pool: UpstreamTransport, connection: _Connection, request: httpx.Request,
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


class _Connection(asyncio.Protocol):
    """One upstream connection: writes requests, parses responses (httptools calls the on_* methods)."""

    def __init__(self, pool: UpstreamTransport, origin: Origin, loop: asyncio.AbstractEventLoop) -> None:
        self.pool, self.origin, self.loop = pool, origin, loop
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = self.discarded = self.idle = False
        self.idle_since = 0.0
        self.writable: asyncio.Future[None] | None = None  # set while the socket's send buffer is full
        self.waiter: asyncio.Future[None] | None = None
        self.waiting_for: httpx.Request | None = None  # the request whose answer `waiter` waits on
        # One read-timeout timer per connection, moved lazily: each wait only sets the deadline; the timer, when it
        # fires, fails a wait past it or goes again for the rest (a timer made and cancelled per read was about 3%
        # of a relay process's event loop on streams)
        self.deadline = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.head_only = False  # the request was HEAD
        self._new_response()

    def _new_response(self) -> None:
        self.status, self.reason = 0, b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = self.complete = self.keep_alive = self.framed = self.interim = False
        self.unasked = False  # a second message after this response, before the connection went idle
        self.received = False  # any byte of this response
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.paused = False
        self.error: Exception | None = None

    def reusable(self, loop: asyncio.AbstractEventLoop, idle_after: float) -> bool:
        """Open, on this loop, not idle for too long, and with nothing to read: an idle connection the server has
        closed (or sent a parting answer on) may not have been noticed yet by a busy loop, so its socket is asked."""
        if self.closed or self.loop is not loop or self.idle_since < idle_after:
            return False
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return True
        readable = select.poll()  # not select.select: descriptors past 1024 are common on a busy relay
        readable.register(sock.fileno(), select.POLLIN)
        return not readable.poll(0)

    def start_idle(self) -> None:
        self.idle, self.idle_since = True, self.loop.time()
        self._new_response()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            try:
                self.transport.close()
            except RuntimeError:  # its event loop is closed (a connection left from an earlier loop): hang up as
                self.closed = True  # the loop no longer can
                sock = self.transport.get_extra_info("socket")
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

    # Writing the request.

    async def send(self, request: httpx.Request, timeout: float | None) -> None:
        if self.closed:
            raise httpx.WriteError("The upstream closed the connection.", request=request)
        self.head_only = request.method == "HEAD"
        head = b"".join((request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n",
                         *(b"%s: %s\r\n" % pair for pair in request.headers.raw), b"\r\n"))
        try:
            body = request.content
        except httpx.RequestNotRead:  # a streamed upload
            chunked = request.headers.get("transfer-encoding", "").lower() == "chunked"
            self.transport.write(head)
            async for piece in request.stream:
                if piece:
                    self.transport.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                    await self._drain(request, timeout)
            if chunked:
                self.transport.write(b"0\r\n\r\n")
        else:
            self.transport.write(head + body)
        await self._drain(request, timeout)

    async def _drain(self, request: httpx.Request, timeout: float | None) -> None:
        if self.writable is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self.writable)
        except TimeoutError:
            raise httpx.WriteTimeout("Sending to the upstream timed out.", request=request) from None
        if self.closed:
            raise httpx.WriteError("The upstream closed the connection while the request was sent.", request=request)

    def pause_writing(self) -> None:
        self.writable = self.loop.create_future()

    def resume_writing(self) -> None:
        if self.writable is not None:
            if not self.writable.done():
                self.writable.set_result(None)
            self.writable = None

    # Reading the response.

    async def read_head(self, request: httpx.Request, timeout: float | None) -> None:
        while not self.head_done:
            if self.error is not None:
                raise self.error
            await self.wait(request, timeout)

    async def wait(self, request: httpx.Request, timeout: float | None) -> None:
        """Until something arrives (or the connection ends), for at most `timeout` seconds."""
        waiter = self.waiter = self.loop.create_future()
        self.waiting_for = request
        if timeout is not None:
            self.deadline = self.loop.time() + timeout
            if self.timer is not None and self.timer.when() > self.deadline:  # a shorter timeout than the last
                self.timer.cancel()
                self.timer = None
            if self.timer is None:
                self.timer = self.loop.call_at(self.deadline, self._check_deadline)
        else:
            self.deadline = math.inf
        try:
            await waiter
        finally:
            self.waiter = self.waiting_for = None

    def _check_deadline(self) -> None:
        self.timer = None
        waiter = self.waiter
        if waiter is None or waiter.done() or self.deadline == math.inf:
            return  # not waiting (the next wait sets a timer again), or with no timeout
        if self.loop.time() + 0.001 >= self.deadline:  # (a clock in whole milliseconds can fire a hair early)
            waiter.set_exception(httpx.ReadTimeout("The upstream did not answer in time.", request=self.waiting_for))
        else:
            self.timer = self.loop.call_at(self.deadline, self._check_deadline)

    def take(self) -> bytes:
        data = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self.paused and not self.closed:
            self.paused = False
            self.transport.resume_reading()
        return data

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    # asyncio's callbacks.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.idle:  # unasked (a server's parting "408" before it hangs up): not an answer to the next request
            self.pool._discard(self)
            return
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("The upstream switched protocols."))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"The upstream's answer is not valid HTTP/1.1: {exc}"))

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.head_done and not self.complete and not self.framed and exc is None:
            self.complete = True  # a body without a length ends when the connection does (closed, not reset)
        elif not self.complete and self.error is None:
            if not self.received:
                self.error = httpx.RemoteProtocolError("The upstream closed the connection without answering.")
            else:
                self.error = httpx.ReadError("The upstream closed the connection before the answer ended.")
        self.keep_alive = False
        self.resume_writing()
        self._wake()
        self.pool._lost(self)

    def _fail(self, error: Exception) -> None:
        self.error = error
        self.keep_alive = False
        self.transport.close()
        self._wake()

    # httptools' callbacks. A message after the response was complete (in the same read, so not caught while idle)
    # answers nothing: it is ignored and the connection is not reused.

    def on_message_begin(self) -> None:
        if self.complete:
            self.unasked, self.keep_alive = True, False

    def on_status(self, reason: bytes) -> None:
        if not self.unasked:
            self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.unasked:
            return
        self.headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length" or (lowered == b"transfer-encoding" and b"chunked" in value.lower()):
            self.framed = True

    def on_headers_complete(self) -> None:
        if self.unasked:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            self.interim, self.headers, self.reason, self.framed = True, [], b"", False
            return
        self.status, self.head_done = status, True
        if self.head_only:  # no body follows, but httptools would wait for the one the headers describe: the answer
            self.complete, self.keep_alive = True, self.parser.should_keep_alive()  # ends here, and the next one
            self.parser = httptools.HttpResponseParser(self)  # is read by a fresh parser
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.unasked:
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered >= READ_PAUSE_BYTES and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.unasked:
            return
        if self.interim:
            self.interim = False
            return
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self._wake()
