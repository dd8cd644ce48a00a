"""The relay's upstream pool: it reuses, queues and drops connections as httpcore's does, in one pass."""

from __future__ import annotations

import asyncio

import httpcore
import httpx

from relay.pool import LinearConnectionPool, upstream_transport

ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"


class Upstream:
    """A keep-alive HTTP/1.1 server on loopback that counts connections; `close_idle` hangs up after each answer
    without saying so (as servers whose keep-alive ran out do); `delay` holds each answer."""

    def __init__(self, close_idle: bool = False, delay: float = 0.0) -> None:
        self.close_idle, self.delay = close_idle, delay
        self.connections = 0
        self.server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await asyncio.sleep(self.delay)
                writer.write(ANSWER)
                await writer.drain()
                if self.close_idle:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=upstream_transport(max_connections=2, max_keepalive=10), timeout=5)


def test_sequential_requests_share_a_connection():
    asyncio.run(_sequential())


async def _sequential():
    upstream = Upstream()
    async with upstream as url, _client() as client:
        assert isinstance(client._transport._pool, LinearConnectionPool)
        for _ in range(5):
            assert (await client.get(url)).status_code == 200
    assert upstream.connections == 1


def test_a_connection_the_server_closed_while_idle_is_not_reused():
    asyncio.run(_closed_while_idle())


async def _closed_while_idle():
    upstream = Upstream(close_idle=True)
    async with upstream as url, _client() as client:
        for _ in range(3):
            assert (await client.get(url)).text == "ok"
            await asyncio.sleep(0.05)  # the server's close reaches the client's socket
    assert upstream.connections == 3


def test_requests_beyond_the_connection_limit_wait_their_turn():
    asyncio.run(_beyond_the_limit())


async def _beyond_the_limit():
    upstream = Upstream(delay=0.05)
    async with upstream as url, _client() as client:
        answers = await asyncio.gather(*(client.get(url) for _ in range(6)))
    assert [a.text for a in answers] == ["ok"] * 6
    assert upstream.connections == 2


def test_idle_connections_are_not_each_examined_on_every_request(monkeypatch):
    asyncio.run(_idle_not_examined(monkeypatch))


async def _idle_not_examined(monkeypatch):
    monkeypatch.setattr(LinearConnectionPool, "SWEEP_SECONDS", 3600)  # the one sweep is the pool's first call
    upstream = Upstream(delay=0.05)
    async with upstream as url:
        client = httpx.AsyncClient(transport=upstream_transport(max_connections=50, max_keepalive=50), timeout=5)
        async with client:
            await asyncio.gather(*(client.get(url) for _ in range(30)))  # 30 connections, idle afterwards
            asked = []
            original = httpcore.AsyncHTTPConnection.has_expired
            monkeypatch.setattr(httpcore.AsyncHTTPConnection, "has_expired",
                                lambda self: asked.append(self) or original(self))
            for _ in range(10):
                assert (await client.get(url)).text == "ok"
    assert upstream.connections == 30
    assert len(asked) <= 10  # the one candidate per request (httpcore's pool asked all 30, twice a request)
