"""Several Daphne processes on one port, so a box uses all its cores: the parent binds the listening socket and
every child accepts on it (Daphne's `--fd`); the kernel gives each new connection to whichever child takes it first.

Used by `manage.py serve` and by the relay benchmark. Imports nothing from Django: settings.py reads it too.
"""

from __future__ import annotations

import os
import socket
import sys

APPLICATION = "config.asgi:application"
LISTEN_BACKLOG = 1024
POSTGRESQL_ENGINE = "django.db.backends.postgresql"


def web_processes_count(configured: int, *, database_engine: str, cpus: int | None = None) -> int:
    """The number of Daphne processes for WEB_PROCESSES: itself, or for 0 one per core on PostgreSQL and one on
    SQLite (several processes writing one SQLite file wait on each other's locks)."""
    if configured < 0:
        raise ValueError(f"WEB_PROCESSES must be 0 (automatic: one per core on PostgreSQL, one on SQLite) or a "
                         f"positive number of Daphne processes, got {configured}")
    if configured:
        return configured
    if database_engine != POSTGRESQL_ENGINE:
        return 1
    return cpus or os.cpu_count() or 1


def daphne_command(*binding: str) -> list[str]:
    return [sys.executable, "-m", "daphne", *binding, APPLICATION]


def daphne_commands(*, host: str, port: int, processes: int) -> tuple[socket.socket | None, list[list[str]]]:
    """The command lines of `processes` Daphne processes serving host:port, and the listening socket they share.

    One process binds host:port itself (no socket here). For more, start each command with
    `pass_fds=[sock.fileno()]`, then close the parent's copy. Port 0 picks a free port: read it from the socket."""
    if processes < 1:
        raise ValueError(f"at least one Daphne process is needed, got {processes}")
    if processes == 1:
        return None, [daphne_command("-b", host, "-p", str(port))]
    sock = listening_socket(host, port)
    return sock, [daphne_command("--fd", str(sock.fileno())) for _ in range(processes)]


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on host:port that child processes can inherit."""
    # Daphne adopts an inherited descriptor as IPv4 (its `fd:` endpoint has no address family): an IPv6 socket
    # would serve, but with garbled client addresses (logs, TRUSTED_PROXIES, per-IP limits).
    if ":" in host:
        raise ValueError(f"several web processes need an IPv4 HOST (Daphne's --fd adopts IPv4 sockets only), "
                         f"got {host!r}: use 0.0.0.0, or WEB_PROCESSES=1")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
