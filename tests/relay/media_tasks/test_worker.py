"""End to end with a real Celery worker (with its embedded beat) on the test database: tasks submitted through the
live server are polled, settled once and their callbacks delivered, with no test code driving the poll."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from django.conf import settings

from relay.media_tasks.models import MediaTask, TaskStatus
from tests.relay.media_tasks.conftest import assert_settled_once
from tests.support import post, redis_url_after, settled

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.subprocess


def _database_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def worker(tmp_path):
    """`celery -A config worker --beat` polling every second; stopped (and its log shown on failure) at the end."""
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql" or not settings.REDIS_URL:
        pytest.skip("needs the PostgreSQL test database and Redis")
    broker = redis_url_after(14)  # its own database: no other test's messages
    env = dict(os.environ, DATABASE_URL=_database_url(), REDIS_URL=broker, TASK_POLL_SECONDS="1",
               TASK_NOTIFY_ALLOW_PRIVATE="1", TASK_NOTIFY_BACKOFF_SECONDS="1",
               PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'platform'}", DJANGO_SETTINGS_MODULE="config.settings",
               MODELGATE_VAR_DIR=str(tmp_path))
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--beat", "--pool=solo", "--loglevel=INFO",
         "--schedule", str(tmp_path / "beat-schedule"), "--without-heartbeat", "--without-gossip",
         "--without-mingle"], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.seek(0)
        output = log.read().decode(errors="replace")
        log.close()
        if "Traceback" in output:
            print(output[-5000:])


def test_worker_polls_settles_and_notifies(live, upstream, funded_key, tasks_env, worker, settings):
    settings.TASK_NOTIFY_ALLOW_PRIVATE = True
    upstream("demo", task_seconds=1)
    user, key = funded_key()
    before = user.quota
    hook = f"{tasks_env.url}/hook"
    done = post(live, "/v1/video/generations", key, {"model": "demo-video", "prompt": "a lighthouse",
                                                      "duration": 4, "notify_hook": hook}).json()
    failed = post(live, "/mj/submit/imagine", key, {"prompt": "a storm [fail]", "notifyHook": hook}).json()
    tasks = [MediaTask.objects.get(public_id=done["id"]), MediaTask.objects.get(public_id=failed["result"])]

    def finished() -> bool:
        return all(MediaTask.objects.get(pk=t.pk).settled_at for t in tasks) and len(tasks_env.hooks) >= 2

    assert settled(finished, timeout=60), f"worker did not settle: {worker.poll()=}"
    assert_settled_once(tasks[0], charged=20_000)  # $0.01 x 4 s
    assert_settled_once(tasks[1], refunded=True)
    assert tasks[0].status == TaskStatus.SUCCESS and tasks[1].status == TaskStatus.FAILURE
    statuses = {h.get("task_id") or h.get("id"): h["status"] for h in tasks_env.hooks}
    assert statuses[done["id"]] == "SUCCESS" and statuses[failed["result"]] == "FAILURE"
    user.refresh_from_db()
    assert user.quota == before - 20_000
