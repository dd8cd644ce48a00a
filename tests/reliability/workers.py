"""Real Celery worker processes on the test database and Redis, as compose runs them, that a test can SIGKILL.

Each worker is started in a session of its own, so killing its process group also kills the beat process it embeds;
its database sessions are named (`application_name`) so a test can find where a worker is blocked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from tests.processes import database_url
from tests.support import redis_url_after

ROOT = Path(__file__).resolve().parents[2]
APP_NAME = "mg-reliability-worker"
BROKER_DB = 13  # a Redis database of its own: no other test's messages


def broker_url() -> str:
    return redis_url_after(BROKER_DB)


class Workers:
    """Starts `celery -A config worker` processes polling tasks every second; kills them all on exit."""

    def __init__(self, var_dir: Path) -> None:
        self.var_dir = var_dir
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Any] = []

    def __enter__(self) -> Workers:
        if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql" or not settings.REDIS_URL:
            pytest.skip("needs the PostgreSQL test database and Redis")
        import redis

        redis.Redis.from_url(broker_url()).flushdb()  # no poll messages queued by an earlier test's beat
        return self

    def start(self, *, beat: bool = True) -> subprocess.Popen:
        """One worker (solo pool, one message at a time); with `beat`, it also sends the poll job every second."""
        number = len(self.procs)
        env = dict(os.environ, DATABASE_URL=database_url(), REDIS_URL=broker_url(), TASK_POLL_SECONDS="1",
                   PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'platform'}", DJANGO_SETTINGS_MODULE="config.settings",
                   MODELGATE_VAR_DIR=str(self.var_dir), PGAPPNAME=self.app_name(number),
                   # one installation: the secrets every replica shares (upstream keys are encrypted with one)
                   DJANGO_SECRET_KEY=settings.SECRET_KEY, UPSTREAM_KEY_SECRET=settings.UPSTREAM_KEY_SECRET)
        command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--loglevel=INFO",
                   "--prefetch-multiplier=1", "-n", f"reliability{number}@%h", "--without-heartbeat",
                   "--without-gossip", "--without-mingle"]
        if beat:
            command += ["--beat", "--schedule", str(self.var_dir / f"beat-schedule-{number}")]
        log = tempfile.TemporaryFile()  # a file, not a pipe: a full pipe would stall the worker
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
        self.procs.append(proc)
        self.logs.append(log)
        return proc

    @staticmethod
    def app_name(number: int) -> str:
        return f"{APP_NAME}-{number}"

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL the worker and everything it started (its embedded beat): no shutdown code runs."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)

    def output(self) -> str:
        text = []
        for log in self.logs:
            log.seek(0)
            text.append(log.read().decode(errors="replace"))
        return "\n".join(text)

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            self.kill(proc)
        if exc[0] is not None or "Traceback" in self.output():
            print(self.output()[-8000:])
        for log in self.logs:
            log.close()
        # A killed worker's session can outlive it while it waits on a lock: end it, so the database can be flushed.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND application_name LIKE %s",
                           [f"{APP_NAME}-%"])


def sessions_blocked_by(blocker_pid: int) -> list[tuple[int, str, str]]:
    """(pid, application name, query) of every worker session waiting on a lock `blocker_pid` holds."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid, application_name, query FROM pg_stat_activity WHERE datname = current_database() "
                       "AND application_name LIKE %s AND %s = ANY(pg_blocking_pids(pid))",
                       [f"{APP_NAME}-%", blocker_pid])
        return list(cursor.fetchall())


def session_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone() is not None


@contextmanager
def row_locked(table: str, pk: int) -> Iterator[int]:
    """Hold one row's lock from a session of the test's own, as a concurrent transaction would; yields the session's
    backend pid. The lock is released (rolled back) on exit."""
    with psycopg.connect(database_url()) as conn:
        conn.execute(f'SELECT 1 FROM "{table}" WHERE id = %s FOR UPDATE', [pk])
        try:
            yield conn.info.backend_pid
        finally:
            conn.rollback()
