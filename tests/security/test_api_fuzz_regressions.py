"""Input the management API used to answer with a 500, found by the schema fuzzer (test_api_schema_fuzz.py, some with
other seeds and more examples than it runs by default): each is now refused with a 400 in the envelope, and nothing
is written."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import User
from billing.models import ModelPrice
from relay.models import Upstream
from relay.upstreams import upstream_save
from tokens.models import ApiToken

NUL = "\x00"


def _refused(response: Any, field: str) -> None:
    body = response.json()
    assert response.status_code == 400, body
    assert body["success"] is False and body["data"] is None and field in body["message"], body


@pytest.mark.parametrize("status", [{}, [], {"enabled": True}, ["enabled"], 1.5])
def test_an_upstream_status_that_is_neither_a_name_nor_a_number_is_refused(status, admin, client_for):
    """A list or an object as `status` used to crash the alias lookup (unhashable) instead of failing validation."""
    client = client_for(admin)
    body = {"name": "up", "type": "demo", "status": status}
    _refused(client.post("/api/channel/", body, format="json"), "status")
    assert not Upstream.objects.exists()


def test_new_api_status_numbers_still_name_upstream_statuses(admin, client_for):
    created = client_for(admin).post("/api/channel/", {"name": "up", "type": "demo", "status": 2}, format="json")
    assert created.status_code == 201 and created.json()["data"]["status"] == "disabled"


@pytest.mark.parametrize("query", [
    "/api/user/?keyword={}", "/api/user/?group={}", "/api/channel/?type={}", "/api/channel/?status={}",
    "/api/pricing/?model={}", "/api/redemption/?name={}",
])
def test_list_filters_with_a_nul_character_are_refused(query, admin, client_for):
    """PostgreSQL refuses NUL in text; the raw query parameter used to reach the query and fail there."""
    _refused(client_for(admin).get(query.format("%00")), query.split("?")[1].split("=")[0])


def test_an_upstream_test_model_with_a_nul_character_is_refused(admin, client_for):
    """Not a 500 before, but refused like every other text parameter rather than sent upstream."""
    upstream = upstream_save(name="demo", type="demo")
    _refused(client_for(admin).get(f"/api/channel/test/{upstream.pk}?model=a%00b"), "model")


def test_blank_list_filters_still_mean_no_filter(admin, user, client_for):
    listed = client_for(admin).get("/api/user/?keyword=%20%20&group=").json()["data"]["total"]
    assert listed == User.objects.count() > 1


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/token/", {"name": "k", "model_limits": ["gpt" + NUL]}, "model_limits"),
    ("/api/token/", {"name": "k", "allow_ips": "10.0.0.1," + NUL}, "allow_ips"),
    ("/api/channel/", {"name": "up", "type": "demo", "models": ["demo" + NUL]}, "models"),
    ("/api/channel/", {"name": "up", "type": "demo", "model_mapping": {"a" + NUL: "b"}}, "model_mapping"),
    ("/api/channel/", {"name": "up", "type": "demo", "extras": {"deep": [{"x": NUL}]}}, "extras"),
    ("/api/pricing/", {"model": "m", "price_variants": {"hd" + NUL: "1"}}, "price_variants"),
])
def test_json_values_with_a_nul_character_are_refused(path, body, field, user, admin, client_for):
    """jsonb refuses \\u0000 in strings and keys; list and object fields used to pass it on to the database."""
    caller = user if path == "/api/token/" else admin
    _refused(client_for(caller).post(path, body, format="json"), field)
    assert not ApiToken.objects.exists() and not Upstream.objects.exists()
    assert not ModelPrice.objects.filter(model="m").exists()


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/group/", {"name": "vip", "ratio": "1", "rpm_limit": 2**31}, "rpm_limit"),
    ("/api/group/", {"name": "vip", "ratio": "1", "concurrency_limit": 2**40}, "concurrency_limit"),
    ("/api/pricing/", {"model": "m", "context_window": 2**31}, "context_window"),
])
def test_numbers_beyond_their_column_are_refused(path, body, field, admin, client_for):
    """Limits without a maximum used to reach PostgreSQL's integer column and overflow there."""
    _refused(client_for(admin).post(path, body, format="json"), field)
    assert not ModelPrice.objects.filter(model="m").exists()


def test_json_nested_too_deeply_is_a_clean_400(admin, client_for):
    client = client_for(admin)
    response = client.post("/api/token/", data="[" * 100_000, content_type="application/json")
    assert response.status_code == 400 and response.json()["success"] is False
