"""Twisted's reactor on uvloop as `config.serve_daphne` runs Daphne: connections work as on asyncio's own loop, and one
whose socket erred while uvloop watched it is closed (uvloop stops watching such a socket after one read)."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
from types import SimpleNamespace

import uvloop
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Factory, Protocol

from config.serve_daphne import UvloopReactor, socket_error
from tests.processes import ROOT

DEADLINE_SECONDS = 5


class Recorder(Protocol):
    """Records what reaches it; echoes what it reads if told to (a write would also tell it of an error)."""

    def __init__(self, events: list, echo: bool) -> None:
        self.events, self.echo = events, echo

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's names)
        self.events.append(("data", data))
        if self.echo:
            self.transport.write(data)

    def connectionLost(self, reason: object) -> None:  # noqa: N802
        self.events.append(("lost", reason.type))


def serve(client, *, echo: bool = False) -> list:
    """What reached the protocol before a connection was lost (or the deadline), a UvloopReactor serving one listening
    port; `client(port)` runs on the reactor's first turn."""
    reactor = UvloopReactor(uvloop.new_event_loop())
    events: list = []
    port = reactor.listenTCP(0, Factory.forProtocol(lambda: Recorder(events, echo)), interface="127.0.0.1")
    seen: list = []

    def stop_when_lost() -> None:
        if any(kind == "lost" for kind, _ in events):
            stop()
        else:
            reactor.callLater(0.01, stop_when_lost)

    def stop() -> None:
        if not seen:
            seen.extend(events)  # the reactor's own stop closes every connection: not counted
            reactor.stop()

    reactor.callLater(0, client, port.getHost().port)
    reactor.callLater(0, stop_when_lost)
    reactor.callLater(DEADLINE_SECONDS, stop)
    try:
        reactor.run(installSignalHandlers=False)
    finally:
        reactor._asyncioEventloop.close()
    return seen


def reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_a_connection_reads_writes_and_closes_as_on_asyncios_loop():
    answers = []

    def client(port: int) -> None:  # in a thread: it waits for the reactor's answer
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_SECONDS) as sock:
            sock.sendall(b"hello")
            answers.append(sock.recv(100))

    events = serve(lambda port: threading.Thread(target=client, args=(port,), daemon=True).start(), echo=True)
    assert answers == [b"hello"]
    assert events == [("data", b"hello"), ("lost", ConnectionDone)]


def test_a_client_that_sends_and_resets_at_once_is_closed():
    """The bytes and the reset arrive together: uvloop's one read finds the bytes, and then stops watching. Nothing is
    written back (a write would meet the error)."""

    def client(port: int) -> None:  # on the reactor's thread: all of it happens before the reactor accepts
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET / HTTP/1.1\r\n")
        reset(sock)

    events = serve(client)
    assert events[-1] == ("lost", ConnectionLost), events


def test_a_socket_holding_an_error_is_told_apart_from_a_sound_one():
    listener = socket.create_server(("127.0.0.1", 0))
    with listener:
        sound = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
        erred = socket.create_connection(listener.getsockname())
        peer, _ = listener.accept()
        reset(peer)
        try:
            assert socket_error(SimpleNamespace(socket=sound)) is None
            assert socket_error(SimpleNamespace(socket=erred)) is not None
            assert socket_error(SimpleNamespace()) is None  # not a socket's descriptor (a pipe, a file)
            erred.close()
            assert socket_error(SimpleNamespace(socket=erred)) is None  # closed meanwhile: Twisted's to find
        finally:
            for sock in (sound, accepted, erred):
                sock.close()


def test_daphne_started_by_serve_daphne_runs_the_reactor_on_uvloop():
    code = ("from config.serve_daphne import UvloopReactor, install_reactor; install_reactor(); "
            "import daphne.server; from twisted.internet import reactor; "
            "print(type(reactor).__name__, type(reactor._asyncioEventloop).__module__)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": f"{ROOT}:{ROOT / 'platform'}", "PATH": "/usr/bin:/bin"})
    assert done.stdout.split() == ["UvloopReactor", "uvloop"], done.stderr


def test_events_reach_the_descriptor_without_twisteds_log_context(monkeypatch):
    """Each read and write is handled by `_readOrWrite` directly, not through `callWithLogger`; a write the socket
    cannot take at once is finished by the reactor's writer as before."""
    import twisted.internet.asyncioreactor as asyncioreactor

    wrapped = []
    real = asyncioreactor.callWithLogger
    monkeypatch.setattr(asyncioreactor, "callWithLogger", lambda *args: (wrapped.append(args), real(*args))[1])
    size = 4 << 20  # more than the sockets hold: the echo waits for the reactor's writer
    answers = []

    def client(port: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_SECONDS) as sock:
            sock.sendall(b"x" * size)
            got = 0
            while got < size:
                got += len(sock.recv(1 << 20))
            answers.append(got)

    events = serve(lambda port: threading.Thread(target=client, args=(port,), daemon=True).start(), echo=True)
    assert answers == [size]
    assert sum(len(data) for kind, data in events if kind == "data") == size
    assert wrapped == []
