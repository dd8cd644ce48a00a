"""Google's Gemini API through the relay with the official SDKs: natively, and across formats both ways."""

from __future__ import annotations

from decimal import Decimal

import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from billing.groups import group_default
from billing.models import ModelPrice, UsageLog
from relay.probe import upstream_test
from relay.upstreams import upstream_save
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI
from tests.support import settled

FLASH = "gemini-2.5-flash"


@pytest.fixture(scope="module")
def fakes():
    with FakeGemini(api_key="g-up") as gem, FakeOpenAI(api_key="sk-oa-up") as oai:
        yield gem, oai


@pytest.fixture
def flash(fakes, transactional_db):
    for fake in fakes:
        fake.reset()
    # $0.30/M input, completion x8, cached x0.25
    ModelPrice.objects.create(model=FLASH, provider="gemini", model_ratio=Decimal("0.15"),
                              completion_ratio=Decimal(8), cache_ratio=Decimal("0.25"))
    return upstream_save(name="gem", type="gemini", base_url=fakes[0].url, keys="g-up", served_models=[FLASH],
                         groups=[group_default().name])


def _genai(live, key, version="v1beta"):
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=live.url, api_version=version))


@pytest.mark.parametrize("version", ["v1beta", "v1"])
def test_generate_content_natively_bills_thoughts_as_completion(live, fakes, flash, funded_key, version):
    gem, _oai = fakes
    gem.behave(FLASH, prompt_tokens=100, candidates_tokens=10, thoughts_tokens=30, content="Hi there")
    _user, key = funded_key()
    client = _genai(live, key, version)
    response = client.models.generate_content(model=FLASH, contents="Hello")
    assert response.text == "Hi there"
    assert gem.requests[-1].headers["x-goog-api-key"] == "g-up"
    assert settled(lambda: UsageLog.objects.exists())
    log = UsageLog.objects.get()
    assert (log.prompt_tokens, log.completion_tokens) == (100, 40)
    assert log.quota == 63  # 0.15 x (100 + 40 x 8) = 63


def test_generate_content_stream_natively(live, fakes, flash, funded_key):
    gem, _oai = fakes
    gem.behave(FLASH, content="one two three four", chunks=3, prompt_tokens=12, candidates_tokens=4)
    _user, key = funded_key()
    client = _genai(live, key)
    chunks = list(client.models.generate_content_stream(model=FLASH, contents="Count"))
    assert "".join(c.text or "" for c in chunks) == "one two three four"
    assert chunks[-1].usage_metadata.candidates_token_count == 4
    assert settled(lambda: UsageLog.objects.filter(is_stream=True, usage_estimated=False).exists())


def test_gemini_client_served_by_an_openai_compatible_upstream(live, fakes, flash, funded_key):
    gem, oai = fakes
    flash.delete()
    upstream_save(name="compat", type="openai", base_url=oai.url, keys="sk-oa-up", served_models=[FLASH],
                  groups=[group_default().name])
    _user, key = funded_key()
    client = _genai(live, key)
    response = client.models.generate_content(
        model=FLASH, contents="Hello", config=types.GenerateContentConfig(system_instruction="Be brief."))
    assert response.text == f"Hello from {FLASH}!" and response.usage_metadata.prompt_token_count == 17
    assert oai.requests[-1].json["messages"][0]["role"] == "system"
    streamed = "".join(c.text or "" for c in client.models.generate_content_stream(model=FLASH, contents="Hi"))
    assert streamed == f"Hello from {FLASH}!"
    assert oai.requests[-1].json["stream"] is True
    assert settled(lambda: UsageLog.objects.filter(status="success").count() == 2)


def test_openai_client_served_by_a_gemini_upstream(live, fakes, flash, funded_key):
    gem, _oai = fakes
    gem.behave(FLASH, content="Salut", prompt_tokens=20, candidates_tokens=3)
    _user, key = funded_key()
    client = openai.OpenAI(api_key=key, base_url=live.url + "/v1", max_retries=0)
    reply = client.chat.completions.create(model=FLASH, messages=[{"role": "user", "content": "Hi"}])
    assert reply.choices[0].message.content == "Salut" and reply.usage.total_tokens == 23
    assert gem.requests[-1].path.endswith(f"/models/{FLASH}:generateContent")
    chunks = list(client.chat.completions.create(model=FLASH, messages=[{"role": "user", "content": "Hi"}],
                                                 stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Salut"
    assert "streamGenerateContent" in gem.requests[-1].path
    assert settled(lambda: UsageLog.objects.filter(status="success").count() == 2)


def test_errors_come_back_in_googles_shape(live, fakes, flash, funded_key):
    _user, key = funded_key()
    stranger = _genai(live, "sk-" + "x" * 48)  # keep a reference: a collected client closes its connection
    with pytest.raises(genai_errors.ClientError) as exc:
        stranger.models.generate_content(model=FLASH, contents="x")
    assert exc.value.code == 401
    r = httpx.post(f"{live.url}/v1beta/models/{FLASH}:generateContent?key={key}", json={"contents": []})
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
    models = httpx.get(f"{live.url}/v1beta/models", headers={"x-goog-api-key": key}).json()["models"]
    assert f"models/{FLASH}" in [m["name"] for m in models]


def test_the_upstream_test_asks_in_geminis_own_format(fakes, flash):
    gem, _oai = fakes
    assert upstream_test(upstream=flash, model=FLASH).ok
    sent = gem.requests[-1]
    assert sent.path == f"/v1beta/models/{FLASH}:generateContent" and sent.body["contents"][0]["parts"][0]["text"]


def test_a_prompt_past_the_long_context_threshold_is_billed_at_its_tier(live, fakes, flash, funded_key, client_for,
                                                                        admin):
    gem, _oai = fakes
    ModelPrice.objects.filter(model=FLASH).update(long_context_threshold=200_000,
                                                  long_context_prompt_multiplier=Decimal(2),
                                                  long_context_completion_multiplier=Decimal("1.5"))
    gem.behave(FLASH, prompt_tokens=250_000, candidates_tokens=100)
    _user, key = funded_key()
    assert _genai(live, key).models.generate_content(model=FLASH, contents="A very long document").text
    assert settled(lambda: UsageLog.objects.exists())
    assert UsageLog.objects.get().quota == 75_180  # 0.15 x (250,000 x 2 + 100 x 8 x 1.5)
    priced = client_for(admin).get("/api/pricing/", {"model": FLASH}).json()["data"]["items"][0]
    assert priced["long_context"] == {"threshold": 200_000, "prompt_multiplier": "2", "completion_multiplier": "1.5"}
