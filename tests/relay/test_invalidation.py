"""A change to a cached row empties every process's copies through Redis, long before they would expire."""

from __future__ import annotations

import httpx

from tests.support import settled
from tokens.models import ApiToken, TokenStatus
from tokens.services import token_update


def test_a_disabled_key_is_refused_at_once_despite_a_long_cache(live, bootstrap_demo, funded_key, settings):
    settings.RELAY_CACHE_SECONDS = 3600
    user, key = funded_key()
    body = {"model": "demo-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    headers = {"authorization": f"Bearer {key}"}
    assert httpx.post(live.url + "/v1/chat/completions", json=body, headers=headers, timeout=10).status_code == 200
    token_update(token=ApiToken.objects.get(user=user), user=user, status=TokenStatus.DISABLED)
    assert settled(lambda: httpx.post(live.url + "/v1/chat/completions", json=body, headers=headers,
                                      timeout=10).status_code == 401, timeout=5)
