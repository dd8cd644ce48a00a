"""Per-upstream overrides: parameters, headers and a system prompt put on what an upstream receives."""

from __future__ import annotations

import copy
from decimal import Decimal

import anthropic
import openai
import pytest

from billing.groups import group_default
from billing.models import ModelPrice, UsageLog
from relay.admin import UpstreamAdminForm
from relay.overrides import (
    header_override_problem, headers_with_overrides, merge_patch, param_override_problem, with_system_prompt,
)
from relay.probe import upstream_test
from relay.upstreams import upstream_save
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI
from tests.support import settled

HOUSE = "Answer in the house style."


def test_merge_patch_merges_objects_removes_nulls_and_changes_neither_side():
    body = {"model": "m", "temperature": 1, "generationConfig": {"topK": 3, "thinkingConfig": {"budget": 9}}}
    patch = {"temperature": None, "generationConfig": {"thinkingConfig": {"budget": 0}}, "seed": 7}
    merged = merge_patch(body, patch)
    assert merged == {"model": "m", "seed": 7, "generationConfig": {"topK": 3, "thinkingConfig": {"budget": 0}}}
    assert body["temperature"] == 1 and body["generationConfig"]["thinkingConfig"] == {"budget": 9}
    assert merge_patch(body, {"stop": ["a", "b"]})["stop"] == ["a", "b"]  # arrays replace


@pytest.mark.parametrize("messages, prepend, first", [
    ([{"role": "user", "content": "hi"}], False, {"role": "system", "content": HOUSE}),
    ([{"role": "system", "content": "Mine."}, {"role": "user", "content": "hi"}], False,
     {"role": "system", "content": "Mine."}),
    ([{"role": "system", "content": "Mine."}, {"role": "user", "content": "hi"}], True,
     {"role": "system", "content": f"{HOUSE}\n\nMine."}),
    ([{"role": "developer", "content": [{"type": "text", "text": "Mine."}]}, {"role": "user", "content": "hi"}], True,
     {"role": "developer", "content": [{"type": "text", "text": HOUSE}, {"type": "text", "text": "Mine."}]}),
])
def test_system_prompt_in_openai_chat(messages, prepend, first):
    body = {"model": "m", "messages": messages}
    before = copy.deepcopy(body)
    out = with_system_prompt(body, "openai", "chat/completions", HOUSE, prepend)
    assert out["messages"][0] == first and out["messages"][-1] == messages[-1]
    assert body == before  # the caller's request is not changed: a failover sends it again


def test_system_prompt_in_every_upstream_format():
    anth = with_system_prompt({"messages": [], "system": [{"type": "text", "text": "Mine."}]}, "anthropic",
                              "chat/completions", HOUSE, True)
    assert anth["system"] == [{"type": "text", "text": HOUSE}, {"type": "text", "text": "Mine."}]
    assert with_system_prompt({"messages": []}, "anthropic", "messages", HOUSE, False)["system"] == HOUSE
    gem = with_system_prompt({"contents": [], "system_instruction": {"parts": [{"text": "Mine."}]}}, "gemini",
                             "generateContent", HOUSE, True)
    assert gem["system_instruction"]["parts"] == [{"text": HOUSE}, {"text": "Mine."}] and "systemInstruction" not in gem
    assert with_system_prompt({"contents": []}, "gemini", "generateContent", HOUSE, False)["systemInstruction"] == {
        "parts": [{"text": HOUSE}]}
    assert with_system_prompt({"input": "x", "instructions": "Mine."}, "openai", "responses", HOUSE, True)[
        "instructions"] == f"{HOUSE}\n\nMine."
    embeddings = {"input": "x"}
    assert with_system_prompt(embeddings, "openai", "embeddings", HOUSE, True) is embeddings


def test_header_overrides_replace_without_case_and_fill_in_the_key():
    headers = {"Authorization": "Bearer k", "content-type": "application/json"}
    out = headers_with_overrides(headers, {"authorization": "Token {api_key}", "X-Team": "sales"}, "k")
    assert out == {"content-type": "application/json", "authorization": "Token k", "X-Team": "sales"}
    assert headers_with_overrides(headers, {}, "k") is headers


@pytest.mark.parametrize("params, headers, problem", [
    ({"stream": False}, {}, "Parameter overrides cannot set stream: the relay decides it."),
    ([1], {}, 'Parameter overrides must be a JSON object, for example {"temperature": 0.2}.'),
    ({}, {"Host": "x"}, "The Host header is set by the relay."),
    ({}, {"Accept-Encoding": "gzip"}, "The Accept-Encoding header is set by the relay."),  # streams pass as read
    ({}, {"bad name": "x"}, "Not a header name: 'bad name'."),
    ({}, {"X-A": "one\r\nX-B: two"}, "The X-A header needs a one-line text value."),
    ({}, {"X-A": 3}, "The X-A header needs a one-line text value."),
])
def test_bad_overrides_are_named(params, headers, problem):
    assert (param_override_problem(params) or header_override_problem(headers)) == problem


# --- through the relay ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fakes():
    with FakeOpenAI(api_key="sk-oa-up") as oai, FakeAnthropic(api_key="sk-ant-up") as claude, \
            FakeGemini(api_key="g-up") as gem:
        yield oai, claude, gem


@pytest.fixture
def fresh(fakes, transactional_db):
    for fake in fakes:
        fake.reset()
    for model, provider in (("gpt-4o", "openai"), ("claude-sonnet-4-5", "anthropic"), ("gemini-2.5-flash", "gemini")):
        ModelPrice.objects.create(model=model, provider=provider, model_ratio=Decimal(1), completion_ratio=Decimal(4))
    return fakes


def _upstream(fake, kind, model, **overrides):
    return upstream_save(name=kind, type=kind, base_url=fake.url, keys=fake.api_key, served_models=[model],
                         groups=[group_default().name], **overrides)


def test_an_openai_upstream_receives_the_overrides_plain_and_streamed(live, fresh, funded_key):
    oai = fresh[0]
    _upstream(oai, "openai", "gpt-4o", param_override={"temperature": 0.2, "user": None, "service_tier": "flex"},
              header_override={"X-Team": "sales", "X-Key-Echo": "{api_key}"}, system_prompt=HOUSE)
    _user, key = funded_key()
    client = openai.OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0)
    answer = client.chat.completions.create(model="gpt-4o", temperature=1.5, user="someone",
                                            messages=[{"role": "user", "content": "Hello"}])
    assert answer.choices[0].message.content
    sent = oai.requests[-1]
    assert sent.json["temperature"] == 0.2 and sent.json["service_tier"] == "flex" and "user" not in sent.json
    assert sent.json["messages"][0] == {"role": "system", "content": HOUSE}
    assert sent.headers["x-team"] == "sales" and sent.headers["x-key-echo"] == oai.api_key
    assert key not in str(sent.headers)
    chunks = list(client.chat.completions.create(model="gpt-4o", stream=True,
                                                 messages=[{"role": "system", "content": "Mine."},
                                                           {"role": "user", "content": "Hello"}]))
    assert any(c.choices and c.choices[0].delta.content for c in chunks)
    sent = oai.requests[-1]
    assert sent.json["stream"] is True and sent.json["stream_options"] == {"include_usage": True}
    assert sent.json["messages"][0] == {"role": "system", "content": "Mine."}  # the caller's kept: not prepend
    assert settled(lambda: UsageLog.objects.count() == 2)


def test_anthropic_and_gemini_upstreams_get_the_prompt_in_their_own_format(live, fresh, funded_key):
    _oai, claude, gem = fresh
    _upstream(claude, "anthropic", "claude-sonnet-4-5", system_prompt=HOUSE, system_prompt_prepend=True,
              param_override={"metadata": {"user_id": "house"}})
    _upstream(gem, "gemini", "gemini-2.5-flash", system_prompt=HOUSE,
              param_override={"generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}})
    _user, key = funded_key()
    anthropic.Anthropic(api_key=key, base_url=live.url, max_retries=0).messages.create(
        model="claude-sonnet-4-5", max_tokens=32, system="Mine.", messages=[{"role": "user", "content": "Hi"}])
    sent = claude.requests[-1].json
    assert sent["system"] == f"{HOUSE}\n\nMine." and sent["metadata"] == {"user_id": "house"}
    client = openai.OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0)
    client.chat.completions.create(model="gemini-2.5-flash", temperature=0.3,
                                   messages=[{"role": "user", "content": "Hi"}])
    sent = gem.requests[-1].json
    assert sent["systemInstruction"] == {"parts": [{"text": HOUSE}]}
    assert sent["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}
    assert sent["generationConfig"]["temperature"] == 0.3  # merged, not replaced
    assert settled(lambda: UsageLog.objects.count() == 2)


def test_the_upstream_test_sends_the_overrides(fresh, db):
    oai = fresh[0]
    upstream = _upstream(oai, "openai", "gpt-4o", header_override={"X-Team": "ops"}, param_override={"seed": 1})
    assert upstream_test(upstream=upstream).ok
    assert oai.requests[-1].headers["x-team"] == "ops" and oai.requests[-1].json["seed"] == 1


# --- set by operators --------------------------------------------------------------------------------------------

def test_the_management_api_takes_checks_and_shows_overrides(admin, client_for, default_group):
    client = client_for(admin)
    base = {"name": "oa", "type": "openai", "key": "sk-x", "models": "gpt-4o"}
    r = client.post("/api/channel/", base | {"param_override": {"stream": True}}, format="json")
    assert r.status_code == 400 and r.json()["success"] is False
    assert r.json()["message"] == "Parameter overrides cannot set stream: the relay decides it."
    r = client.post("/api/channel/", base | {"header_override": {"Content-Length": "1"}}, format="json")
    assert r.status_code == 400 and r.json()["message"] == "The Content-Length header is set by the relay."
    r = client.post("/api/channel/", base | {"param_override": {"top_p": 0.5}, "header_override": {"X-A": "b"},
                                             "system_prompt": HOUSE, "system_prompt_prepend": True}, format="json")
    assert r.status_code == 201, r.json()
    data = r.json()["data"]
    assert (data["param_override"], data["header_override"], data["system_prompt"], data["system_prompt_prepend"]) == (
        {"top_p": 0.5}, {"X-A": "b"}, HOUSE, True)


def test_the_admin_form_names_bad_overrides(default_group):
    form = UpstreamAdminForm(data={
        "name": "oa", "type": "openai", "keys": "sk-x", "served_models": '["gpt-4o"]', "model_mapping": "{}",
        "groups": [default_group.pk], "priority": 0, "weight": 1, "status": "enabled", "connect_timeout": 10,
        "first_byte_timeout": 60, "total_timeout": 600, "extras": "{}", "param_override": '{"stream": false}',
        "header_override": '{"Host": "x"}', "system_prompt": "",
    })
    assert not form.is_valid()
    assert form.errors["param_override"] == ["Parameter overrides cannot set stream: the relay decides it."]
    assert form.errors["header_override"] == ["The Host header is set by the relay."]


def test_a_mapped_status_fails_over_where_the_upstreams_own_would_not(live, fresh, funded_key):
    oai = fresh[0]
    flaky = _upstream(oai, "openai", "gpt-4o", status_code_mapping={"400": 503}, priority=10)
    good = FakeOpenAI(api_key="sk-other")
    with good:
        upstream_save(name="good", type="openai", base_url=good.url, keys="sk-other", served_models=["gpt-4o"],
                      groups=[group_default().name], priority=1)
        oai.behave("gpt-4o", status=400, error_message="model is warming up")
        _user, key = funded_key()
        client = openai.OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0)
        answer = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        assert answer.choices[0].message.content and good.requests  # the 400, read as 503, went on to the next
        flaky.status_code_mapping = {}
        flaky.save()
        with pytest.raises(openai.BadRequestError):  # unmapped, a 400 is the caller's and goes back to them
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        assert len(good.requests) == 1
    assert settled(lambda: UsageLog.objects.count() == 2)


@pytest.mark.parametrize("mapping", [{"200": 500}, {"400": 200}, {"abc": 500}, {"429": True}, ["400"]])
def test_only_error_statuses_map(admin, client_for, default_group, mapping):
    r = client_for(admin).post("/api/channel/", {"name": "oa", "type": "openai", "key": "sk-x", "models": "gpt-4o",
                                                 "status_code_mapping": mapping}, format="json")
    assert r.status_code == 400 and r.json()["success"] is False
