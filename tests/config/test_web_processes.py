"""Several Daphne processes on one port: how many WEB_PROCESSES means, the commands and shared socket they get, and
`manage.py serve` running two that both answer and both stop on SIGTERM."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from django.conf import settings

from config.management.commands.serve import STOP_GRACE_SECONDS
from config.web_processes import APPLICATION, UVICORN_SETTINGS, web_commands, web_processes_count, web_server
from tests.processes import ROOT, database_url, free_port

POSTGRESQL = "django.db.backends.postgresql"
SQLITE = "django.db.backends.sqlite3"


# ---- how many processes --------------------------------------------------------------------------------------------

def test_automatic_means_one_process_per_core_on_postgresql():
    assert web_processes_count(0, database_engine=POSTGRESQL, cpus=8) == 8


def test_automatic_means_one_process_on_sqlite():
    assert web_processes_count(0, database_engine=SQLITE, cpus=8) == 1


def test_a_chosen_count_is_kept_on_either_database():
    assert web_processes_count(3, database_engine=POSTGRESQL, cpus=8) == 3
    assert web_processes_count(3, database_engine=SQLITE, cpus=8) == 3


def test_a_negative_count_is_a_configuration_error():
    with pytest.raises(ValueError, match=r"WEB_PROCESSES must be 0 .* got -1"):
        web_processes_count(-1, database_engine=POSTGRESQL)


def test_settings_refuse_a_negative_count():
    env = {**os.environ, "WEB_PROCESSES": "-2", "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'platform'}"}
    done = subprocess.run([sys.executable, "-c", "import config.settings"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0
    assert "WEB_PROCESSES must be 0" in done.stderr and "got -2" in done.stderr


# ---- the commands and the shared socket ----------------------------------------------------------------------------

def test_one_process_binds_host_and_port_itself():
    listeners, commands = web_commands(host="127.0.0.1", port=8123, processes=1)

    assert listeners == []
    assert commands == [[sys.executable, "-m", "config.serve_daphne", "-b", "127.0.0.1", "-p", "8123", APPLICATION]]


def test_several_processes_each_get_a_listening_socket_on_one_port():
    listeners, commands = web_commands(host="127.0.0.1", port=0, processes=3)
    try:
        assert commands == [[sys.executable, "-m", "config.serve_daphne", "--fd", str(s.fileno()), APPLICATION]
                            for s in listeners]
        assert len({s.getsockname() for s in listeners}) == 1  # one port
        for listener in listeners:
            assert listener.get_inheritable()
            assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
            assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        with socket.create_connection(listeners[0].getsockname(), timeout=5):
            pass  # the kernel completes the connection: it is listening
    finally:
        for listener in listeners:
            listener.close()


def test_uvicorn_runs_as_daphne_does_on_its_own_socket():
    listeners, commands = web_commands(host="127.0.0.1", port=0, processes=2, server="uvicorn")
    try:
        for command, listener in zip(commands, listeners):
            assert command == [sys.executable, "-m", "config.serve_uvicorn", str(listener.fileno())]
    finally:
        for listener in listeners:
            listener.close()
    single = web_commands(host="127.0.0.1", port=8123, processes=1, server="uvicorn")[1][0]
    assert single == [sys.executable, "-m", "config.serve_uvicorn", "127.0.0.1", "8123"]
    assert UVICORN_SETTINGS["proxy_headers"] is False  # the relay reads X-Forwarded-For itself, from trusted proxies


def test_the_web_server_is_daphne_or_uvicorn():
    assert web_server(" Uvicorn ") == "uvicorn" and web_server("daphne") == "daphne"
    with pytest.raises(ValueError, match="WEB_SERVER"):
        web_server("gunicorn")


def test_several_processes_need_an_ipv4_host():
    with pytest.raises(ValueError, match="IPv4"):
        web_commands(host="::", port=0, processes=2)


# ---- manage.py serve with two processes ----------------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    """The live child processes of `pid`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _server_connections(port: int) -> set[str]:
    """Socket inodes of the established server-side TCP connections on 127.0.0.1:port (/proc/net/tcp)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, state, inode = int(fields[1].split(":")[1], 16), fields[3], fields[9]
        if local_port == port and state == "01":  # 01: ESTABLISHED
            inodes.add(inode)
    return inodes


def _connections_held(pid: int, inodes: set[str]) -> int:
    """How many of these sockets the process has open: the connections it accepted."""
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        held += target.startswith("socket:[") and target[len("socket:["):-1] in inodes
    return held


def _healthz_kept_open(port: int) -> http.client.HTTPConnection:
    """A fresh connection that got 200 from /healthz and stays open (HTTP/1.1 keep-alive)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/healthz")
    response = conn.getresponse()
    response.read()
    assert response.status == 200
    return conn


def _wait_for_healthz(proc: subprocess.Popen, port: int, log) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            _healthz_kept_open(port).close()
            return
        except (OSError, http.client.HTTPException):
            time.sleep(0.2)
    log.seek(0)
    pytest.fail("serve did not answer /healthz:\n" + log.read().decode(errors="replace")[-3000:])


@pytest.mark.subprocess
@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_serve_runs_two_processes_that_both_answer_and_stop_on_sigterm(transactional_db, tmp_path, server):
    if settings.DATABASES["default"]["ENGINE"] != POSTGRESQL or not settings.REDIS_URL:
        pytest.skip("needs the PostgreSQL test database and Redis (scripts/with-services.sh)")
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL, "WEB_PROCESSES": "2",
           "WEB_SERVER": server,
           "HOST": "127.0.0.1", "PORT": str(port), "MODELGATE_VAR_DIR": str(tmp_path),
           "ADMIN_PASSWORD": "web-processes-admin", "RELAY_SHUTDOWN_GRACE_SECONDS": "2",
           "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'platform'}", "DJANGO_SETTINGS_MODULE": "config.settings"}
    log = tempfile.TemporaryFile()  # a file, not a pipe: a full pipe would stall the server
    serve = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "serve", "--no-worker"], env=env, cwd=ROOT,
                             stdout=log, stderr=log)
    daphnes: list[int] = []
    clients: list[http.client.HTTPConnection] = []
    try:
        _wait_for_healthz(serve, port, log)
        daphnes = _children(serve.pid)
        assert len(daphnes) == 2
        for pid in daphnes:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            assert (b"config.serve_daphne\0--fd\0" if server == "daphne" else b"config.serve_uvicorn\0") in cmdline

        # Each process accepts on its own socket of the port, and the kernel spreads new connections over the
        # sockets by their addresses: 40 fresh connections kept open, and the process holding a connection's socket
        # is the one that accepted it and answered (all 40 on one process: about 1 in 500 billion).
        clients += [_healthz_kept_open(port) for _ in range(40)]
        inodes = _server_connections(port)
        held = {pid: _connections_held(pid, inodes) for pid in daphnes}
        assert sum(held.values()) == 40 and all(held.values()), f"connections answered per Daphne process: {held}"
    finally:
        for client in clients:
            client.close()
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=STOP_GRACE_SECONDS + 15)  # serve itself kills what outlives its grace period
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait(timeout=10)
        left = [pid for pid in daphnes if _alive(pid)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        log.seek(0)
        output = log.read().decode(errors="replace")
        log.close()

    assert serve.returncode == 0, output[-3000:]
    assert "with 2 web processes" in output
    assert left == [], "Daphne processes outlived serve"
