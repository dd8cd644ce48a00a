"""One Daphne process (WEB_SERVER=daphne, the default) with Twisted's reactor on a uvloop event loop.

Daphne runs Twisted's asyncio reactor; on uvloop's loop, the relay's own work in it (upstream connections, Redis,
timers) and the reactor's waiting on sockets run as they do under uvicorn. Everything else is Daphne's command line.

uvloop stops watching a socket that errs (libuv reports POLLERR as a closed watcher: a client's reset), after calling
its reader once. When that read found bytes (a client that sent and reset at once), Twisted thought the socket still
watched and the connection was never closed; its next write then raised on uvloop's closed watcher. So after a read
or a write that reports nothing wrong, the reactor polls the socket for an error (one system call per event on
Daphne's client sockets, which read about once per request), and a socket with one is closed as lost.
Usage: python -m config.serve_daphne [Daphne's arguments]
"""

from __future__ import annotations

import os
import select
import socket
from concurrent.futures import ThreadPoolExecutor

import uvloop
from twisted.internet.asyncioreactor import AsyncioSelectorReactor
from twisted.internet.interfaces import IReadWriteDescriptor
from twisted.internet.main import CONNECTION_LOST, installReactor
from twisted.internet.posixbase import _NO_FILEDESC


class UvloopReactor(AsyncioSelectorReactor):
    """Twisted's asyncio reactor, closing sockets whose error uvloop saw and stopped watching for, and calling
    `_readOrWrite` itself on each event: Twisted's reactor wraps every call in `callWithLogger`, four calls deep, to
    name a log context for its legacy log lines and log what the call raises, which `_readOrWrite` logs already
    (about 1.5% of a Daphne process's interpreter time on plain answers)."""

    def addReader(self, reader: IReadWriteDescriptor) -> None:  # noqa: N802 (Twisted's names)
        added = reader not in self._readers
        super().addReader(reader)
        if added and reader in self._readers:  # newly watched, and not polled continuously (a file)
            self._asyncioEventloop.add_reader(self._readers[reader], self._readOrWrite, reader, True)

    def addWriter(self, writer: IReadWriteDescriptor) -> None:  # noqa: N802
        added = writer not in self._writers
        super().addWriter(writer)
        if added and writer in self._writers:
            self._asyncioEventloop.add_writer(self._writers[writer], self._readOrWrite, writer, False)

    def _readOrWrite(self, selectable: IReadWriteDescriptor, read: bool) -> None:  # noqa: N802 (Twisted's name)
        method = selectable.doRead if read else selectable.doWrite
        if selectable.fileno() == -1:
            self._disconnectSelectable(selectable, _NO_FILEDESC, read)
            return
        try:
            why = method() or socket_error(selectable)
        except Exception as exc:  # as Twisted's reactor: logged, and the connection closed
            why = exc
            self._log.failure(None)
        if why:
            self._disconnectSelectable(selectable, why, read)


def socket_error(selectable: IReadWriteDescriptor) -> object:
    """Twisted's lost-connection reason if the descriptor's socket has an error pending (POLLERR, as uvloop saw it;
    not SO_ERROR, which also reports a soft ICMP error on a connection that lives on), else None."""
    sock = getattr(selectable, "socket", None)
    if not isinstance(sock, socket.socket) or sock.fileno() < 0:  # not a socket's descriptor, or closed
        return None
    poller = select.poll()
    poller.register(sock.fileno(), 0)  # no events asked: errors and hang-ups are reported anyway
    if any(events & select.POLLERR for _fd, events in poller.poll(0)):
        return CONNECTION_LOST
    return None


def install_reactor() -> UvloopReactor:
    """Install the reactor on a new uvloop loop (before Daphne's server module, which keeps an installed one)."""
    loop = uvloop.new_event_loop()
    if "ASGI_THREADS" in os.environ:  # as Daphne sets it on the loop it would make
        loop.set_default_executor(ThreadPoolExecutor(max_workers=int(os.environ["ASGI_THREADS"])))
    reactor = UvloopReactor(loop)
    installReactor(reactor)
    return reactor


def main() -> None:
    install_reactor()
    from daphne.cli import CommandLineInterface

    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
