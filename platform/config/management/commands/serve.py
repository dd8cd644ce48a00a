"""Run the whole product in the foreground: the web server (web + relay; WEB_PROCESSES processes of WEB_SERVER, Daphne
by default, on one port) and a Celery worker with beat.

Migrates and bootstraps first; Ctrl-C (or SIGTERM) stops every process; if one dies, the others are stopped too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from config.env import BASE_DIR, VAR_DIR, env, env_int
from config.web_processes import web_commands

STOP_GRACE_SECONDS = 15


class Command(BaseCommand):
    help = "Migrate, seed, then serve web + relay (Daphne) and a Celery worker with beat until stopped."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--no-worker", action="store_true", help="Serve web + relay only.")

    def handle(self, *args: object, **options: object) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        call_command("bootstrap")
        for folder in ("broker", "processed", "control"):
            (VAR_DIR / "celery" / folder).mkdir(parents=True, exist_ok=True)
        host, port = env("HOST", "127.0.0.1"), env_int("PORT", 8000)
        try:
            listeners, web = web_commands(host=host, port=port, processes=settings.WEB_PROCESSES,
                                          server=settings.WEB_SERVER)
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot serve on {host}:{port}: {exc}") from exc
        child_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BASE_DIR), str(BASE_DIR / "platform")])}
        fds = [[listener.fileno()] for listener in listeners] or [[]]
        procs = [subprocess.Popen(cmd, env=child_env, cwd=BASE_DIR, pass_fds=fd) for cmd, fd in zip(web, fds)]
        for listener in listeners:
            listener.close()  # its Daphne process holds it now
        if not options["no_worker"]:
            procs.append(subprocess.Popen([
                sys.executable, "-m", "celery", "-A", "config", "worker", "--beat", "--loglevel", "INFO",
                "--concurrency", str(env_int("WORKER_CONCURRENCY", 2)), "--schedule",
                settings.CELERY_BEAT_SCHEDULE_FILENAME,
            ], env=child_env, cwd=BASE_DIR))
        self.stdout.write(self.style.SUCCESS(f"Modelgate is serving on http://{host}:{port}/ with {len(web)} web "
                                             f"process{'es' if len(web) > 1 else ''} (Ctrl-C stops it)"))
        sys.exit(supervise(procs))


def supervise(procs: list[subprocess.Popen]) -> int:
    """Wait for SIGINT/SIGTERM or for a child to exit, then stop them all (SIGTERM, a grace period, then SIGKILL);
    the exit code of the first child that ended, or 0 when asked to stop."""
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    while not stopping:
        exited = [p for p in procs if p.poll() is not None]
        if exited:
            code = exited[0].returncode or 1
            break
        time.sleep(0.3)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for proc in procs:
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return code
