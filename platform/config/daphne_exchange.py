"""One request on one of Daphne's HTTP/1.1 connections (`config.daphne_http`) and its answer: the application's
`receive` and `send`, and what Daphne's server asks of a request (`handle_reply`, `check_timeouts`,
`handle_exception`, `basic_error`). The answer's head waits for its first body bytes and leaves with them, in one
write; without a Content-Length it is chunked (HTTP/1.1) or ends with the connection (HTTP/1.0)."""

from __future__ import annotations

import asyncio
import re
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from relay.eager import eager_task

if TYPE_CHECKING:
    from config.daphne_http import HttpChannel

BODY_UNREAD_LIMIT = 65536  # request body bytes received and not taken by the application before reading pauses
NO_BODY_STATUSES = frozenset((204, 304))
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
NOT_A_TOKEN = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9A-Za-z]")  # what may not stand in a header's name (RFC 9110)


def status_line(version: bytes, status: int) -> bytes:
    try:
        reason = HTTPStatus(status).phrase.encode()
    except ValueError:
        reason = b"Unknown Status"
    return b"HTTP/%b %d %b\r\n" % (version, status, reason)


STATUS_LINES = {(version, status.value): status_line(version, status.value)
                for version in (b"1.1", b"1.0") for status in HTTPStatus}


class Exchange:
    """One request and its answer: what Daphne's server calls a protocol (`handle_reply`, `check_timeouts`,
    `handle_exception`, `basic_error`), and the application's `receive` and `send`."""

    def __init__(self, channel: HttpChannel, scope: dict, *, keep_alive: bool, expect_continue: bool) -> None:
        self.channel, self.scope = channel, scope
        self.keep_alive, self.expect_continue = keep_alive, expect_continue
        self.body: list[bytes] = []
        self.unread = 0
        self.complete = self.delivered = False  # the whole request received; all of it given to the application
        self.started = self.answering = self.finished = self.gone = False
        self.head: bytes | None = None  # the answer's head, sent with its first body bytes
        self.chunked = self.bodiless = False
        self.status = self.sent = 0
        self.waiters: list[asyncio.Future] = []  # receive() calls waiting for the next event (one, as a rule)
        self.began = 0.0

    __hash__ = object.__hash__  # Daphne keeps exchanges in a dict; by identity, as its own requests
    __eq__ = object.__eq__

    def start(self, *, at_once: bool = True) -> None:
        """Start the application; `at_once`: its first step now (`relay.eager`), else on the loop's next turn."""
        channel, server = self.channel, self.channel.server
        self.began, self.started = channel.clock.seconds(), True
        server.protocol_connected(self)
        if self.expect_continue and not self.complete:
            channel.write(CONTINUE)
        instance = server.application(scope=self.scope, receive=self.receive, send=self.send)
        task = eager_task(instance, loop=channel.loop) if at_once else channel.loop.create_task(instance)
        server.connections[self]["application_instance"] = task
        task.add_done_callback(self._application_ended)

    # ---- the request, as the channel reads it ----

    def body_received(self, body: bytes) -> None:
        self.body.append(body)
        self.unread += len(body)
        self._wake()
        if self.unread > BODY_UNREAD_LIMIT:
            self.channel.flow()

    def request_complete(self) -> None:
        self.complete = True
        self._wake()

    def lost(self) -> None:
        """The client went away."""
        if not self.gone:
            self.gone = True
            self._wake()
            if self.started and not self.finished:
                self.channel.server.protocol_disconnected(self)

    # ---- the application's side ----

    async def receive(self) -> dict:
        while True:
            if not self.delivered and (self.body or self.complete):
                body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
                self.body, self.unread, self.delivered = [], 0, self.complete
                if self.channel.paused:
                    self.channel.flow()
                return {"type": "http.request", "body": body, "more_body": not self.complete}
            if self.gone or self.finished:
                return {"type": "http.disconnect"}
            waiter = self.channel.loop.create_future()
            self.waiters.append(waiter)
            await waiter

    async def send(self, message: dict) -> None:
        if not self.gone:
            self.handle_reply(message)

    def handle_reply(self, message: dict) -> None:
        if self.finished or self.gone:
            return
        kind = message.get("type")
        if kind == "http.response.body":
            if not self.answering:
                raise ValueError(f"HTTP response has not yet been started but got {kind}")
            self._body(message.get("body", b""), message.get("more_body", False))
        elif kind == "http.response.start":
            if self.answering:
                raise ValueError("HTTP response has already been started")
            self._head(message["status"], message.get("headers", ()))
        else:
            raise ValueError(f"Cannot handle message type {kind}!")

    def _head(self, status: int, headers: Any) -> None:
        version = b"1.0" if self.scope["http_version"] == "1.0" else b"1.1"  # the answer's HTTP, whatever was asked
        line = STATUS_LINES.get((version, status)) or status_line(version, int(status))
        parts, length_given, server_named, connection_at = [line], False, False, 0
        for name, value in headers:
            if not isinstance(name, bytes) or not isinstance(value, bytes):
                raise ValueError(f"Header names and values must be bytes, got {name!r}: {value!r}")
            if NOT_A_TOKEN.search(name) or not name:  # as Twisted: no name can carry a line break or a colon
                raise ValueError(f"Invalid header name {name!r}")
            if b"\n" in value or b"\r" in value:  # as Twisted: line breaks in a value would start a header
                value = value.replace(b"\r\n", b" ").replace(b"\n", b" ").replace(b"\r", b" ")
            lowered = name.lower()
            if lowered == b"content-length":
                length_given = True
            elif lowered == b"server":
                server_named = True
            elif lowered == b"connection":
                if b"close" in value.lower():
                    self.keep_alive = False
                connection_at = len(parts)
            parts.append(b"%b: %b\r\n" % (name, value))
        self.status, self.answering = status, True
        self.bodiless = self.scope["method"] == "HEAD" or status in NO_BODY_STATUSES or status < 200
        if not length_given and not self.bodiless:
            if version == b"1.1":
                self.chunked = True
                parts.append(b"Transfer-Encoding: chunked\r\n")
            else:
                self.keep_alive = False  # the answer ends when the connection does
        if not server_named and self.channel.server.server_name:
            parts.append(b"Server: %b\r\n" % self.channel.server.server_name.encode())
        if not self.keep_alive or not self.complete:
            self.keep_alive = False
            if connection_at:  # the application's own, saying close or to be overruled
                parts[connection_at] = b"Connection: close\r\n"
            else:
                parts.append(b"Connection: close\r\n")
        parts.append(b"\r\n")
        self.head = b"".join(parts)

    def _body(self, body: bytes, more: bool) -> None:
        parts = [self.head] if self.head else []
        self.head = None
        if body and not self.bodiless:
            self.sent += len(body)
            parts += (b"%x\r\n" % len(body), body, b"\r\n") if self.chunked else (body,)
        if not more:
            if self.chunked:
                parts.append(b"0\r\n\r\n")
            self._log()  # before the last bytes leave (as under Daphne): whoever has the answer finds its line
        if parts:
            self.channel.write(parts[0] if len(parts) == 1 else b"".join(parts))
        if not more:
            self._finish()

    def _finish(self) -> None:
        self.finished = True
        if not self.complete:
            self.keep_alive = False  # the rest of the body is still coming: the connection cannot be reused
        self._wake()
        self.channel.server.protocol_disconnected(self)
        self.channel.exchange_done(self)

    def _log(self) -> None:
        """Daphne's access line (written if its server logs them: see daphne_tuning)."""
        scope = self.scope
        uri = scope["raw_path"] + b"?" + scope["query_string"] if scope["query_string"] else scope["raw_path"]
        client = "%s:%s" % tuple(scope["client"]) if scope["client"] else None
        self.channel.server.log_action("http", "complete", {
            "path": uri.decode("ascii", "replace"), "status": self.status, "method": scope["method"], "client": client,
            "time_taken": self.channel.clock.seconds() - self.began, "size": self.sent})

    def _application_ended(self, task: asyncio.Task) -> None:
        """An application that ended without finishing its answer: 500 if nothing was sent, else the connection
        closed (an answer cut short must not look whole). Daphne's own check logs its exception (seen here too, so
        asyncio does not report it a second time as never retrieved)."""
        if not task.cancelled():
            task.exception()
        if self.finished or self.gone:
            return
        if not self.answering or self.head is not None:  # nothing of the answer sent yet
            self._fail()
        else:
            self.keep_alive = False
            self.channel.close()

    # ---- what Daphne's server calls ----

    def handle_exception(self, exception: BaseException) -> None:
        if not self.finished and not self.gone and (not self.answering or self.head is not None):
            self._fail()

    def _fail(self) -> None:
        """Daphne's 500 page, in place of an answer that had not begun to leave (its head, if any, dropped)."""
        self.answering, self.head, self.chunked, self.bodiless = False, None, False, False
        self.basic_error(500, b"Internal Server Error", "Exception inside application.")

    def check_timeouts(self) -> None:
        timeout = self.channel.server.http_timeout
        if timeout and not self.finished and not self.gone and self.channel.clock.seconds() - self.began > timeout:
            if self.answering:
                self._body(b"", False)
            else:
                self.basic_error(503, b"Service Unavailable", "Application failed to respond within time limit.")

    def basic_error(self, status: int, status_text: bytes, body: str) -> None:
        from daphne.http_protocol import WebRequest

        page = WebRequest.error_template % {"title": f"{status} {status_text.decode('ascii')}", "body": body}
        self.handle_reply({"type": "http.response.start", "status": status,
                           "headers": [(b"Content-Type", b"text/html; charset=utf-8")]})
        self.handle_reply({"type": "http.response.body", "body": page.encode()})

    def _wake(self) -> None:
        if self.waiters:
            waiters, self.waiters = self.waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
