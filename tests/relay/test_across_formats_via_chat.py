"""Any client on any upstream through OpenAI chat: Gemini clients on Anthropic upstreams, Responses clients on
Anthropic and Gemini upstreams (Anthropic clients on Gemini: tests/relay/test_anthropic_via_gemini.py)."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest
from google import genai
from google.genai import types

from billing.groups import group_default
from billing.models import ModelPrice, UsageLog
from relay.upstreams import upstream_save
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.gemini_upstream import FakeGemini
from tests.support import settled

CLAUDE, FLASH = "claude-sonnet-4-5", "gemini-2.5-flash"


@pytest.fixture(scope="module")
def fakes():
    with FakeAnthropic(api_key="sk-ant-up") as claude, FakeGemini(api_key="g-up") as gem:
        yield claude, gem


@pytest.fixture
def served(fakes, transactional_db):
    claude, gem = fakes
    for fake in fakes:
        fake.reset()
    for model, provider in ((CLAUDE, "anthropic"), (FLASH, "gemini")):
        ModelPrice.objects.create(model=model, provider=provider, model_ratio=Decimal(1), completion_ratio=Decimal(5))
    group = group_default().name
    upstream_save(name="claude", type="anthropic", base_url=claude.url, keys="sk-ant-up", served_models=[CLAUDE],
                  groups=[group])
    upstream_save(name="gem", type="gemini", base_url=gem.url, keys="g-up", served_models=[FLASH], groups=[group])
    return fakes


def test_a_gemini_client_on_an_anthropic_upstream(live, served, funded_key):
    claude, _gem = served
    claude.behave(CLAUDE, content="Bonjour", input_tokens=30, output_tokens=4)
    _user, key = funded_key()
    client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=live.url, api_version="v1beta"))
    reply = client.models.generate_content(model=CLAUDE, contents="Hi", config=types.GenerateContentConfig(
        system_instruction="French.", max_output_tokens=100))
    assert reply.text == "Bonjour" and reply.usage_metadata.prompt_token_count == 30
    sent = claude.requests[-1].json
    assert sent["system"] == "French." and sent["max_tokens"] == 100 and sent["model"] == CLAUDE
    streamed = "".join(chunk.text or "" for chunk in client.models.generate_content_stream(model=CLAUDE,
                                                                                          contents="Hi"))
    assert streamed == "Bonjour" and claude.requests[-1].json["stream"] is True
    assert settled(lambda: UsageLog.objects.filter(status="success").count() == 2)
    assert {log.quota for log in UsageLog.objects.all()} == {50}  # 30 + 4 x 5


def test_a_responses_client_on_anthropic_and_gemini_upstreams(live, served, funded_key):
    claude, gem = served
    claude.behave(CLAUDE, content="From Claude", input_tokens=20, output_tokens=3)
    gem.behave(FLASH, content="From Gemini", prompt_tokens=10, candidates_tokens=2)
    _user, key = funded_key()
    client = openai.OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0)
    answer = client.responses.create(model=CLAUDE, input="Hello", instructions="Be brief.")
    assert answer.output_text == "From Claude" and answer.usage.input_tokens == 20
    assert claude.requests[-1].json["system"] == "Be brief."
    with client.responses.stream(model=CLAUDE, input="Hello") as stream:
        final = stream.get_final_response()
    assert final.output_text == "From Claude" and final.usage.output_tokens == 3
    assert client.responses.create(model=FLASH, input="Hello").output_text == "From Gemini"
    assert gem.requests[-1].json["contents"] == [{"role": "user", "parts": [{"text": "Hello"}]}]
    with pytest.raises(openai.BadRequestError, match="previous_response_id"):
        client.responses.create(model=CLAUDE, input="Again", previous_response_id="resp_123")
    assert settled(lambda: UsageLog.objects.filter(status="success").count() == 3)


def test_geminis_openai_compatible_base_url_works_as_copied(live, served, funded_key):
    """Users who copy Gemini's OpenAI-compatible base URL (`.../v1beta/openai/`) reach the same OpenAI routes."""
    _claude, gem = served
    _user, key = funded_key()
    client = openai.OpenAI(api_key=key, base_url=f"{live.url}/v1beta/openai/", max_retries=0)
    reply = client.chat.completions.create(model=FLASH, messages=[{"role": "user", "content": "Hi"}])
    assert reply.choices[0].message.content and gem.requests[-1].path.endswith(f"/models/{FLASH}:generateContent")
    assert FLASH in {m.id for m in client.models.list()}
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "Hi"}])
    assert "does not exist" in caught.value.message and "type" in caught.value.body  # OpenAI's error shape
    assert settled(lambda: UsageLog.objects.filter(endpoint="/v1/chat/completions").count() == 1)
