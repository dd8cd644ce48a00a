"""Every refusal in OpenAI's error shape, with nothing charged; auth headers; rate and concurrency limits."""

from __future__ import annotations

from datetime import timedelta

import httpx
import openai
import pytest
from django.utils import timezone

from accounts.models import User
from billing.models import LedgerEntry, UsageLog
from tests.support import post, settled
from tokens.models import ApiToken, TokenStatus

CHAT = {"model": "demo-chat", "messages": [{"role": "user", "content": "hi"}]}


def _error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if code is not None:
        assert err["code"] == code, err
    assert r.headers["x-request-id"]
    return err


@pytest.mark.parametrize("header", ["authorization", "x-api-key", "X-API-Key"])
def test_each_auth_header_is_accepted(live, bootstrap_demo, funded_key, header):
    _user, key = funded_key()
    value = f"Bearer {key}" if header == "authorization" else key
    assert httpx.post(live.url + "/v1/chat/completions", json=CHAT, headers={header: value}).status_code == 200


def test_bad_keys_are_refused_before_anything_is_charged(live, bootstrap_demo, funded_key):
    user, key = funded_key()
    _error(post(live, "/v1/chat/completions", None, CHAT), 401, "invalid_api_key")
    _error(post(live, "/v1/chat/completions", "sk-" + "x" * 48, CHAT), 401, "invalid_api_key")
    token = ApiToken.objects.get(user=user)
    ApiToken.objects.filter(pk=token.pk).update(status=TokenStatus.DISABLED)
    assert "disabled" in _error(post(live, "/v1/chat/completions", key, CHAT), 401)["message"]
    ApiToken.objects.filter(pk=token.pk).update(status=TokenStatus.ENABLED,
                                                expires_at=timezone.now() - timedelta(seconds=1))
    assert "expired" in _error(post(live, "/v1/chat/completions", key, CHAT), 401)["message"]
    ApiToken.objects.filter(pk=token.pk).update(expires_at=None, allow_ips=["10.1.0.0/16"])
    _error(post(live, "/v1/chat/completions", key, CHAT), 403, "ip_not_allowed")
    ApiToken.objects.filter(pk=token.pk).update(allow_ips=["127.0.0.1"])
    assert post(live, "/v1/chat/completions", key, CHAT).status_code == 200
    User.objects.filter(pk=user.pk).update(status="disabled")
    _error(post(live, "/v1/chat/completions", key, CHAT), 401)
    assert settled(lambda: UsageLog.objects.count() == 1)


def test_bad_requests_get_clear_400s(live, bootstrap_demo, funded_key, settings):
    _user, key = funded_key()
    cases = [
        (b"{not json", None), (b"[1, 2]", None), (b"", None),
        ({"messages": CHAT["messages"]}, "model"), ({"model": 5, "messages": []}, "model"),
        ({"model": "demo-chat"}, "messages"), ({"model": "demo-chat", "messages": "hi"}, "messages"),
        ({"model": "demo-chat", "messages": [{"content": "no role"}]}, "messages"),
        (CHAT | {"max_tokens": -1}, "max_tokens"), (CHAT | {"max_tokens": "lots"}, "max_tokens"),
        (CHAT | {"n": 1000}, "n"), (CHAT | {"stream": "yes"}, "stream"), (CHAT | {"provider": 3}, "provider"),
    ]
    for body, param in cases:
        err = _error(post(live, "/v1/chat/completions", key, body), 400)
        assert err["param"] == param, (body, err)
    _error(post(live, "/v1/completions", key, {"model": "demo-chat"}), 400)
    _error(post(live, "/v1/embeddings", key, {"model": "demo-embedding", "input": []}), 400)
    settings.RELAY_MAX_BODY_BYTES = 1000
    _error(post(live, "/v1/chat/completions", key, CHAT | {"pad": "x" * 2000}), 413, "request_too_large")
    assert not LedgerEntry.objects.filter(reason="reserve").exists()


def test_models_prices_groups_and_upstreams_are_checked(live, bootstrap_demo, funded_key, settings):
    from billing.models import ModelPrice
    from relay.models import Upstream

    user, key = funded_key()
    _error(post(live, "/v1/chat/completions", key, CHAT | {"model": "no-such-model"}), 404, "model_not_found")
    Upstream.objects.filter(type="demo").update(served_models=["demo-chat", "demo-free"])
    _error(post(live, "/v1/chat/completions", key, CHAT | {"model": "demo-free"}), 403, "model_price_not_set")
    settings.RELAY_UNPRICED_MODEL_RATIO = "1"
    assert post(live, "/v1/chat/completions", key, CHAT | {"model": "demo-free"}).status_code == 200
    ApiToken.objects.filter(user=user).update(model_limits=["demo-embedding"])
    _error(post(live, "/v1/chat/completions", key, CHAT), 403, "model_not_allowed")
    ApiToken.objects.filter(user=user).update(model_limits=[])
    _error(post(live, "/v1/chat/completions", key, CHAT, **{"x-ai-provider": "openai"}), 400, "model_not_supported")
    _error(post(live, "/v1/chat/completions", key, CHAT | {"provider": "deepseek"}), 400, "model_not_supported")
    assert post(live, "/v1/chat/completions", key, CHAT | {"provider": "demo"}).status_code == 200
    ModelPrice.objects.filter(model="demo-chat").update(price_per_call="0.002")
    assert post(live, "/v1/chat/completions", key, CHAT).status_code == 200
    assert settled(lambda: UsageLog.objects.filter(quota=1000).count() == 1)  # $0.002 x 500,000


def test_insufficient_balance_and_token_quota_are_403_with_nothing_taken(live, bootstrap_demo, funded_key, settings):
    settings.NEW_USER_QUOTA = 0
    poor, key = funded_key("poor", balance=100)
    err = _error(post(live, "/v1/chat/completions", key, CHAT), 403, "insufficient_quota")
    assert "balance" in err["message"]
    rich, key2 = funded_key("rich", unlimited_quota=False, remain_quota=50)
    err = _error(post(live, "/v1/chat/completions", key2, CHAT), 403, "insufficient_quota")
    assert "quota" in err["message"]
    assert User.objects.get(pk=poor.pk).quota == 100
    assert ApiToken.objects.get(user=rich).remain_quota == 50
    # the default 4096-token cap cannot be reserved from 50; a 10-token cap can (0.5 x (prompt + 10 x 2))
    assert post(live, "/v1/chat/completions", key2, CHAT | {"max_tokens": 10}).status_code == 200
    assert settled(lambda: UsageLog.objects.count() == 1)
    token = ApiToken.objects.get(user=rich)
    log = UsageLog.objects.get()
    assert 0 < log.quota and token.remain_quota == 50 - log.quota and token.used_quota == log.quota


def test_rpm_limit_headers_and_429_with_retry_after(live, bootstrap_demo, funded_key):
    _user, key = funded_key(rpm_limit=2)
    first = post(live, "/v1/chat/completions", key, CHAT)
    assert first.headers["x-ratelimit-limit"] == "2" and first.headers["x-ratelimit-remaining"] == "1"
    assert int(first.headers["x-ratelimit-reset"]) > 0
    assert post(live, "/v1/chat/completions", key, CHAT).status_code == 200
    third = post(live, "/v1/chat/completions", key, CHAT)
    _error(third, 429, "rate_limit_exceeded")
    assert 1 <= int(third.headers["retry-after"]) <= 60 and third.headers["x-ratelimit-remaining"] == "0"
    with pytest.raises(openai.RateLimitError):
        openai.OpenAI(api_key=key, base_url=live.url + "/v1", max_retries=0).chat.completions.create(**CHAT)


def test_concurrency_limit(live, bootstrap_demo, funded_key, settings):
    import concurrent.futures

    settings.DEMO_CHUNK_DELAY_MS = 100
    _user, key = funded_key(concurrency_limit=1)
    stream = CHAT | {"stream": True}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        codes = sorted(r.status_code for r in pool.map(
            lambda _: post(live, "/v1/chat/completions", key, stream), range(4)))
    assert codes[0] == 200 and 429 in codes
    assert post(live, "/v1/chat/completions", key, CHAT).status_code == 200  # slots are given back


def test_unknown_relay_paths_and_methods(live, bootstrap_demo, funded_key):
    _user, key = funded_key()
    _error(post(live, "/v1/nope", key, CHAT), 404, "unknown_url")
    r = httpx.get(live.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"})
    _error(r, 405)


def test_keys_without_limits_get_the_platform_default_rpm(live, bootstrap_demo, funded_key, settings):
    settings.RELAY_DEFAULT_RPM = 5
    _user, key = funded_key()
    r = post(live, "/v1/chat/completions", key, CHAT)
    assert r.headers["x-ratelimit-limit"] == "5" and r.headers["x-ratelimit-remaining"] == "4"
    settings.RELAY_DEFAULT_RPM = 0
    assert "x-ratelimit-limit" not in post(live, "/v1/chat/completions", key, CHAT).headers
