"""Real server processes for tests that need several of them (Daphne, as `make run` and compose start it) on the
test database and Redis."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings

from config.web_processes import server_command

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


class ServerProcesses:
    """Starts server processes (Daphne unless told otherwise) on the (committed) test database; stops them all on exit."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Any] = []

    def __enter__(self) -> ServerProcesses:
        if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql" or not settings.REDIS_URL:
            pytest.skip("needs the PostgreSQL test database and Redis")
        return self

    def start(self, grace: float = 20, server: str = "daphne", tls: tuple[Path, Path] | None = None,
              **extra_env: str) -> tuple[str, subprocess.Popen]:
        """One server process (`daphne`, or `uvicorn` as WEB_SERVER=uvicorn runs it) on a free port; Daphne serves
        HTTPS with `tls` (the key's and the certificate's files)."""
        port = free_port()
        env = dict(os.environ, DATABASE_URL=database_url(), REDIS_URL=settings.REDIS_URL,
                   RELAY_SHUTDOWN_GRACE_SECONDS=str(grace), RELAY_CACHE_SECONDS="0",
                   PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'platform'}", DJANGO_SETTINGS_MODULE="config.settings",
                   # the test process's secrets, not whatever var/ holds (upstream keys are encrypted with one)
                   DJANGO_SECRET_KEY=settings.SECRET_KEY, UPSTREAM_KEY_SECRET=settings.UPSTREAM_KEY_SECRET)
        env.update(extra_env)
        log = tempfile.TemporaryFile()  # a file, not a pipe: a full pipe would stall the server
        command = server_command(server, host="127.0.0.1", port=port)
        if tls:
            command[-5:-1] = ["-e", f"ssl:{port}:interface=127.0.0.1:privateKey={tls[0]}:certKey={tls[1]}"]
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
        self.procs.append(proc)
        self.logs.append(log)
        url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(url + "/healthz", timeout=1, verify=False).status_code == 200:
                    return url, proc
            except httpx.HTTPError:
                time.sleep(0.1)
        proc.kill()
        proc.wait(timeout=10)
        log.seek(0)
        raise AssertionError(f"{server} did not start: " + log.read().decode(errors="replace")[-2000:])

    def output(self, proc: subprocess.Popen | None = None) -> str:
        """What the processes (or one of them) logged so far."""
        text = []
        for started, log in zip(self.procs, self.logs):
            if proc is None or started is proc:
                log.seek(0)
                text.append(log.read().decode(errors="replace"))
        return "\n".join(text)

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        for log in self.logs:
            log.close()
