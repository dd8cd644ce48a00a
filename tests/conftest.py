"""Shared fixtures: users, groups and API clients for the management API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db.backends.postgresql import operations as postgresql_operations
from django.utils import translation
from rest_framework.test import APIClient

from accounts.models import User, UserRole
from accounts.services import access_token_issue, user_adjust_quota, user_register
from billing.groups import group_default
from billing.ledger import ledger_sum
from billing.charges import reservations_open
from tests.live_server import LiveServer
from tests.support import settled
from tokens.services import token_create


def _flush_by_delete(self, style, tables, *, reset_sequences=False, allow_cascade=False):
    """Empty PostgreSQL's tables after each transactional test with DELETE rather than Django's TRUNCATE: on the
    few rows a test leaves it takes 2 ms, where TRUNCATE takes 90 (Django's foreign keys are deferred, so the
    order does not matter inside flush's transaction). Asked to reset sequences or cascade, Django's own."""
    if reset_sequences or allow_cascade:
        return _django_flush(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
    return [f"DELETE FROM {self.quote_name(table)};" for table in tables]


_django_flush = postgresql_operations.DatabaseOperations.sql_flush
postgresql_operations.DatabaseOperations.sql_flush = _flush_by_delete


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _english(settings):
    """Assertions read English messages; the zh-hans default is covered by the console's tests."""
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def default_group(db):
    return group_default()


@pytest.fixture
def make_user(db):
    """A registered user (trial credit and all), as registration makes them."""
    counter = iter(range(1, 10_000))

    def make(username: str | None = None, password: str = "s3cret-pass-word", **extra) -> User:
        user = user_register(username=username or f"user{next(counter)}", password=password)
        for name, value in extra.items():
            setattr(user, name, value)
        if extra:
            user.save()
        return user

    return make


@pytest.fixture
def user(make_user):
    return make_user("alice")


@pytest.fixture
def other_user(make_user):
    return make_user("bob")


@pytest.fixture
def admin(make_user):
    return make_user("root", role=UserRole.ADMIN)


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def client_for():
    """An API client authenticated by the user's access token (Authorization: Bearer)."""

    def make(user: User) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_issue(user=user)}")
        return client

    return make


@pytest.fixture
def assert_books_balance():
    """Every user's balance equals the sum of their ledger."""

    def check(*users: User) -> None:
        for user in users or User.objects.all():
            user.refresh_from_db(fields=["quota"])
            assert user.quota == ledger_sum(user_id=user.pk), user.username

    return check


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
    _live_server.relay.changed()
    yield _live_server
    _live_server.relay.changed()
    # Every request this test made is settled or refunded, and every balance equals its ledger.
    assert settled(lambda: _live_server.relay.books.idle), "the relay's books were not written"
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
