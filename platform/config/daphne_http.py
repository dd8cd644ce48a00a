"""Daphne's HTTP/1.1 connections read with httptools (the C parser uvicorn uses) instead of Twisted's HTTP channel and
request objects, which parsed every line of every request in Python: about a fifth of a Daphne process's time
under load. Daphne's server stays: its command line, endpoints (TCP, file descriptors, TLS), application instances,
timeouts, access lines and WebSocket protocol, to which an upgrade request is handed as Daphne hands it.

What a client sees is what Twisted's channel gave it, with these differences:
- the application starts once the read that brought a request's head is parsed (Twisted waited for the whole body),
  its first step run there and then (`relay.eager`): a body that came with the head is there for it, and a relayed
  call goes upstream without waiting for the event loop's next turns; it reads the rest of the body as it arrives;
  reading pauses while 64 KiB of it wait unread;
- pipelined requests are parsed as they come and answered in order, reading paused while one waits;
- header names are sent as the application gives them (Twisted capitalised them), with one `Connection: close`
  whenever the connection closes after the answer; answers are HTTP/1.1 (HTTP/1.0 to a 1.0 request);
- a request Twisted refused with a bare `400` gets `400` with `Content-Length: 0` and `Connection: close`; llhttp's
  rules are the stricter (no folded header lines, no control characters in values or path), and so is a WebSocket
  handshake's (`Connection: upgrade` required, as autobahn requires it; no handshake behind unanswered requests);
- a request offering another protocol (`Upgrade: h2c`) is read as if it had not offered it, as Twisted did (llhttp
  would stop at its head, its body unread);
- an application that ends without finishing its answer gets `500` (nothing was sent yet) or the connection closed,
  at once rather than at Daphne's next check a second later.
Twisted's limits stay: 16 KiB of request head and trailers (a line that never ends included), 500 headers, a
connection closed after the factory's idle timeout (60 s) with no request in flight, aborted 15 s later if it will
not close. A connection closed while its reading was paused reads again (and drops what comes), so that a TLS close,
which waits for the client's reply, completes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any
from urllib.parse import unquote

import httptools
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.protocols.policies import ProtocolWrapper

from config.daphne_exchange import BODY_UNREAD_LIMIT, Exchange

logger = logging.getLogger(__name__)

HEAD_LIMIT = 16384  # bytes of request line and headers, as Twisted's channel
HEADERS_LIMIT = 500
ABORT_SECONDS = 15  # after a close the client does not let happen (it reads nothing of what is left to send)
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Refused(Exception):
    """A request this channel will not serve: answered 400, the connection closed."""


class HttpChannel(Protocol):
    """One client connection of Daphne's: requests parsed by httptools, each answered by an `Exchange`."""

    def __init__(self, server: Any, *, idle_seconds: float | None, clock: Any = None) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self.server, self.idle_seconds, self.clock = server, idle_seconds, clock
        self.parser = httptools.HttpRequestParser(self)
        self.exchanges: deque[Exchange] = deque()  # received in order; the first is being answered
        self.reading: Exchange | None = None  # the request whose body is being received
        self.paused = self.gone = self.closing = self.handed_over = self.ignoring = self.refusing = False
        self.idle_timer: Any = None
        self.last_active = 0.0
        self.upgrade: tuple[bytes, bytes] | None = None  # (request head, query string) of a WebSocket handshake
        self.unoffered: bytes | None = None  # the head of a request offering another protocol, without the offer
        self.progressed = False  # whether httptools called back during the current read
        self.stalled = 0  # bytes of the reads since the last that called back
        self.starting: Exchange | None = None  # the request whose head the current read brought, to start after it

    # ---- Twisted's protocol ----

    def connectionMade(self) -> None:  # noqa: N802 (Twisted's names)
        transport = self.transport
        if hasattr(transport, "setTcpNoDelay"):
            transport.setTcpNoDelay(True)
        self.loop = asyncio.get_event_loop()
        self.direct = plain_tcp(transport)  # a TCP socket this channel may write to itself
        self.scheme = "https" if ISSLTransport(transport, None) is not None else "http"
        peer, host = transport.getPeer(), transport.getHost()
        self.client = (str(peer.host), peer.port) if hasattr(peer, "host") and hasattr(peer, "port") else None
        self.local = (str(host.host), host.port) if hasattr(host, "host") and hasattr(host, "port") else None
        self.last_active = self.clock.seconds()
        if self.idle_seconds:
            self.idle_timer = self.clock.callLater(self.idle_seconds, self._idle_check)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        try:
            self._read(data)
        finally:
            self._start_read()

    def _read(self, data: bytes) -> None:
        self.last_active = self.clock.seconds()
        while not self.ignoring:
            self.progressed = False
            upgrade_at = None
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade as upgrade:
                upgrade_at = upgrade.args[0]
            except httptools.HttpParserError as error:  # malformed, or refused by a callback
                if isinstance(error, httptools.HttpParserCallbackError) and not isinstance(error.__context__, Refused):
                    logger.error("HTTP request handling failed", exc_info=error.__context__)
                self._refuse()
                return
            if upgrade_at is None:
                break
            if self.upgrade is not None:
                self._hand_over(data[upgrade_at:])
                return
            if self.unoffered is None:  # an upgrade none of the above (a CONNECT): not served
                self._refuse()
                return
            # a request offering another protocol: read again, without the offer, by a new parser
            data = self.unoffered + data[upgrade_at:]
            self.unoffered = None
            self.parser = httptools.HttpRequestParser(self)
        if self.progressed:
            self.stalled = 0
        else:  # nothing came of this read: httptools holds an unfinished line (of a head or trailers) until it ends
            self.stalled += len(data)
            if self.stalled > HEAD_LIMIT:
                self._refuse()

    def _start_read(self) -> None:
        """Start the request whose head this read brought, unless refused or gone meanwhile."""
        exchange, self.starting = self.starting, None
        if (exchange is not None and not self.gone and not exchange.started and self.exchanges
                and self.exchanges[0] is exchange):
            exchange.start()

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        self.gone = True
        self._stop_idle_timer()
        exchanges, self.exchanges = self.exchanges, deque()
        for exchange in exchanges:
            exchange.lost()

    # ---- httptools' callbacks ----

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_size = 0
        self.progressed = True

    def on_url(self, url: bytes) -> None:
        self.progressed = True
        self.url += url
        self.head_size += len(url)
        if self.head_size > HEAD_LIMIT:
            raise Refused("request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:  # trailers too: they count with the head
        self.progressed = True
        self.head_size += len(name) + len(value) + 4
        if self.head_size > HEAD_LIMIT or len(self.headers) >= HEADERS_LIMIT:
            raise Refused("request head too large")
        self.headers.append((name, value.rstrip(b" \t")))

    def on_headers_complete(self) -> None:
        self.progressed = True
        parser, server = self.parser, self.server
        path, _, query = self.url.partition(b"?")
        try:
            path_text = unquote(path.decode("ascii"))
            query.decode("ascii")
        except UnicodeDecodeError:
            raise Refused("characters outside ASCII in the path or query") from None
        headers, root_path, upgrade, expect = [], server.root_path, b"", b""
        for name, value in self.headers:
            name = name.lower()
            if b"_" in name:  # Daphne's rule (CVE-2015-0219): such a name could pose as another once normalised
                continue
            if name == b"daphne-root-path":
                root_path = unquote(value.decode("ascii", "replace"))
                continue
            if name == b"upgrade":
                upgrade = value.lower()
            elif name == b"expect":
                expect = value.lower()
            headers.append((name, value))
        method = parser.get_method()
        version = parser.get_http_version()
        if upgrade == b"websocket":
            if self.exchanges or not parser.should_upgrade():  # behind answers owed, or no `Connection: upgrade`
                raise Refused("not a WebSocket handshake this server can take")
            head = b"".join([method, b" ", self.url, b" HTTP/1.1\r\n",
                             *(b"%b: %b\r\n" % pair for pair in self.headers), b"\r\n"])
            self.upgrade = (head, query)
            return
        if parser.should_upgrade():  # another protocol offered (h2c): llhttp would stop here, the body unread
            if method == b"CONNECT":
                raise Refused("CONNECT is not served")
            self.unoffered = _head_without_offer(method, self.url, version, self.headers)
            return
        client, scheme = list(self.client) if self.client else None, self.scheme
        if server.proxy_forwarded_address_header:
            client, scheme = _forwarded(server, self.headers, client, scheme)
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": version,
                 "method": method.decode("ascii"), "path": path_text, "raw_path": path, "root_path": root_path,
                 "scheme": scheme, "query_string": query, "headers": headers, "client": client,
                 "server": list(self.local) if self.local else None}
        exchange = Exchange(self, scope, keep_alive=version == "1.1" and parser.should_keep_alive(),
                            expect_continue=version == "1.1" and expect == b"100-continue")
        self.reading = exchange
        self.exchanges.append(exchange)
        if len(self.exchanges) == 1:
            self.starting = exchange
        else:
            self.flow()

    def on_body(self, body: bytes) -> None:
        self.progressed = True
        exchange = self.reading
        if exchange is not None:
            exchange.body_received(body)

    def on_message_complete(self) -> None:
        self.progressed = True
        exchange, self.reading = self.reading, None
        if exchange is not None:
            exchange.request_complete()

    # ---- what exchanges ask of their connection ----

    def write(self, data: bytes) -> None:
        transport = self.transport
        if self.direct and transport.connected and not transport.disconnecting and not pending_writes(transport):
            send_or_buffer(transport, data)  # what Twisted would send on a later turn, sent now
        else:
            transport.write(data)

    def exchange_done(self, exchange: Exchange) -> None:
        """The first exchange's answer was sent: the next request's turn, or the connection closed."""
        if self.exchanges and self.exchanges[0] is exchange:
            self.exchanges.popleft()
        if self.gone:
            return
        if not exchange.keep_alive:
            self.close()
            return
        self.last_active = self.clock.seconds()
        if self.exchanges:  # pipelined: started on the next turn (a chain of answers given at once must not nest)
            self.exchanges[0].start(at_once=False)
        elif self.refusing:  # a malformed request came after those now answered
            self.write(BAD_REQUEST)
            self.close()
            return
        self.flow()

    def flow(self) -> None:
        """Pause reading while requests wait behind the one being answered or a body waits unread; resume after."""
        reading = self.reading
        wanted = len(self.exchanges) > 1 or (reading is not None and reading.unread > BODY_UNREAD_LIMIT)
        if wanted != self.paused and not self.gone and not self.closing:
            self.paused = wanted
            if wanted:
                self.transport.pauseProducing()
            else:
                self.transport.resumeProducing()

    def close(self, *, abort_after: bool = False) -> None:
        """Close once what is left to send is sent (as Twisted, however long a client takes to read an answer); with
        `abort_after`, aborted ABORT_SECONDS later if the client has not let it close by then."""
        if not self.closing and not self.gone:
            if self.paused:  # read again (and ignore it) so the close completes: TLS waits for the client's reply
                self.paused = False
                self.transport.resumeProducing()
            self.closing = self.ignoring = True
            self.transport.loseConnection()
            self._stop_idle_timer()
            if abort_after:
                self.idle_timer = self.clock.callLater(ABORT_SECONDS, self._idle_check)

    # ---- inner steps ----

    def _refuse(self) -> None:
        """Answer a malformed request 400 after the answers owed before it, then close. A request whose body turned
        out malformed is dropped (its application told the client left); if its answer had begun, the connection is
        aborted rather than a 400 sent in the middle of it."""
        if self.gone or self.closing:
            return
        self.ignoring = True
        broken, self.reading = self.reading, None
        if broken is not None:
            broken.lost()
            self.exchanges.remove(broken)
            if broken.answering:
                self.transport.abortConnection()
                return
        if self.exchanges:
            self.refusing = True
            return
        self.write(BAD_REQUEST)
        self.close()

    def _hand_over(self, rest: bytes) -> None:
        """Give the connection to Daphne's WebSocket protocol, replaying the handshake to it (as Daphne does)."""
        head, query = self.upgrade  # type: ignore[misc]
        self.handed_over = self.ignoring = True
        self._stop_idle_timer()
        transport = self.transport
        protocol = self.server.ws_factory.buildProtocol(transport.getPeer())
        if protocol is None:
            self.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.close()
            return
        protocol._raw_query_string = query
        if isinstance(transport, ProtocolWrapper):  # TLS
            transport.wrappedProtocol = protocol
        else:
            transport.protocol = protocol
        if self.paused:
            self.paused = False
            transport.resumeProducing()
        protocol.makeConnection(transport)
        protocol.dataReceived(head + rest)

    def _idle_check(self) -> None:
        """One timer per connection, moved on lazily: a close when no request is in flight and nothing came for the
        idle time, an abort when a close does not happen."""
        self.idle_timer = None
        if self.gone or self.handed_over:
            return
        if self.closing:
            self.transport.abortConnection()
            return
        if not self.idle_seconds:
            return
        # busy: the application has the whole request, or has not read what came of it (reading paused meanwhile)
        busy = bool(self.exchanges) and (self.exchanges[0].complete or self.paused)
        idle = 0.0 if busy else self.clock.seconds() - self.last_active
        if idle >= self.idle_seconds:
            self.close(abort_after=True)
        else:
            self.idle_timer = self.clock.callLater(self.idle_seconds - idle, self._idle_check)

    def _stop_idle_timer(self) -> None:
        if self.idle_timer is not None and self.idle_timer.active():
            self.idle_timer.cancel()
        self.idle_timer = None


def plain_tcp(transport: Any) -> bool:
    """Whether a transport is a TCP connection's own (bytes written to its socket reach the client as they are): not
    TLS, whose wrapper passes unknown attributes on to the TCP transport beneath it (`TLS` and `writeSomeData`
    included, which would put plain bytes on an encrypted connection)."""
    if transport is None or isinstance(transport, ProtocolWrapper):
        return False
    return getattr(transport, "TLS", True) is False


def _head_without_offer(method: bytes, url: bytes, version: str, headers: list) -> bytes:
    """A request head without its offer of another protocol (`Upgrade`, `HTTP2-Settings` and their `Connection`
    tokens)."""
    offer = (b"upgrade", b"http2-settings")
    lines = [b"%b %b HTTP/%b\r\n" % (method, url, version.encode())]
    for name, value in headers:
        lowered = name.lower()
        if lowered in offer:
            continue
        if lowered == b"connection":
            tokens = [token.strip() for token in value.split(b",")]
            value = b", ".join(token for token in tokens if token and token.lower() not in offer)
            if not value:
                continue
        lines.append(b"%b: %b\r\n" % (name, value))
    return b"".join(lines) + b"\r\n"


def pending_writes(transport: Any) -> bool:
    """Whether a TCP transport holds bytes it has not sent yet."""
    return bool(transport._tempDataBuffer) or len(transport.dataBuffer) > transport.offset


def send_or_buffer(transport: Any, data: bytes) -> None:
    """Send on a TCP transport with nothing pending; what the socket does not take, or all of it after a failed send,
    goes Twisted's way (buffered for the reactor, which also meets the error and closes the connection)."""
    sent = transport.writeSomeData(data)
    if isinstance(sent, int) and sent == len(data):
        return
    transport.write(data[sent:] if isinstance(sent, int) else data)


def _forwarded(server: Any, raw_headers: list, client: list | None, scheme: str) -> tuple[Any, str]:
    """The client's address and scheme from Daphne's proxy headers (`--proxy-headers`), as Daphne reads them."""
    from daphne.utils import parse_x_forwarded_for
    from twisted.web.http_headers import Headers

    headers = Headers()
    for name, value in raw_headers:
        headers.addRawHeader(name, value)
    return parse_x_forwarded_for(headers, server.proxy_forwarded_address_header, server.proxy_forwarded_port_header,
                                 server.proxy_forwarded_proto_header, client, scheme)
