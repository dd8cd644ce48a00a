"""ACCESS_LOG: a line per HTTP request on the web server's output, under Daphne as under uvicorn; none without it."""

from __future__ import annotations

import sys

import httpx
import pytest

from config.daphne_tuning import tune_daphne
from tests.processes import ServerProcesses


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_access_lines_are_written_only_when_asked_for(transactional_db, server):
    with ServerProcesses() as processes:
        quiet_url, quiet = processes.start(server=server)
        loud_url, loud = processes.start(server=server, ACCESS_LOG="true")
        for url in (quiet_url, loud_url):
            assert httpx.get(url + "/readyz", timeout=10).status_code == 200
        assert '"GET /readyz' in processes.output(loud)
        assert "/readyz" not in processes.output(quiet) and "/healthz" not in processes.output(quiet)


@pytest.fixture
def daphne_server(monkeypatch):
    server = pytest.importorskip("daphne.server")
    monkeypatch.setattr(sys, "argv", ["daphne", "config.asgi:application"])
    yield server.Server
    tune_daphne(access_log=True)


def _logged(server_class) -> list:
    lines: list = []
    server = server_class.__new__(server_class)
    server.action_logger = lambda protocol, action, details: lines.append((action, details["path"]))
    server.log_action("http", "complete", {"path": "/v1/models"})
    return lines


def test_daphnes_access_lines_follow_the_setting_and_come_back(daphne_server, monkeypatch):
    tune_daphne(access_log=False)
    assert _logged(daphne_server) == []
    tune_daphne(access_log=True)
    assert _logged(daphne_server) == [("complete", "/v1/models")]
    monkeypatch.setattr(sys, "argv", ["daphne", "--access-log", "access.log", "config.asgi:application"])
    tune_daphne(access_log=False)  # Daphne's own option, given on its command line, still writes
    assert _logged(daphne_server) == [("complete", "/v1/models")]
