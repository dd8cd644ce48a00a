"""A live server (the real ASGI application, relay included) on a loopback port, plus ready-made callers."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
import uvicorn

from datetime import timedelta

from accounts.models import User
from accounts.services import user_adjust_quota
from billing.charges import reservations_open
from billing.ledger import ledger_sum
from tests.support import settled
from tokens.services import token_create


class LiveServer:
    def __init__(self) -> None:
        from config.asgi import application, relay_app

        self.relay = relay_app
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        config = uvicorn.Config(application, host="127.0.0.1", port=self.port, lifespan="off", log_level="warning",
                                access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.server.started, "the live server did not start"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def _live_server(django_db_setup, django_db_blocker):
    server = LiveServer()
    yield server
    server.stop()
    with django_db_blocker.unblock():  # the server's pool threads still hold sessions on the test database
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")


@pytest.fixture
def live(_live_server, transactional_db, settings):
    """The live server over a clean database; per-process caches emptied so each test sees its own rows."""
    settings.RELAY_CACHE_SECONDS = 0
    _live_server.relay.snapshots.clear()
    _live_server.relay._failures.clear()
    yield _live_server
    _live_server.relay.snapshots.clear()
    # Every request this test made is settled or refunded, and every balance equals its ledger.
    assert settled(lambda: not reservations_open(older_than=timedelta(0))), "a reservation was left open"
    for user in User.objects.all():
        assert user.quota == ledger_sum(user_id=user.pk), user.username


@pytest.fixture
def funded_key(make_user):
    """(user, sk- key) with a balance of 10,000,000 quota on top of the trial credit."""

    def make(username: str = "dev", balance: int = 10_000_000, **token_fields):
        user = make_user(username)
        if balance:
            user_adjust_quota(user=user, amount=balance)
        _token, key = token_create(user=user, name=token_fields.pop("name", "main"),
                                   unlimited_quota=token_fields.pop("unlimited_quota", True), **token_fields)
        return user, key

    return make


@pytest.fixture
def bootstrap_demo(transactional_db):
    from django.core.management import call_command

    call_command("bootstrap", stdout=open("/dev/null", "w"))
