"""Several web server processes on one port, so a box uses all its cores: the parent binds one listening socket per
child on the same port (SO_REUSEPORT) and each child accepts on its own (`--fd`); the kernel spreads new connections
over them. The server is Daphne, or uvicorn (with uvloop and httptools) when WEB_SERVER says so.

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


SERVERS = ("daphne", "uvicorn")
# uvicorn as Daphne runs here: the peer's own address in the scope (the relay reads X-Forwarded-For itself, from
# TRUSTED_PROXIES only), no lifespan events (the application has none), an access line per request only with
# ACCESS_LOG (as under Daphne; the usage log records relayed requests), uvloop and httptools.
UVICORN_SETTINGS = {"proxy_headers": False, "lifespan": "off", "access_log": False, "loop": "uvloop",
                    "http": "httptools"}


def web_server(configured: str) -> str:
    """WEB_SERVER, checked: `daphne` (the default) or `uvicorn`."""
    server = configured.strip().lower()
    if server not in SERVERS:
        raise ValueError(f"WEB_SERVER must be one of {', '.join(SERVERS)}, got {configured!r}")
    return server


def server_command(server: str, *, host: str = "", port: int = 0, fd: int | None = None) -> list[str]:
    """One web process's command line: on host:port, or on an inherited listening socket."""
    if server == "uvicorn":  # not uvicorn's own command line: see that module
        return [sys.executable, "-m", "config.serve_uvicorn", *((str(fd),) if fd is not None else (host, str(port)))]
    binding = ["--fd", str(fd)] if fd is not None else ["-b", host, "-p", str(port)]
    return [sys.executable, "-m", "config.serve_daphne", *binding, APPLICATION]


def web_commands(*, host: str, port: int, processes: int,
                 server: str = "daphne") -> tuple[list[socket.socket], list[list[str]]]:
    """The command lines of `processes` web server processes serving host:port, and their listening sockets (the i-th
    command serves on the i-th socket).

    One process binds host:port itself (no socket here). For more, each socket is bound to host:port with
    SO_REUSEPORT, so the kernel spreads new connections evenly over the processes (one shared socket would let
    whichever process wakes first accept a whole burst). Start each command with `pass_fds=[its socket's fileno()]`,
    then close the parent's copies. Port 0 picks a free port for all of them: read it from the first socket."""
    if processes < 1:
        raise ValueError(f"at least one Daphne process is needed, got {processes}")
    if processes == 1:
        return [], [server_command(server, host=host, port=port)]
    sockets: list[socket.socket] = []
    try:
        for _ in range(processes):
            sockets.append(listening_socket(host, port))
            port = sockets[0].getsockname()[1]
    except (OSError, ValueError):
        for sock in sockets:
            sock.close()
        raise
    return sockets, [server_command(server, fd=sock.fileno()) for sock in sockets]


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on host:port, sharing the port (SO_REUSEPORT), that a child process can inherit."""
    # Daphne adopts an inherited descriptor as IPv4 (its `fd:` endpoint has no address family): an IPv6 socket
    # would serve, but with garbled client addresses (logs, TRUSTED_PROXIES, per-IP limits).
    if ":" in host:
        raise ValueError(f"several web processes need an IPv4 HOST (Daphne's --fd adopts IPv4 sockets only), "
                         f"got {host!r}: use 0.0.0.0, or WEB_PROCESSES=1")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
