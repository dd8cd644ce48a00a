"""ACCESS_LOG: a line per HTTP request on the web server's output, under Daphne as under uvicorn; none without it."""

from __future__ import annotations

import io
import sys
from unittest.mock import patch

import httpx
import pytest

from config.daphne_tuning import tune_daphne
from tests.processes import ServerProcesses


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_access_lines_are_written_only_when_asked_for(transactional_db, server):
    with ServerProcesses() as processes:
        quiet_url, quiet = processes.start(server=server, ACCESS_LOG="false")
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


def _logged(server_class, stream=None) -> str:
    """What one finished request logs through a server whose command line set up its access lines to `stream`."""
    from daphne.access import AccessLogGenerator

    written = io.StringIO()
    with patch.object(sys, "stdout", written):
        server = server_class.__new__(server_class)
        server.action_logger = AccessLogGenerator(stream or sys.stdout)
        server.log_action("http", "complete", {"path": "/v1/models", "status": 200, "method": "GET",
                                               "client": "127.0.0.1:5000", "time_taken": 0.01, "size": 2})
    return written.getvalue() + (stream.getvalue() if stream else "")


def test_daphnes_access_lines_follow_the_setting_and_come_back(daphne_server, monkeypatch):
    tune_daphne(access_log=False)
    assert _logged(daphne_server) == ""
    assert '"GET /v1/models" 200' in _logged(daphne_server, io.StringIO())  # a file given to --access-log
    tune_daphne(access_log=True)
    assert '"GET /v1/models" 200' in _logged(daphne_server)
    for option in (["--access-log", "-"], ["--access-log=-"], ["--acces", "-"]):  # asked for on its command line
        monkeypatch.setattr(sys, "argv", ["daphne", *option, "config.asgi:application"])
        tune_daphne(access_log=False)
        assert '"GET /v1/models" 200' in _logged(daphne_server), option


def test_other_loggers_of_daphnes_server_still_log(daphne_server):
    """runserver (Daphne's, as `daphne` is an installed app) gives the server a logger of its own."""
    lines: list = []
    tune_daphne(access_log=False)
    server = daphne_server.__new__(daphne_server)
    server.action_logger = lambda protocol, action, details: lines.append((action, details["path"]))
    server.log_action("http", "complete", {"path": "/v1/models"})
    assert lines == [("complete", "/v1/models")]
