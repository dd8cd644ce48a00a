"""Rerank through the relay: the cohere SDK (v2) and plain Jina-shaped HTTP, over Jina- and Cohere-shaped upstreams."""

from __future__ import annotations

from decimal import Decimal

import cohere
import pytest

from billing.groups import group_default
from billing.models import ModelPrice, UsageLog
from relay.upstreams import upstream_save
from tests.fakes.rerank_upstream import FakeRerank
from tests.support import post, settled

MODEL = "rerank-multilingual-v3.0"
DOCS = ["Carson City is the capital of Nevada.", "Washington, D.C. is the capital of the United States.",
        "Paris is the capital of France."]
QUERY = "capital of the United States"


@pytest.fixture(scope="module")
def fake():
    with FakeRerank() as up:
        yield up


@pytest.fixture
def priced(transactional_db, fake):
    fake.requests.clear()
    ModelPrice.objects.create(model=MODEL, category="rerank", model_ratio=Decimal("0.05"))


def _upstream(fake, provider_type):
    return upstream_save(name=provider_type, type=provider_type, base_url=fake.url, keys="rr-up",
                         served_models=[MODEL], groups=[group_default().name])


def test_cohere_sdk_v2_rerank_over_a_jina_upstream(live, fake, priced, funded_key):
    _upstream(fake, "jina")
    _user, key = funded_key()
    client = cohere.ClientV2(api_key=key, base_url=live.url)
    result = client.rerank(model=MODEL, query=QUERY, documents=DOCS, top_n=2)
    assert [r.index for r in result.results] == [1, 0]
    assert result.results[0].relevance_score > result.results[1].relevance_score
    assert fake.requests[-1]["path"] == "/v1/rerank" and fake.requests[-1]["json"]["return_documents"] is False
    assert settled(lambda: UsageLog.objects.exists())
    log = UsageLog.objects.get()
    assert log.prompt_tokens == 42 and log.quota == round(0.05 * 42)


def test_jina_shape_with_documents_over_a_cohere_upstream(live, fake, priced, funded_key):
    _upstream(fake, "cohere")
    _user, key = funded_key()
    r = post(live, "/v1/rerank", key, {"model": MODEL, "query": QUERY, "documents": [{"text": d} for d in DOCS],
                                       "top_n": 1, "return_documents": True})
    assert r.status_code == 200
    data = r.json()
    assert data["results"] == [{"index": 1, "relevance_score": data["results"][0]["relevance_score"],
                                "document": {"text": DOCS[1]}}]
    sent = fake.requests[-1]
    assert sent["path"] == "/v2/rerank" and sent["json"]["documents"] == DOCS
    assert settled(lambda: UsageLog.objects.exists())
    assert UsageLog.objects.get().usage_estimated  # Cohere reports search units, so tokens are counted here


def test_bad_rerank_requests(live, fake, priced, funded_key):
    _upstream(fake, "jina")
    _user, key = funded_key()
    r = post(live, "/v1/rerank", key, {"model": MODEL, "query": "", "documents": DOCS})
    assert r.status_code == 400 and r.json()["error"]["param"] == "query"
    r = post(live, "/v2/rerank", key, {"model": MODEL, "query": "q", "documents": []})
    assert r.status_code == 400 and "documents" in r.json()["message"]
