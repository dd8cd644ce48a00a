"""Loopback endpoints that fail below HTTP: a port nobody listens on, and a server that resets every connection
before sending a byte."""

from __future__ import annotations

import socket
import struct
import threading

from tests.processes import free_port


def refused_url() -> str:
    """A loopback URL whose port is closed: connecting is refused at once."""
    return f"http://127.0.0.1:{free_port()}"


class ResettingServer:
    """Accepts each connection, reads the request, and answers with a TCP reset (SO_LINGER 0) instead of headers."""

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
            conn.settimeout(2)
            try:
                conn.recv(65536)
            except OSError:
                pass
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    def __enter__(self) -> ResettingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()
