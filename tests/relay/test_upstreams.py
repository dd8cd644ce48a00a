"""The relay against real fake OpenAI upstreams on loopback: forwarding, failover, auto-disable, exact billing."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import httpx
import openai
import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import User, UserRole
from billing.charges import Hold, charge_reserve, reservations_sweep
from billing.groups import group_default, group_save, price_save
from billing.ledger import ledger_sum
from billing.models import LedgerEntry, LedgerReason, UsageLog
from relay.key_vault import key_fingerprint
from relay.models import Upstream, UpstreamStatus
from relay.probe import upstreams_retest, upstreams_test_all
from relay.upstreams import upstream_save
from tests.fakes.openai_upstream import FakeOpenAI
from tests.support import post, settled

UPSTREAM_KEY = "sk-upstream-test"


@pytest.fixture(scope="module")
def fakes():
    with FakeOpenAI(api_key=UPSTREAM_KEY) as a, FakeOpenAI(api_key=UPSTREAM_KEY) as b:
        yield a, b


@pytest.fixture
def up(fakes):
    for fake in fakes:
        fake.reset()
    return fakes


@pytest.fixture
def priced(transactional_db):
    price_save(model="gpt-4o", model_ratio=Decimal("1.25"), completion_ratio=Decimal(4), cache_ratio=Decimal("0.5"))
    price_save(model="gpt-4o-mini", model_ratio=Decimal("0.075"), completion_ratio=Decimal(4))


def _upstream(fake, name, *, priority=0, models=("gpt-4o", "gpt-4o-mini"), **fields):
    return upstream_save(name=name, type="openai", base_url=fake.url, keys=UPSTREAM_KEY, served_models=list(models),
                         priority=priority, groups=[group_default().name], **fields)


def _client(live, key):
    return openai.OpenAI(api_key=key, base_url=live.url + "/v1", max_retries=0)


def _chat(**kw):
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **kw}


def test_the_upstream_gets_its_own_key_the_mapped_model_and_usage_requested(live, up, priced, funded_key):
    a, _b = up
    _upstream(a, "a", model_mapping={"gpt-4o": "gpt-4o-2024-08-06"})
    _user, key = funded_key()
    r = post(live, "/v1/chat/completions", key, _chat(stream=True, provider="openai"), cookie="session=x")
    assert r.status_code == 200
    frames = [f for f in r.text.split("\n\n") if f.startswith("data: {")]
    assert all(json.loads(f[6:]).get("choices") for f in frames)  # the usage chunk is not shown
    sent = a.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}" and "cookie" not in sent.headers
    assert sent.json["model"] == "gpt-4o-2024-08-06" and "provider" not in sent.json
    assert sent.json["stream_options"] == {"include_usage": True}
    assert settled(lambda: UsageLog.objects.filter(usage_estimated=False).count() == 1)
    log = UsageLog.objects.get()
    assert (log.prompt_tokens, log.completion_tokens, log.upstream_model) == (17, 5, "gpt-4o-2024-08-06")


def test_tool_calls_and_reasoning_pass_through(live, up, priced, funded_key):
    a, _b = up
    _upstream(a, "a")
    a.behave("gpt-4o", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}], finish_reason="tool_calls")
    a.behave("gpt-4o-mini", reasoning_content="thinking...", content="42")
    _user, key = funded_key()
    client = _client(live, key)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    plain = client.chat.completions.create(**_chat(tools=tools))
    assert plain.choices[0].message.tool_calls[0].function.name == "get_weather"
    args = ""
    for chunk in client.chat.completions.create(**_chat(tools=tools, stream=True)):
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            args += call.function.arguments or ""
    assert json.loads(args) == {"city": "Paris"}
    mini = client.chat.completions.create(**_chat(model="gpt-4o-mini"))
    assert mini.choices[0].message.model_extra["reasoning_content"] == "thinking..."
    assert settled(lambda: UsageLog.objects.count() == 3)


@pytest.mark.parametrize("group_ratio, usage, expected", [
    # 1 x 1.25 x (17 + 5 x 4) = 46.25 -> 46
    ("1", {}, 46),
    # 1.5 x 1.25 x ((17 - 7) + 7 x 0.5 + 5 x 4) = 1.875 x 33.5 = 62.8125 -> 63
    ("1.5", {"cached_tokens": 7}, 63),
    # 0.3 x 1.25 x (1000 + 300 x 4) = 825
    ("0.3", {"prompt_tokens": 1000, "completion_tokens": 300}, 825),
])
def test_charged_quota_equals_the_formula(live, up, priced, funded_key, group_ratio, usage, expected):
    from accounts.services import user_set_group

    a, _b = up
    upstream = _upstream(a, "a")
    a.behave("gpt-4o", **usage)
    user, key = funded_key()
    if group_ratio != "1":
        group = group_save(name="g", ratio=Decimal(group_ratio))
        user_set_group(user=user, group=group)
        upstream.groups.add(group)
    before = user.quota
    _client(live, key).chat.completions.create(**_chat())
    assert settled(lambda: UsageLog.objects.exists())
    user.refresh_from_db()
    assert UsageLog.objects.get().quota == expected and user.quota == before - expected


def test_failover_from_a_500_upstream_to_a_healthy_one(live, up, priced, funded_key):
    a, b = up
    _upstream(a, "broken", priority=10)
    _upstream(b, "healthy", priority=0)
    a.behave("gpt-4o", status=500)
    _user, key = funded_key()
    reply = _client(live, key).chat.completions.create(**_chat())
    assert reply.choices[0].message.content == "Hello from gpt-4o!"
    assert len(a.requests) == 1 and len(b.requests) == 1
    stream = list(_client(live, key).chat.completions.create(**_chat(stream=True)))
    assert stream[-1].choices[0].finish_reason == "stop"
    assert settled(lambda: UsageLog.objects.filter(status="success").count() == 2)
    assert {log.upstream.name for log in UsageLog.objects.all()} == {"healthy"}


def test_failover_on_timeout(live, up, priced, funded_key):
    a, b = up
    _upstream(a, "slow", priority=10, first_byte_timeout=0.3)
    _upstream(b, "fast")
    a.behave("gpt-4o", delay_before_headers=2)
    _user, key = funded_key()
    assert _client(live, key).chat.completions.create(**_chat()).choices[0].message.content
    assert settled(lambda: UsageLog.objects.filter(status="success").count() == 1)


def test_a_400_is_returned_as_is_without_retry_or_charge(live, up, priced, funded_key):
    a, b = up
    _upstream(a, "first", priority=10)
    _upstream(b, "second")
    a.behave("gpt-4o", status=400, error_message=f"bad temperature (key {UPSTREAM_KEY})", error_code="bad_value")
    user, key = funded_key()
    before = user.quota
    with pytest.raises(openai.BadRequestError) as exc:
        _client(live, key).chat.completions.create(**_chat())
    assert "bad temperature" in exc.value.message and UPSTREAM_KEY not in exc.value.message
    assert exc.value.code == "bad_value"
    assert len(b.requests) == 0
    assert settled(lambda: UsageLog.objects.filter(status="error", status_code=400).count() == 1)
    user.refresh_from_db()
    assert user.quota == before
    assert LedgerEntry.objects.filter(reason=LedgerReason.REFUND).count() == 1


def test_all_upstreams_failing_gives_a_clean_502_and_a_full_refund(live, up, priced, funded_key):
    a, b = up
    _upstream(a, "a", priority=1)
    _upstream(b, "b")
    a.behave("gpt-4o", status=503)
    b.behave("gpt-4o", status=500, error_message="boom")
    user, key = funded_key()
    before = user.quota
    r = post(live, "/v1/chat/completions", key, _chat())
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_error" and "boom" in r.text
    assert a.url not in r.text and b.url not in r.text
    assert settled(lambda: UsageLog.objects.filter(status="error").exists())
    user.refresh_from_db()
    assert user.quota == before


def test_bad_credentials_auto_disable_and_the_retest_brings_it_back(live, up, priced, funded_key):
    a, b = up
    broken = upstream_save(name="wrong key", type="openai", base_url=a.url, keys="sk-wrong", served_models=["gpt-4o"],
                           priority=10, test_model="gpt-4o")
    _upstream(b, "good")
    _user, key = funded_key()
    assert _client(live, key).chat.completions.create(**_chat()).choices
    broken.refresh_from_db()
    assert broken.status == UpstreamStatus.AUTO_DISABLED and "401" in broken.status_reason
    assert upstreams_retest() == 0  # still the wrong key
    broken.set_keys([UPSTREAM_KEY])
    broken.save()
    assert upstreams_retest() == 1
    broken.refresh_from_db()
    assert broken.status == UpstreamStatus.ENABLED and broken.last_test_latency_ms is not None


def test_repeated_failures_auto_disable(live, up, priced, funded_key, settings):
    settings.UPSTREAM_FAILURES_TO_DISABLE = 2
    a, b = up
    flaky = _upstream(a, "flaky", priority=10)
    _upstream(b, "steady")
    a.behave("gpt-4o", status=500)
    _user, key = funded_key()
    for _ in range(3):
        assert post(live, "/v1/chat/completions", key, _chat()).status_code == 200
    flaky.refresh_from_db()
    assert flaky.status == UpstreamStatus.AUTO_DISABLED
    assert len(a.requests) == 2


def test_client_disconnect_mid_stream_stops_the_upstream_and_bills_what_was_produced(live, up, priced, funded_key):
    a, _b = up
    _upstream(a, "a")
    a.behave("gpt-4o", never_end=True, chunk_delay_ms=10, content="word ")
    user, key = funded_key()
    before = user.quota
    with httpx.stream("POST", live.url + "/v1/chat/completions", json=_chat(stream=True),
                      headers={"authorization": f"Bearer {key}"}) as r:
        for i, _line in enumerate(r.iter_lines()):
            if i > 20:
                break
    assert a.wait_streams_closed(timeout=5)
    assert settled(lambda: UsageLog.objects.filter(status="client_closed").exists())
    log = UsageLog.objects.get()
    assert log.usage_estimated and log.completion_tokens > 0
    reserved = -LedgerEntry.objects.get(reason=LedgerReason.RESERVE).amount
    user.refresh_from_db()
    assert 0 < log.quota < reserved and user.quota == before - log.quota


def test_upstream_dying_mid_stream_gives_the_client_an_error_and_bills_what_was_produced(live, up, priced,
                                                                                         funded_key):
    a, _b = up
    _upstream(a, "a")
    a.behave("gpt-4o", cut_after_chunks=3, chunks=10, content="one two three four five six seven eight nine ten")
    _user, key = funded_key()
    with pytest.raises(openai.APIError):
        for _chunk in _client(live, key).chat.completions.create(**_chat(stream=True)):
            pass
    assert settled(lambda: UsageLog.objects.filter(status="error").exists())
    log = UsageLog.objects.get()
    assert log.usage_estimated and log.quota > 0 and "broke off" in log.error


def test_provider_pinning_picks_among_upstreams(live, up, priced, funded_key):
    a, b = up
    _upstream(a, "openai one")
    upstream_save(name="ds", type="deepseek", base_url=b.url, keys=UPSTREAM_KEY, served_models=["gpt-4o"])
    _user, key = funded_key()
    for _ in range(3):
        assert post(live, "/v1/chat/completions", key, _chat(provider="deepseek")).status_code == 200
        assert post(live, "/v1/chat/completions", key, _chat(), **{"X-AI-Provider": "openai"}).status_code == 200
    assert len(a.requests) == 3 and len(b.requests) == 3


def test_upstream_base_url_with_v1_works_the_same(live, up, priced, funded_key):
    a, _b = up
    upstream_save(name="v1", type="openai", base_url=a.url + "/v1", keys=UPSTREAM_KEY, served_models=["gpt-4o"])
    _user, key = funded_key()
    assert post(live, "/v1/chat/completions", key, _chat()).status_code == 200
    assert a.requests[-1].path == "/v1/chat/completions"


def test_sweep_refunds_reservations_left_open_exactly_once(make_user, transactional_db):
    user = make_user("orphan")
    before = user.quota
    charge_reserve(hold=Hold(request_id="dead-worker", user_id=user.pk, token_id=None, unlimited=True, amount=900))
    LedgerEntry.objects.filter(ref="req:dead-worker").update(created_at=timezone.now() - timedelta(hours=1))
    assert reservations_sweep(older_than=timedelta(minutes=30)) == 1
    assert reservations_sweep(older_than=timedelta(minutes=30)) == 0
    user.refresh_from_db()
    assert user.quota == before == ledger_sum(user_id=user.pk)


def test_azure_gets_the_deployment_path_api_version_and_api_key(live, priced, funded_key):
    with FakeOpenAI(api_key=None, prefix="/openai/deployments/gpt4o-prod") as azure:
        upstream_save(name="azure", type="azure", base_url=azure.url, keys="azure-key", served_models=["gpt-4o"],
                      extras={"api_version": "2024-10-21", "deployments": {"gpt-4o": "gpt4o-prod"}})
        _user, key = funded_key()
        client = openai.OpenAI(api_key=key, base_url=live.url + "/v1", max_retries=0)
        assert client.chat.completions.create(**_chat()).choices[0].message.content
        chunks = list(client.chat.completions.create(**_chat(stream=True)))
        assert all(chunk.choices for chunk in chunks)
        sent = azure.requests[-1]
        assert sent.path == "/openai/deployments/gpt4o-prod/chat/completions"
        assert sent.query == {"api-version": "2024-10-21"}
        assert sent.headers["api-key"] == "azure-key" and "authorization" not in sent.headers
        assert settled(lambda: UsageLog.objects.filter(status="success").count() == 2)


def test_responses_api_plain_and_streaming_natively(live, up, priced, funded_key):
    a, _b = up
    _upstream(a, "a")
    a.behave("gpt-4o", content="Hello there, Codex", prompt_tokens=40, cached_tokens=20, completion_tokens=8,
             chunks=4)
    _user, key = funded_key()
    client = openai.OpenAI(api_key=key, base_url=live.url + "/v1", max_retries=0)
    response = client.responses.create(model="gpt-4o", input="Say hi", instructions="Be brief.")
    assert response.output_text == "Hello there, Codex" and response.usage.input_tokens == 40
    events = list(client.responses.create(model="gpt-4o", input=[{"role": "user", "content": "Say hi"}],
                                          stream=True))
    assert events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Hello there, Codex"
    assert a.requests[-1].path == "/v1/responses"
    assert settled(lambda: UsageLog.objects.filter(status="success", usage_estimated=False).count() == 2)
    # gpt-4o: 1.25 x ((40 - 20) + 20 x 0.5 + 8 x 4) = 1.25 x 62 = 77.5 -> 78
    assert {log.quota for log in UsageLog.objects.all()} == {78}


@pytest.mark.parametrize("how", ["chat-only provider", "switched off in extras"])
def test_responses_api_served_through_chat_where_the_upstream_lacks_it(live, up, priced, funded_key, how):
    a, _b = up
    if how == "chat-only provider":
        upstream_save(name="ds", type="deepseek", base_url=a.url, keys=UPSTREAM_KEY, served_models=["gpt-4o"],
                      groups=[group_default().name])
    else:
        _upstream(a, "a", extras={"responses": False})
    a.behave("gpt-4o", content="Hello there, Codex", prompt_tokens=40, cached_tokens=20, completion_tokens=8,
             chunks=4, tool_calls=None)
    _user, key = funded_key()
    client = openai.OpenAI(api_key=key, base_url=live.url + "/v1", max_retries=0)
    response = client.responses.create(model="gpt-4o", input="Say hi", instructions="Be brief.",
                                       max_output_tokens=50)
    assert response.output_text == "Hello there, Codex" and response.usage.input_tokens == 40
    sent = a.requests[-1]
    assert sent.path == "/v1/chat/completions" and sent.json["max_tokens"] == 50
    assert sent.json["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}]
    with client.responses.stream(model="gpt-4o", input=[{"role": "user", "content": "Say hi"}]) as stream:
        final = stream.get_final_response()
    assert final.output_text == "Hello there, Codex" and final.usage.output_tokens == 8
    assert a.requests[-1].json["stream_options"] == {"include_usage": True}
    assert settled(lambda: UsageLog.objects.filter(status="success", usage_estimated=False).count() == 2)
    assert {log.quota for log in UsageLog.objects.all()} == {78}  # the same bill as natively


def test_responses_features_chat_cannot_carry_are_refused_unbilled(live, up, priced, funded_key):
    a, _b = up
    _upstream(a, "a", extras={"responses": False})
    _user, key = funded_key()
    client = openai.OpenAI(api_key=key, base_url=live.url + "/v1", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="previous_response_id"):
        client.responses.create(model="gpt-4o", input="again", previous_response_id="resp_123")
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="gpt-4o", input="search", tools=[{"type": "web_search"}])
    assert a.requests == [] and not UsageLog.objects.exists()


def test_image_generation_is_priced_per_image(live, up, priced, funded_key):
    from billing.models import ModelPrice

    a, _b = up
    ModelPrice.objects.create(model="dall-e-3", category="image", price_per_call=Decimal("0.04"))
    _upstream(a, "a", models=("dall-e-3",))
    user, key = funded_key()
    before = user.quota
    client = openai.OpenAI(api_key=key, base_url=live.url + "/v1", max_retries=0)
    images = client.images.generate(model="dall-e-3", prompt="a red panda", n=2, size="1024x1024")
    assert len(images.data) == 2 and images.data[0].url
    assert a.requests[-1].json["n"] == 2
    assert settled(lambda: UsageLog.objects.filter(status="success").exists())
    user.refresh_from_db()
    assert UsageLog.objects.get().quota == 40_000 == before - user.quota  # 2 x $0.04 x 500,000
    with pytest.raises(openai.BadRequestError):
        client.images.generate(model="dall-e-3", prompt="")


def test_a_refused_key_is_left_out_while_the_upstreams_other_keys_carry_on(live, up, priced, funded_key):
    a, b = up
    mixed = upstream_save(name="mixed", type="openai", base_url=a.url, keys=f"sk-revoked\n{UPSTREAM_KEY}",
                          served_models=["gpt-4o"], test_model="gpt-4o", priority=10)
    _upstream(b, "fallback")  # takes the one request the revoked key fails
    _user, key = funded_key()
    client = _client(live, key)
    for _ in range(12):  # the revoked key comes up at random; once refused it is never picked again
        assert client.chat.completions.create(**_chat()).choices
    mixed.refresh_from_db()
    assert mixed.status == UpstreamStatus.ENABLED and len(mixed.disabled_keys) == 1
    assert "401" in next(iter(mixed.disabled_keys.values()))
    used = [r.headers["authorization"] for r in a.requests]
    assert used.count("Bearer sk-revoked") == 1
    assert upstreams_retest() == 0  # still refused
    mixed.set_keys([UPSTREAM_KEY, UPSTREAM_KEY + "-second"])  # new keys: none disabled
    mixed.save()
    assert mixed.disabled_keys == {}


def test_the_last_key_refused_disables_the_upstream_and_a_retest_restores_a_key(live, up, priced, funded_key):
    a, b = up
    single = upstream_save(name="one key", type="openai", base_url=a.url, keys="sk-gone", served_models=["gpt-4o"],
                           priority=10, test_model="gpt-4o")
    _upstream(b, "good")
    _user, key = funded_key()
    assert _client(live, key).chat.completions.create(**_chat()).choices
    single.refresh_from_db()
    assert single.status == UpstreamStatus.AUTO_DISABLED and single.disabled_keys == {}
    two = upstream_save(name="two keys", type="openai", base_url=a.url, keys=f"sk-later\n{UPSTREAM_KEY}",
                        served_models=["gpt-4o"])
    Upstream.objects.filter(pk=two.pk).update(disabled_keys={key_fingerprint("sk-later"): "HTTP 401"})
    a.app.api_key = "sk-later"  # the key works again (the upstream now takes it)
    try:
        assert upstreams_retest() == 1
    finally:
        a.app.api_key = UPSTREAM_KEY
    two.refresh_from_db()
    assert two.disabled_keys == {}


def test_operators_are_mailed_when_an_upstream_or_a_key_is_disabled(live, up, priced, funded_key, make_user,
                                                                    settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    operator = make_user("ops")
    User.objects.filter(pk=operator.pk).update(role=UserRole.ADMIN, email="ops@example.com")
    a, b = up
    upstream_save(name="stale key", type="openai", base_url=a.url, keys="sk-stale", served_models=["gpt-4o"],
                  priority=10)
    upstream_save(name="two keys", type="openai", base_url=a.url, keys=f"sk-bad\n{UPSTREAM_KEY}",
                  served_models=["gpt-4o"], priority=5)
    _upstream(b, "good")
    _user, key = funded_key()
    for _ in range(20):  # the bad key comes up at random (never, in 20 draws: one chance in a million)
        assert _client(live, key).chat.completions.create(**_chat()).choices
    assert settled(lambda: len(mail.outbox) == 2)
    subjects = sorted(m.subject for m in mail.outbox)
    assert subjects[0].endswith("A key of upstream two keys was disabled")
    assert subjects[1].endswith("Upstream stale key was disabled")
    assert all(m.to == ["ops@example.com"] for m in mail.outbox)
    body = next(m.body for m in mail.outbox if "A key" in m.subject)
    assert key_fingerprint("sk-bad") in body and "sk-bad" not in body and "HTTP 401" in body


def test_the_scheduled_test_records_latency_and_takes_out_what_fails(live, up, priced):
    a, b = up
    fine = _upstream(a, "fine", test_model="gpt-4o")
    broken = upstream_save(name="broken", type="openai", base_url=b.url, keys="sk-wrong", served_models=["gpt-4o"])
    reranker = upstream_save(name="rerank", type="jina", base_url=b.url, keys="jina-key", served_models=["rr"])
    assert upstreams_test_all() == (2, 1)  # the rerank upstream has no chat to test
    fine.refresh_from_db(), broken.refresh_from_db(), reranker.refresh_from_db()
    assert fine.status == UpstreamStatus.ENABLED and fine.last_test_latency_ms is not None
    assert broken.status == UpstreamStatus.AUTO_DISABLED and broken.status_reason.startswith("Scheduled test failed")
    assert reranker.status == UpstreamStatus.ENABLED


def test_a_retest_does_not_put_back_an_upstream_an_operator_disabled_while_it_was_probed(bootstrap_demo):
    from relay.probe import upstream_test
    from relay.upstreams import upstream_set_status

    demo = Upstream.objects.get(type="demo")
    Upstream.objects.filter(pk=demo.pk).update(status=UpstreamStatus.AUTO_DISABLED)
    read_by_the_retest = Upstream.objects.get(pk=demo.pk)
    upstream_set_status(upstream=Upstream.objects.get(pk=demo.pk), status=UpstreamStatus.DISABLED, reason="by hand")

    assert upstream_test(upstream=read_by_the_retest, reenable=True).ok
    assert Upstream.objects.get(pk=demo.pk).status == UpstreamStatus.DISABLED
    assert Upstream.objects.get(pk=demo.pk).last_tested_at is not None  # the probe itself is recorded


def test_putting_one_key_back_keeps_a_key_disabled_since_the_upstream_was_read(db):
    from relay.upstreams import upstream_key_disable, upstream_keys_enable

    upstream = upstream_save(name="three keys", type="openai", base_url="http://127.0.0.1:9",
                             keys="sk-one\nsk-two\nsk-three", served_models=["gpt-4o"])
    assert upstream_key_disable(upstream_id=upstream.pk, key="sk-one", reason="HTTP 401")
    read_by_the_retest = Upstream.objects.get(pk=upstream.pk)
    assert upstream_key_disable(upstream_id=upstream.pk, key="sk-two", reason="HTTP 401")  # meanwhile, by the relay

    assert upstream_keys_enable(upstream=read_by_the_retest, fingerprints=[key_fingerprint("sk-one")]) == 1
    assert set(Upstream.objects.get(pk=upstream.pk).disabled_keys) == {key_fingerprint("sk-two")}
