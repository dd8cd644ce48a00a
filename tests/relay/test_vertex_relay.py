"""Google Vertex AI upstreams: Gemini and Claude models behind one service-account key, with the official SDKs."""

from __future__ import annotations

import json
from decimal import Decimal

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from billing.groups import group_default
from billing.models import ModelPrice, UsageLog
from relay.adapters.base import Call
from relay.adapters.google_credentials import ACCESS_TOKENS
from relay.adapters.vertex import publisher_url
from relay.models import Upstream, UpstreamStatus
from relay.probe import upstream_test
from relay.providers import PROVIDERS
from relay.snapshots import upstream_info
from relay.upstreams import upstream_save
from tests.fakes.vertex_upstream import FakeVertex
from tests.support import post, settled

FLASH, CLAUDE = "gemini-2.5-flash", "claude-sonnet-4-5@20250929"


@pytest.fixture(scope="module")
def vertex():
    with FakeVertex(project="acme-prod") as fake:
        yield fake


@pytest.fixture
def vertex_upstream(vertex, transactional_db):
    vertex.reset()
    ACCESS_TOKENS.forget()
    ModelPrice.objects.create(model=FLASH, provider="vertex", model_ratio=Decimal("0.15"), completion_ratio=Decimal(8))
    ModelPrice.objects.create(model=CLAUDE, provider="vertex", model_ratio=Decimal("1.5"), completion_ratio=Decimal(5))
    return upstream_save(name="vertex", type="vertex", base_url=vertex.url, keys=vertex.service_account(),
                         served_models=[FLASH, CLAUDE], extras={"region": "us-east5"}, groups=[group_default().name])


def test_claude_on_vertex_with_the_anthropic_sdk(live, vertex, vertex_upstream, funded_key):
    vertex.behave_claude(CLAUDE, input_tokens=100, output_tokens=20, content="Hi from Vertex")
    _user, key = funded_key()
    client = anthropic.Anthropic(api_key=key, base_url=live.url, max_retries=0)
    message = client.messages.create(model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": "Hello"}])
    assert message.content[0].text == "Hi from Vertex"
    sent = vertex.requests[-1]
    assert sent.path == f"/v1/projects/acme-prod/locations/us-east5/publishers/anthropic/models/{CLAUDE}:rawPredict"
    assert sent.body["anthropic_version"] == "vertex-2023-10-16" and "model" not in sent.body
    assert sent.headers["authorization"].startswith("Bearer ya29.") and "x-api-key" not in sent.headers
    assert settled(lambda: UsageLog.objects.exists())
    log = UsageLog.objects.get()
    assert (log.prompt_tokens, log.completion_tokens, log.quota) == (100, 20, 300)  # 1.5 x (100 + 20 x 5)


def test_claude_on_vertex_streams_to_an_openai_client(live, vertex, vertex_upstream, funded_key):
    vertex.behave_claude(CLAUDE, content="one two three", chunks=3, input_tokens=12, output_tokens=4)
    _user, key = funded_key()
    client = openai.OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0)
    stream = client.chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": "Count"}],
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three"
    assert chunks[-1].usage.prompt_tokens == 12 and chunks[-1].usage.completion_tokens == 4
    assert vertex.requests[-1].path.endswith(f"/models/{CLAUDE}:streamRawPredict")
    assert vertex.requests[-1].body["stream"] is True
    assert settled(lambda: UsageLog.objects.filter(is_stream=True, usage_estimated=False).exists())


def test_gemini_on_vertex_natively_and_from_openai_one_token_for_all(live, vertex, vertex_upstream, funded_key):
    vertex.behave_gemini(FLASH, prompt_tokens=100, candidates_tokens=10, content="Hi there")
    _user, key = funded_key()
    gem = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=live.url, api_version="v1beta"))
    assert gem.models.generate_content(model=FLASH, contents="Hello").text == "Hi there"
    assert vertex.requests[-1].path == (
        f"/v1/projects/acme-prod/locations/us-east5/publishers/google/models/{FLASH}:generateContent")
    oai = openai.OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0)
    chunks = list(oai.chat.completions.create(model=FLASH, messages=[{"role": "user", "content": "Hi"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hi there"
    assert vertex.requests[-1].path.endswith(f"/models/{FLASH}:streamGenerateContent")
    assert vertex.requests[-1].query == {"alt": "sse"}
    assert vertex.tokens_issued == 1  # the access token is reused until it nears its expiry
    assert settled(lambda: UsageLog.objects.count() == 2)
    assert UsageLog.objects.order_by("id").first().quota == 27  # 0.15 x (100 + 10 x 8)


def test_gemini_on_vertex_express_mode_with_an_api_key(live, vertex, vertex_upstream, funded_key):
    vertex_upstream.set_keys(["vx-express"])
    vertex_upstream.save()
    _user, key = funded_key()
    r = post(live, "/v1/chat/completions", key, {"model": FLASH, "messages": [{"role": "user", "content": "Hi"}]})
    assert r.status_code == 200, r.text
    sent = vertex.requests[-1]
    assert sent.path == f"/v1/publishers/google/models/{FLASH}:generateContent"
    assert sent.headers["x-goog-api-key"] == "vx-express" and "authorization" not in sent.headers
    assert vertex.tokens_issued == 0


def test_a_refused_service_account_disables_the_upstream_and_charges_nothing(live, vertex, vertex_upstream,
                                                                            funded_key):
    vertex_upstream.set_keys([json.dumps(json.loads(vertex.service_account(registered=False)))])
    vertex_upstream.save()
    user, key = funded_key()
    before = user.quota
    r = post(live, "/v1/chat/completions", key, {"model": FLASH, "messages": [{"role": "user", "content": "Hi"}]})
    assert r.status_code == 502 and "error" in r.json()
    assert "private_key" not in r.text and "BEGIN" not in r.text
    vertex_upstream.refresh_from_db()
    assert vertex_upstream.status == UpstreamStatus.AUTO_DISABLED and "401" in vertex_upstream.status_reason
    assert not [req for req in vertex.requests if "/publishers/" in req.path]  # never asked without a token
    assert settled(lambda: UsageLog.objects.filter(status="error").exists())
    user.refresh_from_db()
    assert user.quota == before


def test_the_upstream_test_asks_in_each_models_own_format(vertex, vertex_upstream):
    assert upstream_test(upstream=vertex_upstream, model=FLASH).ok
    assert vertex.requests[-1].body["contents"][0]["parts"][0]["text"] == "ping"
    assert upstream_test(upstream=vertex_upstream, model=CLAUDE).ok
    assert vertex.requests[-1].path.endswith(":rawPredict") and vertex.requests[-1].body["max_tokens"] == 1


def test_regions_pick_the_host_and_location():
    row = Upstream(name="v", type="vertex", extras={"region": "europe-west1", "regions": {"gemini-3-pro": "global"}})
    info = upstream_info(row)
    assert info.base_url == PROVIDERS["vertex"].default_base_url

    def url(model):
        return publisher_url(Call(upstream=info, key="", operation="", body={}, stream=False, model=model),
                             "google", "generateContent", "p1")

    assert url(FLASH) == ("https://europe-west1-aiplatform.googleapis.com/v1/projects/p1/locations/europe-west1/"
                          f"publishers/google/models/{FLASH}:generateContent")
    assert url("gemini-3-pro").startswith("https://aiplatform.googleapis.com/v1/projects/p1/locations/global/")


def test_service_account_files_are_accepted_through_the_api(admin, client_for, default_group, vertex):
    client = client_for(admin)
    key_file = vertex.service_account()
    r = client.post("/api/channel/", {"name": "vx", "type": "vertex", "key": key_file, "models": FLASH},
                    format="json")
    assert r.status_code == 201, r.json()
    assert r.json()["data"]["key_count"] == 1 and "PRIVATE KEY" not in r.content.decode()
    assert json.loads(Upstream.objects.get(name="vx").get_keys()[0]) == json.loads(key_file)
    r = client.post("/api/channel/", {"name": "bad", "type": "vertex", "key": key_file[:-5], "models": FLASH},
                    format="json")
    assert r.status_code == 400 and r.json()["success"] is False and "JSON" in r.json()["message"]


def test_partner_models_go_to_the_openai_compatible_endpoint(live, vertex, vertex_upstream, funded_key):
    ModelPrice.objects.create(model="llama-3.3-70b", provider="vertex", model_ratio=Decimal("0.36"))
    vertex_upstream.served_models = [*vertex_upstream.served_models, "llama-3.3-70b"]
    vertex_upstream.model_mapping = {"llama-3.3-70b": "meta/llama-3.3-70b-instruct-maas"}
    vertex_upstream.save()
    _user, key = funded_key()
    oai = openai.OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0)
    answer = oai.chat.completions.create(model="llama-3.3-70b", messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content == "Hello from meta/llama-3.3-70b-instruct-maas!"
    sent = vertex.requests[-1]
    assert sent.path == "/v1/projects/acme-prod/locations/us-east5/endpoints/openapi/chat/completions"
    assert sent.body["model"] == "meta/llama-3.3-70b-instruct-maas"
    assert sent.headers["authorization"].startswith("Bearer ya29.")
    claude = anthropic.Anthropic(api_key=key, base_url=live.url, max_retries=0)
    message = claude.messages.create(model="llama-3.3-70b", max_tokens=20, messages=[{"role": "user", "content": "Hi"}])
    assert message.content[0].text.startswith("Hello from meta/")
    r = post(live, "/v1/images/generations", key, {"model": "llama-3.3-70b", "prompt": "a cat"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "model_not_supported"  # media: not via Vertex AI
    assert settled(lambda: UsageLog.objects.filter(status="success").count() == 2)


def test_openai_embeddings_through_vertex_predict(live, vertex, vertex_upstream, funded_key):
    ModelPrice.objects.create(model="text-embedding-005", provider="vertex", model_ratio=Decimal("0.01"))
    vertex_upstream.served_models = [*vertex_upstream.served_models, "text-embedding-005"]
    vertex_upstream.save()
    _user, key = funded_key()
    oai = openai.OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0)
    result = oai.embeddings.create(model="text-embedding-005", input=["one two", "three"], dimensions=4)
    assert [row.embedding for row in result.data] == [[7.0, 0.25, 0.25, 0.25], [5.0, 0.25, 0.25, 0.25]]
    assert result.usage.prompt_tokens == 3
    sent = vertex.requests[-1]
    assert sent.path.endswith("/publishers/google/models/text-embedding-005:predict")
    assert sent.body == {"instances": [{"content": "one two"}, {"content": "three"}],
                         "parameters": {"outputDimensionality": 4}}
    gem = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=live.url, api_version="v1beta"))
    with pytest.raises(genai_errors.ClientError) as refused:  # Gemini's own embedding actions: not via Vertex AI
        gem.models.embed_content(model="text-embedding-005", contents="hello")
    assert refused.value.code == 400
    assert settled(lambda: UsageLog.objects.filter(status="success").count() == 1)


def test_imagen_on_vertex_through_predict(live, vertex, vertex_upstream, funded_key):
    ModelPrice.objects.create(model="imagen-4.0-generate-001", provider="vertex", price_per_call=Decimal("0.04"))
    vertex_upstream.served_models = [*vertex_upstream.served_models, "imagen-4.0-generate-001"]
    vertex_upstream.save()
    _user, key = funded_key()
    oai = openai.OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0)
    result = oai.images.generate(model="imagen-4.0-generate-001", prompt="a fox", n=2)
    assert len(result.data) == 2 and result.data[0].b64_json
    sent = vertex.requests[-1]
    assert sent.path.endswith("/publishers/google/models/imagen-4.0-generate-001:predict")
    assert sent.body["instances"] == [{"prompt": "a fox"}] and sent.body["parameters"]["sampleCount"] == 2
    assert settled(lambda: UsageLog.objects.filter(quota=40_000).exists())  # 2 x $0.04
