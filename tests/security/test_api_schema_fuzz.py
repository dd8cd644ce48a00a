"""Schema-driven fuzzing of the management API: every operation that `GET /api/schema/` describes is called with
generated valid and invalid input, as an operator and as a normal user. Whatever comes in, no answer is a 5xx,
every error is in the envelope `{"success": false, "message": ..., "data": null}`, a refused request moves nobody's
quota, and every balance equals its ledger.

The run is bounded and reproducible: a fixed number of examples per operation, derandomized generation and no
example database. Operator-only operations refuse a normal user before reading the input, so as a user they get a
few examples each, without the (long) coverage phase.

Requests go to Django's own handler in-process, inside the test's transaction: the ASGI entry hands /api/ to Django
untouched (tests/config cover that routing), and in-process calls are several times faster than the live server's,
so the same minute buys several times the examples."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.db.models import Max
from django.urls import Resolver404, resolve
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from accounts.models import User, UserRole
from accounts.services import access_token_issue
from billing.models import LedgerEntry
from config.api import IsPlatformAdmin

MAX_EXAMPLES = 15
SEED = 20240611
GENERATION = {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"}
CONFIG = {"seed": SEED, "generation": GENERATION, "phases": {"stateful": {"enabled": False}}}
REFUSAL_CONFIG = {"seed": SEED, "generation": GENERATION | {"max-examples": 3},
                  "phases": {"stateful": {"enabled": False}, "coverage": {"enabled": False}}}
ENVELOPE_KEYS = {"success", "message", "data"}
# The fixtures outlive each example on purpose: one database per operation, changed by every call, as in production.
KEEP_FIXTURES = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@dataclass
class Caller:
    """Who calls the API, and the bearer access token currently valid for them."""

    user: User
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class OfflineClient(httpx.AsyncClient):
    """Upstream tests (`/api/channel/test/{id}`) reach no network: every upstream a fuzzed request created is down."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(transport=httpx.MockTransport(self._unreachable), **kwargs)

    @staticmethod
    def _unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("offline in tests", request=request)


def served_schema() -> dict[str, Any]:
    """The OpenAPI document `GET /api/schema/` serves, built by the same generator without a request."""
    return SchemaGenerator().get_schema(request=None, public=True)


SERVED = served_schema()  # in the default language: only descriptions differ from one language to another


def admits_operators_only(operation: schemathesis.APIOperation) -> bool:
    """Whether the operation's view admits operators only (read from the view, not from a list kept here)."""
    view = resolve(re.sub(r"\{[^}]+\}", "1", operation.path)).func
    return IsPlatformAdmin in view.cls.permission_classes


def operator_only(ctx: Any) -> bool:
    return admits_operators_only(ctx.operation)


def _schema(config: dict[str, Any]) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_dict(copy.deepcopy(SERVED), config=schemathesis.Config.from_dict(config))


operator_schema = _schema(CONFIG)
user_schema = _schema(CONFIG).exclude(func=operator_only)
refusal_schema = _schema(REFUSAL_CONFIG).include(func=operator_only)


def _routed(path: str) -> bool:
    try:
        resolve(unquote(path))
    except Resolver404:
        return False
    return True


def _caller(user: User) -> Caller:
    return Caller(user=user, token=access_token_issue(user=user))


@pytest.fixture
def operator(make_user: Any) -> Caller:
    return _caller(make_user("fuzz-operator", role=UserRole.ADMIN))


@pytest.fixture
def member(make_user: Any) -> Caller:
    return _caller(make_user("fuzz-member"))


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, assert_books_balance: Any) -> Any:
    """Django's handler, with upstream tests kept offline; every balance equals its ledger once the operation is done."""
    monkeypatch.setattr("relay.probe.httpx.AsyncClient", OfflineClient)
    # As Django's test client does: a request must not close the connection that holds the test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    assert_books_balance()


def _books() -> tuple[dict[int, int], int | None]:
    """Every user's balance and the newest ledger row: what a refused request must leave as it was."""
    return dict(User.objects.values_list("pk", "quota")), LedgerEntry.objects.aggregate(last=Max("pk"))["last"]


LOGIN_PATHS = ("/api/user/login", "/api/user/login/2fa")


def _error_envelope_problem(response: schemathesis.Response) -> str | None:
    """Why an error answer is not `{"success": false, "message": "<text>", "data": null}`, or None when it is."""
    try:
        body = response.json()
    except ValueError:
        return f"not JSON: {response.content[:200]!r}"
    if not isinstance(body, dict) or set(body) != ENVELOPE_KEYS:
        return f"not the envelope: {body!r}"
    if body["success"] is not False or body["data"] is not None:
        return f"an error must say success false and carry no data: {body!r}"
    if not isinstance(body["message"], str) or not body["message"].strip():
        return f"an error needs a message: {body!r}"
    return None


def call_and_check(case: schemathesis.Case, caller: Caller, app: Any, balanced: Any) -> schemathesis.Response:
    """Send the case as `caller`; no 5xx, errors in the envelope, refusals move no quota, the books balance."""
    before = _books()
    response = case.call(app=app, headers=caller.headers)
    case.validate_response(response, checks=[not_a_server_error])
    # Only wrong credentials at login (a password, or a two-factor code) answer 401: anything else means the
    # caller's token stopped working and the run would be fuzzing the authentication check alone.
    assert response.status_code != 401 or case.path in LOGIN_PATHS, f"{case.method} {case.path}: 401"
    if response.status_code >= 400:
        problem = _error_envelope_problem(response)
        assert problem is None, f"{case.method} {case.formatted_path} -> {response.status_code}: {problem}"
        assert _books() == before, f"{case.method} {case.formatted_path} was refused but moved quota"
    elif case.method == "GET" and case.path == "/api/user/token":  # a new access token replaces the caller's
        caller.token = response.json()["data"]
    balanced(caller.user)
    return response


def test_the_fuzzed_schema_is_the_one_served(api_client: Any) -> None:
    response = api_client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    assert json.loads(response.content) == json.loads(json.dumps(served_schema()))


def test_operator_only_operations_are_told_apart() -> None:
    """The split of the runs below is right on both sides, so no run passes by fuzzing the wrong operations."""
    operations = [result.ok() for result in operator_schema.get_all_operations()]
    refused = {(op.method.upper(), op.path) for op in operations if admits_operators_only(op)}
    assert ("GET", "/api/user/") in refused and ("POST", "/api/user/{user_id}/quota") in refused
    assert ("GET", "/api/user/self") not in refused and ("POST", "/api/token/") not in refused


@operator_schema.parametrize()
@KEEP_FIXTURES
def test_operator_calls_never_fail_and_refusals_move_no_quota(
    case: schemathesis.Case, operator: Caller, app: Any, assert_books_balance: Any,
) -> None:
    call_and_check(case, operator, app, assert_books_balance)


@user_schema.parametrize()
@KEEP_FIXTURES
def test_user_calls_never_fail_and_refusals_move_no_quota(
    case: schemathesis.Case, member: Caller, app: Any, assert_books_balance: Any,
) -> None:
    call_and_check(case, member, app, assert_books_balance)


@refusal_schema.parametrize()
@KEEP_FIXTURES
def test_operator_operations_refuse_users_in_the_envelope(
    case: schemathesis.Case, member: Caller, app: Any, assert_books_balance: Any,
) -> None:
    response = call_and_check(case, member, app, assert_books_balance)
    expected = 403 if _routed(case.formatted_path) else 404  # a generated id that is not a number routes nowhere
    assert response.status_code == expected, f"{case.method} {case.formatted_path} -> {response.status_code}"
