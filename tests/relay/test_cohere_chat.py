"""Cohere's v2 SDK (`cohere.ClientV2`) for chat, streamed chat and embeddings, served by OpenAI-compatible and
Anthropic upstreams."""

from __future__ import annotations

from decimal import Decimal

import cohere
import pytest

from billing.groups import group_default
from billing.models import ModelPrice, UsageLog
from relay.upstreams import upstream_save
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI
from tests.support import post, settled


@pytest.fixture(scope="module")
def fakes():
    with FakeOpenAI(api_key="sk-oa-up") as oai, FakeAnthropic(api_key="sk-ant-up") as claude:
        yield oai, claude


@pytest.fixture
def served(fakes, transactional_db):
    oai, claude = fakes
    oai.reset(), claude.reset()
    for model in ("command-a", "claude-sonnet-4-5", "embed-v4.0"):
        ModelPrice.objects.create(model=model, model_ratio=Decimal(1), completion_ratio=Decimal(4))
    upstream_save(name="oai", type="openai", base_url=oai.url, keys="sk-oa-up", served_models=["command-a",
                                                                                              "embed-v4.0"],
                  groups=[group_default().name])
    upstream_save(name="claude", type="anthropic", base_url=claude.url, keys="sk-ant-up",
                  served_models=["claude-sonnet-4-5"], groups=[group_default().name])
    return fakes


def _client(live, key):
    return cohere.ClientV2(api_key=key, base_url=live.url)


def test_chat_and_its_usage_in_cohere_shape(live, served, funded_key):
    oai, _claude = served
    oai.behave("command-a", content="Bonjour", prompt_tokens=20, completion_tokens=3)
    _user, key = funded_key()
    answer = _client(live, key).chat(model="command-a", p=0.5, stop_sequences=["END"], messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}])
    assert answer.message.content[0].text == "Bonjour" and answer.finish_reason == "COMPLETE"
    assert answer.usage.billed_units.input_tokens == 20 and answer.usage.billed_units.output_tokens == 3
    sent = oai.requests[-1].json
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
    assert sent["top_p"] == 0.5 and sent["stop"] == ["END"]
    assert settled(lambda: UsageLog.objects.filter(quota=32).exists())  # 20 + 3 x 4


def test_streamed_chat_events_from_an_anthropic_upstream(live, served, funded_key):
    _oai, claude = served
    claude.behave("claude-sonnet-4-5", content="one two three", chunks=3, input_tokens=11, output_tokens=4)
    _user, key = funded_key()
    events = list(_client(live, key).chat_stream(model="claude-sonnet-4-5", max_tokens=50,
                                                 messages=[{"role": "user", "content": "Count"}]))
    kinds = [e.type for e in events]
    assert kinds[0] == "message-start" and kinds[-1] == "message-end" and "content-delta" in kinds
    text = "".join(e.delta.message.content.text for e in events if e.type == "content-delta")
    assert text == "one two three"
    assert events[-1].delta.finish_reason == "COMPLETE"
    assert events[-1].delta.usage.billed_units.input_tokens == 11
    assert settled(lambda: UsageLog.objects.filter(is_stream=True).exists())


def test_tool_calls_go_both_ways(live, served, funded_key):
    oai, _claude = served
    oai.behave("command-a", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    _user, key = funded_key()
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                                "parameters": {"type": "object", "properties": {
                                                    "city": {"type": "string"}}}}}]
    answer = _client(live, key).chat(model="command-a", tools=tools, tool_choice="REQUIRED",
                                     messages=[{"role": "user", "content": "Weather in Paris?"}])
    call = answer.message.tool_calls[0]
    assert answer.finish_reason == "TOOL_CALL" and call.function.name == "get_weather"
    assert oai.requests[-1].json["tool_choice"] == "required"
    _client(live, key).chat(model="command-a", tools=tools, messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "tool_plan": "I will look it up.", "tool_calls": [
            {"id": call.id, "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": call.id, "content": [{"type": "document", "document": {"data": "18C"}}]}])
    sent = oai.requests[-1].json["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id and sent[2] == {"role": "tool", "tool_call_id": call.id,
                                                                      "content": "18C"}


def test_embed_floats_and_bad_requests(live, served, funded_key):
    _user, key = funded_key()
    result = _client(live, key).embed(model="embed-v4.0", texts=["hello", "world"], input_type="search_document",
                                      embedding_types=["float"])
    assert len(result.embeddings.float_) == 2 and result.texts == ["hello", "world"]
    r = post(live, "/v2/embed", key, {"model": "embed-v4.0", "texts": ["x"], "embedding_types": ["int8"]})
    assert r.status_code == 400 and "float" in r.json()["message"]
    r = post(live, "/v2/chat", key, {"model": "command-a", "messages": []})
    assert r.status_code == 400 and r.json() == {"message": "'messages' is required and must be a non-empty array."}
    assert settled(lambda: UsageLog.objects.count() == 1)
