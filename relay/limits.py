"""Per-token requests-per-minute and concurrent-request limits, and upstream failure counts, shared by every process
through Redis.

Without REDIS_URL (the embedded default: one server process) the counters live in this process; while Redis is
unreachable each process falls back to its own counters (limits then hold per process) and says so in its log.
"""

from __future__ import annotations

import itertools
import logging
import math
import secrets
import time
from collections import deque
from dataclasses import dataclass

from relay.conf import settings


logger = logging.getLogger(__name__)

CONCURRENCY_TTL = 3600  # a counter left by a killed process expires
RPM_WINDOW = 60.0

# A sliding log: the admitted requests of the last minute as a sorted set scored by time. A refused request is not
# logged, so a client that keeps retrying is admitted again as soon as its oldest request leaves the window.
SLIDING_LOG = """
local key, now, window, limit, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local admitted = 0
if count < limit then
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, math.ceil(window * 1000))
  count = count + 1
  admitted = 1
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2] or tostring(now)
return {admitted, count, oldest}
"""


def _redis_errors() -> tuple[type[Exception], ...]:
    try:
        from redis.exceptions import ConnectionError, TimeoutError
    except ImportError:
        return (OSError,)
    return (ConnectionError, TimeoutError, OSError)


REDIS_ERRORS = _redis_errors()


@dataclass(frozen=True)
class RpmState:
    limit: int
    remaining: int
    reset: int  # unix time a request can next be admitted (the oldest logged request leaves the window)
    retry_after: int  # whole seconds from now until then, at least 1

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"x-ratelimit-limit", str(self.limit).encode()),
                (b"x-ratelimit-remaining", str(max(self.remaining, 0)).encode()),
                (b"x-ratelimit-reset", str(self.reset).encode())]


class Limits:
    def __init__(self) -> None:
        self._redis = None
        if settings.REDIS_URL:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        self._redis_down_until = 0.0
        self._local: dict[str, tuple[int, float]] = {}
        self._local_logs: dict[int, deque[float]] = {}
        self._sliding_log = self._redis.register_script(SLIDING_LOG) if self._redis is not None else None
        self._serial = itertools.count()
        self._origin = secrets.token_hex(6)  # tells this process's log entries from other processes'

    def _shared(self) -> bool:
        return self._redis is not None and time.monotonic() >= self._redis_down_until

    def _redis_lost(self, exc: Exception) -> None:
        """Count locally for the next few seconds instead of failing every request on a Redis timeout."""
        logger.warning("limits: Redis unreachable (%s); counting in this process for now", exc)
        self._redis_down_until = time.monotonic() + 2

    async def _incr(self, key: str, amount: int, ttl: int) -> int:
        if self._shared():
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.incrby(key, amount)
                    pipe.expire(key, ttl, nx=True)
                    value, _ = await pipe.execute()
                return int(value)
            except REDIS_ERRORS as exc:
                self._redis_lost(exc)
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
        """Admit one request if fewer than `limit` were admitted in the last 60 seconds; remaining < 0 refuses."""
        now = time.time()
        shared = None
        if self._sliding_log is not None and self._shared():
            member = f"{self._origin}:{next(self._serial)}"
            try:
                shared = await self._sliding_log(keys=[f"mg:rpm:{token_id}"], args=[now, RPM_WINDOW, limit, member])
            except REDIS_ERRORS as exc:
                self._redis_lost(exc)
        if shared is not None:
            admitted, count, oldest = shared[0], shared[1], float(shared[2])
        else:
            log = self._local_logs.setdefault(token_id, deque())
            while log and log[0] <= now - RPM_WINDOW:
                log.popleft()
            admitted = len(log) < limit
            if admitted:
                log.append(now)
            count, oldest = len(log), (log[0] if log else now)
            if len(self._local_logs) > 100_000:
                self._local_logs = {k: v for k, v in self._local_logs.items() if v and v[-1] > now - RPM_WINDOW}
        remaining = limit - count if admitted else -1
        free_at = oldest + RPM_WINDOW
        return RpmState(limit=limit, remaining=remaining, reset=math.ceil(free_at),
                        retry_after=max(math.ceil(free_at - now), 1))

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
        self._local.pop(key, None)
        if self._shared():
            try:
                await self._redis.delete(key)
            except REDIS_ERRORS as exc:
                self._redis_lost(exc)
