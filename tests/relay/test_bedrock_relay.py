"""Amazon Bedrock upstreams for Claude: SigV4-signed or API-key calls, event streams read as Anthropic's."""

from __future__ import annotations

import json
from decimal import Decimal

import anthropic
import openai
import pytest

from billing.groups import group_default
from billing.models import ModelPrice, UsageLog
from relay.models import UpstreamStatus
from relay.probe import upstream_test
from relay.upstreams import upstream_save
from tests.fakes.bedrock_upstream import FakeBedrock
from tests.support import post, settled

CLAUDE = "anthropic.claude-sonnet-4-5-20250929-v1:0"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


@pytest.fixture(scope="module")
def bedrock():
    with FakeBedrock(secrets={"AKIDRELAY": SECRET}, region="us-west-2") as fake:
        yield fake


@pytest.fixture
def bedrock_upstream(bedrock, transactional_db):
    bedrock.reset()
    ModelPrice.objects.create(model="claude-sonnet-4-5", provider="bedrock", model_ratio=Decimal("1.5"),
                              completion_ratio=Decimal(5))
    return upstream_save(name="bedrock", type="bedrock", base_url=bedrock.url, keys=f"AKIDRELAY|{SECRET}|us-west-2",
                         served_models=["claude-sonnet-4-5"], model_mapping={"claude-sonnet-4-5": CLAUDE},
                         groups=[group_default().name])


def _anthropic(live, key, **headers):
    return anthropic.Anthropic(api_key=key, base_url=live.url, max_retries=0, default_headers=headers)


def test_messages_signed_with_sigv4_and_billed(live, bedrock, bedrock_upstream, funded_key):
    bedrock.behave(CLAUDE, input_tokens=100, output_tokens=20, content="Hi from Bedrock")
    _user, key = funded_key()
    client = _anthropic(live, key, **{"anthropic-beta": "context-1m-2025-08-07"})
    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=64,
                                     messages=[{"role": "user", "content": "Hello"}])
    assert message.content[0].text == "Hi from Bedrock"
    sent = bedrock.requests[-1]
    assert sent.path == "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"
    assert sent.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDRELAY/")
    assert sent.body["anthropic_version"] == "bedrock-2023-05-31" and "model" not in sent.body
    assert sent.body["anthropic_beta"] == ["context-1m-2025-08-07"]
    assert settled(lambda: UsageLog.objects.exists())
    log = UsageLog.objects.get()
    assert (log.prompt_tokens, log.completion_tokens, log.quota) == (100, 20, 300)  # 1.5 x (100 + 20 x 5)


def test_event_streams_reach_anthropic_and_openai_clients(live, bedrock, bedrock_upstream, funded_key):
    bedrock.behave(CLAUDE, content="one two three", chunks=3, input_tokens=12, output_tokens=4)
    _user, key = funded_key()
    with _anthropic(live, key).messages.stream(model="claude-sonnet-4-5", max_tokens=64,
                                               messages=[{"role": "user", "content": "Count"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "one two three" and final.usage.output_tokens == 4
    assert bedrock.requests[-1].path.endswith("/invoke-with-response-stream")
    assert "stream" not in bedrock.requests[-1].body
    oai = openai.OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0)
    chunks = list(oai.chat.completions.create(model="claude-sonnet-4-5", stream=True,
                                              messages=[{"role": "user", "content": "Count"}],
                                              stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three"
    assert chunks[-1].usage.prompt_tokens == 12
    assert settled(lambda: UsageLog.objects.filter(is_stream=True, usage_estimated=False).count() == 2)


def test_a_stream_exception_reaches_the_client_as_an_error_event(live, bedrock, bedrock_upstream, funded_key):
    bedrock.behave(CLAUDE, content="a b c d", chunks=4, error_after_chunks=3, stream_error_type="overloaded_error",
                   error_message="Bedrock is busy")
    _user, key = funded_key()
    r = post(live, "/v1/messages", key, {"model": "claude-sonnet-4-5", "max_tokens": 16, "stream": True,
                                         "messages": [{"role": "user", "content": "Hi"}]})
    assert r.status_code == 200
    assert "event: error" in r.text and "overloaded_error" in r.text and "Bedrock is busy" in r.text
    assert settled(lambda: UsageLog.objects.exists())


def test_bedrock_api_keys_are_sent_as_bearer(live, bedrock, bedrock_upstream, funded_key):
    bedrock_upstream.set_keys(["bedrock-api-key"])
    bedrock_upstream.extras = {"region": "us-west-2"}
    bedrock_upstream.save()
    _user, key = funded_key()
    r = post(live, "/v1/chat/completions", key, {"model": "claude-sonnet-4-5",
                                                 "messages": [{"role": "user", "content": "Hi"}]})
    assert r.status_code == 200, r.text
    assert bedrock.requests[-1].headers["authorization"] == "Bearer bedrock-api-key"


def test_a_wrong_secret_disables_the_upstream_and_is_never_shown(live, bedrock, bedrock_upstream, funded_key):
    bedrock_upstream.set_keys(["AKIDRELAY|not-the-secret|us-west-2"])
    bedrock_upstream.save()
    user, key = funded_key()
    before = user.quota
    r = post(live, "/v1/messages", key, {"model": "claude-sonnet-4-5", "max_tokens": 16,
                                         "messages": [{"role": "user", "content": "Hi"}]})
    assert r.status_code == 502 and r.json()["type"] == "error" and "not-the-secret" not in r.text
    bedrock_upstream.refresh_from_db()
    assert bedrock_upstream.status == UpstreamStatus.AUTO_DISABLED and "403" in bedrock_upstream.status_reason
    assert settled(lambda: UsageLog.objects.filter(status="error").exists())
    user.refresh_from_db()
    assert user.quota == before


def test_the_upstream_test_invokes_the_model(bedrock, bedrock_upstream):
    assert upstream_test(upstream=bedrock_upstream).ok
    assert bedrock.requests[-1].path.endswith("/invoke") and bedrock.requests[-1].body["max_tokens"] == 1


NOVA = "us.amazon.nova-pro-v1:0"


@pytest.fixture
def nova(bedrock, bedrock_upstream):
    ModelPrice.objects.create(model="nova-pro", provider="bedrock", model_ratio=Decimal("0.4"),
                              completion_ratio=Decimal(4))
    bedrock_upstream.served_models = ["claude-sonnet-4-5", "nova-pro"]
    bedrock_upstream.model_mapping = {"claude-sonnet-4-5": CLAUDE, "nova-pro": NOVA}
    bedrock_upstream.save()
    return bedrock_upstream


def test_other_models_go_through_converse_for_every_client(live, bedrock, nova, funded_key):
    bedrock.behave(NOVA, content="Bonjour", input_tokens=100, output_tokens=10, cache_read_input_tokens=50)
    _user, key = funded_key()
    oai = openai.OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0)
    answer = oai.chat.completions.create(model="nova-pro", max_tokens=50, temperature=0.2, messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}])
    assert answer.choices[0].message.content == "Bonjour" and answer.choices[0].finish_reason == "stop"
    sent = bedrock.requests[-1]
    assert sent.path == "/model/us.amazon.nova-pro-v1%3A0/converse"
    assert sent.headers["authorization"].startswith("AWS4-HMAC-SHA256 ")
    assert sent.body["system"] == [{"text": "Be brief."}]
    assert sent.body["messages"] == [{"role": "user", "content": [{"text": "Hello"}]}]
    assert sent.body["inferenceConfig"] == {"maxTokens": 50, "temperature": 0.2}
    assert settled(lambda: UsageLog.objects.exists())
    log = UsageLog.objects.get()
    assert (log.prompt_tokens, log.completion_tokens) == (150, 10)  # cache reads are input too
    message = _anthropic(live, key).messages.create(model="nova-pro", max_tokens=20,
                                                    messages=[{"role": "user", "content": "Hi"}])
    assert message.content[0].text == "Bonjour" and message.usage.cache_read_input_tokens == 50


def test_converse_streams_and_tool_calls_reach_an_openai_client(live, bedrock, nova, funded_key):
    bedrock.behave(NOVA, tool_use=[{"name": "get_weather", "input": {"city": "Paris"}, "id": "tooluse_1"}],
                   chunks=3, input_tokens=30, output_tokens=12)
    _user, key = funded_key()
    oai = openai.OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    chunks = list(oai.chat.completions.create(model="nova-pro", tools=tools, stream=True,
                                              stream_options={"include_usage": True},
                                              messages=[{"role": "user", "content": "Weather in Paris?"}]))
    calls = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert calls[0].function.name == "get_weather" and calls[0].id == "tooluse_1"
    assert json.loads("".join(c.function.arguments or "" for c in calls)) == {"city": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    assert chunks[-1].usage.prompt_tokens == 30 and chunks[-1].usage.completion_tokens == 12
    sent = bedrock.requests[-1]
    assert sent.path.endswith("/converse-stream")
    assert sent.body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["properties"]["city"]
    follow_up = oai.chat.completions.create(model="nova-pro", tools=tools, messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "tooluse_1", "type": "function", "function": {
            "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "tooluse_1", "content": "18C and sunny"}])
    assert follow_up.choices[0].message.tool_calls  # the fake answers with the tool again; the turn was accepted
    results = bedrock.requests[-1].body["messages"][2]["content"][0]["toolResult"]
    assert results == {"toolUseId": "tooluse_1", "content": [{"text": "18C and sunny"}]}
    assert settled(lambda: UsageLog.objects.count() == 2)


def test_converse_stream_exceptions_and_image_urls(live, bedrock, nova, funded_key):
    bedrock.behave(NOVA, content="a b c d", chunks=4, error_after_chunks=3, stream_error_type="rate_limit_error",
                   error_message="Too many tokens")
    _user, key = funded_key()
    r = post(live, "/v1/messages", key, {"model": "nova-pro", "max_tokens": 16, "stream": True,
                                         "messages": [{"role": "user", "content": "Hi"}]})
    assert r.status_code == 200 and "event: error" in r.text and "Too many tokens" in r.text
    r = post(live, "/v1/chat/completions", key, {"model": "nova-pro", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]})
    assert r.status_code == 400 and "base64" in r.json()["error"]["message"]
    assert settled(lambda: UsageLog.objects.count() == 2)
