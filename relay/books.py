"""The relay's books in one process: admit a request against the balance it knows, write the rows in batches.

A request is admitted without a database round trip: its worst case must fit in the user's balance (and its key's
quota) as last read, less what this process has admitted and not booked yet. One writer task then books
reservations and settlements in batches (`billing.books.books_write`), each batch one transaction, and takes the
balances the batch leaves as the new known ones. A balance not refreshed within RELAY_CACHE_SECONDS is read again
before it admits anything, and one that refuses is always read again first (a top-up counts at once).

Balances other processes' batches leave arrive through Redis (`heard`), versioned by the user's last ledger row.
Within one process nobody spends beyond their balance. Another process's admissions are seen once booked (in its
next batch, within BATCH_LINGER_SECONDS plus a transaction) or when a balance is read again: a user whose requests
several processes admit at the same moment can go below zero by at most what the other processes admitted for them
and had not booked yet (each admits at most the balance it knows), and the next request is refused. With
RELAY_STRICT_BALANCE each admission waits for its reservation to be booked, refused if the database's balance does
not cover it: no overspending across processes, for one database round trip before going upstream.

While the database cannot be written, new requests are refused (503) and the rows of those in flight are retried for
RELAY_SETTLE_RETRY_SECONDS.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from django.db import InterfaceError, OperationalError
from django.utils.translation import gettext as _

from billing.books import Closing, Written, balances_read, books_write
from billing.charges import Hold
from billing.ledger import InsufficientQuota
from relay import invalidation
from relay.balances import ReadsOrBatch, Wallet
from relay.conf import settings
from relay.snapshots import in_thread
from relay.warm import KEEP_AHEAD, Recent

logger = logging.getLogger("relay")
BATCH_LIMIT = 500  # requests' rows per transaction
BATCH_LINGER_SECONDS = 0.02  # how long a batch waits for company: a request's reservation and closing often share one


class BooksUnavailable(Exception):
    """The database cannot be written just now: nothing is admitted."""


@dataclass
class _Pending:
    closing: Closing
    future: asyncio.Future
    since: float = field(default_factory=time.monotonic)


class Books:
    """Admission against known balances, and the one writer task that books what was admitted and settled."""

    def __init__(self) -> None:
        self._users: dict[int, Wallet] = {}
        self._keys: dict[int, Wallet] = {}
        self._reading: dict[tuple[str, int], asyncio.Future] = {}
        self._recent_users: Recent[int] = Recent()  # admitted lately: their balances kept read (`refresh`)
        self._recent_keys: Recent[int] = Recent()
        self._unbooked: dict[str, Hold] = {}  # admitted, RESERVE row not written yet
        self._booked: set[str] = set()  # RESERVE row written by an applied batch, closing row not yet
        self._uncertain: set[str] = set()  # a batch with these failed as it may have committed: re-read first
        self._verdicts: dict[str, asyncio.Future] = {}  # RELAY_STRICT_BALANCE: admissions waiting for their booking
        self._reserves: list[Hold] = []
        self._closings: list[_Pending] = []
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task | None = None
        self._publishing: set[asyncio.Task] = set()
        self._failing = False
        self._writing = False
        self._quiet = ReadsOrBatch()
        self._read = in_thread(balances_read)
        self._write = in_thread(books_write)

    # ---- admission -----------------------------------------------------------------------------------------------

    async def admit(self, hold: Hold) -> None:
        """Take the hold from what this process knows is available, or refuse with nothing taken."""
        if self._failing:
            raise BooksUnavailable()
        limited = hold.token_id is not None and not hold.unlimited
        for fresh in (False, True):
            user = await self._wallet(self._users, "user", hold.user_id, fresh)
            key = await self._wallet(self._keys, "key", hold.token_id, fresh) if limited else None
            if key is not None and key.available < hold.amount:
                short = InsufficientQuota(_("This API key's quota is used up."), code="token_quota_exhausted")
            elif user.available < hold.amount:
                short = InsufficientQuota(_("Your balance is too low for this request; please top up."))
            else:
                now = time.monotonic()
                user.unbooked += hold.amount
                self._recent_users.saw(hold.user_id, now)
                if key is not None:
                    key.unbooked += hold.amount
                    self._recent_keys.saw(hold.token_id, now)
                self._unbooked[hold.ref] = hold
                self._reserves.append(hold)
                self._kick()
                if settings.RELAY_STRICT_BALANCE:
                    await self._verdict(hold)
                return
        raise short

    async def _verdict(self, hold: Hold) -> None:
        """RELAY_STRICT_BALANCE: wait until the reservation is booked; refused if the balance in the database (or
        the key's quota) does not cover it."""
        verdict = asyncio.get_running_loop().create_future()
        self._verdicts[hold.ref] = verdict
        refused = await asyncio.shield(verdict)
        if refused == "key":
            raise InsufficientQuota(_("This API key's quota is used up."), code="token_quota_exhausted")
        if refused:
            raise InsufficientQuota(_("Your balance is too low for this request; please top up."))

    async def _wallet(self, wallets: dict[int, Wallet], kind: str, owner: int, fresh: bool) -> Wallet:
        """The wallet, read again first if it is older than RELAY_CACHE_SECONDS (or not just read, when `fresh`)."""
        wallet = wallets.setdefault(owner, Wallet())
        age = time.monotonic() - wallet.read_at
        if age < (0.05 if fresh else settings.RELAY_CACHE_SECONDS):
            return wallet
        reading = self._reading.get((kind, owner))
        if reading is None:
            reading = self._read_together([owner] if kind == "user" else [], [owner] if kind == "key" else [])
        await asyncio.shield(reading)
        return wallets.setdefault(owner, Wallet())

    async def refresh(self, since: float, most: int) -> None:
        """Read again, in one query, the balances of the `most` users and keys admitted last since `since` that are
        in the last KEEP_AHEAD of RELAY_CACHE_SECONDS or older (`relay.warm`)."""
        ahead = time.monotonic() - settings.RELAY_CACHE_SECONDS * (1 - KEEP_AHEAD)

        def due(wallets: dict[int, Wallet], kind: str, recent: Recent[int]) -> list[int]:
            return [owner for owner in recent.since(since, most)
                    if wallets.setdefault(owner, Wallet()).read_at <= ahead and (kind, owner) not in self._reading]

        users, keys = due(self._users, "user", self._recent_users), due(self._keys, "key", self._recent_keys)
        if users or keys:
            await asyncio.shield(self._read_together(users, keys))

    def _read_together(self, users: list[int], keys: list[int]) -> asyncio.Future:
        """Read these balances in one query; an admission meanwhile that needs one of them waits for this read."""
        reading = asyncio.ensure_future(self._read_into(users, keys))
        flights = [("user", owner) for owner in users] + [("key", owner) for owner in keys]
        for flight in flights:
            self._reading[flight] = reading

        def done(_reading: asyncio.Future) -> None:
            for flight in flights:
                if self._reading.get(flight) is reading:
                    del self._reading[flight]

        reading.add_done_callback(done)
        return reading

    async def _read_into(self, users: list[int], keys: list[int]) -> None:
        async with self._quiet.read():
            known_users, known_keys = await self._read(user_ids=users, key_ids=keys)
            for owner in users:  # each learnt unless another process told of newer
                self._users.setdefault(owner, Wallet()).learn(*known_users.get(owner, (0, 0)))
            for owner in keys:
                self._keys.setdefault(owner, Wallet()).learn(*known_keys.get(owner, (0, 0)))

    def forget(self) -> None:
        """Read every balance again before it admits anything (an operator changed something)."""
        for wallet in (*self._users.values(), *self._keys.values()):
            wallet.read_at = -1e9

    # ---- closing -------------------------------------------------------------------------------------------------

    def close(self, closing: Closing) -> asyncio.Future:
        """Queue the request's settlement (or refund) and usage log. The future is done once they are written, or
        fails with the database's error if they could not be within RELAY_SETTLE_RETRY_SECONDS."""
        future = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda done: done.cancelled() or done.exception())  # logged by the writer
        self._closings.append(_Pending(closing, future))
        self._kick()
        return future

    def _kick(self) -> None:
        loop = asyncio.get_running_loop()
        if self._writer is None or self._writer.done() or self._writer.get_loop() is not loop:
            if self._writer is not None and self._writer.get_loop() is not loop:  # a new event loop (tests)
                self._quiet, self._reading = ReadsOrBatch(), {}
            self._wake = asyncio.Event()
            self._writer = asyncio.ensure_future(self._write_forever())
        self._wake.set()

    async def _write_forever(self) -> None:
        wake = self._wake
        pause = 0.25
        while True:
            self._failing = False  # nothing left to retry: the next request tries the database again
            await wake.wait()
            wake.clear()
            while self._reserves or self._closings:
                if len(self._reserves) + len(self._closings) < BATCH_LIMIT and not (self._uncertain or self._verdicts):
                    await asyncio.sleep(BATCH_LINGER_SECONDS)
                async with self._quiet.batch():
                    reserves, closings = self._reserves[:BATCH_LIMIT], self._closings[:BATCH_LIMIT]
                    del self._reserves[:len(reserves)], self._closings[:len(closings)]
                    reserves = [hold for hold in reserves if hold.ref in self._unbooked]  # not booked or given up
                    closing = {p.closing.hold.ref for p in closings}
                    if any(hold.ref in closing for hold in self._reserves):  # booked below, with their closing
                        self._reserves = [hold for hold in self._reserves if hold.ref not in closing]
                    refs = closing | {hold.ref for hold in reserves}
                    self._writing = True
                    try:
                        written = await self._write(
                            reserves=reserves, closings=[p.closing for p in closings],
                            recheck=not refs.isdisjoint(self._uncertain), booked_before=frozenset(refs & self._booked),
                            strict=frozenset(self._verdicts))
                    except (OperationalError, InterfaceError) as exc:
                        if not _contention(exc):
                            self._failing = True
                        logger.warning("writing %d requests' rows failed (%s); retrying",
                                       len(reserves) + len(closings),
                                       "lock contention" if _contention(exc) else "the database is unreachable")
                        self._uncertain |= refs  # the commit may have landed as the connection died
                        self._closings[:0] = self._give_up_old(closings, exc) + self._unknown_fate(reserves)
                        self._reserves[:0] = [hold for hold in reserves if hold.ref in self._unbooked]
                        written = None
                    except asyncio.CancelledError:  # the server is stopping; the thread may still commit
                        self._uncertain |= refs
                        self._closings[:0] = closings
                        self._reserves[:0] = [hold for hold in reserves if hold.ref in self._unbooked]
                        raise
                    except Exception:
                        logger.exception("writing a batch of %d requests' rows failed; writing them one by one",
                                         len(reserves) + len(closings))
                        written = await self._write_one_by_one(reserves, closings)
                    finally:
                        self._writing = False
                    if written is not None:
                        self._failing = False
                        try:
                            self._apply(written)
                        except Exception:
                            logger.exception("taking a written batch's balances failed; they are read again")
                            self.forget()
                if written is None:
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 5)
                    continue
                pause = 0.25
                for pending in closings:
                    ref = pending.closing.hold.ref
                    if not pending.future.done() and (ref in written.closed or ref in written.dropped):
                        pending.future.set_result(None)  # (one queued again after a connection error waits on)

    def _unknown_fate(self, reserves: list[Hold]) -> list[_Pending]:
        """RELAY_STRICT_BALANCE admissions whose batch failed are refused (503) now; whether their reservation
        landed as the connection died is unknown, so each is refunded once the database is back (a reservation
        that never landed is booked and refunded: the two rows net to nothing)."""
        refunds = []
        for hold in reserves:
            verdict = self._verdicts.pop(hold.ref, None)
            if verdict is None:
                continue
            self._release(hold)
            if not verdict.done():
                verdict.set_exception(BooksUnavailable())
            refund = asyncio.get_running_loop().create_future()
            refund.add_done_callback(lambda done: done.cancelled() or done.exception())
            refunds.append(_Pending(Closing(hold=hold, cost=0, refund=True, log=None), refund))
        return refunds

    def _give_up_old(self, closings: list[_Pending], exc: Exception) -> list[_Pending]:
        """Closings kept for another try; those waiting longer than RELAY_SETTLE_RETRY_SECONDS fail (their
        reservation, if booked, is refunded by the sweep)."""
        deadline = time.monotonic() - settings.RELAY_SETTLE_RETRY_SECONDS
        kept = []
        for pending in closings:
            if pending.since >= deadline:
                kept.append(pending)
                continue
            hold = pending.closing.hold
            logger.error("request %s could not be settled: the database stayed unreachable", hold.ref)
            self._release(hold)
            self._booked.discard(hold.ref)  # a booked reservation left open is refunded by the sweep
            self._uncertain.discard(hold.ref)
            if not pending.future.done():
                pending.future.set_exception(exc)
        return kept

    async def _write_one_by_one(self, reserves: list[Hold], closings: list[_Pending]) -> Written:
        """After a batch failed on something other than the connection: each request alone, so one bad row cannot
        hold up the others' (a request whose rows cannot be written is logged, and released here). One that meets
        a connection error is queued again, to be written with a re-read of what landed."""
        merged = Written()
        for hold, closing in [(h, None) for h in reserves] + [(p.closing.hold, p) for p in closings]:
            try:
                written = await self._write(reserves=[hold] if closing is None else [],
                                            closings=[closing.closing] if closing is not None else [],
                                            booked_before=frozenset({hold.ref} & self._booked),
                                            strict=frozenset(self._verdicts))
            except (OperationalError, InterfaceError):
                self._uncertain.add(hold.ref)
                if closing is not None:
                    self._closings.append(closing)
                elif hold.ref in self._unbooked:
                    self._reserves.append(hold)
                continue
            except Exception as exc:
                logger.exception("request %s: its rows could not be written", hold.ref)
                self._release(hold)
                self._booked.discard(hold.ref)  # a booked reservation left open is refunded by the sweep
                verdict = self._verdicts.pop(hold.ref, None)
                if verdict is not None and not verdict.done():
                    verdict.set_exception(BooksUnavailable())
                if closing is not None and not closing.future.done():
                    closing.future.set_exception(exc)
                continue
            merged.balances |= written.balances
            merged.key_quotas |= written.key_quotas
            merged.key_users |= written.key_users
            for user_id, version in written.versions.items():
                merged.versions[user_id] = max(version, merged.versions.get(user_id, 0))
            merged.booked |= written.booked
            merged.closed |= written.closed
            merged.dropped |= written.dropped
            merged.refused |= written.refused
        return merged

    def _apply(self, written: Written) -> None:
        """Take a batch's results: its reservations are in the known balances now, no longer unbooked here."""
        self._booked |= written.booked
        self._booked -= written.closed | written.dropped
        self._uncertain -= written.booked | written.closed | written.dropped | written.refused.keys()
        for ref in written.booked | written.closed | written.dropped | written.refused.keys():
            self._release(self._unbooked.get(ref))
            verdict = self._verdicts.pop(ref, None)
            if verdict is not None and not verdict.done():
                verdict.set_result(written.refused.get(ref, "balance" if ref in written.dropped else ""))
        news = {"u": {user_id: (balance, written.versions[user_id]) for user_id, balance in written.balances.items()
                      if user_id in written.versions},
                "k": {key_id: (quota, written.versions[written.key_users[key_id]])
                      for key_id, quota in written.key_quotas.items() if written.key_users.get(key_id) in written.versions}}
        self._learn(news)
        if news["u"] and settings.REDIS_URL:
            publishing = asyncio.ensure_future(invalidation.balances_publish(json.dumps(news).encode()))
            self._publishing.add(publishing)
            publishing.add_done_callback(self._publishing.discard)

    def _learn(self, news: dict[str, dict[Any, Any]]) -> None:
        for wallets, values in ((self._users, news["u"]), (self._keys, news["k"])):
            for owner, (known, version) in values.items():
                wallet = wallets.get(int(owner))
                if wallet is not None:
                    wallet.learn(known, version)

    def heard(self, payload: bytes) -> None:
        """Balances another process's batch left (published on Redis): known here too without reading them."""
        try:
            self._learn(json.loads(payload))
        except (ValueError, TypeError, KeyError):
            logger.warning("ignoring a malformed balances message")

    def _release(self, hold: Hold | None) -> None:
        """Stop counting a hold as admitted-but-unbooked."""
        if hold is None or self._unbooked.pop(hold.ref, None) is None:
            return
        self._users[hold.user_id].unbooked -= hold.amount
        if hold.token_id is not None and not hold.unlimited and hold.token_id in self._keys:
            self._keys[hold.token_id].unbooked -= hold.amount

    @property
    def idle(self) -> bool:
        """Nothing admitted or closed is waiting to be written (tests, shutdown)."""
        return not (self._unbooked or self._reserves or self._closings or self._writing)

    async def drained(self) -> None:
        """Wait until everything queued so far is written or given up."""
        while not self.idle:
            await asyncio.sleep(0.01)


def _contention(exc: Exception) -> bool:
    """A deadlock, a serialization failure or a lock or statement timeout (SQLSTATE class 40, 55P03, 57014): the
    database is there, this batch lost a race and is retried, and new requests are still admitted."""
    state = getattr(exc.__cause__, "sqlstate", None) or ""
    return state.startswith("40") or state in ("55P03", "57014")


def wallet_snapshot(books: Books, user_id: int) -> Wallet | None:
    """The user's wallet as this process sees it."""
    return books._users.get(user_id)
