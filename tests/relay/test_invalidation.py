"""A change to a cached row empties every process's copies through Redis, long before they would expire."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis.asyncio as aioredis

from relay import invalidation
from tests.support import redis_url_after, settled
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


def test_a_deployment_on_another_redis_database_is_not_heard(settings):
    """Redis delivers a published message to every subscriber on the server: deployments kept apart by database
    number must not empty each other's caches or take each other's balances."""
    if not settings.REDIS_URL:
        pytest.skip("needs Redis")
    base = settings.REDIS_URL.rsplit("/", 1)[0]
    mine, theirs = redis_url_after(5), redis_url_after(6)

    def channels(url: str) -> tuple[str, str]:
        settings.REDIS_URL = url
        return invalidation.scoped(invalidation.CHANNEL), invalidation.scoped(invalidation.BALANCES)

    async def scenario() -> tuple[list[bytes], int]:
        their_changes, their_balances = channels(theirs)
        my_changes, my_balances = channels(mine)
        heard: list[bytes] = []
        cleared: list[int] = []
        listening = asyncio.create_task(invalidation.listen(lambda: cleared.append(1), heard.append))
        publisher = aioredis.from_url(base)
        try:
            for _ in range(200):  # the listener empties the copies once it has subscribed
                if cleared:
                    break
                await asyncio.sleep(0.01)
            assert cleared, "the listener did not subscribe"
            await publisher.publish(their_balances, b'{"theirs": 1}')
            await publisher.publish(their_changes, b"1")
            await publisher.publish(my_balances, b'{"mine": 1}')
            for _ in range(200):
                if heard:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)  # anything of theirs would have arrived before mine
            return heard, len(cleared)
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
            await publisher.aclose()

    heard, cleared = asyncio.run(scenario())
    assert heard == [b'{"mine": 1}'] and cleared == 1


@pytest.mark.django_db
def test_keys_disabled_or_put_back_by_an_update_are_published(monkeypatch, django_capture_on_commit_callbacks):
    """Key states are written by `QuerySet.update`, which sends no signal: each change publishes itself."""
    from relay.upstreams import upstream_key_disable, upstream_keys_enable, upstream_save

    published = []
    monkeypatch.setattr(invalidation, "_publish", lambda: published.append(1))
    upstream = upstream_save(name="two keys", type="openai", base_url="http://127.0.0.1:9", keys="sk-one\nsk-two",
                             served_models=["gpt-4o"])
    with django_capture_on_commit_callbacks(execute=True):
        assert upstream_key_disable(upstream_id=upstream.pk, key="sk-one", reason="HTTP 401")
    assert len(published) == 1
    upstream.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        assert upstream_keys_enable(upstream=upstream) == 1
        assert upstream_keys_enable(upstream=upstream) == 0  # nothing to put back: nothing to say
    assert len(published) == 2


def test_without_redis_a_change_saved_in_another_thread_empties_the_copies_on_their_event_loop(settings):
    """A console view or the relay's thread pool saves the change; the copies belong to the event loop's code."""
    import threading

    settings.REDIS_URL = ""
    emptied_in: list[int] = []

    async def scenario() -> int:
        await invalidation.listen(lambda: emptied_in.append(threading.get_ident()))
        saver = threading.Thread(target=invalidation._publish)
        saver.start()
        saver.join(timeout=5)
        for _ in range(100):
            if emptied_in:
                break
            await asyncio.sleep(0.01)
        return threading.get_ident()

    before = list(invalidation._local_listeners)
    try:
        loop_thread = asyncio.run(scenario())
    finally:
        invalidation._local_listeners[:] = before
    assert emptied_in == [loop_thread]
