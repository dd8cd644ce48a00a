"""Amazon Bedrock upstreams for Claude: SigV4-signed or API-key calls, event streams read as Anthropic's."""

from __future__ import annotations

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
