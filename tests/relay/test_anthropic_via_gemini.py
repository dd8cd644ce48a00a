"""Anthropic clients (Claude Code, the SDK) served by a Gemini upstream: text, thinking, tool use, streams, billing."""

from __future__ import annotations

from decimal import Decimal

import anthropic
import pytest

from billing.groups import group_default
from billing.models import ModelPrice, UsageLog
from relay.upstreams import upstream_save
from tests.fakes.gemini_upstream import FakeGemini
from tests.support import settled

FLASH = "gemini-2.5-flash"
WEATHER_TOOL = {"name": "get_weather", "description": "Weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture(scope="module")
def gem():
    with FakeGemini(api_key="g-up") as fake:
        yield fake


@pytest.fixture
def flash(gem, transactional_db):
    gem.reset()
    ModelPrice.objects.create(model=FLASH, provider="gemini", model_ratio=Decimal("0.15"), completion_ratio=Decimal(8))
    upstream_save(name="gem", type="gemini", base_url=gem.url, keys="g-up", served_models=[FLASH],
                  groups=[group_default().name])
    return gem


def _claude(live, key):
    return anthropic.Anthropic(api_key=key, base_url=live.url, max_retries=0)


def test_messages_with_a_system_prompt_and_thinking_billed_on_geminis_count(live, flash, funded_key):
    flash.behave(FLASH, content="Hi there", prompt_tokens=100, candidates_tokens=10, thoughts_tokens=30,
                 thoughts="Pondering.")
    _user, key = funded_key()
    message = _claude(live, key).messages.create(
        model=FLASH, max_tokens=20000, system="Be brief.", thinking={"type": "enabled", "budget_tokens": 10000},
        messages=[{"role": "user", "content": "Hello"}])
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "Pondering." and message.content[1].text == "Hi there"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (100, 40)
    sent = flash.requests[-1]
    assert sent.path.endswith(f"/models/{FLASH}:generateContent") and sent.headers["x-goog-api-key"] == "g-up"
    assert sent.json["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert sent.json["contents"] == [{"role": "user", "parts": [{"text": "Hello"}]}]
    config = sent.json["generationConfig"]
    assert config["maxOutputTokens"] == 20000 and config["thinkingConfig"]["thinkingBudget"] > 0
    assert settled(lambda: UsageLog.objects.exists())
    log = UsageLog.objects.get()
    assert (log.prompt_tokens, log.completion_tokens, log.quota) == (100, 40, 63)  # 0.15 x (100 + 40 x 8)


def test_a_stream_and_a_tool_loop(live, flash, funded_key):
    flash.behave(FLASH, function_call={"name": "get_weather", "args": {"city": "Paris"}}, prompt_tokens=50,
                 candidates_tokens=8)
    _user, key = funded_key()
    client = _claude(live, key)
    with client.messages.stream(model=FLASH, max_tokens=256, tools=[WEATHER_TOOL],
                                messages=[{"role": "user", "content": "Weather in Paris?"}]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    use = next(block for block in final.content if block.type == "tool_use")
    assert (use.name, use.input) == ("get_weather", {"city": "Paris"})
    assert final.usage.output_tokens == 8
    assert flash.requests[-1].path.endswith(":streamGenerateContent")
    declared = flash.requests[-1].json["tools"][0]["functionDeclarations"][0]
    assert declared["name"] == "get_weather" and declared["parameters"]["required"] == ["city"]
    flash.behave(FLASH, content="Sunny, 21 degrees.", prompt_tokens=70, candidates_tokens=6)
    answer = client.messages.create(model=FLASH, max_tokens=256, tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21"}]}])
    assert answer.content[0].text == "Sunny, 21 degrees."
    turns = flash.requests[-1].json["contents"]
    assert turns[1]["parts"][0]["functionCall"]["name"] == "get_weather"
    assert turns[2]["parts"][0]["functionResponse"] == {"name": "get_weather", "response": {"output": "sunny, 21"}}
    assert settled(lambda: UsageLog.objects.filter(status="success").count() == 2)


def test_gemini_errors_reach_the_client_in_anthropics_shape(live, flash, funded_key):
    flash.behave(FLASH, status=400, error_message="Invalid JSON payload received.")
    _user, key = funded_key()
    with pytest.raises(anthropic.BadRequestError) as caught:
        _claude(live, key).messages.create(model=FLASH, max_tokens=64, messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.body["type"] == "error" and caught.value.body["error"]["type"] == "invalid_request_error"
    assert "Invalid JSON payload" in caught.value.body["error"]["message"]
    assert settled(lambda: UsageLog.objects.filter(quota=0).count() == 1)
