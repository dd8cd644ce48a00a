"""Balances as one process's books know them (`relay.books`): a wallet per user and per key, and the rule that keeps
balance reads apart from the writing of a batch."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import AsyncIterator


@dataclass
class Wallet:
    """A balance (or a key's quota) as last read, and what this process has admitted against it since."""

    known: int = 0
    read_at: float = -1e9
    unbooked: int = 0
    version: int = -1  # the user's last ledger row reflected in `known`: older news is not kept

    def learn(self, known: int, version: int) -> None:
        if version >= self.version:
            self.known, self.version, self.read_at = known, version, time.monotonic()

    @property
    def available(self) -> int:
        return self.known - self.unbooked


class ReadsOrBatch:
    """Balance reads run together; a batch is written and applied alone: a read whose snapshot took in a batch's
    commit before the batch was applied here would count that batch's reservations twice."""

    def __init__(self) -> None:
        self._reads = 0
        self._batch = False
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._batch)
            self._reads += 1
        try:
            yield
        finally:
            async with self._changed:
                self._reads -= 1
                self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        async with self._changed:
            self._batch = True  # reads arriving from now on wait: a stream of reads cannot hold the writer off
            try:
                await self._changed.wait_for(lambda: self._reads == 0)
            except BaseException:
                self._batch = False
                self._changed.notify_all()
                raise
        try:
            yield
        finally:
            async with self._changed:
                self._batch = False
                self._changed.notify_all()
