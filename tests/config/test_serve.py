"""`make run`'s launcher: migrate, seed, serve web + relay and a Celery worker with beat; Ctrl-C stops them all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.subprocess


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_serve_runs_the_readme_flow_on_sqlite_and_stops_everything_on_ctrl_c(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY"}}
    env |= {"MODELGATE_VAR_DIR": str(tmp_path), "PORT": str(port), "DEMO_CHUNK_DELAY_MS": "1",
            "WORKER_CONCURRENCY": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "serve"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/api/status", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        else:
            pytest.fail("serve did not answer within 60 s")
        with httpx.Client(base_url=base, timeout=10) as web:
            body = {"username": "demo_user", "password": "a-long-password"}
            assert web.post("/api/user/register", json=body).status_code == 201
            assert web.post("/api/user/login", json=body).status_code == 200
            access = web.get("/api/user/token").json()["data"]
            key = web.post("/api/token/", json={"name": "first key", "unlimited_quota": True},
                           headers={"authorization": f"Bearer {access}"}).json()["data"]["key"]
            reply = web.post("/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                             json={"model": "demo-chat", "messages": [{"role": "user", "content": "Hello!"}]})
            assert reply.status_code == 200 and "Hello!" in reply.json()["choices"][0]["message"]["content"]
        children = _children(proc.pid)
        assert len(children) == 2  # daphne and the celery worker (with beat)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
    assert "Modelgate is serving on" in output and "Admin account: admin /" in output
    for child in children:
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)
