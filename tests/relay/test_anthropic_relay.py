"""Anthropic's Messages API through the relay, with the official SDKs: natively, and across formats both ways."""

from __future__ import annotations

from decimal import Decimal

import anthropic
import openai
import pytest

from billing.groups import group_default
from billing.models import ModelPrice, UsageLog
from relay.upstreams import upstream_save
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI
from tests.support import post, settled

CLAUDE = "claude-sonnet-4-5"


@pytest.fixture(scope="module")
def fakes():
    with FakeAnthropic(api_key="sk-ant-up") as claude, FakeOpenAI(api_key="sk-oa-up") as oai:
        yield claude, oai


@pytest.fixture
def claude_upstream(fakes, transactional_db):
    claude, oai = fakes
    claude.reset()
    oai.reset()
    # ratio 1.5 ($3/M input), completion x5, cache reads x0.1
    ModelPrice.objects.create(model=CLAUDE, provider="anthropic", model_ratio=Decimal("1.5"),
                              completion_ratio=Decimal(5), cache_ratio=Decimal("0.1"),
                              cache_write_ratio=Decimal("1.25"))
    return upstream_save(name="claude", type="anthropic", base_url=claude.url, keys="sk-ant-up",
                         served_models=[CLAUDE], groups=[group_default().name])


@pytest.fixture
def openai_serving_claude_name(fakes, claude_upstream):
    """Take the Anthropic upstream out and serve the Claude model name from an OpenAI-compatible upstream."""
    claude_upstream.delete()
    return upstream_save(name="compat", type="openai", base_url=fakes[1].url, keys="sk-oa-up",
                         served_models=[CLAUDE], groups=[group_default().name])


def _claude(live, key):
    return anthropic.Anthropic(api_key=key, base_url=live.url, max_retries=0)


def test_messages_natively_billed_with_cache_reads(live, fakes, claude_upstream, funded_key):
    claude, _oai = fakes
    claude.behave(CLAUDE, input_tokens=100, cache_read_input_tokens=1000, output_tokens=20)
    _user, key = funded_key()
    message = _claude(live, key).messages.create(model=CLAUDE, max_tokens=64,
                                                 messages=[{"role": "user", "content": "Hello"}])
    assert message.content[0].text and message.usage.cache_read_input_tokens == 1000
    sent = claude.requests[-1]
    assert sent.headers["x-api-key"] == "sk-ant-up" and sent.headers["anthropic-version"]
    assert "authorization" not in sent.headers  # the caller's key never goes upstream
    assert settled(lambda: UsageLog.objects.exists())
    log = UsageLog.objects.get()
    assert (log.prompt_tokens, log.cached_tokens, log.completion_tokens) == (1100, 1000, 20)
    # 1.5 x (100 + 1000 x 0.1 + 20 x 5) = 1.5 x 300 = 450
    assert log.quota == 450


def test_the_callers_beta_features_reach_an_anthropic_upstream(live, fakes, claude_upstream, funded_key):
    claude, _oai = fakes
    _user, key = funded_key()
    client = _claude(live, key)
    client.beta.messages.create(model=CLAUDE, max_tokens=16, messages=[{"role": "user", "content": "Hi"}],
                                betas=["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"])
    sent = claude.requests[-1]
    assert sent.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14,context-1m-2025-08-07"
    client.messages.create(model=CLAUDE, max_tokens=16, messages=[{"role": "user", "content": "Hi"}],
                           extra_headers={"anthropic-beta": "x; injected=1"})
    assert "anthropic-beta" not in claude.requests[-1].headers  # not a list of feature names: not passed on
    client.messages.create(model=CLAUDE, max_tokens=16, messages=[{"role": "user", "content": "Hi"}])
    assert "anthropic-beta" not in claude.requests[-1].headers


def test_the_anthropic_sdk_lists_the_keys_models_in_its_own_shape(live, fakes, claude_upstream, funded_key):
    _user, key = funded_key()
    client = _claude(live, key)
    models = list(client.models.list())
    assert [m.id for m in models] == [CLAUDE] and models[0].type == "model" and models[0].created_at.year == 2023
    assert client.models.retrieve(CLAUDE).display_name == CLAUDE
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-none")
    listed = openai.OpenAI(api_key=key, base_url=live.url + "/v1", max_retries=0).models.list()
    assert [m.id for m in listed.data] == [CLAUDE] and listed.data[0].object == "model"  # OpenAI's shape stays


def test_cache_writes_are_billed_at_their_ratio_streaming_too(live, fakes, claude_upstream, funded_key):
    claude, _oai = fakes
    claude.behave(CLAUDE, input_tokens=10, cache_creation_input_tokens=800, cache_read_input_tokens=200,
                  output_tokens=4, usage_in_delta=True)
    _user, key = funded_key()
    with _claude(live, key).messages.stream(model=CLAUDE, max_tokens=64,
                                            messages=[{"role": "user", "content": "Hi"}]) as stream:
        final = stream.get_final_message()
    assert final.usage.cache_creation_input_tokens == 800
    assert settled(lambda: UsageLog.objects.filter(usage_estimated=False).exists())
    log = UsageLog.objects.get()
    assert (log.prompt_tokens, log.cached_tokens, log.cache_write_tokens) == (1010, 200, 800)
    # 1.5 x (10 + 200 x 0.1 + 800 x 1.25 + 4 x 5) = 1.5 x 1050 = 1575
    assert log.quota == 1575


def test_messages_stream_natively_gives_the_final_message_and_usage(live, fakes, claude_upstream, funded_key):
    claude, _oai = fakes
    claude.behave(CLAUDE, content="streamed words here", chunks=3, output_tokens=9)
    _user, key = funded_key()
    with _claude(live, key).messages.stream(model=CLAUDE, max_tokens=64,
                                            messages=[{"role": "user", "content": "Hi"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "streamed words here" and final.usage.output_tokens == 9
    assert settled(lambda: UsageLog.objects.filter(is_stream=True, usage_estimated=False).exists())
    assert UsageLog.objects.get().completion_tokens == 9


def test_tool_use_natively(live, fakes, claude_upstream, funded_key):
    claude, _oai = fakes
    claude.behave(CLAUDE, tool_use=[{"name": "get_weather", "input": {"city": "Paris"}}])
    _user, key = funded_key()
    message = _claude(live, key).messages.create(
        model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": "Weather?"}],
        tools=[{"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}])
    block = next(b for b in message.content if b.type == "tool_use")
    assert message.stop_reason == "tool_use" and block.input == {"city": "Paris"}
    assert settled(lambda: UsageLog.objects.exists())


def test_anthropic_client_served_by_an_openai_compatible_upstream(live, fakes, openai_serving_claude_name,
                                                                  funded_key):
    _claude_fake, oai = fakes
    _user, key = funded_key()
    client = _claude(live, key)
    message = client.messages.create(model=CLAUDE, max_tokens=64, system="Be brief.",
                                     messages=[{"role": "user", "content": "Hello"}])
    assert message.content[0].text == f"Hello from {CLAUDE}!" and message.usage.input_tokens == 17
    sent = oai.requests[-1].json
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."} and sent["max_tokens"] == 64
    with client.messages.stream(model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": "Hi"}]) as s:
        assert "".join(s.text_stream) == f"Hello from {CLAUDE}!"
        assert s.get_final_message().usage.output_tokens == 5
    assert settled(lambda: UsageLog.objects.filter(status="success").count() == 2)


def test_openai_client_served_by_an_anthropic_upstream(live, fakes, claude_upstream, funded_key):
    claude, _oai = fakes
    claude.behave(CLAUDE, content="Bonjour", input_tokens=30, output_tokens=4)
    _user, key = funded_key()
    client = openai.OpenAI(api_key=key, base_url=live.url + "/v1", max_retries=0)
    reply = client.chat.completions.create(model=CLAUDE, messages=[{"role": "system", "content": "French."},
                                                                   {"role": "user", "content": "Hi"}])
    assert reply.choices[0].message.content == "Bonjour" and reply.usage.prompt_tokens == 30
    assert claude.requests[-1].json["system"] == "French."
    chunks = list(client.chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": "Hi"}],
                                                 stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Bonjour"
    assert chunks[-1].usage.completion_tokens == 4
    assert settled(lambda: UsageLog.objects.filter(status="success").count() == 2)
    assert {log.quota for log in UsageLog.objects.all()} == {75}  # 1.5 x (30 + 4 x 5)


def test_errors_come_back_in_anthropics_shape(live, fakes, claude_upstream, funded_key):
    claude, _oai = fakes
    _user, key = funded_key()
    with pytest.raises(anthropic.AuthenticationError):
        _claude(live, "sk-" + "x" * 48).messages.create(model=CLAUDE, max_tokens=8,
                                                        messages=[{"role": "user", "content": "x"}])
    r = post(live, "/v1/messages", key, {"model": CLAUDE, "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "invalid_request_error" and "max_tokens" in r.json()["error"]["message"]
    claude.behave(CLAUDE, status=400, error_message="messages.0.content: empty")
    with pytest.raises(anthropic.BadRequestError) as exc:
        _claude(live, key).messages.create(model=CLAUDE, max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert "empty" in str(exc.value)
    assert settled(lambda: UsageLog.objects.filter(status="error").count() == 1)


def test_count_tokens_is_answered_locally(live, claude_upstream, funded_key):
    _user, key = funded_key()
    count = _claude(live, key).messages.count_tokens(model=CLAUDE, messages=[{"role": "user", "content": "Hello"}])
    assert count.input_tokens > 0
