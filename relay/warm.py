"""Keeping a relay process's caches loaded between calls.

The snapshots (`relay.snapshots`) and the balances (`relay.books`) a call reads live RELAY_CACHE_SECONDS. Under steady
traffic a hit near an entry's expiry reloads it in the background, but a call after a quiet second found every entry
expired and waited on each query in turn: the key, the prices, the upstreams, the sensitive words, the user's balance,
the key's quota (about 20 ms on SQLite and 34 ms on PostgreSQL on a slow host, against 1.5-4 ms back to back). While a
process has served a call within RELAY_KEEP_WARM_SECONDS, `KeepWarm` reloads, ahead of their expiry, the shared
snapshots and the keys and balances of the RELAY_KEEP_WARM_KEYS most recent callers, one query per kind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Generic, Hashable, TypeVar

from relay.conf import settings


logger = logging.getLogger(__name__)
K = TypeVar("K", bound=Hashable)

REFRESH_AHEAD = 0.25  # the last part of an entry's life in which a hit also starts its reload, in the background
KEEP_AHEAD = 0.5  # the last part in which KeepWarm reloads it: sooner, so that a busy key is not reloaded alone
SMALLEST_TICK = 0.05  # seconds between looks for entries due, at the shortest
PAUSE_AFTER_FAILURE = 5.0  # seconds: a database away is not asked eight times a second


class Recent(Generic[K]):
    """When each of the most recently seen items (keys, users) was last seen; bounded, oldest dropped first."""

    def __init__(self) -> None:
        self._seen: dict[K, float] = {}  # in the order last seen: oldest first

    def saw(self, item: K, now: float) -> None:
        self._seen.pop(item, None)
        self._seen[item] = now
        if len(self._seen) > 2 * max(settings.RELAY_KEEP_WARM_KEYS, 1):  # trimmed now and then, not on every call
            for old in list(self._seen)[:len(self._seen) - settings.RELAY_KEEP_WARM_KEYS]:
                del self._seen[old]

    def since(self, moment: float, most: int) -> list[K]:
        """The items seen at or after `moment`, newest first, at most `most` of them."""
        found: list[K] = []
        for item in reversed(self._seen):
            if len(found) >= most or self._seen[item] < moment:
                break
            found.append(item)
        return found

    def forget(self, item: K) -> None:
        self._seen.pop(item, None)


class KeepWarm:
    """One task per event loop, running while calls come: every eighth of RELAY_CACHE_SECONDS it starts the reload
    of whatever the recent calls used that is in the last KEEP_AHEAD of its life (or gone), so a call after a quiet
    moment finds its entries loaded, and the keys of many callers are reloaded together rather than each alone. It
    stops RELAY_KEEP_WARM_SECONDS after the last call; the next call starts it again."""

    def __init__(self, *refreshers: Callable[[float, int], Awaitable[None]]) -> None:
        self._refreshers = refreshers
        self._task: asyncio.Task | None = None
        self._last_call = -1e9

    def called(self) -> None:
        """A call arrived: keep the caches warm from now until RELAY_KEEP_WARM_SECONDS after it."""
        self._last_call = time.monotonic()
        task = self._task
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            if enabled():
                self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(max(settings.RELAY_CACHE_SECONDS * (KEEP_AHEAD - REFRESH_AHEAD) / 2, SMALLEST_TICK))
            since = time.monotonic() - settings.RELAY_KEEP_WARM_SECONDS
            if self._last_call < since or not enabled():
                return
            outcomes = await asyncio.gather(*(refresh(since, settings.RELAY_KEEP_WARM_KEYS)
                                              for refresh in self._refreshers), return_exceptions=True)
            failed = next((outcome for outcome in outcomes if isinstance(outcome, Exception)), None)
            if failed is not None:  # the entries expire as before, and a call then meets the error itself
                if not failing:
                    logger.warning("relay cache: reloading ahead failed (%s); trying again every %s s",
                                   type(failed).__name__, PAUSE_AFTER_FAILURE)
                await asyncio.sleep(PAUSE_AFTER_FAILURE)
            failing = failed is not None


def enabled() -> bool:
    """Keeping warm means something only while entries are cached at all."""
    return settings.RELAY_CACHE_SECONDS > 0 and settings.RELAY_KEEP_WARM_SECONDS > 0
