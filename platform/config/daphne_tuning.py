"""What the ASGI module changes in Daphne when Daphne serves it (`daphne ... config.asgi:application`, `make run`,
compose, the Dockerfile). All were found profiling the relay under load; all keep Daphne's behaviour otherwise.
`manage.py serve`, compose and the image run Daphne through `config.serve_daphne`: Twisted's reactor on uvloop.

- **Connections read with httptools** (`config.daphne_http`): Twisted's HTTP channel and request objects parsed
  and answered each request in Python, about a fifth of a Daphne process's time under load. Daphne's server, its
  endpoints, application instances and WebSocket protocol stay. Where Twisted offers HTTP/2 (its `http2` extra
  installed, over TLS), connections stay Twisted's, with the request changes below.
- **The body as it came.** Twisted's request parses the body of every form POST for `request.args`, which Daphne
  never reads (the application gets the raw body): the Content-Type header through the `email` package (about a tenth
  of the relay's event loop under load), and a multipart upload whole (an audio file or image parsed once for
  nothing). A multipart body Twisted cannot parse (no boundary) was answered by Twisted itself, a bare 400 with no
  body, instead of the protocol's error.
- **An answer's bytes sent when the application sends them.** Twisted buffers every write and sends it on a later
  turn of the event loop, registering the socket for writability and removing it again each time: per stream frame,
  two epoll calls, a loop turn, and the time to first byte of every stream behind whatever else that turn runs. What
  one ASGI message writes (head, body, chunk framing) is now sent at once, in one system call; what the socket does
  not take (a slow reader) stays buffered and goes Twisted's way, with its flow control. A chunk of a streamed answer
  (each stream frame) skips Daphne's and Twisted's request layers as well: framed and sent in one step.
- **Twisted's HTTP module looked up directly.** Daphne calls `http.Request.write` and the like through the name
  `twisted.web.http`, which Twisted wraps in a proxy that checks each attribute for a deprecation: about a tenth of
  Daphne's time per stream frame. Daphne's module now holds the module itself (the deprecated names it does not use
  are then not warned about, as nothing here uses them).
- **WebSocket closes as the application asks.** Daphne closes a socket through autobahn's application-level call,
  which takes only 1000 and 3000-4999 and raises for the codes a server sends (1008 policy, 1011 internal error, 1012
  restart, 1013 try later, 1014 bad gateway); the close was lost and the client waited on an open socket. Daphne also
  dropped the reason. The close frame now carries any code an endpoint may send, with the reason cut to 123 bytes of
  UTF-8 on a character boundary; a code no frame may carry (1005, 1006, 1015, out of range) closes with none.
- **No second access line.** Twisted's HTTP factory formats a combined-log line per request for Twisted's own log,
  which Daphne discards unless run at verbosity 2 or more; Daphne prints its own access line regardless.
- **Daphne's access line only with ACCESS_LOG** (as uvicorn's): Daphne's command line prints one per request and
  WebSocket at its default verbosity, about 2.5% of a process's time under load; the usage log records relayed
  requests. An `--access-log` given to Daphne still writes, and so does `runserver`'s own logger.
"""

from __future__ import annotations

import sys
from typing import Any

from config.daphne_http import HttpChannel, pending_writes, plain_tcp, send_or_buffer
from relay.realtime.close_frames import close_frame


def tune_daphne(*, access_log: bool = True) -> None:
    """Apply the changes above if Daphne is the server of this process (it imported its protocols)."""
    server = sys.modules.get("daphne.server")
    if server is not None:
        _access_lines(server.Server, access_log or any(_names_access_log(arg) for arg in sys.argv))
    http_protocol = sys.modules.get("daphne.http_protocol")
    if http_protocol is not None and not getattr(http_protocol.WebRequest, "tuned", False):
        _tune_http(http_protocol)
    ws_protocol = sys.modules.get("daphne.ws_protocol")
    if ws_protocol is not None and not getattr(ws_protocol.WebSocketFactory.protocol, "tuned", False):
        _tune_websocket(ws_protocol)


def _tune_http(http_protocol: Any) -> None:
    class TunedRequest(http_protocol.WebRequest):  # what Daphne's HTTP factory builds from here on
        tuned = True
        # Identity, as Daphne's own (`hash(id(self))`, `id(self) == id(other)`), without a Python call each time
        # Daphne finds a request among its connections (twice per message it sends).
        __hash__ = object.__hash__
        __eq__ = object.__eq__

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)

        def handle_reply(self, message: dict) -> None:
            transport = self.transport
            if (not plain_tcp(transport) or "startWriting" in vars(transport)
                    or pending_writes(transport)):  # not TCP, already held (see below), or behind earlier bytes
                super().handle_reply(message)
                return
            if message.get("more_body") and self.chunked and message.get("type") == "http.response.body":
                if not self.finished and not self._disconnected and transport.connected and not transport.disconnecting:
                    body = message.get("body", b"")
                    if body:  # one chunk of a streamed answer: what Request.write would frame, sent straight
                        self.sentLength += len(body)
                        send_or_buffer(transport, b"%x\r\n%b\r\n" % (len(body), body))
                    return
            # Held: Twisted's writes buffer and nothing registers. Finishing an answer can parse the next pipelined
            # request at once, and Daphne answers a malformed one from inside this call: that reply sees the hold
            # and goes Twisted's way; its bytes are sent with these.
            asked = []
            transport.startWriting = lambda: asked.append(True)
            try:
                super().handle_reply(message)
            finally:
                del transport.startWriting
                if asked:
                    send_now(transport)

    http_protocol.WebRequest = TunedRequest
    http_protocol.http = _unproxied(http_protocol.http)
    http_protocol.HTTPFactory.log = lambda self, request: None
    twisteds_channel = http_protocol.HTTPFactory.buildProtocol

    def build_protocol(factory: Any, address: Any) -> Any:
        if http_protocol.http.H2_ENABLED:  # HTTP/2 offered over TLS: Twisted's channel negotiates it
            return twisteds_channel(factory, address)
        channel = HttpChannel(factory.server, idle_seconds=factory.timeOut, clock=factory.reactor)
        channel.factory = factory
        return channel

    http_protocol.HTTPFactory.buildProtocol = build_protocol


def _access_lines(server_class: Any, wanted: bool) -> None:
    """Daphne's access lines as Daphne set them up, or without the ones its command line prints to its output
    unasked (a logger given otherwise, such as `runserver`'s, still logs)."""
    logging = vars(server_class).get("daphne_log_action")
    if logging is None:
        logging = server_class.daphne_log_action = server_class.log_action

    def log_action(self: Any, protocol: Any, action: Any, details: Any) -> None:
        logger = self.action_logger
        if type(logger).__name__ != "AccessLogGenerator" or getattr(logger, "stream", None) is not sys.stdout:
            logging(self, protocol, action, details)

    server_class.log_action = logging if wanted else log_action


def _names_access_log(arg: str) -> bool:
    """Whether a command-line argument is Daphne's `--access-log` option (argparse takes `--ac` and longer)."""
    name = arg.split("=", 1)[0]
    return len(name) >= 4 and "--access-log".startswith(name)


def _tune_websocket(ws_protocol: Any) -> None:
    class TunedWebSocket(ws_protocol.WebSocketProtocol):  # what Daphne's WebSocket factory builds from here on
        tuned = True

        def handle_reply(self, message: dict) -> None:
            if message.get("type") == "websocket.close" and self.state != self.STATE_CONNECTING:
                self.sendCloseFrame(*close_frame(message.get("code"), message.get("reason")))  # ignored once closing
                return
            super().handle_reply(message)

    ws_protocol.WebSocketFactory.protocol = TunedWebSocket


def _unproxied(module: Any) -> Any:
    """The module behind Twisted's deprecation proxy (itself if it has none, or if Twisted's private names moved)."""
    try:
        from twisted.python.deprecate import _ModuleProxy

        return object.__getattribute__(module, "_module") if isinstance(module, _ModuleProxy) else module
    except (ImportError, AttributeError):
        return module


def send_now(transport: Any) -> None:
    """Send what a TCP transport holds, now; leave to the reactor what the socket does not take, a failed send (the
    reactor's retry meets the error and closes the connection) and a connection being closed."""
    if transport.connected and not transport.disconnecting and not transport._writeDisconnecting:
        failure = transport.doWrite()  # what the reactor would call once the socket is writable
        if failure is None and not pending_writes(transport):
            return
    transport.startWriting()
