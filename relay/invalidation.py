"""Cache invalidation across processes and hosts through Redis.

Every process keeps short-lived copies of tokens, users' groups, prices and upstreams (`relay.snapshots`). When one
of those rows is saved or deleted, anywhere (or changed by an update that sends no signal: `rows_changed`), the
change is published on a Redis channel after the transaction commits, and every relay process empties its copies at
once. The copies also expire after RELAY_CACHE_SECONDS, so a lost message (Redis restarting) delays a change by at
most that long. Without REDIS_URL (one process) the saving process empties its own copies directly.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, Callable

from django.db import transaction
from django.db.models.signals import post_delete, post_save

from relay.conf import settings

logger = logging.getLogger("relay")
CHANNEL = "mg:cache-invalidate"
BALANCES = "mg:balances"  # what each batch of the relay's books left: users' balances and keys' quotas
_local_listeners: list[Callable[[], None]] = []
_publisher: Any = None


def _publish() -> None:
    global _publisher
    for clear in list(_local_listeners):
        clear()
    if not settings.REDIS_URL:
        return
    try:
        if _publisher is None:
            import redis

            _publisher = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        _publisher.publish(scoped(CHANNEL), b"1")
    except Exception:  # Redis away: the copies still expire after RELAY_CACHE_SECONDS
        logger.warning("could not publish a cache invalidation", exc_info=True)


def scoped(channel: str) -> str:
    """The channel for this deployment's Redis database. Redis hands a published message to every subscriber on the
    server, whatever database each selected: deployments kept apart by database number (staging beside production)
    would otherwise empty each other's caches and take each other's users' balances as their own."""
    return f"{channel}:db{_database(settings.REDIS_URL)}"


@functools.lru_cache(maxsize=8)
def _database(url: str) -> int:
    from redis.connection import parse_url

    return int(parse_url(url).get("db") or 0)


def rows_changed() -> None:
    """Publish an invalidation once the transaction commits: for writes that send no signal (`QuerySet.update`), such
    as an upstream or one of its keys disabled automatically, or put back by its retest."""
    transaction.on_commit(_publish)


def _changed(sender: Any, **kwargs: Any) -> None:
    rows_changed()


def watch_models() -> None:
    """Publish an invalidation whenever a row the relay caches changes (called once, from the app config)."""
    from accounts.models import User
    from billing.models import ModelPrice, UserGroup
    from relay.models import Upstream
    from tokens.models import ApiToken

    for model in (ApiToken, User, UserGroup, ModelPrice, Upstream):
        post_save.connect(_changed, sender=model, dispatch_uid=f"mg-invalidate-save-{model.__name__}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"mg-invalidate-delete-{model.__name__}")


async def listen(clear: Callable[[], None], balances: Callable[[bytes], None] | None = None) -> None:
    """Empty this process's copies on every invalidation published by any process, and pass on the balances other
    processes' batches left (`balances_publish`); reconnects after errors."""
    if not settings.REDIS_URL:
        loop = asyncio.get_running_loop()

        def clear_on_the_loop() -> None:
            """Changes are saved in other threads (the console's views, the relay's own thread pool): the copies
            are emptied on the event loop that uses them."""
            try:
                loop.call_soon_threadsafe(clear)
            except RuntimeError:  # that loop is closed
                pass

        _local_listeners.append(clear_on_the_loop)
        return
    import redis.asyncio as aioredis

    while True:
        try:
            client = aioredis.from_url(settings.REDIS_URL)
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(scoped(CHANNEL), *([scoped(BALANCES)] if balances else []))
                clear()  # copies read before the subscription took effect may predate a change it did not hear
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    if message.get("channel") == scoped(BALANCES).encode():
                        balances(message["data"])
                    else:
                        clear()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("cache invalidation listener lost Redis; retrying", exc_info=True)
            clear()
            await asyncio.sleep(1)


_balance_publishers: dict[int, Any] = {}


async def balances_publish(payload: bytes) -> None:
    """Tell the other processes the balances a batch left (best effort: they also read balances again after
    RELAY_CACHE_SECONDS)."""
    if not settings.REDIS_URL:
        return
    loop = id(asyncio.get_running_loop())
    try:
        if loop not in _balance_publishers:
            import redis.asyncio as aioredis

            _balance_publishers[loop] = aioredis.from_url(settings.REDIS_URL, socket_timeout=1,
                                                          socket_connect_timeout=1)
        await _balance_publishers[loop].publish(scoped(BALANCES), payload)
    except Exception:
        logger.warning("could not publish balances", exc_info=True)
