"""The embedded default: no DATABASE_URL and no REDIS_URL means SQLite under var/, and the product still answers."""

from __future__ import annotations

import os
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


def test_sqlite_default_migrates_seeds_and_answers_status(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY"}}
    env |= {"MODELGATE_VAR_DIR": str(tmp_path), "ADMIN_PASSWORD": "", "PYTHONPATH": f"{ROOT}:{ROOT / 'platform'}"}
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, cwd=ROOT, check=True, timeout=120)
    boot = subprocess.run([*manage, "bootstrap"], env=env, cwd=ROOT, check=True, timeout=60, capture_output=True,
                          text=True)
    assert (tmp_path / "modelgate.sqlite3").exists()
    assert (tmp_path / "secret_key.txt").exists()
    password = (tmp_path / "admin_password.txt").read_text().strip()
    assert password in boot.stdout  # printed once, on first run
    again = subprocess.run([*manage, "bootstrap"], env=env, cwd=ROOT, check=True, timeout=60, capture_output=True,
                           text=True)
    assert password not in again.stdout

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        body = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=2).json()
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert body is not None, "daphne did not answer"
        assert body["success"] is True
        assert body["data"]["quota_per_unit"] == 500_000
        login = httpx.post(f"http://127.0.0.1:{port}/api/user/login",
                           json={"username": "admin", "password": password}, timeout=5)
        assert login.json()["data"]["role"] == "admin"
    finally:
        server.terminate()
        server.wait(timeout=10)
