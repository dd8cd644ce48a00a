"""Thinking suffixes on model names: the known model, asked to think (or not) in the client's own protocol."""

from __future__ import annotations

from decimal import Decimal

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

from billing.groups import group_default
from billing.models import ModelPrice, UsageLog
from relay.model_suffixes import Thinking, thinking_suffix, with_thinking
from relay.upstreams import upstream_save
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI
from tests.support import settled

CLAUDE, FLASH = "claude-sonnet-4-5", "gemini-2.5-flash"


@pytest.mark.parametrize("name, expected", [
    ("claude-sonnet-4-5-thinking", ("claude-sonnet-4-5", Thinking(on=True))),
    ("gemini-2.5-flash-thinking-2048", ("gemini-2.5-flash", Thinking(on=True, budget=2048))),
    ("gemini-2.5-flash-thinking-0", ("gemini-2.5-flash", Thinking(on=False, budget=0))),
    ("gemini-2.5-flash-nothinking", ("gemini-2.5-flash", Thinking(on=False))),
    ("o4-mini-high", ("o4-mini", Thinking(on=True, budget=24576, effort="high"))),
    ("gpt-4o", None),
    ("-thinking", None),
    ("model-thinking-x", None),
])
def test_suffixes_are_read(name, expected):
    assert thinking_suffix(name) == expected


def test_each_protocol_gets_its_own_thinking_parameter():
    assert with_thinking({"messages": []}, "chat/completions", Thinking(on=False))["reasoning_effort"] == "none"
    assert with_thinking({"messages": []}, "chat/completions", Thinking(on=True, budget=20000))[
        "reasoning_effort"] == "high"
    assert with_thinking({"input": "x", "reasoning": {"summary": "auto"}}, "responses", Thinking(on=True))[
        "reasoning"] == {"summary": "auto", "effort": "medium"}
    claude = with_thinking({"max_tokens": 4000, "temperature": 0.5, "messages": []}, "messages", Thinking(on=True))
    assert claude == {"max_tokens": 4000, "messages": [], "thinking": {"type": "enabled", "budget_tokens": 3200}}
    small = with_thinking({"max_tokens": 100, "messages": []}, "messages", Thinking(on=True))
    assert small["thinking"]["budget_tokens"] == 1024 and small["max_tokens"] == 1124
    off = with_thinking({"max_tokens": 100, "thinking": {"type": "enabled", "budget_tokens": 1024}}, "messages",
                        Thinking(on=True, budget=512, effort="minimal"))
    assert "thinking" not in off
    gem = with_thinking({"contents": [], "generationConfig": {"temperature": 0.1}}, "generateContent",
                        Thinking(on=True, budget=2048))
    assert gem["generationConfig"] == {"temperature": 0.1,
                                       "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 2048}}


# --- through the relay ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fakes():
    with FakeOpenAI(api_key="sk-oa-up") as oai, FakeAnthropic(api_key="sk-ant-up") as claude, \
            FakeGemini(api_key="g-up") as gem:
        yield oai, claude, gem


@pytest.fixture
def served(fakes, transactional_db):
    oai, claude, gem = fakes
    for fake in fakes:
        fake.reset()
    for model, provider in ((CLAUDE, "anthropic"), (FLASH, "gemini"), ("o4-mini", "openai")):
        ModelPrice.objects.create(model=model, provider=provider, model_ratio=Decimal(1), completion_ratio=Decimal(4))
    group = group_default().name
    upstream_save(name="claude", type="anthropic", base_url=claude.url, keys="sk-ant-up", served_models=[CLAUDE],
                  groups=[group])
    upstream_save(name="gem", type="gemini", base_url=gem.url, keys="g-up", served_models=[FLASH], groups=[group])
    upstream_save(name="oai", type="openai", base_url=oai.url, keys="sk-oa-up", served_models=["o4-mini"],
                  groups=[group])
    return fakes


def test_an_openai_client_asks_claude_to_think_by_its_name(live, served, funded_key):
    _oai, claude, _gem = served
    _user, key = funded_key()
    client = openai.OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0)
    client.chat.completions.create(model=f"{CLAUDE}-thinking", max_tokens=2000, temperature=0.2,
                                   messages=[{"role": "user", "content": "Hi"}])
    sent = claude.requests[-1].json
    assert sent["model"] == CLAUDE and sent["thinking"] == {"type": "enabled", "budget_tokens": 1600}
    assert settled(lambda: UsageLog.objects.exists())
    log = UsageLog.objects.get()
    assert log.model == CLAUDE and log.quota > 0  # billed at the model's own price


def test_anthropic_and_gemini_clients_get_exact_budgets_and_thinking_off(live, served, funded_key):
    _oai, claude, gem = served
    _user, key = funded_key()
    anthropic.Anthropic(api_key=key, base_url=live.url, max_retries=0).messages.create(
        model=f"{CLAUDE}-thinking-2000", max_tokens=1000, extra_body={"temperature": 0.3},
        messages=[{"role": "user", "content": "Hi"}])
    sent = claude.requests[-1].json
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2000} and sent["max_tokens"] == 3000
    assert "temperature" not in sent
    client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=live.url, api_version="v1beta"))
    client.models.generate_content(model=f"{FLASH}-nothinking", contents="Hi")
    assert gem.requests[-1].path.endswith(f"/models/{FLASH}:generateContent")
    assert gem.requests[-1].json["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}
    assert settled(lambda: UsageLog.objects.count() == 2)
    assert set(UsageLog.objects.values_list("model", flat=True)) == {CLAUDE, FLASH}


def test_effort_suffixes_reach_openai_upstreams_and_unknown_names_stay_unknown(live, served, funded_key):
    oai, _claude, _gem = served
    _user, key = funded_key()
    client = openai.OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0)
    client.chat.completions.create(model="o4-mini-high", messages=[{"role": "user", "content": "Hi"}])
    sent = oai.requests[-1].json
    assert sent["model"] == "o4-mini" and sent["reasoning_effort"] == "high"
    with pytest.raises(openai.NotFoundError, match="'gpt-9-thinking' does not exist"):
        client.chat.completions.create(model="gpt-9-thinking", messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(openai.NotFoundError):  # embeddings take no thinking
        client.embeddings.create(model="o4-mini-high", input="x")
    assert settled(lambda: UsageLog.objects.filter(status="success").count() == 1)


def test_a_name_that_is_a_model_of_its_own_is_not_rewritten(live, served, funded_key):
    oai = served[0]
    ModelPrice.objects.create(model="o4-mini-low", provider="openai", model_ratio=Decimal(1))
    upstream_save(name="own", type="openai", base_url=oai.url, keys="sk-oa-up", served_models=["o4-mini-low"],
                  groups=[group_default().name])
    _user, key = funded_key()
    openai.OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0).chat.completions.create(
        model="o4-mini-low", messages=[{"role": "user", "content": "Hi"}])
    sent = oai.requests[-1].json
    assert sent["model"] == "o4-mini-low" and "reasoning_effort" not in sent
    assert settled(lambda: UsageLog.objects.exists())
