"""Daphne's connections on httptools (`config.daphne_http`): each driven byte by byte through Twisted's in-memory
transport and clock, with the ASGI applications run on an asyncio loop, the server being what Daphne's offers a
connection. A real Daphne process is checked in test_daphne_tuning.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from config.daphne_http import ABORT_SECONDS, BODY_UNREAD_LIMIT, HttpChannel

IDLE = 60


class Server:
    """What Daphne's server gives a connection: the application, the connections' book, the access log."""

    server_name = "daphne"
    root_path = ""
    http_timeout: float | None = None
    proxy_forwarded_address_header: str | None = None
    proxy_forwarded_port_header: str | None = None
    proxy_forwarded_proto_header: str | None = None

    def __init__(self, application: Any) -> None:
        self.application = application
        self.connections: dict[Any, dict] = {}
        self.logged: list[dict] = []
        self.ws_factory = WebSocketFactory()

    def protocol_connected(self, protocol: Any) -> None:
        assert protocol not in self.connections
        self.connections[protocol] = {}

    def protocol_disconnected(self, protocol: Any) -> None:
        self.connections[protocol].setdefault("disconnected", True)

    def log_action(self, kind: str, action: str, details: dict) -> None:
        self.logged.append(details)


class WebSocketFactory:
    """Daphne's WebSocket factory, recording the protocol it builds and what that protocol receives."""

    def __init__(self) -> None:
        self.built: list[WebSocketProtocol] = []

    def buildProtocol(self, address: Any) -> WebSocketProtocol:  # noqa: N802 (Twisted's names)
        protocol = WebSocketProtocol()
        self.built.append(protocol)
        return protocol


class WebSocketProtocol:
    def __init__(self) -> None:
        self.received = b""
        self.transport: Any = None

    def makeConnection(self, transport: Any) -> None:  # noqa: N802
        self.transport = transport

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.received += data


class Connection:
    """One client connection to a channel; `settle()` lets the applications run."""

    def __init__(self, application: Any, *, server: Server | None = None) -> None:
        self.server = server or Server(application)
        self.clock = Clock()
        self.transport = StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 8000),
                                         peerAddress=IPv4Address("TCP", "10.0.0.7", 50123))
        self.channel = HttpChannel(self.server, idle_seconds=IDLE, clock=self.clock)
        self.channel.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.channel.dataReceived(data)

    def sent(self) -> bytes:
        out = self.transport.value()
        self.transport.clear()
        return out

    def lose(self) -> None:
        self.channel.connectionLost(None)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def run(scenario: Any) -> Any:
    return asyncio.run(asyncio.wait_for(scenario(), 10))


async def echo(scope: dict, receive: Any, send: Any) -> None:
    """Answers with what it was asked: the scope's parts and the whole body."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    seen = {key: scope[key] for key in ("method", "path", "raw_path", "root_path", "query_string", "scheme",
                                        "http_version", "client", "server")}
    seen["headers"] = [[name.decode(), value.decode()] for name, value in scope["headers"]]
    seen["raw_path"], seen["query_string"] = seen["raw_path"].decode(), seen["query_string"].decode()
    seen["body"] = body.decode()
    answer = json.dumps(seen).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))]})
    await send({"type": "http.response.body", "body": answer})


def answers(data: bytes) -> list[tuple[str, dict[str, str], bytes]]:
    """The answers in a connection's bytes: status line, headers (names lowered), body (Content-Length or chunked)."""
    found = []
    while data:
        head, _, data = data.partition(b"\r\n\r\n")
        status, *lines = head.decode().split("\r\n")
        headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
        if "content-length" in headers:
            size = int(headers["content-length"])
            body, data = data[:size], data[size:]
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size_line, _, data = data.partition(b"\r\n")
                size = int(size_line, 16)
                body, data = body + data[:size], data[size + 2:]
                if not size:
                    break
        else:
            body, data = data, b""
        found.append((status, headers, body))
    return found


# ---- requests and answers ----------------------------------------------------------------------------------------


def test_a_request_reaches_the_application_as_daphne_describes_it_and_the_connection_serves_the_next():
    async def scenario():
        conn = Connection(echo)
        conn.send(b"POST /v1/a%20b/c?x=1&y=%20 HTTP/1.1\r\nHost: example\r\nX_Smuggled: 1\r\nX-Trailing: v  \r\n"
                  b"Daphne-Root-Path: /root%20path\r\nContent-Length: 5\r\n\r\nhe")
        conn.send(b"llo")
        await settle()
        first = answers(conn.sent())
        conn.send(b"GET /second HTTP/1.1\r\nHost: example\r\n\r\n")
        await settle()
        return first, answers(conn.sent()), conn

    first, second, conn = run(scenario)
    (status, headers, body), = first
    assert status == "HTTP/1.1 200 OK" and headers["server"] == "daphne" and "connection" not in headers
    seen = json.loads(body)
    assert seen == {"method": "POST", "path": "/v1/a b/c", "raw_path": "/v1/a%20b/c", "root_path": "/root path",
                    "query_string": "x=1&y=%20", "scheme": "http", "http_version": "1.1",
                    "client": ["10.0.0.7", 50123], "server": ["127.0.0.1", 8000],
                    "headers": [["host", "example"], ["x-trailing", "v"], ["content-length", "5"]], "body": "hello"}
    assert json.loads(second[0][2])["path"] == "/second"
    assert not conn.transport.disconnecting
    assert [entry["path"] for entry in conn.server.logged] == ["/v1/a%20b/c?x=1&y=%20", "/second"]
    assert conn.server.logged[0]["status"] == 200 and conn.server.logged[0]["client"] == "10.0.0.7:50123"


def test_a_request_whose_body_came_with_its_head_is_answered_within_the_read_that_brought_it():
    """The application starts once the read is parsed, its first step at once: no turn of the event loop between the
    request's bytes and an answer the application can give straight away (a relayed call's upstream request)."""
    async def scenario():
        conn = Connection(echo)
        conn.send(b"POST /v1/x HTTP/1.1\r\nHost: example\r\nContent-Length: 5\r\n\r\nhello")
        at_once = answers(conn.sent())
        conn.send(b"POST /v1/y HTTP/1.1\r\nHost: example\r\nContent-Length: 5\r\n\r\nhe")  # the rest comes later
        before_the_rest = conn.sent()
        conn.send(b"llo")
        await settle()
        return at_once, before_the_rest, answers(conn.sent())

    at_once, before_the_rest, later = run(scenario)
    assert [json.loads(body)["body"] for _status, _headers, body in at_once] == ["hello"]
    assert before_the_rest == b""
    assert [json.loads(body)["body"] for _status, _headers, body in later] == ["hello"]


def test_pipelined_requests_are_answered_in_order_one_application_at_a_time():
    started: list[str] = []
    release = {}

    async def slow_first(scope, receive, send):
        started.append(scope["path"])
        await receive()
        if scope["path"] == "/one":
            release["one"] = asyncio.get_running_loop().create_future()
            await release["one"]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    async def scenario():
        conn = Connection(slow_first)
        conn.send(b"GET /one HTTP/1.1\r\n\r\nGET /two HTTP/1.1\r\n\r\nGET /six HTTP/1.1\r\n\r\n")
        await settle()
        waiting = (list(started), conn.transport.producerState, conn.sent())
        release["one"].set_result(None)
        await settle()
        return waiting, conn.transport.producerState, [body for _, _, body in answers(conn.sent())]

    (started_first, state_waiting, sent_waiting), state_after, bodies = run(scenario)
    assert started_first == ["/one"] and sent_waiting == b"" and state_waiting == "paused"
    assert bodies == [b"/one", b"/two", b"/six"] and started == ["/one", "/two", "/six"]
    assert state_after == "producing"


@pytest.mark.parametrize("seed", range(8))
def test_requests_cut_anywhere_on_the_wire_get_the_same_answers(seed):
    import random

    stream = (b"GET /a?q=1 HTTP/1.1\r\nHost: x\r\n\r\n"
              b"POST /b HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world"
              b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"4\r\n\xe4\xbd\xa0\xe5\r\n2\r\n\xa5\xbd\r\n0\r\n\r\n"
              b"GET /d HTTP/1.1\r\nX-Long: " + b"v" * 3000 + b"\r\n\r\n")
    cuts = sorted(random.Random(seed).sample(range(1, len(stream)), 12)) if seed else list(range(1, len(stream)))

    async def scenario():
        conn = Connection(echo)
        for start, end in zip([0, *cuts], [*cuts, len(stream)]):
            conn.send(stream[start:end])
            await settle()
        return answers(conn.sent()), conn

    found, conn = run(scenario)
    seen = [json.loads(body) for _status, _headers, body in found]
    assert [(item["path"], item["body"]) for item in seen] == [("/a", ""), ("/b", "hello world"), ("/c", "你好"),
                                                                ("/d", "")]
    assert seen[0]["query_string"] == "q=1" and dict(seen[3]["headers"])["x-long"] == "v" * 3000
    assert not conn.transport.disconnecting and conn.transport.producerState == "producing"


def _answer(status: int, *, headers: list | None = None, chunks: tuple[bytes, ...] = (b"",)) -> Any:
    async def application(scope, receive, send):
        await send({"type": "http.response.start", "status": status, "headers": headers or []})
        for index, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": index < len(chunks) - 1})
    return application


def _exchange(application: Any, request: bytes) -> tuple[bytes, Connection]:
    async def scenario():
        conn = Connection(application)
        conn.send(request)
        await settle()
        return conn.sent(), conn
    return run(scenario)


def test_an_answer_without_a_length_is_chunked_frame_by_frame_and_ended():
    sent, conn = _exchange(_answer(200, chunks=(b"data: 1\n\n", b"", b"data: 2\n\n", b"")),
                           b"GET /stream HTTP/1.1\r\n\r\n")
    assert sent.endswith(b"Transfer-Encoding: chunked\r\nServer: daphne\r\n\r\n"
                         b"9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n")
    assert not conn.transport.disconnecting


@pytest.mark.parametrize("request_line, status", [(b"HEAD / HTTP/1.1", 200), (b"GET / HTTP/1.1", 204),
                                                  (b"GET / HTTP/1.1", 304)])
def test_head_requests_and_bodiless_statuses_get_no_body(request_line, status):
    sent, conn = _exchange(_answer(status, headers=[(b"content-length", b"5")], chunks=(b"12345",)),
                           request_line + b"\r\n\r\n")
    assert sent.endswith(b"content-length: 5\r\nServer: daphne\r\n\r\n") and not conn.transport.disconnecting


def test_an_http_10_answer_without_a_length_ends_with_the_connection():
    sent, conn = _exchange(_answer(200, chunks=(b"abc", b"def")), b"GET / HTTP/1.0\r\n\r\n")
    assert sent == b"HTTP/1.0 200 OK\r\nServer: daphne\r\nConnection: close\r\n\r\nabcdef"
    assert conn.transport.disconnecting


def test_a_client_asking_to_close_gets_its_answer_then_the_close():
    sent, conn = _exchange(_answer(200, headers=[(b"content-length", b"2")], chunks=(b"ok",)),
                           b"GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET /ignored HTTP/1.1\r\n\r\n")
    assert sent.count(b"HTTP/1.1") == 1 and b"Connection: close\r\n" in sent and conn.transport.disconnecting


def test_line_breaks_in_an_applications_header_value_cannot_start_a_header():
    sent, _conn = _exchange(_answer(200, headers=[(b"x-note", b"a\r\nSet-Cookie: x=1"), (b"content-length", b"0")]),
                            b"GET / HTTP/1.1\r\n\r\n")
    assert b"x-note: a Set-Cookie: x=1\r\n" in sent and b"\r\nSet-Cookie" not in sent


def test_the_server_header_is_the_applications_when_it_gives_one():
    sent, _conn = _exchange(_answer(200, headers=[(b"server", b"mine"), (b"content-length", b"0")]),
                            b"GET / HTTP/1.1\r\n\r\n")
    assert b"server: mine\r\n" in sent and b"daphne" not in sent


# ---- bodies --------------------------------------------------------------------------------------------------------


def test_a_chunked_body_arrives_whole_and_expect_continue_is_answered_before_it():
    async def scenario():
        conn = Connection(echo)
        conn.send(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n")
        await settle()
        interim = conn.sent()
        conn.send(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        await settle()
        return interim, answers(conn.sent())

    interim, ((_status, _headers, body),) = run(scenario)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert json.loads(body)["body"] == "abcde"


def test_reading_pauses_while_a_large_body_waits_unread_and_resumes_as_the_application_reads():
    states: list[str] = []
    conn_box: list[Connection] = []

    async def reader(scope, receive, send):
        await asyncio.sleep(0.05)  # the body piles up meanwhile
        states.append(conn_box[0].transport.producerState)
        total = 0
        while True:
            message = await receive()
            total += len(message["body"])
            states.append(conn_box[0].transport.producerState)
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % 6)]})
        await send({"type": "http.response.body", "body": b"%06d" % (total // 1024)})

    size = 3 * BODY_UNREAD_LIMIT

    async def scenario():
        conn = Connection(reader)
        conn_box.append(conn)
        conn.send(b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(size // 4096):
            conn.send(b"x" * 4096)
        await asyncio.sleep(0.1)
        return answers(conn.sent())

    ((_status, _headers, body),) = run(scenario)
    assert body == b"%06d" % (size // 1024)
    assert states[0] == "paused" and states[-1] == "producing"


def test_an_answer_given_before_the_body_arrived_closes_the_connection_after_it():
    sent, conn = _exchange(_answer(413, headers=[(b"content-length", b"0")]),
                           b"POST / HTTP/1.1\r\nContent-Length: 1000000\r\n\r\npartial")
    assert sent.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n") or sent.startswith(b"HTTP/1.1 413 Content")
    assert b"Connection: close\r\n" in sent and conn.transport.disconnecting


# ---- malformed requests --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("malformed", [
    b"GARBAGE\r\n\r\n",
    b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(501)) + b"\r\n",
    b"GET / HTTP/1.1\r\nX-Folded: a\r\n b\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc",
])
def test_a_malformed_request_gets_400_and_the_connection_closed(malformed):
    sent, conn = _exchange(echo, malformed)
    assert sent == b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    assert conn.transport.disconnecting and conn.server.connections == {}


def test_a_malformed_request_after_a_good_one_is_refused_after_the_good_ones_answer():
    sent, conn = _exchange(echo, b"GET /good HTTP/1.1\r\n\r\nGARBAGE\r\n\r\n")
    (status, _headers, body), (refused, _, _) = answers(sent)
    assert status == "HTTP/1.1 200 OK" and json.loads(body)["path"] == "/good"
    assert refused == "HTTP/1.1 400 Bad Request" and conn.transport.disconnecting


def test_a_body_that_turns_out_malformed_ends_its_application_as_a_disconnect():
    heard: list[dict] = []

    async def listener(scope, receive, send):
        heard.append(await receive())
        heard.append(await receive())

    async def scenario():
        conn = Connection(listener)
        conn.send(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await settle()
        conn.send(b"ZZ\r\n")
        await settle()
        return conn.sent()

    sent = run(scenario)
    assert heard == [{"type": "http.request", "body": b"abc", "more_body": True}, {"type": "http.disconnect"}]
    assert sent == b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def test_a_request_found_malformed_in_the_read_that_brought_its_head_is_refused_before_its_application_starts():
    started: list[dict] = []

    async def listener(scope, receive, send):
        started.append(scope)

    sent, conn = _exchange(listener, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nZZ\r\n")
    assert started == [] and not conn.server.connections
    assert sent == b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


# ---- applications that fail, clients that leave -------------------------------------------------------------------


def test_an_application_failing_before_its_answer_gets_500_and_the_connection_stays():
    async def failing(scope, receive, send):
        raise RuntimeError("boom")

    sent, conn = _exchange(failing, b"GET / HTTP/1.1\r\n\r\n")
    assert sent.startswith(b"HTTP/1.1 500 Internal Server Error\r\n") and b"Exception inside application." in sent
    assert not conn.transport.disconnecting


def test_an_application_ending_mid_answer_has_the_connection_closed():
    async def quitter(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})

    sent, conn = _exchange(quitter, b"GET / HTTP/1.1\r\n\r\n")
    assert sent.endswith(b"4\r\npart\r\n") and conn.transport.disconnecting  # no closing chunk: not whole


def test_a_client_leaving_mid_answer_is_heard_by_the_application_and_later_sends_are_dropped():
    heard: list[dict] = []

    async def streamer(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        heard.append(await receive())
        await send({"type": "http.response.body", "body": b"two", "more_body": True})

    async def scenario():
        conn = Connection(streamer)
        conn.send(b"GET / HTTP/1.1\r\n\r\n")
        await settle()
        before = conn.sent()
        conn.lose()
        await settle()
        return before, conn.sent(), conn

    before, after, conn = run(scenario)
    assert before.endswith(b"3\r\none\r\n") and after == b""
    assert heard == [{"type": "http.disconnect"}]
    assert all(details.get("disconnected") for details in conn.server.connections.values())


def test_an_answer_past_the_servers_http_timeout_is_ended_or_refused_with_503():
    async def silent(scope, receive, send):
        await asyncio.sleep(3600)

    async def scenario():
        server = Server(silent)
        server.http_timeout = 5
        conn = Connection(silent, server=server)
        conn.send(b"GET / HTTP/1.1\r\n\r\n")
        await settle()
        conn.clock.advance(6)
        for exchange in list(server.connections):
            exchange.check_timeouts()
        return conn.sent()

    assert run(scenario).startswith(b"HTTP/1.1 503 Service Unavailable\r\n")


# ---- idle connections ------------------------------------------------------------------------------------------------


def test_an_idle_connection_is_closed_after_the_idle_time_and_aborted_if_it_will_not_close():
    async def scenario():
        conn = Connection(echo)
        conn.clock.advance(IDLE - 1)
        conn.send(b"GET / HTTP/1.1\r\n")  # part of a request: activity, not a request in flight
        conn.clock.advance(IDLE - 1)
        open_then = not conn.transport.disconnecting
        conn.clock.advance(1)
        closed = conn.transport.disconnecting
        conn.clock.advance(ABORT_SECONDS)
        return open_then, closed, conn.transport.disconnected

    assert run(scenario) == (True, True, True)


def test_a_request_in_flight_keeps_its_connection_however_long_it_takes():
    async def slow(scope, receive, send):
        await receive()
        await asyncio.sleep(3600)

    async def scenario():
        conn = Connection(slow)
        conn.send(b"GET / HTTP/1.1\r\n\r\n")
        await settle()
        conn.clock.advance(IDLE * 10)
        return conn.transport.disconnecting

    assert run(scenario) is False


# ---- handing over to WebSocket, proxies ----------------------------------------------------------------------------


def test_a_websocket_handshake_is_handed_to_daphnes_websocket_protocol_with_what_followed_it():
    handshake = (b"GET /v1/realtime?model=m HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    sent, conn = _exchange(echo, handshake + b"\x81\x80frame")
    (protocol,) = conn.server.ws_factory.built
    assert protocol.received == handshake + b"\x81\x80frame" and protocol.transport is conn.transport
    assert protocol._raw_query_string == b"model=m" and sent == b"" and conn.server.connections == {}
    conn.clock.advance(IDLE * 2)
    assert not conn.transport.disconnecting  # the channel's idle timer is gone with it


def test_the_client_address_comes_from_daphnes_proxy_headers_when_it_reads_them():
    server = Server(echo)
    server.proxy_forwarded_address_header = "X-Forwarded-For"
    server.proxy_forwarded_proto_header = "X-Forwarded-Proto"

    async def scenario():
        conn = Connection(echo, server=server)
        conn.send(b"GET / HTTP/1.1\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n\r\n")
        await settle()
        return answers(conn.sent())

    ((_status, _headers, body),) = run(scenario)
    seen = json.loads(body)
    assert seen["client"] == ["203.0.113.9", 0] and seen["scheme"] == "https"


# ---- what a review found -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("opening", [b"GET /", b"GET / HTTP/1.1\r\nX-Big: "])
def test_a_head_that_never_ends_is_refused_once_past_the_limit_not_buffered(opening):
    async def scenario():
        conn = Connection(echo)
        conn.send(opening)
        reads = 0
        while not conn.transport.disconnecting and reads < 100:
            conn.send(b"a" * 4096)
            reads += 1
        return reads, conn.sent()

    reads, sent = run(scenario)
    assert reads <= 5 and sent == b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def test_requests_offering_another_protocol_are_served_as_if_they_had_not_bodies_and_all():
    offer = (b"POST /h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
             b"HTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 5\r\n\r\nhello")

    async def scenario():
        conn = Connection(echo)
        conn.send(offer + b"GET /next HTTP/1.1\r\n\r\n" + offer * 300)  # one read: the replays do not nest
        for _ in range(100):
            await settle()
        return conn.sent(), conn

    sent, conn = run(scenario)
    found = [json.loads(body) for _status, _headers, body in answers(sent)]
    assert len(found) == 302 and found[1]["path"] == "/next" and not conn.transport.disconnecting
    assert {(item["body"], str(item["headers"])) for item in found[:1] + found[2:]} == {
        ("hello", str([["host", "x"], ["content-length", "5"]]))}


def test_trailers_that_never_end_are_refused_once_past_the_limit():
    async def scenario():
        conn = Connection(echo)
        conn.send(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: ")
        reads = 0
        while not conn.transport.disconnecting and reads < 100:
            conn.send(b"a" * 4096)
            reads += 1
        await settle()
        return reads, conn.sent()

    reads, sent = run(scenario)
    assert reads <= 5 and sent.endswith(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def test_a_connection_closed_while_its_reading_was_paused_reads_again_so_the_close_can_complete():
    sent, conn = _exchange(_answer(413, headers=[(b"content-length", b"0")]),
                           b"POST / HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n" + b"a" * (BODY_UNREAD_LIMIT + 1))
    assert sent.startswith(b"HTTP/1.1 413 ") and conn.transport.disconnecting
    assert conn.transport.producerState == "producing"  # (under TLS the close waits for the client's reply)


def test_a_websocket_upgrade_without_connection_upgrade_is_refused_and_nothing_behind_it_runs():
    started: list[str] = []

    async def application(scope, receive, send):
        started.append(scope["path"])

    sent, conn = _exchange(application, b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\nGET /api HTTP/1.1\r\n\r\n")
    assert sent == b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    assert started == [] and conn.server.ws_factory.built == []


def test_a_header_name_that_could_start_another_header_fails_the_answer_with_500():
    sent, _conn = _exchange(_answer(200, headers=[(b"x-a\r\nSet-Cookie: evil=1\r\nx-b", b"v")]),
                            b"GET / HTTP/1.1\r\n\r\n")
    assert sent.startswith(b"HTTP/1.1 500 Internal Server Error\r\n") and b"evil" not in sent


def test_an_application_failing_after_its_head_but_before_any_body_gets_500_not_a_cut():
    async def failing(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        raise RuntimeError("boom")

    sent, conn = _exchange(failing, b"GET / HTTP/1.1\r\n\r\n")
    (status, headers, _body), = answers(sent)
    assert status == "HTTP/1.1 500 Internal Server Error" and "content-length" not in headers
    assert not conn.transport.disconnecting


def test_one_connection_header_says_close_whatever_the_application_said():
    sent, conn = _exchange(_answer(200, headers=[(b"connection", b"keep-alive")], chunks=(b"x",)),
                           b"GET / HTTP/1.0\r\n\r\n")
    assert sent == b"HTTP/1.0 200 OK\r\nConnection: close\r\nServer: daphne\r\n\r\nx" and conn.transport.disconnecting


def test_other_http_versions_are_answered_in_http_11():
    sent, _conn = _exchange(_answer(200, headers=[(b"content-length", b"1")], chunks=(b"x",)),
                            b"GET / HTTP/2.0\r\n\r\n")
    assert sent.startswith(b"HTTP/1.1 200 OK\r\n")


def test_a_close_after_an_answer_waits_for_a_slow_reader_as_long_as_it_takes():
    sent, conn = _exchange(_answer(200, headers=[(b"content-length", b"1")], chunks=(b"x",)),
                           b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    conn.clock.advance(ABORT_SECONDS * 10)
    assert conn.transport.disconnecting and not conn.transport.disconnected  # closing, never aborted


def test_a_connection_whose_body_waits_unread_is_not_idle():
    async def late_reader(scope, receive, send):
        await asyncio.sleep(3600)

    async def scenario():
        conn = Connection(late_reader)
        conn.send(b"POST / HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n" + b"a" * (BODY_UNREAD_LIMIT + 1))
        await settle()
        conn.clock.advance(IDLE * 3)
        return conn.transport.producerState, conn.transport.disconnecting

    assert run(scenario) == ("paused", False)


def test_two_receives_waiting_at_once_both_hear_the_client_leave():
    heard: list[dict] = []

    async def two_listeners(scope, receive, send):
        await receive()

        async def listen():
            heard.append(await receive())

        await asyncio.gather(listen(), listen())

    async def scenario():
        conn = Connection(two_listeners)
        conn.send(b"GET / HTTP/1.1\r\n\r\n")
        await settle()
        conn.lose()
        await settle()

    run(scenario)
    assert heard == [{"type": "http.disconnect"}] * 2
