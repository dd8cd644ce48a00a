"""Per-token requests-per-minute and concurrent-request limits, and upstream failure counts, shared by every process
through Redis.

Without REDIS_URL (the embedded default: one server process) the counters live in this process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings

CONCURRENCY_TTL = 3600  # a counter left by a killed process expires


@dataclass(frozen=True)
class RpmState:
    limit: int
    remaining: int
    reset: int  # unix time the window ends

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"x-ratelimit-limit", str(self.limit).encode()),
                (b"x-ratelimit-remaining", str(max(self.remaining, 0)).encode()),
                (b"x-ratelimit-reset", str(self.reset).encode())]


class Limits:
    def __init__(self) -> None:
        self._redis = None
        if settings.REDIS_URL:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(settings.REDIS_URL)
        self._local: dict[str, tuple[int, float]] = {}

    async def _incr(self, key: str, amount: int, ttl: int) -> int:
        if self._redis is not None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incrby(key, amount)
                pipe.expire(key, ttl, nx=True)
                value, _ = await pipe.execute()
            return int(value)
        now = time.monotonic()
        value, expires = self._local.get(key, (0, now + ttl))
        if expires < now:
            value, expires = 0, now + ttl
        value += amount
        self._local[key] = (value, expires)
        if len(self._local) > 100_000:
            self._local = {k: v for k, v in self._local.items() if v[1] >= now}
        return value

    async def rpm_hit(self, token_id: int, limit: int) -> RpmState:
        """Count one request in the current minute."""
        window = int(time.time() // 60)
        count = await self._incr(f"mg:rpm:{token_id}:{window}", 1, 61)
        return RpmState(limit=limit, remaining=limit - count, reset=(window + 1) * 60)

    async def concurrency_enter(self, token_id: int, limit: int) -> bool:
        """Take a slot; False (nothing taken) when all `limit` slots are in use."""
        key = f"mg:conc:{token_id}"
        if await self._incr(key, 1, CONCURRENCY_TTL) > limit:
            await self._incr(key, -1, CONCURRENCY_TTL)
            return False
        return True

    async def concurrency_leave(self, token_id: int) -> None:
        await self._incr(f"mg:conc:{token_id}", -1, CONCURRENCY_TTL)

    async def failure_hit(self, upstream_id: int, window_seconds: int) -> int:
        """Count one failure of an upstream in the current window (shared by every process); returns the count."""
        window = int(time.time() // window_seconds)
        return await self._incr(f"mg:fail:{upstream_id}:{window}", 1, window_seconds + 1)

    async def failures_clear(self, upstream_id: int, window_seconds: int) -> None:
        window = int(time.time() // window_seconds)
        key = f"mg:fail:{upstream_id}:{window}"
        if self._redis is not None:
            await self._redis.delete(key)
        else:
            self._local.pop(key, None)
