"""The relay's upstream transport: pooling, response framing, errors, timeouts, uploads and TLS, each shown against a
tiny HTTP/1.1 server on loopback that answers by hand (so the bytes on the wire are exactly the test's)."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import os
import random
import resource
import socket
import ssl
import struct
import threading
import time
from typing import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from relay.transport import UpstreamTransport, body_arrived
from relay.upstream_client import post_request, upstream_client

pytestmark = pytest.mark.timeout(10)  # a backstop only: every wait below is bounded far more tightly

WAIT = 2.0  # the longest any single step may take before the test counts it as hung
LOOPS = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])  # production: uvloop

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Upstream:
    """A loopback server running `handler` for each connection. It counts the connections it accepted, closes them
    all when the test ends, and fails the test if a handler failed (a server-side assertion or a bounded wait)."""

    def __init__(self, handler: Handler, *, tls: ssl.SSLContext | None = None) -> None:
        self.handler, self.tls = handler, tls
        self.connections = 0
        self.tasks: list[asyncio.Task] = []
        self.errors: list[BaseException] = []
        self.server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, kind: type | None, *exc: object) -> None:
        self.server.close()
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=WAIT)
        if kind is None and self.errors:
            raise AssertionError(f"the upstream's handler failed: {self.errors!r}")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.tasks.append(asyncio.current_task())
        try:
            await self.handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client hung up
        except asyncio.CancelledError:
            pass  # the test is over
        except Exception as exc:
            self.errors.append(exc)
        finally:
            writer.close()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str], bytes]:
    """One request as received: its head (request line and headers, verbatim), its headers and its body (de-chunked,
    checking the chunked framing on the way)."""
    head = await reader.readuntil(b"\r\n\r\n")
    headers = {}
    for line in head.split(b"\r\n")[1:-2]:
        name, _, value = line.partition(b":")
        headers[name.decode().lower()] = value.decode().strip()
    if "content-length" in headers:
        return head, headers, await reader.readexactly(int(headers["content-length"]))
    body = b""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
            body += await reader.readexactly(size)
            assert await reader.readexactly(2) == b"\r\n"
        assert await reader.readexactly(2) == b"\r\n"
    return head, headers, body


async def hang_up_seen(reader: asyncio.StreamReader) -> bool:
    """Whether the client closes the connection (the server reads its EOF) within WAIT seconds."""
    try:
        return await asyncio.wait_for(reader.read(), WAIT) == b""
    except (TimeoutError, ConnectionError):
        return False


def answer(body: bytes = b"ok", *headers: str) -> bytes:
    extra = "".join(f"{header}\r\n" for header in headers).encode()
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def keep_alive(*, body: bytes = b"ok", delay: float = 0.0, close_after: bool = False) -> Handler:
    """A server answering every request on the connection with `body`; `close_after` hangs up after each answer
    without saying so (as servers whose keep-alive ran out do)."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            await asyncio.sleep(delay)
            writer.write(answer(body))
            await writer.drain()
            if close_after:
                return
    return handler


def answering(respond: Callable[[bytes, dict[str, str]], bytes]) -> Handler:
    """A server answering every request on the connection with `respond(head, headers)`."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, headers, _body = await read_request(reader)
            writer.write(respond(head, headers))
            await writer.drain()
    return handler


def chunk(piece: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(piece), piece)


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"


def make_client(transport: UpstreamTransport) -> httpx.AsyncClient:
    return upstream_client(transport=transport, timeout=WAIT)


def transport_for(**options: object) -> UpstreamTransport:
    return UpstreamTransport(**{"max_connections": 10, "max_keepalive": 10, **options})


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def upload(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


# The pool.


@LOOPS
def test_sequential_requests_share_one_connection(run):
    run(_sequential())


async def _sequential():
    upstream, transport = Upstream(keep_alive()), transport_for()
    async with upstream as url, make_client(transport) as client:
        for _ in range(5):
            assert (await client.get(url)).text == "ok"
        assert transport.open_connections == 1
    assert upstream.connections == 1


def test_concurrent_requests_open_one_connection_each():
    asyncio.run(_concurrent())


async def _concurrent():
    arrived, everyone = [], asyncio.Event()

    async def handler(reader, writer):
        await read_request(reader)
        arrived.append(1)
        if len(arrived) == 3:
            everyone.set()
        await asyncio.wait_for(everyone.wait(), WAIT)  # no answer until all three requests are in, at once
        writer.write(answer())
        await hang_up_seen(reader)

    upstream, transport = Upstream(handler), transport_for()
    async with upstream as url, make_client(transport) as client:
        answers = await asyncio.gather(*(client.get(url) for _ in range(3)))
        assert [a.text for a in answers] == ["ok"] * 3
        assert transport.open_connections == 3
    assert upstream.connections == 3


def test_requests_beyond_the_connection_limit_share_the_allowed_connections():
    asyncio.run(_beyond_the_limit())


async def _beyond_the_limit():
    upstream, transport = Upstream(keep_alive(delay=0.03)), transport_for(max_connections=2)
    async with upstream as url, make_client(transport) as client:
        answers = await asyncio.gather(*(client.get(url) for _ in range(6)))
    assert [a.text for a in answers] == ["ok"] * 6
    assert upstream.connections == 2


def test_a_queued_request_proceeds_on_the_connection_that_frees():
    asyncio.run(_queued())


async def _queued():
    finish = asyncio.Event()

    async def handler(reader, writer):
        await read_request(reader)
        writer.write(CHUNKED_HEAD + chunk(b"first"))
        await asyncio.wait_for(finish.wait(), WAIT)
        writer.write(chunk(b"last") + b"0\r\n\r\n")
        await keep_alive()(reader, writer)

    upstream, transport = Upstream(handler), transport_for(max_connections=1)
    async with upstream as url, make_client(transport) as client:
        async with client.stream("GET", url) as held:
            queued = asyncio.create_task(client.get(url))
            await asyncio.sleep(0.05)
            assert not queued.done()  # no room: it waits rather than opening a second connection
            finish.set()
            assert await held.aread() == b"firstlast"
        assert (await asyncio.wait_for(queued, WAIT)).text == "ok"
    assert upstream.connections == 1


def test_a_request_waiting_longer_than_the_pool_timeout_fails_with_pool_timeout():
    asyncio.run(_pool_timeout())


async def _pool_timeout():
    async def handler(reader, writer):
        await read_request(reader)
        # The first answer never ends (it holds the only connection); later ones are whole.
        writer.write(CHUNKED_HEAD + chunk(b"first") if upstream.connections == 1 else answer())
        await hang_up_seen(reader)

    upstream, transport = Upstream(handler), transport_for(max_connections=1)
    loop = asyncio.get_running_loop()
    async with upstream as url, make_client(transport) as client:
        async with client.stream("GET", url):
            started = loop.time()
            with pytest.raises(httpx.PoolTimeout):
                await client.get(url, timeout=httpx.Timeout(WAIT, pool=0.1))
            assert 0.09 <= loop.time() - started < 1
        assert (await client.get(url)).text == "ok"  # the held stream's connection was given back
    assert upstream.connections == 2


def test_a_cancelled_waiter_does_not_strand_the_requests_queued_behind_it():
    asyncio.run(_cancelled_waiter())


async def _cancelled_waiter():
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(CHUNKED_HEAD + chunk(b"first") if upstream.connections == 1 else answer())
        await hang_up_seen(reader)

    upstream, transport = Upstream(handler), transport_for(max_connections=1)
    async with upstream as url, make_client(transport) as client:
        async with client.stream("GET", url) as held:
            first = asyncio.create_task(client.get(url))  # waits for room, first in the queue
            await asyncio.sleep(0.02)
            second = asyncio.create_task(client.get(url, timeout=httpx.Timeout(WAIT, pool=0.5)))  # waits behind it
            await asyncio.sleep(0.02)
            await held.aclose()  # room: the first waiter is woken...
            first.cancel()  # ...but its caller gives up (a relay client hung up) before it runs
        with pytest.raises(asyncio.CancelledError):
            await first
        assert (await asyncio.wait_for(second, WAIT)).text == "ok"  # the room must pass to the next in line


def test_requests_that_leave_the_pool_queue_do_not_stay_queued():
    asyncio.run(_left_the_queue())


async def _left_the_queue():
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(CHUNKED_HEAD + chunk(b"first"))  # never ends: holds the only connection
        await hang_up_seen(reader)

    upstream, transport = Upstream(handler), transport_for(max_connections=1)
    async with upstream as url, make_client(transport) as client:
        async with client.stream("GET", url):
            refused = await asyncio.gather(
                *(client.get(url, timeout=httpx.Timeout(WAIT, pool=0.02)) for _ in range(50)), return_exceptions=True)
            assert all(isinstance(outcome, httpx.PoolTimeout) for outcome in refused)
            given_up = [asyncio.create_task(client.get(url)) for _ in range(50)]
            await asyncio.sleep(0.02)
            for task in given_up:
                task.cancel()
            await asyncio.wait(given_up, timeout=WAIT)
            assert all(task.cancelled() for task in given_up)
            assert len(transport._waiters) == 0  # while the connection is still busy: nothing wakes and drops them


def test_idle_connections_beyond_max_keepalive_are_closed():
    asyncio.run(_max_keepalive())


async def _max_keepalive():
    arrived, everyone, hung_up = [], asyncio.Event(), []

    async def handler(reader, writer):
        await read_request(reader)
        arrived.append(1)
        if len(arrived) == 3:
            everyone.set()
        await asyncio.wait_for(everyone.wait(), WAIT)
        writer.write(answer())
        hung_up.append(await hang_up_seen(reader))

    upstream, transport = Upstream(handler), transport_for(max_keepalive=1)
    async with upstream as url, make_client(transport) as client:
        await asyncio.gather(*(client.get(url) for _ in range(3)))
        assert transport.open_connections == 1
        await asyncio.sleep(0.05)  # the two closed connections' EOF reaches the server
        assert hung_up == [True, True]


def test_an_idle_connection_to_another_origin_gives_way_at_the_connection_limit():
    asyncio.run(_other_origin())


async def _other_origin():
    hung_up = asyncio.Event()

    async def first_handler(reader, writer):
        await read_request(reader)
        writer.write(answer(b"first"))
        if await hang_up_seen(reader):
            hung_up.set()

    transport = transport_for(max_connections=1)
    async with Upstream(first_handler) as first, Upstream(keep_alive(body=b"second")) as second:
        async with make_client(transport) as client:
            assert (await client.get(first)).text == "first"
            assert (await client.get(second)).text == "second"
            await asyncio.wait_for(hung_up.wait(), WAIT)  # the idle connection to the first origin was closed
            assert transport.open_connections == 1


@LOOPS
def test_a_connection_the_server_closed_while_idle_is_not_reused(run):
    run(_closed_while_idle())


async def _closed_while_idle():
    upstream, transport = Upstream(keep_alive(close_after=True)), transport_for()
    async with upstream as url, make_client(transport) as client:
        for _ in range(3):
            assert (await client.get(url)).text == "ok"
            await asyncio.sleep(0.05)  # the server's close reaches the client's socket
            assert transport.open_connections == 0  # noticed and forgotten while idle
    assert upstream.connections == 3


@LOOPS
def test_a_connection_the_server_closed_while_the_loop_was_busy_is_not_reused(run):
    run(_closed_while_busy())


async def _closed_while_busy():
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT)
    busy, closed, served = threading.Event(), threading.Event(), []

    def serve() -> None:  # in a thread: it must hang up while the test's event loop is blocked
        for _ in range(2):
            connection = listener.accept()[0]
            with connection, connection.makefile("rb") as lines:
                connection.settimeout(WAIT)
                for line in lines:
                    if line == b"\r\n":  # the end of a GET's head
                        break
                connection.sendall(answer())
                served.append(1)
                if len(served) == 1:
                    busy.wait(WAIT)  # the connection's keep-alive runs out while the client's loop is busy
            closed.set()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        async with make_client(transport_for()) as client:
            assert (await client.get(url)).text == "ok"
            busy.set()
            assert closed.wait(WAIT)
            time.sleep(0.05)  # the loop stays busy while the FIN arrives: the connection still looks idle and open
            assert (await client.get(url)).text == "ok"
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the thread if it still waits for a connection
        listener.close()
        server.join(WAIT)
    assert len(served) == 2


def test_a_connection_left_from_an_earlier_event_loop_is_replaced():
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT)
    served: list[int] = []

    def serve() -> None:  # in a thread: it outlives the first event loop
        for _ in range(2):
            connection = listener.accept()[0]
            with connection, connection.makefile("rb") as lines:
                connection.settimeout(WAIT)
                for line in lines:
                    if line == b"\r\n":
                        connection.sendall(answer())
                        served.append(1)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    transport, url = transport_for(), f"http://127.0.0.1:{listener.getsockname()[1]}"

    async def get() -> str:
        return (await make_client(transport).get(url)).text

    try:
        assert asyncio.run(get()) == "ok"  # leaves an idle connection bound to a loop that is then closed
        assert asyncio.run(get()) == "ok"
        assert transport.open_connections == 1
        asyncio.run(transport.aclose())  # its loop is closed too: the connection is still hung up
        assert transport.open_connections == 0
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        server.join(WAIT)
    assert len(served) == 2


@LOOPS
def test_bytes_an_idle_connection_receives_unasked_are_not_taken_for_the_next_answer(run):
    run(_unasked_bytes())


async def _unasked_bytes():
    first_read, parting_sent = asyncio.Event(), asyncio.Event()

    async def handler(reader, writer):
        if upstream.connections > 1:
            return await keep_alive(body=b"second")(reader, writer)
        await read_request(reader)
        writer.write(answer(b"first"))
        await asyncio.wait_for(first_read.wait(), WAIT)
        # A parting answer some servers and proxies send on a keep-alive connection they are about to close; this one
        # keeps it open.
        writer.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 6\r\n\r\nstale!")
        await writer.drain()
        parting_sent.set()
        await hang_up_seen(reader)

    upstream, transport = Upstream(handler), transport_for()
    async with upstream as url, make_client(transport) as client:
        assert (await client.get(url)).text == "first"
        first_read.set()
        await asyncio.wait_for(parting_sent.wait(), WAIT)
        await asyncio.sleep(0.02)  # the parting answer reaches the client's socket
        response = await client.get(url)
        assert (response.status_code, response.text) == (200, "second")
        assert transport.open_connections == 1  # the first connection was closed, not leaked
    assert upstream.connections == 2


@LOOPS
def test_a_second_answer_in_the_same_read_as_the_first_is_ignored_and_the_connection_not_reused(run):
    run(_second_answer_same_read())


async def _second_answer_same_read():
    async def handler(reader, writer):
        while True:
            await read_request(reader)
            writer.write(answer(b"ok") + b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 6\r\n\r\nstale!")
            await writer.drain()

    upstream, transport = Upstream(handler), transport_for()
    async with upstream as url, make_client(transport) as client:
        for _ in range(2):
            response = await client.get(url)
            assert (response.status_code, response.content) == (200, b"ok")
        assert transport.open_connections == 0
    assert upstream.connections == 2


@LOOPS
def test_an_idle_connection_on_a_descriptor_past_1024_is_reused(run):
    run(_high_descriptor())


async def _high_descriptor():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip("the descriptor limit is below 2048")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]  # as a busy relay's client sockets would be
    try:
        upstream, transport = Upstream(keep_alive()), transport_for()
        async with upstream as url, make_client(transport) as client:
            for _ in range(2):
                assert (await client.get(url)).text == "ok"
        assert upstream.connections == 1
    finally:
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_an_idle_connection_past_its_keepalive_expiry_is_replaced():
    asyncio.run(_expiry())


async def _expiry():
    hung_up = []

    async def handler(reader, writer):
        for _ in range(2):
            await read_request(reader)
            writer.write(answer())
        hung_up.append(await hang_up_seen(reader))

    upstream, transport = Upstream(handler), transport_for(keepalive_expiry=0.05)
    async with upstream as url, make_client(transport) as client:
        assert (await client.get(url)).text == "ok"
        assert (await client.get(url)).text == "ok"  # still fresh: the same connection
        assert upstream.connections == 1
        await asyncio.sleep(0.1)
        assert (await client.get(url)).text == "ok"
        assert upstream.connections == 2
        assert transport.open_connections == 1
        await asyncio.sleep(0.05)
        assert hung_up == [True]  # the expired connection was closed, not leaked


def test_a_response_saying_connection_close_does_not_leave_its_connection_for_reuse():
    asyncio.run(_connection_close())


async def _connection_close():
    hung_up = []

    async def handler(reader, writer):  # says "close" but would gladly answer more requests on the connection
        await read_request(reader)
        writer.write(answer(b"ok", "connection: close"))
        hung_up.append(await hang_up_seen(reader))

    upstream, transport = Upstream(handler), transport_for()
    async with upstream as url, make_client(transport) as client:
        assert (await client.get(url)).text == "ok"
        assert transport.open_connections == 0
        assert (await client.get(url)).text == "ok"
        await asyncio.sleep(0.05)
        assert hung_up[:1] == [True]  # the client closed the first connection itself
    assert upstream.connections == 2


# Response framing.


def test_a_content_length_body_is_read_exactly_and_the_connection_kept():
    asyncio.run(_content_length())


async def _content_length():
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\nx-upstream: yes\r\n\r\nhello world")
        await keep_alive(body=b"again")(reader, writer)

    upstream, transport = Upstream(handler), transport_for()
    async with upstream as url, make_client(transport) as client:
        response = await client.get(url)
        assert (response.status_code, response.content) == (200, b"hello world")
        assert response.headers["x-upstream"] == "yes"
        assert response.http_version == "HTTP/1.1"
        assert (await client.get(url)).content == b"again"
    assert upstream.connections == 1


@LOOPS
def test_chunked_body_pieces_arrive_as_the_server_sends_them(run):
    run(_chunked())


async def _chunked():
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def handler(reader, writer):
        await read_request(reader)
        writer.write(CHUNKED_HEAD)
        for piece in (b"first", b"second", b"third"):
            writer.write(chunk(piece))
            await writer.drain()
            # The next piece goes only once the client has this one: a transport that waited for the whole body
            # would stall here.
            assert await asyncio.wait_for(received.get(), WAIT) == piece
        writer.write(b"0\r\n\r\n")
        await keep_alive()(reader, writer)

    upstream, transport = Upstream(handler), transport_for()
    async with upstream as url, make_client(transport) as client:
        pieces = []
        async with client.stream("GET", url) as response:
            async for piece in response.aiter_raw():
                pieces.append(piece)
                received.put_nowait(piece)
        assert pieces == [b"first", b"second", b"third"]
        assert (await client.get(url)).text == "ok"  # the chunked end was found: the connection is reused
    assert upstream.connections == 1


def test_a_body_without_length_ends_when_the_server_closes():
    asyncio.run(_close_delimited())


async def _close_delimited():
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nhello ")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"world")

    upstream, transport = Upstream(handler), transport_for()
    async with upstream as url, make_client(transport) as client:
        assert (await client.get(url)).content == b"hello world"
        assert (await client.get(url)).content == b"hello world"
        assert transport.open_connections == 0
    assert upstream.connections == 2


def test_a_head_response_has_no_body_despite_its_content_length():
    asyncio.run(_head())


async def _head():
    async def handler(reader, writer):
        while True:
            head, _, _ = await read_request(reader)
            body = b"" if head.startswith(b"HEAD ") else b"hello"  # RFC 9110 9.3.2: the length of the GET's body
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n" + body)

    upstream, transport = Upstream(handler), transport_for()
    async with upstream as url, make_client(transport) as client:
        response = await client.head(url, timeout=httpx.Timeout(WAIT, read=0.5))
        assert (response.status_code, response.content, response.headers["content-length"]) == (200, b"", "5")
        assert (await client.get(url)).content == b"hello"
    assert upstream.connections == 1


@pytest.mark.parametrize("status", [100, 103])
@pytest.mark.parametrize("split", [False, True], ids=["one-write", "two-writes"])
def test_interim_responses_are_skipped_for_the_final_one(status, split):
    asyncio.run(_interim(status, split))


async def _interim(status, split):
    interim = {100: b"HTTP/1.1 100 Continue\r\n\r\n",
               103: b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"}[status]

    async def handler(reader, writer):
        await read_request(reader)
        writer.write(interim)
        if split:
            await writer.drain()
            await asyncio.sleep(0.02)
        writer.write(answer(b"final", "x-final: yes"))
        await keep_alive()(reader, writer)

    upstream, transport = Upstream(handler), transport_for()
    async with upstream as url, make_client(transport) as client:
        response = await client.get(url)
        assert (response.status_code, response.reason_phrase, response.content) == (200, "OK", b"final")
        assert response.headers.get("x-final") == "yes" and "link" not in response.headers
        assert (await client.get(url)).text == "ok"
    assert upstream.connections == 1


# Broken answers.


@pytest.mark.parametrize("truncated", [
    b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b",
    CHUNKED_HEAD + chunk(b"hello"),
], ids=["content-length", "chunked"])
def test_a_body_cut_short_by_a_close_fails_with_a_transport_error(truncated):
    asyncio.run(_truncated(truncated))


async def _truncated(truncated):
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(truncated)  # and hang up

    upstream, transport = Upstream(handler), transport_for()
    async with upstream as url, make_client(transport) as client:
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)) as failed:
            await client.get(url)
        assert failed.value.request.url == url  # named, as httpx names the request of an error
        assert transport.open_connections == 0
        response = await client.send(client.build_request("GET", url), stream=True)
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)) as failed:
            [piece async for piece in response.aiter_raw()]
        assert failed.value.request is response.request
        assert transport.open_connections == 0


@LOOPS
def test_a_body_without_length_cut_off_by_a_reset_fails_with_read_error(run):
    run(_reset_unframed())


async def _reset_unframed():
    first_read = asyncio.Event()

    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: part\n\n")
        await asyncio.wait_for(first_read.wait(), WAIT)
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()  # with no lingering: a reset, not the close that would end such a body

    upstream, transport = Upstream(handler), transport_for()
    async with upstream as url, make_client(transport) as client:
        pieces = []
        with pytest.raises(httpx.ReadError):
            async with client.stream("GET", url) as response:
                async for piece in response.aiter_raw():
                    pieces.append(piece)
                    first_read.set()
        assert pieces == [b"data: part\n\n"]
        assert transport.open_connections == 0


def test_a_server_closing_without_answering_fails_with_remote_protocol_error():
    asyncio.run(_no_answer())


async def _no_answer():
    async def handler(reader, writer):
        await read_request(reader)

    upstream, transport = Upstream(handler), transport_for()
    async with upstream as url, make_client(transport) as client:
        request = client.build_request("GET", url)
        with pytest.raises(httpx.RemoteProtocolError) as failed:
            await client.send(request)
        assert failed.value.request is request  # named, as httpx names the request of the errors it raises
        assert transport.open_connections == 0


def test_an_answer_that_is_not_http_fails_with_remote_protocol_error():
    asyncio.run(_garbage())


async def _garbage():
    async def handler(reader, writer):  # answers, then keeps the connection open: only parsing can fail the request
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await hang_up_seen(reader)

    upstream, transport = Upstream(handler), transport_for()
    loop = asyncio.get_running_loop()
    async with upstream as url, make_client(transport) as client:
        started = loop.time()
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(url)
        assert loop.time() - started < 1  # at once, not at the read timeout
        assert transport.open_connections == 0


# Timeouts and refusals.


def test_a_server_that_never_answers_fails_with_read_timeout():
    asyncio.run(_never_answers())


async def _never_answers():
    hung_up = asyncio.Event()

    async def handler(reader, writer):
        await read_request(reader)
        if await hang_up_seen(reader):
            hung_up.set()

    upstream, transport = Upstream(handler), transport_for()
    loop = asyncio.get_running_loop()
    async with upstream as url, make_client(transport) as client:
        started = loop.time()
        with pytest.raises(httpx.ReadTimeout):
            await client.get(url, timeout=httpx.Timeout(WAIT, read=0.1))
        assert 0.09 <= loop.time() - started < 1
        assert transport.open_connections == 0
        await asyncio.wait_for(hung_up.wait(), WAIT)  # the timed-out connection was closed


def test_a_body_that_stalls_fails_with_read_timeout_while_reading():
    asyncio.run(_stalled_body())


async def _stalled_body():
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
        await hang_up_seen(reader)

    upstream, transport = Upstream(handler), transport_for()
    async with upstream as url, make_client(transport) as client:
        pieces = []
        with pytest.raises(httpx.ReadTimeout):
            async with client.stream("GET", url, timeout=httpx.Timeout(WAIT, read=0.1)) as response:
                async for piece in response.aiter_raw():
                    pieces.append(piece)
        assert pieces == [b"hello"]
        assert transport.open_connections == 0


def test_the_read_timeout_counts_from_the_last_bytes_and_a_shorter_one_on_a_reused_connection_holds():
    asyncio.run(_read_timeout_per_read())


async def _read_timeout_per_read():
    async def handler(reader, writer):
        await read_request(reader)  # a body arriving slowly, in pieces closer together than the read timeout
        writer.write(CHUNKED_HEAD)
        for i in range(8):
            await asyncio.sleep(0.05)
            writer.write(chunk(b"%d" % i))
        writer.write(b"0\r\n\r\n")
        await read_request(reader)  # an answer after a while, asked for with a long read timeout
        await asyncio.sleep(0.2)
        writer.write(answer())
        await read_request(reader)  # then never an answer, asked for with a short one
        await hang_up_seen(reader)

    upstream, transport = Upstream(handler), transport_for()
    loop = asyncio.get_running_loop()
    async with upstream as url, make_client(transport) as client:
        started = loop.time()
        response = await client.get(url, timeout=httpx.Timeout(WAIT, read=0.15))
        assert response.text == "01234567" and loop.time() - started >= 0.4  # longer than one read timeout
        assert (await client.get(url, timeout=httpx.Timeout(WAIT, read=1))).text == "ok"
        started = loop.time()
        with pytest.raises(httpx.ReadTimeout):
            await client.get(url, timeout=httpx.Timeout(WAIT, read=0.1))  # shorter than the last request's
        assert 0.09 <= loop.time() - started < 0.5  # not at the longer timeout's deadline, 0.8 s on
        assert upstream.connections == 1


def test_connecting_to_a_closed_port_fails_with_connect_error_and_frees_its_place():
    asyncio.run(_refused())


async def _refused():
    upstream, transport = Upstream(keep_alive()), transport_for(max_connections=1)
    async with upstream as url, make_client(transport) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{free_port()}/")
        assert transport.open_connections == 0
        assert (await client.get(url, timeout=httpx.Timeout(WAIT, pool=0.2))).text == "ok"


def test_a_request_body_the_server_does_not_read_fails_with_write_timeout():
    asyncio.run(_write_timeout())


async def _write_timeout():
    async def handler(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(WAIT)  # reads nothing more

    upstream, transport = Upstream(handler), transport_for()
    async with upstream as url, make_client(transport) as client:
        with pytest.raises(httpx.WriteTimeout):
            await client.post(url, content=b"x" * (16 * 1024 * 1024), timeout=httpx.Timeout(WAIT, write=0.1))
        assert transport.open_connections == 0


# Request bodies and the request line.


def test_a_bytes_body_is_sent_intact_with_its_length():
    asyncio.run(_bytes_body())


async def _bytes_body():
    seen = []
    payload = bytes(range(256)) * 40

    async def handler(reader, writer):
        seen.append(await read_request(reader))
        writer.write(answer())
        await hang_up_seen(reader)

    async with Upstream(handler) as url, make_client(transport_for()) as client:
        assert (await client.post(url, content=payload)).text == "ok"
    (head, headers, body), = seen
    assert head.startswith(b"POST / HTTP/1.1\r\n")
    assert headers["content-length"] == str(len(payload)) and "transfer-encoding" not in headers
    assert body == payload


@pytest.mark.parametrize("headers", [
    {"content-type": "application/json", "authorization": "Bearer sk-upstream"},
    {"Host": "upstream.example", "X-Custom": "1"},  # an operator's header override naming the host
    {"Content-Type": "application/json", "CONTENT-LENGTH": "30"},  # any case
    {"Transfer-Encoding": "chunked"},
], ids=["plain", "host", "named-length", "chunked"])
def test_a_relay_post_goes_on_the_wire_as_httpx_would_send_it(headers):
    asyncio.run(_relay_post(headers))


async def _relay_post(headers):
    seen = []

    async def handler(reader, writer):
        while True:
            head, _received, body = await read_request(reader)
            seen.append((head, body))
            writer.write(answer())
            await writer.drain()

    payload = b'{"model": "m", "messages": []}'
    timeout = {"connect": WAIT, "read": WAIT, "write": WAIT, "pool": WAIT}
    async with Upstream(handler) as url, make_client(transport_for()) as client:
        target = httpx.URL(url + "/v1/chat/completions")
        ours = post_request(target, dict(headers), payload, timeout)
        assert ours.content == payload and ours.extensions == {"timeout": timeout}
        httpx_own = httpx.Request("POST", target, content=payload, headers=dict(headers),
                                  extensions={"timeout": timeout})
        for request in (ours, httpx_own):
            assert (await client.send(request)).text == "ok"
    assert len(seen) == 2 and seen[0] == seen[1]  # the same bytes: head (names, case, order) and body


def test_a_streamed_body_without_length_is_sent_chunked():
    asyncio.run(_streamed_chunked())


async def _streamed_chunked():
    seen = []

    async def handler(reader, writer):
        while True:
            seen.append(await read_request(reader))  # checks the chunk framing
            writer.write(answer())

    upstream = Upstream(handler)
    async with upstream as url, make_client(transport_for()) as client:
        assert (await client.post(url, content=upload(b"alpha", b"", b"beta"))).text == "ok"
        assert (await client.post(url, content=upload())).text == "ok"  # an empty stream: just the last chunk
        assert (await client.get(url)).text == "ok"  # and nothing left over on the connection
    assert upstream.connections == 1
    (_, headers, body), (_, _, empty), _ = seen
    assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
    assert (body, empty) == (b"alphabeta", b"")


def test_a_streamed_body_with_a_content_length_is_sent_as_is():
    asyncio.run(_streamed_with_length())


async def _streamed_with_length():
    seen = []

    async def handler(reader, writer):
        while True:
            seen.append(await read_request(reader))
            writer.write(answer())

    upstream = Upstream(handler)
    async with upstream as url, make_client(transport_for()) as client:
        response = await client.post(url, content=upload(b"alpha", b"beta"), headers={"content-length": "9"})
        assert response.text == "ok"
        assert (await client.get(url)).text == "ok"  # no chunk framing was left on the connection
    assert upstream.connections == 1
    (_, headers, body), (next_head, _, _) = seen
    assert headers["content-length"] == "9" and "transfer-encoding" not in headers
    assert body == b"alphabeta"
    assert next_head.startswith(b"GET / HTTP/1.1\r\n")


def test_a_large_streamed_upload_survives_write_back_pressure():
    asyncio.run(_large_upload())


async def _large_upload():
    payload = random.Random(3).randbytes(4 * 1024 * 1024)
    seen = []

    async def handler(reader, writer):
        await asyncio.sleep(0.1)  # let the client's send buffer fill up first
        seen.append(await read_request(reader))
        writer.write(answer())
        await hang_up_seen(reader)

    pieces = [payload[i:i + 65536] for i in range(0, len(payload), 65536)]
    async with Upstream(handler) as url, make_client(transport_for()) as client:
        assert (await client.post(url, content=upload(*pieces))).text == "ok"
    assert seen[0][2] == payload


def test_the_path_and_query_are_sent_as_given_with_a_host_header():
    asyncio.run(_request_line())


async def _request_line():
    seen = []

    async def handler(reader, writer):
        seen.append(await read_request(reader))
        writer.write(answer())
        await hang_up_seen(reader)

    upstream = Upstream(handler)
    async with upstream as url, make_client(transport_for()) as client:
        assert (await client.get(f"{url}/v1/x?a=1&b=%20")).text == "ok"
    (head, headers, _), = seen
    assert head.split(b"\r\n")[0] == b"GET /v1/x?a=1&b=%20 HTTP/1.1"
    assert headers["host"] == url.removeprefix("http://")


# Ending early, back-pressure, closing.


@LOOPS
def test_closing_a_stream_before_its_end_closes_its_connection(run):
    run(_closed_early())


async def _closed_early():
    hung_up = asyncio.Event()

    async def handler(reader, writer):
        await read_request(reader)
        if upstream.connections == 1:
            writer.write(CHUNKED_HEAD + chunk(b"first"))
            if await hang_up_seen(reader):
                hung_up.set()
        else:
            writer.write(answer())
            await hang_up_seen(reader)

    upstream, transport = Upstream(handler), transport_for()
    async with upstream as url, make_client(transport) as client:
        async with client.stream("GET", url) as response:
            async for piece in response.aiter_raw():
                assert piece == b"first"
                break
            assert transport.open_connections == 1
            await response.aclose()
            assert transport.open_connections == 0
        await asyncio.wait_for(hung_up.wait(), WAIT)  # the server saw the client hang up
        assert (await client.get(url)).text == "ok"
    assert upstream.connections == 2


@LOOPS
def test_a_request_cancelled_while_waiting_for_its_body_gives_its_place_back(run):
    run(_cancelled_before_the_body())


async def _cancelled_before_the_body():
    async def handler(reader, writer):
        await read_request(reader)
        # The first answer's head, then nothing yet (a model thinking before its first token); later answers whole.
        writer.write(CHUNKED_HEAD if upstream.connections == 1 else answer())
        await hang_up_seen(reader)

    upstream, transport = Upstream(handler), transport_for(max_connections=1)
    async with upstream as url, make_client(transport) as client:
        response = await client.send(client.build_request("GET", url), stream=True)

        async def relay_body():  # as the relay's forwarder reads it: nothing closes the response if it is cancelled
            async for _ in response.aiter_raw():
                pass

        reading = asyncio.create_task(relay_body())
        await asyncio.sleep(0.02)
        reading.cancel()  # a relay client hung up, or the relay shuts down
        await asyncio.wait([reading], timeout=WAIT)
        assert reading.cancelled()
        assert transport.open_connections == 0
        assert (await client.get(url, timeout=httpx.Timeout(WAIT, pool=0.2))).text == "ok"


@LOOPS
@pytest.mark.parametrize("reading", ["at-once", "after-a-pause"])
def test_a_large_body_arrives_intact(run, reading):
    run(_large_body(reading))


async def _large_body(reading):
    payload = random.Random(7).randbytes(2 * 1024 * 1024)

    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(payload), payload))
        await keep_alive()(reader, writer)

    upstream, transport = Upstream(handler), transport_for()
    async with upstream as url, make_client(transport) as client:
        if reading == "at-once":
            assert (await client.get(url)).content == payload
        else:
            async with client.stream("GET", url) as response:
                await asyncio.sleep(0.1)  # far more than the read-pause threshold piles up unread
                assert await response.aread() == payload
        assert (await client.get(url)).text == "ok"  # reading resumed, the connection is whole
    assert upstream.connections == 1


def test_closing_the_transport_closes_idle_connections():
    asyncio.run(_transport_close())


async def _transport_close():
    hung_up = asyncio.Event()

    async def handler(reader, writer):
        await read_request(reader)
        writer.write(answer())
        if await hang_up_seen(reader):
            hung_up.set()

    transport = transport_for()
    async with Upstream(handler) as url:
        client = make_client(transport)
        assert (await client.get(url)).text == "ok"
        assert transport.open_connections == 1
        await client.aclose()
        assert transport.open_connections == 0
        await asyncio.wait_for(hung_up.wait(), WAIT)


# TLS.


@pytest.fixture
def certificate(tmp_path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1: the server's context, and a client context that trusts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    return server, ssl.create_default_context(cafile=str(cert_path))


@LOOPS
def test_https_to_a_trusted_certificate_works_and_keeps_the_connection(run, certificate):
    run(_https(*certificate))


async def _https(server_context, client_context):
    upstream, transport = Upstream(keep_alive(body=b"secret"), tls=server_context), transport_for(
        ssl_context=client_context)
    async with upstream as url, make_client(transport) as client:
        assert url.startswith("https://")
        assert (await client.get(url)).text == "secret"
        assert (await client.get(url)).text == "secret"
    assert upstream.connections == 1


def test_https_to_an_unknown_certificate_fails_with_connect_error(certificate):
    asyncio.run(_https_untrusted(certificate[0]))


async def _https_untrusted(server_context):
    upstream, transport = Upstream(keep_alive(), tls=server_context), transport_for()
    async with upstream as url, make_client(transport) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(url)
        assert transport.open_connections == 0


# The client.


def test_cookies_an_upstream_sets_are_neither_kept_nor_sent_back():
    asyncio.run(_cookies())


async def _cookies():
    seen: list[dict[str, str]] = []

    def respond(head, headers):
        seen.append(headers)
        return answer(b"ok", "set-cookie: session=abc; Path=/")

    handler = answering(respond)
    upstream, transport = Upstream(handler), transport_for()
    async with upstream as url, make_client(transport) as client:
        first = await client.get(url)
        assert first.headers["set-cookie"].startswith("session=") and first.request.url == url
        await client.get(url)
        assert not client.cookies
    assert [("cookie" in headers) for headers in seen] == [False, False]


def test_a_streamed_answer_is_left_unread_and_a_plain_one_read():
    asyncio.run(_streamed_and_plain())


async def _streamed_and_plain():
    upstream, transport = Upstream(keep_alive(body=b"x" * 1000)), transport_for()
    async with upstream as url, make_client(transport) as client:
        streamed = await client.send(client.build_request("GET", url), stream=True)
        assert not streamed.is_stream_consumed
        assert await streamed.aread() == b"x" * 1000
        plain = await client.send(client.build_request("GET", url))
        assert plain.is_closed and plain.content == b"x" * 1000
        assert transport.open_connections == 1


def test_a_compressed_answer_is_read_decoded_and_streamed_as_sent():
    asyncio.run(_compressed())


async def _compressed():
    text = b'{"answer": "' + b"words " * 500 + b'"}'
    packed = gzip.compress(text)
    upstream, transport = Upstream(keep_alive(body=packed)), transport_for()
    upstream.handler = answering(lambda head, headers: answer(packed, "content-encoding: gzip"))
    async with upstream as url, make_client(transport) as client:
        assert (await client.get(url)).content == text
        streamed = await client.send(client.build_request("GET", url), stream=True)
        assert b"".join([piece async for piece in streamed.aiter_raw()]) == packed
        streamed = await client.send(client.build_request("GET", url), stream=True)
        assert b"".join([piece async for piece in streamed.aiter_raw(100)]) == packed  # httpx's re-chunking
        assert transport.open_connections == 1


def test_authentication_and_redirects_when_asked_for_go_httpx_s_way():
    asyncio.run(_asked_for())


async def _asked_for():
    def respond(head, headers):
        if head.startswith(b"GET /old "):
            return b"HTTP/1.1 302 Found\r\nlocation: /new\r\ncontent-length: 0\r\n\r\n"
        return answer(headers.get("authorization", "none").encode())

    handler = answering(respond)
    upstream, transport = Upstream(handler), transport_for()
    async with upstream as url, make_client(transport) as client:
        assert (await client.get(url + "/old")).status_code == 302  # the client's own choice: no redirects
        followed = await client.get(url + "/old", follow_redirects=True)
        assert followed.status_code == 200 and followed.url.path == "/new"
        assert (await client.get(url, auth=("user", "pass"))).text.startswith("Basic ")
        assert (await client.get(url)).text == "none"


def test_a_request_built_without_the_client_gets_the_client_s_timeouts_and_redirect_choice():
    asyncio.run(_built_apart())


async def _built_apart():
    async def handler(reader, writer):
        head, _headers, _body = await read_request(reader)
        if head.startswith(b"GET /old "):
            writer.write(b"HTTP/1.1 302 Found\r\nlocation: /new\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
            await read_request(reader)
            writer.write(answer(b"moved"))
            await writer.drain()
        await hang_up_seen(reader)  # anything else: never answered

    upstream, transport = Upstream(handler), transport_for()
    async with upstream as url, upstream_client(transport=transport, timeout=0.2) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await client.send(httpx.Request("GET", url))  # no timeout of its own
        assert time.monotonic() - started < WAIT
        client.follow_redirects = True
        assert (await client.send(client.build_request("GET", url + "/old"))).text == "moved"


def test_credentials_in_an_upstream_url_are_sent_as_httpx_sends_them():
    asyncio.run(_url_credentials())


async def _url_credentials():
    handler = answering(lambda head, headers: answer(headers.get("authorization", "none").encode()))
    upstream, transport = Upstream(handler), transport_for()
    async with upstream as url, make_client(transport) as client:
        with_credentials = url.replace("http://", "http://proxy-user:proxy-pass@")
        assert (await client.get(with_credentials)).text == "Basic cHJveHktdXNlcjpwcm94eS1wYXNz"
        assert (await client.get(url)).text == "none"


def test_an_answer_whose_body_is_all_here_is_told_from_one_still_arriving():
    asyncio.run(_arrived())


async def _arrived():
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhello world")
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
        await hang_up_seen(reader)

    upstream, transport = Upstream(handler), transport_for()
    async with upstream as url, make_client(transport) as client:
        async with client.stream("GET", url) as response:
            for _ in range(100):  # the body follows the head in the same write; let it land
                if body_arrived(response):
                    break
                await asyncio.sleep(0.01)
            assert body_arrived(response)
            assert await response.aread() == b"hello world"
            assert not body_arrived(response)  # read: nothing left
        async with client.stream("GET", url, timeout=httpx.Timeout(WAIT, read=0.1)) as response:
            await asyncio.sleep(0.05)
            assert not body_arrived(response)  # five bytes of ten
            with pytest.raises(httpx.ReadTimeout):
                await response.aread()
