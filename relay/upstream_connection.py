"""One upstream HTTP/1.1 connection of the relay's transport (`relay.transport`): an asyncio protocol that writes
requests and parses answers with httptools, handing body bytes over as they arrive and pausing its reads while too
many wait unread."""

from __future__ import annotations

import asyncio
import math
import select
import socket
from typing import TYPE_CHECKING

import httptools
import httpx

if TYPE_CHECKING:
    from relay.transport import UpstreamTransport

Origin = tuple[str, str, int]  # scheme, host, port
READ_PAUSE_BYTES = 256 * 1024  # unread body bytes at which the connection stops reading until they are taken


class Connection(asyncio.Protocol):
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
