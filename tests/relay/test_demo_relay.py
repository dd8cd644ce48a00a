"""The relay end to end with the official openai SDK against the built-in demo upstream."""

from __future__ import annotations

import openai
import pytest

from accounts.models import User
from billing.ledger import ledger_sum
from billing.models import LedgerEntry, LedgerReason, UsageLog
from billing.pricing import quota_for_tokens
from billing.models import ModelPrice
from tests.support import settled


def _client(live, key, **kw):
    return openai.OpenAI(api_key=key, base_url=live.url + "/v1", max_retries=0, **kw)


def _expected_quota(log: UsageLog) -> int:
    price = ModelPrice.objects.get(model=log.model)
    return quota_for_tokens(prompt_tokens=log.prompt_tokens, completion_tokens=log.completion_tokens,
                            cached_tokens=log.cached_tokens, group_ratio=log.group_ratio,
                            model_ratio=price.model_ratio, completion_ratio=price.completion_ratio,
                            cache_ratio=price.cache_ratio)


def test_chat_is_answered_billed_by_the_formula_and_logged(live, bootstrap_demo, funded_key):
    user, key = funded_key()
    before = User.objects.get(pk=user.pk).quota
    reply = _client(live, key).chat.completions.create(
        model="demo-chat", messages=[{"role": "user", "content": "Say hello"}])
    assert "Say hello" in reply.choices[0].message.content
    assert settled(lambda: UsageLog.objects.exists())
    log = UsageLog.objects.get()
    assert (log.prompt_tokens, log.completion_tokens) == (reply.usage.prompt_tokens, reply.usage.completion_tokens)
    # demo-chat: model ratio 0.5, completion ratio 2, group 1
    assert log.quota == _expected_quota(log) == round(0.5 * (log.prompt_tokens + 2 * log.completion_tokens) + 1e-9)
    user.refresh_from_db()
    assert user.quota == before - log.quota == ledger_sum(user_id=user.pk)
    assert user.used_quota == log.quota and user.request_count == 1
    reasons = list(LedgerEntry.objects.filter(ref=f"req:{log.request_id}").values_list("reason", flat=True))
    assert sorted(reasons) == [LedgerReason.RESERVE, LedgerReason.SETTLE]


def test_streaming_hides_the_usage_chunk_unless_asked(live, bootstrap_demo, funded_key):
    user, key = funded_key()
    client = _client(live, key)
    chunks = list(client.chat.completions.create(
        model="demo-chat", messages=[{"role": "user", "content": "stream please"}], stream=True))
    assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "stream please" in text
    chunks = list(client.chat.completions.create(
        model="demo-chat", messages=[{"role": "user", "content": "stream please"}], stream=True,
        stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert settled(lambda: UsageLog.objects.count() == 2)
    logs = list(UsageLog.objects.order_by("id"))
    assert len(logs) == 2 and all(log.is_stream and not log.usage_estimated for log in logs)
    assert logs[0].quota == logs[1].quota == _expected_quota(logs[0])
    user.refresh_from_db()
    assert user.quota == ledger_sum(user_id=user.pk)


def test_reasoning_content_passes_through(live, bootstrap_demo, funded_key):
    _user, key = funded_key()
    raw = _client(live, key).chat.completions.with_raw_response.create(
        model="demo-reasoner", messages=[{"role": "user", "content": "think"}])
    body = raw.http_response.json()
    assert body["choices"][0]["message"]["reasoning_content"]
    assert raw.http_response.headers["x-request-id"]


def test_completions_code_completions_and_embeddings(live, bootstrap_demo, funded_key):
    import httpx

    _user, key = funded_key()
    client = _client(live, key)
    assert "def f" in client.completions.create(model="demo-chat", prompt="def f").choices[0].text
    code = httpx.post(live.url + "/v1/code/completions", headers={"authorization": f"Bearer {key}"},
                      json={"model": "demo-chat", "prompt": "def fib(n):", "language": "python", "max_tokens": 50})
    assert code.status_code == 200 and "def fib" in code.json()["choices"][0]["text"]
    default = client.embeddings.create(model="demo-embedding", input=["a", "b"])  # the SDK asks for base64
    floats = client.embeddings.create(model="demo-embedding", input=["a", "b"], encoding_format="float")
    assert len(default.data) == 2
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)
    assert settled(lambda: UsageLog.objects.filter(model="demo-embedding", status="success").count() == 2)


def test_models_list_filters_and_prices_after_group_ratio(live, bootstrap_demo, funded_key):
    from billing.groups import group_save
    from accounts.services import user_set_group

    user, key = funded_key()
    user_set_group(user=user, group=group_save(name="half", ratio="0.5"))
    from relay.models import Upstream
    Upstream.objects.get(type="demo").groups.add(user.group)
    client = _client(live, key)
    ids = [m.id for m in client.models.list()]
    assert ids == ["demo-audio", "demo-chat", "demo-embedding", "demo-music", "demo-realtime", "demo-reasoner",
                   "demo-video"]
    import httpx
    rows = httpx.get(live.url + "/v1/models?category=embedding", headers={"x-api-key": key}).json()["data"]
    assert [r["id"] for r in rows] == ["demo-embedding"]
    chat = client.models.retrieve("demo-chat").model_extra
    assert chat["pricing"]["input"] == "0.5" and chat["pricing"]["output"] == "1"  # $1/M x 0.5, x2 completion
    assert httpx.get(live.url + "/v1/models?provider=openai", headers={"x-api-key": key}).json()["data"] == []
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-9")


def test_responses_api_on_the_demo_model_goes_through_chat(live, bootstrap_demo, funded_key):
    _user, key = funded_key()
    client = _client(live, key)
    response = client.responses.create(model="demo-chat", input="Hello demo")
    assert "You said: Hello demo" in response.output_text and response.usage.output_tokens > 0
    with client.responses.stream(model="demo-chat", input="Stream please") as stream:
        text = "".join(event.delta for event in stream if event.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert "Stream please" in text and final.output_text == text
    assert settled(lambda: UsageLog.objects.filter(status="success", usage_estimated=False).count() == 2)
