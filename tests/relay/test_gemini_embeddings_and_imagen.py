"""Gemini clients' embeddings (`:embedContent`, `:batchEmbedContents`) and `:countTokens` with the Google GenAI SDK:
natively to a Gemini upstream, and to an OpenAI-compatible one through `/v1/embeddings`. Also OpenAI image
generation served by a Gemini upstream's Imagen model (`:predict`)."""

from __future__ import annotations

from decimal import Decimal

import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from accounts.models import User
from billing.groups import group_default
from billing.models import ModelPrice, UsageLog
from relay.tokenizer import count_text, estimate_prompt
from relay.upstreams import upstream_save
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI
from tests.support import settled

EMBED, OPENAI_EMBED, FLASH = "text-embedding-004", "text-embedding-3-small", "gemini-2.5-flash"


@pytest.fixture(scope="module")
def fakes():
    with FakeGemini(api_key="g-up") as gem, FakeOpenAI(api_key="sk-oa-up") as oai:
        yield gem, oai


@pytest.fixture
def upstreams(fakes, transactional_db):
    for fake in fakes:
        fake.reset()
    for model in (EMBED, OPENAI_EMBED, FLASH):
        ModelPrice.objects.create(model=model, model_ratio=Decimal(1))  # a quota per token
    upstream_save(name="gem", type="gemini", base_url=fakes[0].url, keys="g-up", served_models=["gemini-embedding",
                  FLASH], model_mapping={"gemini-embedding": EMBED}, groups=[group_default().name])
    upstream_save(name="oai", type="openai", base_url=fakes[1].url, keys="sk-oa-up", served_models=[OPENAI_EMBED],
                  groups=[group_default().name])
    ModelPrice.objects.create(model="gemini-embedding", model_ratio=Decimal(1))
    return fakes


def _genai(live, key):
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=live.url, api_version="v1beta"))


def _log() -> UsageLog:
    assert settled(lambda: UsageLog.objects.exists())
    return UsageLog.objects.get()


def test_embed_content_natively_is_billed_on_the_counted_input(live, upstreams, funded_key):
    gem, _oai = upstreams
    _user, key = funded_key()
    client = _genai(live, key)  # kept referenced: the SDK closes its HTTP client when the object is collected
    result = client.models.embed_content(model="gemini-embedding", contents=["hello", "world, again"],
                                         config=types.EmbedContentConfig(output_dimensionality=4))
    assert [e.values[0] for e in result.embeddings] == [5.0, 12.0] and len(result.embeddings[0].values) == 4
    sent = gem.requests[-1]
    assert sent.path == f"/v1beta/models/{EMBED}:batchEmbedContents" and sent.headers["x-goog-api-key"] == "g-up"
    assert {r["model"] for r in sent.body["requests"]} == {f"models/{EMBED}"}  # the upstream's name, as it demands
    log = _log()
    tokens = count_text("hello") + count_text("world, again")
    assert (log.model, log.upstream_model, log.prompt_tokens, log.completion_tokens) == (
        "gemini-embedding", EMBED, tokens, 0)
    assert log.quota == tokens and log.endpoint == "/v1beta/models/gemini-embedding:batchEmbedContents"


def test_embed_content_through_an_openai_compatible_upstream(live, upstreams, funded_key):
    _gem, oai = upstreams
    oai.behave(OPENAI_EMBED, prompt_tokens=7)
    _user, key = funded_key()
    client = _genai(live, key)
    result = client.models.embed_content(model=OPENAI_EMBED, contents=["a fox", "a dog"],
                                         config=types.EmbedContentConfig(output_dimensionality=3))
    assert len(result.embeddings) == 2 and all(len(e.values) == 3 for e in result.embeddings)
    sent = oai.requests[-1]
    assert sent.path == "/v1/embeddings"
    assert sent.body == {"model": OPENAI_EMBED, "input": ["a fox", "a dog"], "encoding_format": "float",
                         "dimensions": 3}
    log = _log()
    assert (log.prompt_tokens, log.quota) == (7, 7)  # the upstream's own count


def test_a_single_embed_content_call_answers_one_embedding(live, upstreams, funded_key):
    _user, key = funded_key()
    for model in ("gemini-embedding", OPENAI_EMBED):
        r = httpx.post(f"{live.url}/v1beta/models/{model}:embedContent", headers={"x-goog-api-key": key},
                       json={"content": {"parts": [{"text": "hi"}, {"text": " there"}]}, "taskType": "RETRIEVAL_QUERY"})
        assert r.status_code == 200, r.text
        values = r.json()["embedding"]["values"]
        assert len(values) == 8
        if model == "gemini-embedding":
            assert values[0] == 8.0  # the parts' text joined
    assert settled(lambda: UsageLog.objects.count() == 2)


def test_bad_embed_requests_get_googles_error_shape_and_cost_nothing(live, upstreams, funded_key):
    user, key = funded_key()
    before = user.quota
    url = f"{live.url}/v1beta/models/gemini-embedding"
    headers = {"x-goog-api-key": key}
    for action, body in (("embedContent", {}), ("embedContent", {"content": {"parts": []}}),
                         ("embedContent", {"content": {"parts": [{"inlineData": {"data": "AA=="}}]}}),
                         ("batchEmbedContents", {"requests": []}), ("batchEmbedContents", {"requests": ["x"]}),
                         ("embedContent", {"content": {"parts": [{"text": "x"}]}, "outputDimensionality": 0})):
        r = httpx.post(f"{url}:{action}", headers=headers, json=body)
        assert r.status_code == 400, (action, body, r.text)
        error = r.json()["error"]
        assert error["status"] == "INVALID_ARGUMENT" and error["message"], error
    r = httpx.post(f"{url}:embedContent", json={"content": {"parts": [{"text": "x"}]}})
    assert r.status_code in (401, 403) and "error" in r.json()
    client = _genai(live, "sk-wrong")
    with pytest.raises(genai_errors.ClientError):
        client.models.embed_content(model="gemini-embedding", contents="x")
    user.refresh_from_db()
    assert user.quota == before and not UsageLog.objects.exists()


def test_count_tokens_is_answered_locally_and_not_billed(live, upstreams, funded_key):
    gem, _oai = upstreams
    _user, key = funded_key()
    client = _genai(live, key)
    counted = client.models.count_tokens(model=FLASH, contents="How many tokens is this sentence?")
    expected = estimate_prompt({"contents": [{"role": "user", "parts": [{"text": "How many tokens is this sentence?"}]}]},
                               "generateContent")
    assert counted.total_tokens == expected > 0
    assert not gem.requests and not UsageLog.objects.exists()
    r = httpx.post(f"{live.url}/v1beta/models/{FLASH}:countTokens", headers={"x-goog-api-key": key},
                   json={"contents": []})
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
    r = httpx.post(f"{live.url}/v1beta/models/{FLASH}:countTokens", json={"contents": [{"parts": [{"text": "x"}]}]})
    assert r.status_code in (401, 403)


def test_openai_image_generation_served_by_imagen_is_priced_per_image(live, upstreams, funded_key):
    gem, _oai = upstreams
    ModelPrice.objects.create(model="imagen-4.0-generate-001", price_per_call=Decimal("0.04"))
    upstream_save(name="imagen", type="gemini", base_url=gem.url, keys="g-up", served_models=["imagen-4.0-generate-001"],
                  groups=[group_default().name])
    user, key = funded_key()
    client = openai.OpenAI(api_key=key, base_url=live.url + "/v1", max_retries=0)
    result = client.images.generate(model="imagen-4.0-generate-001", prompt="a fox", n=2, size="1792x1024")
    assert [image.b64_json for image in result.data] == ["iVBORw0KGgo="] * 2
    sent = gem.requests[-1]
    assert sent.path == "/v1beta/models/imagen-4.0-generate-001:predict"
    assert sent.body == {"instances": [{"prompt": "a fox"}], "parameters": {"sampleCount": 2, "aspectRatio": "16:9"}}
    assert _log().quota == 40_000  # 2 images x $0.04 x 500,000
    before = User.objects.get(pk=user.pk).quota
    calls = len(gem.requests)
    with pytest.raises(openai.BadRequestError) as refused:  # every image filtered: the caller's, refunded, no retry
        client.images.generate(model="imagen-4.0-generate-001", prompt="blocked things")
    assert refused.value.code == "content_policy_violation" and len(gem.requests) == calls + 1
    assert settled(lambda: UsageLog.objects.count() == 2)
    assert UsageLog.objects.latest("pk").quota == 0 and User.objects.get(pk=user.pk).quota == before


def test_openai_embeddings_served_by_a_gemini_upstream(live, upstreams, funded_key):
    gem, _oai = upstreams
    _user, key = funded_key()
    client = openai.OpenAI(api_key=key, base_url=live.url + "/v1", max_retries=0)
    result = client.embeddings.create(model="gemini-embedding", input=["hello", "world, again"], dimensions=4)
    assert [row.embedding[:2] for row in result.data] == [[5.0, 0.5], [12.0, 0.5]]  # base64 floats, as the SDK asks
    sent = gem.requests[-1]
    assert sent.path == f"/v1beta/models/{EMBED}:batchEmbedContents"
    assert sent.body["requests"][1] == {"model": f"models/{EMBED}", "content": {"parts": [{"text": "world, again"}]},
                                        "outputDimensionality": 4}
    tokens = count_text("hello") + count_text("world, again")
    assert result.usage.prompt_tokens == tokens and _log().quota == tokens
    plain = httpx.post(live.url + "/v1/embeddings", headers={"authorization": f"Bearer {key}"},
                       json={"model": "gemini-embedding", "input": "hi", "encoding_format": "float"}).json()
    assert plain["data"][0]["embedding"][0] == 2.0 and plain["object"] == "list"
    assert settled(lambda: UsageLog.objects.count() == 2)
    with pytest.raises(openai.BadRequestError, match="array of strings"):  # refused before anything is reserved
        client.embeddings.create(model="gemini-embedding", input=[[1, 2, 3]])
    assert UsageLog.objects.count() == 2 and len(gem.requests) == 2
