"""Operators fetch the models an upstream lists (`/api/channel/fetch_models/{id}`), in each provider's format."""

from __future__ import annotations

import pytest

from relay.upstreams import upstream_save
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI


@pytest.fixture(scope="module")
def fakes():
    with FakeOpenAI(api_key="sk-oa", models=("gpt-4o", "o4-mini")) as oai, \
            FakeAnthropic(api_key="sk-ant", models=("claude-sonnet-4-5",)) as claude, \
            FakeGemini(api_key="g-up", models=tuple(f"gemini-test-{i:02d}" for i in range(60))) as gem:
        yield oai, claude, gem


def test_each_family_lists_its_models(fakes, admin, client_for, default_group):
    oai, claude, gem = fakes
    client = client_for(admin)
    listed = {}
    for kind, fake in (("openai", oai), ("anthropic", claude), ("gemini", gem)):
        upstream = upstream_save(name=kind, type=kind, base_url=fake.url, keys=fake.api_key,
                                 header_override={"X-Team": "ops"})
        body = client.get(f"/api/channel/fetch_models/{upstream.pk}").json()
        assert body["success"] is True, body
        listed[kind] = body["data"]
        assert fake.requests[-1].headers["x-team"] == "ops"
    assert listed["openai"] == ["gpt-4o", "o4-mini"] and listed["anthropic"] == ["claude-sonnet-4-5"]
    assert listed["gemini"][:2] == ["gemini-test-00", "gemini-test-01"] and len(listed["gemini"]) == 60
    assert gem.requests[-1].headers["x-goog-api-key"] == "g-up"


def test_refusals_and_unlistable_upstreams_are_said(fakes, admin, user, client_for, default_group):
    oai = fakes[0]
    client = client_for(admin)
    wrong_key = upstream_save(name="bad", type="openai", base_url=oai.url, keys="sk-wrong-key-123456")
    body = client.get(f"/api/channel/fetch_models/{wrong_key.pk}").json()
    assert body["success"] is False and body["message"].startswith("HTTP 401") and "sk-wrong" not in body["message"]
    demo = upstream_save(name="demo", type="demo")
    assert client.get(f"/api/channel/fetch_models/{demo.pk}").json() == {
        "success": False, "message": "This upstream does not list its models.", "data": []}
    assert client.get("/api/channel/fetch_models/9999").status_code == 404
    assert client_for(user).get(f"/api/channel/fetch_models/{demo.pk}").status_code == 403  # operators only
