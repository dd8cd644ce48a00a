"""Loopback endpoints that fail below HTTP: a port nobody listens on, a server that resets every connection before
sending a byte, and one whose answers' bodies trickle in a byte at a time."""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Self

from tests.processes import free_port


def refused_url() -> str:
    """A loopback URL whose port is closed: connecting is refused at once."""
    return f"http://127.0.0.1:{free_port()}"


class _LoopbackServer:
    """A listener on a free loopback port, serving each connection it accepts with `_answer` until the block ends."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()


class ResettingServer(_LoopbackServer):
    """Accepts each connection, reads the request, and answers with a TCP reset (SO_LINGER 0) instead of headers."""

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(2)
        try:
            conn.recv(65536)
        except OSError:
            pass
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()


class TricklingServer(_LoopbackServer):
    """Answers each request's head at once, then its body one byte every `gap` seconds, each byte sooner than a
    read timeout, the whole slower than any total one (at most `seconds`, then it closes)."""

    def __init__(self, gap: float = 0.1, seconds: float = 5.0) -> None:
        super().__init__()
        self.gap, self.seconds = gap, seconds

    def _answer(self, conn: socket.socket) -> None:  # in a thread of its own: the listener goes on accepting
        threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2)
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{")
                ends = time.monotonic() + self.seconds
                while time.monotonic() < ends and not self._stop.wait(self.gap):
                    conn.sendall(b" ")
            except OSError:  # the client left
                pass
