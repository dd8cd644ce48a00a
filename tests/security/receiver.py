"""A tiny HTTP server on a loopback address that records every request it gets: the SSRF tests' tripwire (a target
that must never be contacted) and their stand-in for a public callback (which may answer with a redirect)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Hit:
    method: str
    path: str
    headers: dict[str, str]  # lowercased names
    body: bytes


class Receiver:
    """`with Receiver("127.0.0.1") as r: ... r.url, r.hits`; `redirect_to` makes every answer a 302 there."""

    def __init__(self, host: str = "127.0.0.1", *, port: int = 0, redirect_to: str | None = None) -> None:
        self.hits: list[Hit] = []
        self.redirect_to = redirect_to
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                receiver.hits.append(Hit(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                         body))
                if receiver.redirect_to:
                    self.send_response(302)
                    self.send_header("location", receiver.redirect_to)
                else:
                    self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.host, self.port = host, self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @classmethod
    def on_port(cls, host: str, port: int) -> Receiver:
        """One on a given port (another loopback address's twin, for a test that a connection went to one)."""
        return cls(host, port=port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
