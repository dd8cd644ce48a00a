"""uvicorn's connections as `config.serve_uvicorn` sets them up: a request's application started once the read that
brought its head is parsed, its first step at once. A real uvicorn process is checked in test_web_processes.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from config.serve_uvicorn import EagerHttpToolsProtocol
from config.web_processes import UVICORN_SETTINGS
from tests.config.test_daphne_http import echo  # answers with the request's parts and whole body


class Transport(asyncio.Transport):
    """What uvicorn's protocol writes to and asks of a TCP connection, in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closing = False
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("10.0.0.7", 50123), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


def connection(loop: asyncio.AbstractEventLoop) -> tuple[EagerHttpToolsProtocol, Transport]:
    config = uvicorn.Config(echo, **dict(UVICORN_SETTINGS, http=EagerHttpToolsProtocol))
    config.load()
    protocol = EagerHttpToolsProtocol(config=config, server_state=ServerState(), app_state={}, _loop=loop)
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport


def bodies(written: bytes) -> list[str]:
    return [json.loads(part.split(b"\r\n\r\n", 1)[1])["body"] for part in written.split(b"HTTP/1.1 ")[1:]]


def test_a_request_whose_body_came_with_its_head_is_answered_within_the_read_that_brought_it():
    async def scenario():
        protocol, transport = connection(asyncio.get_running_loop())
        protocol.data_received(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        at_once, transport.written = transport.written, b""
        protocol.data_received(b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhe")
        before_the_rest = transport.written
        protocol.data_received(b"llo")
        for _ in range(20):
            await asyncio.sleep(0)
        return at_once, before_the_rest, transport.written[len(before_the_rest):]

    at_once, before_the_rest, later = asyncio.run(scenario())
    assert bodies(at_once) == ["hello"] and before_the_rest == b"" and bodies(later) == ["hello"]


def test_pipelined_requests_are_all_answered_in_order():
    async def scenario():
        protocol, transport = connection(asyncio.get_running_loop())
        protocol.data_received(b"".join(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n%03d" % n
                                        for n in range(200)))
        for _ in range(2000):
            await asyncio.sleep(0)
            if transport.written.count(b"HTTP/1.1 200") == 200:
                break
        return transport.written

    assert bodies(asyncio.run(scenario())) == ["%03d" % n for n in range(200)]


def test_a_request_followed_in_its_read_by_bytes_uvicorn_refuses_is_not_started():
    started = []

    async def recording(scope, receive, send):
        started.append(scope["path"])
        await echo(scope, receive, send)

    async def scenario():
        protocol, transport = connection(asyncio.get_running_loop())
        protocol.app = recording
        protocol.data_received(b"POST /charge HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi\x00\x01 not http\r\n\r\n")
        for _ in range(20):
            await asyncio.sleep(0)
        return transport

    transport = asyncio.run(scenario())
    assert started == [] and transport.closing
    assert transport.written.startswith(b"HTTP/1.1 400 ") and transport.written.count(b"HTTP/1.1 ") == 1
