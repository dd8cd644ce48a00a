"""The relay's books in one process (`relay.books.Books`): admission against the balance it knows, closings that
return once written, batches retried while the database is away or written one by one when one request's rows are
rejected, and the bound on what two processes admitting over one balance can overspend."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest
from django.db import DataError, IntegrityError, OperationalError

from accounts.models import User
from accounts.services import user_adjust_quota
from billing.charges import Hold
from billing.ledger import InsufficientQuota, ledger_sum
from billing.models import LedgerEntry, LedgerReason, UsageLog
from relay import balances as relay_balances, books as relay_books
from relay.books import Books, BooksUnavailable, wallet_snapshot
from relay.snapshots import in_thread
from tests.billing.test_books import _balance_set, _refund, _settle
from tests.billing.test_charges import LOG
from tokens.services import token_create

pytestmark = pytest.mark.django_db(transaction=True)  # the books write from the thread pool: nothing may stay uncommitted


@pytest.fixture(autouse=True)
def _one_process(settings):
    """Balances are not read again on age alone during a test (every read the books make is one they must make),
    admissions do not wait for their booking, and no other process hears of the batches."""
    settings.RELAY_CACHE_SECONDS = 3600
    settings.RELAY_SETTLE_RETRY_SECONDS = 60
    settings.RELAY_STRICT_BALANCE = False
    settings.REDIS_URL = ""


@pytest.fixture
def clock(monkeypatch):
    """The books' own monotonic clock, moved by hand (asyncio keeps the real one)."""

    class Clock:
        now = 1_000.0

        def monotonic(self) -> float:
            return self.now

        def advance(self, seconds: float) -> None:
            self.now += seconds

    fake = Clock()
    monkeypatch.setattr(relay_books, "time", fake)
    monkeypatch.setattr(relay_balances, "time", fake)  # when a wallet learns its balance
    return fake


def _run(scenario):
    """Run the scenario on a new event loop (bounded). The books' database connections live in the loop's thread
    pool: collected once its threads are gone, so none outlives the test (the test database is dropped at the end)."""
    try:
        return asyncio.run(asyncio.wait_for(scenario(), 30))
    finally:
        gc.collect()


def _hold(user, request_id, amount=100, token=None, unlimited=None):
    return Hold(request_id=request_id, user_id=user.pk, token_id=token.pk if token else None,
                unlimited=token is None if unlimited is None else unlimited, amount=amount)


def _balance(user_id):
    return User.objects.get(pk=user_id).quota


def _rows(ref):
    return list(LedgerEntry.objects.filter(ref=ref).order_by("id").values_list("reason", "amount"))


async def _until(predicate, timeout=10.0):
    """Let the event loop run until `predicate()` holds (bounded)."""
    async def poll():
        while not predicate():
            await asyncio.sleep(0.005)
    await asyncio.wait_for(poll(), timeout)


def _books_balance(*users):
    for someone in users:
        someone.refresh_from_db(fields=["quota"])
        assert someone.quota == ledger_sum(user_id=someone.pk), someone.username


def test_a_top_up_is_seen_by_the_next_admission(user, clock):
    _balance_set(user, 100)
    books = Books()
    first, second = _hold(user, "first"), _hold(user, "second")

    async def scenario():
        await books.admit(first)
        await books.drained()
        with pytest.raises(InsufficientQuota) as caught:
            await books.admit(second)
        assert caught.value.code == "insufficient_quota"
        await in_thread(user_adjust_quota)(user=user, amount=150)
        clock.advance(1)  # well within RELAY_CACHE_SECONDS: only the read before refusing can see the top-up
        await books.admit(second)
        assert wallet_snapshot(books, user.pk).known == 150  # 100 + 150 - 100 reserved for the first
        await books.close(_settle(second, 30))

    _run(scenario)
    assert books.idle
    assert _balance(user.pk) == 100 - 100 + 150 - 30  # the first's reservation is still open
    _books_balance(user)


def test_concurrent_admissions_take_exactly_what_the_balance_covers(user):
    k = 5
    _balance_set(user, k * 100)
    books = Books()
    holds = [_hold(user, f"r{i}") for i in range(3 * k)]

    async def request(i, hold):
        """Admitted or refused; an admitted one closes (settled or refunded) as the relay's request would."""
        try:
            await books.admit(hold)
        except InsufficientQuota:
            return False
        await books.close(_settle(hold, 40) if i % 2 else _refund(hold))
        return True

    async def scenario():
        results = await asyncio.gather(*(request(i, hold) for i, hold in enumerate(holds)))
        assert results.count(True) == k, results
        assert books.idle
        return [hold for hold, admitted in zip(holds, results) if admitted]

    admitted = _run(scenario)
    settled = sum(1 for hold in admitted if int(hold.request_id[1:]) % 2)
    assert _balance(user.pk) == k * 100 - 40 * settled
    _books_balance(user)
    assert LedgerEntry.objects.filter(reason=LedgerReason.RESERVE).count() == k
    assert LedgerEntry.objects.filter(reason__in=(LedgerReason.SETTLE, LedgerReason.REFUND)).count() == k
    assert sorted(LedgerEntry.objects.filter(reason=LedgerReason.RESERVE).values_list("ref", flat=True)) == sorted(
        hold.ref for hold in admitted)


def test_a_limited_key_refuses_beyond_its_quota(user, clock):
    key, _ = token_create(user=user, name="main", unlimited_quota=False, remain_quota=150)
    books = Books()
    first, second = _hold(user, "first", token=key), _hold(user, "second", token=key)

    async def scenario():
        await books.admit(first)
        with pytest.raises(InsufficientQuota) as caught:
            await books.admit(second)
        assert caught.value.code == "token_quota_exhausted"
        await books.admit(_hold(user, "keyless"))  # the balance itself has room
        await books.close(_refund(first))  # the key's 100 comes back, and the books know it from the batch
        assert wallet_snapshot(books, user.pk).unbooked == 0
        await books.admit(second)  # no read: the clock stands still, the batch told the books the key's quota
        await books.close(_settle(second, 60))
        await books.drained()

    _run(scenario)
    key.refresh_from_db()
    assert (key.remain_quota, key.used_quota) == (90, 60)
    _books_balance(user)


def test_close_returns_once_the_rows_are_written(user):
    books = Books()
    hold = _hold(user, "r1", amount=500)

    async def scenario():
        await books.admit(hold)
        await books.close(_settle(hold, 70))
        assert await in_thread(_rows)(hold.ref) == [(LedgerReason.RESERVE, -500), (LedgerReason.SETTLE, 430)]
        assert await in_thread(lambda: UsageLog.objects.filter(request_id="r1").count())() == 1
        wallet = wallet_snapshot(books, user.pk)
        assert (wallet.known, wallet.unbooked) == (await in_thread(_balance)(user.pk), 0)

    _run(scenario)
    _books_balance(user)


def test_a_reservation_booked_by_an_earlier_batch_is_not_booked_again(user):
    start = user.quota
    books = Books()
    hold = _hold(user, "r1", amount=300)

    async def scenario():
        await books.admit(hold)
        await books.drained()  # booked by a batch of its own, as for any request that takes longer than a batch
        await books.close(_settle(hold, 100))

    _run(scenario)
    assert _rows(hold.ref) == [(LedgerReason.RESERVE, -300), (LedgerReason.SETTLE, 200)]
    assert _balance(user.pk) == start - 100
    _books_balance(user)


def test_a_reservation_queued_behind_its_own_closing_is_booked_once(user, monkeypatch):
    monkeypatch.setattr(relay_books, "BATCH_LIMIT", 1)  # stands for 500 requests queued ahead
    start = user.quota
    books = Books()
    ahead, late = _hold(user, "ahead"), _hold(user, "late")

    async def scenario():
        await books.admit(ahead)
        await books.admit(late)
        await books.close(_refund(late))  # written with the reservation ahead of it; its own still queued
        await books.drained()

    _run(scenario)
    assert _rows(late.ref) == [(LedgerReason.RESERVE, -100), (LedgerReason.REFUND, 100)]
    assert _balance(user.pk) == start - 100  # only the reservation ahead is open


@pytest.fixture
def flaky(monkeypatch):
    """Make a `Books`' writes fail with OperationalError while `failing` is set."""

    class Flaky:
        failing = True
        failures = 0
        failed: asyncio.Event | None = None

        def install(self, books: Books) -> None:
            real = books._write
            self.failed = asyncio.Event()

            async def write(**batch):
                if self.failing:
                    self.failures += 1
                    self.failed.set()
                    raise OperationalError("server closed the connection unexpectedly")
                return await real(**batch)

            monkeypatch.setattr(books, "_write", write)

    return Flaky()


def test_while_the_database_fails_nothing_is_admitted_and_the_closing_is_retried(user, flaky):
    start = user.quota
    books = Books()
    hold = _hold(user, "r1", amount=300)

    async def scenario():
        flaky.install(books)
        await books.admit(hold)
        closing = asyncio.ensure_future(books.close(_settle(hold, 120)))
        await asyncio.wait_for(flaky.failed.wait(), 10)
        with pytest.raises(BooksUnavailable):
            await books.admit(_hold(user, "r2"))
        assert not closing.done()
        flaky.failing = False
        await asyncio.wait_for(closing, 10)
        assert await in_thread(_rows)(hold.ref) == [(LedgerReason.RESERVE, -300), (LedgerReason.SETTLE, 180)]
        await books.admit(_hold(user, "r3"))  # the database is back: admissions again
        await books.close(_refund(_hold(user, "r3")))

    _run(scenario)
    assert flaky.failures >= 1 and books.idle
    assert _balance(user.pk) == start - 120
    _books_balance(user)


def test_a_closing_that_cannot_be_written_in_time_fails_and_releases_its_hold(user, flaky, settings, caplog):
    settings.RELAY_SETTLE_RETRY_SECONDS = 0.01
    start = user.quota
    books = Books()
    hold = _hold(user, "r1", amount=300)

    async def scenario():
        flaky.install(books)
        await books.admit(hold)
        assert wallet_snapshot(books, user.pk).unbooked == 300
        with pytest.raises(OperationalError):
            await books.close(_settle(hold, 120))
        assert wallet_snapshot(books, user.pk).unbooked == 0
        await books.drained()

    _run(scenario)
    assert books.idle
    assert "req:r1 could not be settled" in caplog.text
    assert _rows(hold.ref) == [] and _balance(user.pk) == start


class _Held:
    """Keeps a `Books`' writer from starting until `release()`: what is admitted and closed meanwhile stays
    unbooked, then goes in one batch (another process's writer that has not run yet)."""

    def __init__(self, books: Books) -> None:
        self.books = books
        books._kick = lambda: None

    def release(self) -> None:
        del self.books._kick  # the class's own again
        self.books._kick()


def test_a_batch_the_database_rejects_is_written_one_by_one(user, other_user, monkeypatch, caplog):
    books = Books()
    real = books._write
    batches: list[dict] = []
    first = _hold(user, "first")
    good, bad = _hold(user, "good", amount=200), _hold(other_user, "bad", amount=200)
    unwritable = _hold(user, "x" * 130, amount=300)  # its reference does not fit the ledger's column

    async def spy(**batch):
        batches.append(batch)
        return await real(**batch)

    monkeypatch.setattr(books, "_write", spy)

    async def scenario():
        held = _Held(books)
        for hold in (first, good, bad, unwritable):
            await books.admit(hold)
        closings = [books.close(c) for c in (_settle(good, 50), _settle(bad, 50, dict(LOG, status_code=-1)),
                                             _settle(first, 10), _refund(unwritable))]
        held.release()
        results = await asyncio.wait_for(asyncio.gather(*closings, return_exceptions=True), 10)
        assert (results[0], results[2]) == (None, None), results
        assert isinstance(results[1], IntegrityError) and isinstance(results[3], DataError), results
        # released: what could not be booked no longer counts against the balances
        assert (wallet_snapshot(books, user.pk).unbooked, wallet_snapshot(books, other_user.pk).unbooked) == (0, 0)
        assert books.idle

    _run(scenario)
    together = batches[0]
    assert {h.ref for h in together["reserves"]} == {first.ref, good.ref, bad.ref, unwritable.ref}
    assert {c.hold.ref for c in together["closings"]} == {first.ref, good.ref, bad.ref, unwritable.ref}
    assert len(batches) > 1  # and then one by one
    assert _rows(good.ref) == [(LedgerReason.RESERVE, -200), (LedgerReason.SETTLE, 150)]
    assert _rows(first.ref) == [(LedgerReason.RESERVE, -100), (LedgerReason.SETTLE, 90)]
    assert _rows(unwritable.ref) == []
    assert not LedgerEntry.objects.filter(ref=bad.ref, reason__in=(LedgerReason.SETTLE, LedgerReason.REFUND)).exists()
    assert sorted(UsageLog.objects.values_list("request_id", flat=True)) == ["first", "good"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(bad.ref in message for message in errors) and any(unwritable.ref in message for message in errors)
    _books_balance(user, other_user)


def test_two_processes_overspend_at_most_what_the_other_had_not_booked(user, caplog):
    """The documented bound: each process admits against what it knows; once one's batch is written the other,
    reading the balance again, refuses, and the balance ends below zero by at most what the other had admitted and
    not booked yet."""
    _balance_set(user, 500)
    one, two = Books(), Books()

    async def scenario():
        held = {one: _Held(one), two: _Held(two)}
        for i in range(4):
            await one.admit(_hold(user, f"one{i}"))
        for i in range(2):  # the other process read the same 500: nothing of the first is booked yet
            await two.admit(_hold(user, f"two{i}"))  # 600 admitted in all

        held[one].release()
        await one.drained()
        assert await in_thread(_balance)(user.pk) == 100
        unbooked_by_two = wallet_snapshot(two, user.pk).unbooked
        assert wallet_snapshot(two, user.pk).available == 300  # what it would still admit without reading again
        two.forget()
        with pytest.raises(InsufficientQuota):
            await two.admit(_hold(user, "two-late"))  # 100 in the database, 200 of its own not booked yet

        held[two].release()
        await two.drained()
        assert wallet_snapshot(one, user.pk).available == 100  # as its own batch left it
        one.forget()
        with pytest.raises(InsufficientQuota):
            await one.admit(_hold(user, "one-late"))
        return unbooked_by_two

    unbooked_by_two = _run(scenario)
    balance = _balance(user.pk)
    assert balance < 0 and -balance <= unbooked_by_two == 200
    _books_balance(user)
    assert LedgerEntry.objects.filter(reason=LedgerReason.RESERVE).count() == 6
    assert "booked below zero" in caplog.text


def test_a_balance_read_while_a_batch_is_written_does_not_count_its_reservations_twice(user, monkeypatch):
    """A read that sees a batch's rows before the books have taken the batch's result (its reservations still
    counted as admitted-but-unbooked) would count them twice and refuse a request the balance covers."""
    _balance_set(user, 1_000)
    books = Books()
    real_read, real_write = books._read, books._write
    first, second = _hold(user, "first", amount=600), _hold(user, "second", amount=400)
    reads: list[dict] = []
    admissions: list[asyncio.Future] = []

    async def scenario():
        committed = asyncio.Event()

        async def read(**owners):
            reads.append(owners)
            return await real_read(**owners)

        async def write(**batch):
            written = await real_write(**batch)
            if not committed.is_set():  # the first batch: committed, its result not yet taken by the books
                committed.set()
                await _until(lambda: admissions)
                before = len(reads)
                for _ in range(5):
                    await asyncio.sleep(0)  # the admission's read starts now, unless it waits for this batch
                if len(reads) > before:  # it did not wait: let it decide before the batch's result is taken
                    await _until(lambda: admissions[0].done())
            return written

        monkeypatch.setattr(books, "_read", read)
        monkeypatch.setattr(books, "_write", write)
        await books.admit(first)
        await asyncio.wait_for(committed.wait(), 10)
        books.forget()  # e.g. an operator changed something; or the balance simply aged past RELAY_CACHE_SECONDS
        admissions.append(asyncio.ensure_future(books.admit(second)))
        await asyncio.wait_for(admissions[0], 10)  # 1,000 - 600 = 400 left: it fits exactly
        await books.drained()

    _run(scenario)
    assert _balance(user.pk) == 0
    _books_balance(user)


def test_balances_another_process_publishes_are_learned_without_reading(user, monkeypatch, settings):
    """What one process's batch left reaches the other as a message (Redis in production): the other admits against
    it at once, and an older message (a lower ledger id) never overwrites a newer balance."""
    _balance_set(user, 500)
    one, two = Books(), Books()
    published: list[bytes] = []

    async def publish(payload: bytes) -> None:
        published.append(payload)

    monkeypatch.setattr(relay_books.invalidation, "balances_publish", publish)
    settings.REDIS_URL = "redis://published.invalid/0"  # only for the books' "should I publish"

    async def scenario():
        await two.admit(_hold(user, "two-first"))  # reads 500
        await two.close(_refund(_hold(user, "two-first")))
        await one.admit(_hold(user, "one", amount=400))
        await one.close(_settle(_hold(user, "one", amount=400), 400))
        await _until(lambda: len(published) >= 2)
        reads = []
        monkeypatch.setattr(two, "_read", lambda **kw: reads.append(kw))  # any read now would fail the test
        two.heard(published[-1])
        assert wallet_snapshot(two, user.pk).available == 100
        with pytest.raises(InsufficientQuota):
            await two.admit(_hold(user, "two-late", amount=200))
        two.heard(published[0])  # the older news: ignored
        assert wallet_snapshot(two, user.pk).available == 100
        two.heard(b"not json")  # a malformed message changes nothing
        assert wallet_snapshot(two, user.pk).available == 100 and reads == []

    _run(scenario)
    assert _balance(user.pk) == 100
    _books_balance(user)


def test_with_strict_balance_an_admission_waits_for_its_booking_and_is_refused_if_it_does_not_fit(user, settings):
    """RELAY_STRICT_BALANCE: another process spent the balance this one still knows; the reservation is refused when
    it is booked, before anything goes upstream, and nothing is written for it."""
    settings.RELAY_STRICT_BALANCE = True
    _balance_set(user, 500)
    one, two = Books(), Books()

    async def scenario():
        await two.admit(_hold(user, "two-first"))  # two reads 500 and books 100
        await one.admit(_hold(user, "one", amount=400))  # one books 400: 0 left in the database
        assert await in_thread(_balance)(user.pk) == 0
        assert wallet_snapshot(two, user.pk).available == 400  # what two still believes
        with pytest.raises(InsufficientQuota):
            await two.admit(_hold(user, "two-late", amount=300))
        assert wallet_snapshot(two, user.pk).unbooked == 0
        await two.close(_settle(_hold(user, "two-first"), 100))
        await one.close(_settle(_hold(user, "one", amount=400), 400))

    _run(scenario)
    assert _rows("req:two-late") == []
    assert _balance(user.pk) == 0
    _books_balance(user)


def _scripted(books, script):
    """Replace the books' writes: each call takes the next step of `script` ("rejected": a row of someone else's the
    database refuses; "cut": the connection dies before writing; "cut after commit": it dies after the commit), then
    real writes."""
    real = books._write

    async def write(**batch):
        step = script.pop(0) if script else None
        if step == "rejected":
            raise IntegrityError("a row of another request")
        if step == "cut":
            raise OperationalError("server closed the connection unexpectedly")
        written = await real(**batch)
        if step == "cut after commit":
            raise OperationalError("connection lost while committing")
        return written

    books._write = write


@pytest.mark.parametrize("failure", [["rejected"], ["cut after commit"]])
def test_after_a_fallback_or_a_retry_the_known_balance_is_the_databases(user, failure):
    """A reservation booked request by request, or by a batch whose commit landed as its connection died, is in the
    balance this process knows afterwards: the next request it cannot cover is refused, not booked below zero."""
    _balance_set(user, 1000)
    books = Books()

    async def scenario():
        _scripted(books, list(failure))
        await books.admit(_hold(user, "a", amount=600))
        await books.drained()
        assert wallet_snapshot(books, user.pk).available == 400
        with pytest.raises(InsufficientQuota):
            await books.admit(_hold(user, "b", amount=1000))
        await books.close(_refund(_hold(user, "a", amount=600)))

    _run(scenario)
    assert _rows("req:a") == [(LedgerReason.RESERVE, -600), (LedgerReason.REFUND, 600)]
    assert _balance(user.pk) == 1000
    _books_balance(user)


def test_a_reservation_whose_lone_write_met_a_connection_error_is_booked_before_its_settlement(user):
    """The batch is refused, then the reservation's own write meets a dead connection: it is written again later
    with a re-read, so the settlement never stands alone (which would credit the user)."""
    start = user.quota
    books = Books()
    hold = _hold(user, "x", amount=300)

    async def scenario():
        _scripted(books, ["rejected", "cut"])
        await books.admit(hold)
        await books.close(_settle(hold, 100))
        await books.drained()

    _run(scenario)
    assert _rows(hold.ref) == [(LedgerReason.RESERVE, -300), (LedgerReason.SETTLE, 200)]
    assert _balance(user.pk) == start - 100
    _books_balance(user)


def test_with_strict_balance_a_reservation_that_cannot_be_written_is_refused_not_left_waiting(user, settings):
    settings.RELAY_STRICT_BALANCE = True
    books = Books()

    async def scenario():
        _scripted(books, ["rejected", "rejected"])
        with pytest.raises(BooksUnavailable):
            await asyncio.wait_for(books.admit(_hold(user, "s")), 10)
        assert not books._verdicts and wallet_snapshot(books, user.pk).unbooked == 0

    _run(scenario)
    assert _rows("req:s") == []


def test_with_strict_balance_a_refund_after_a_cut_batch_is_booked_with_its_reservation(user, settings, monkeypatch):
    """A strict admission whose batch died before its commit is refused (503); its reservation's fate is unknown, so
    it is refunded with a re-read: a reservation that never landed is booked and refunded (the pair nets to nothing),
    never a refund alone."""
    settings.RELAY_STRICT_BALANCE = True
    monkeypatch.setattr(relay_books, "BATCH_LIMIT", 1)  # stands for a failed batch of more than 500 requests
    _balance_set(user, 1000)
    books = Books()
    first, second = _hold(user, "first"), _hold(user, "second")

    async def scenario():
        await books.admit(first)
        held = _Held(books)
        closed = books.close(_settle(first, 40))
        admitting = asyncio.ensure_future(books.admit(second))
        await asyncio.sleep(0.01)
        _scripted(books, ["cut"])
        held.release()
        with pytest.raises(BooksUnavailable):
            await admitting
        await closed
        await books.drained()

    _run(scenario)
    assert sorted(_rows(second.ref)) == sorted([(LedgerReason.RESERVE, -100), (LedgerReason.REFUND, 100)])
    assert _balance(user.pk) == 1000 - 40 == ledger_sum(user_id=user.pk)


def test_a_stream_of_balance_reads_does_not_hold_the_writer_off():
    """Reads run together, but once a batch waits, new reads wait behind it."""
    gate = relay_balances.ReadsOrBatch()
    order: list[str] = []

    async def read(name: str, seconds: float) -> None:
        async with gate.read():
            order.append(f"{name} in")
            await asyncio.sleep(seconds)
        order.append(f"{name} out")

    async def batch() -> None:
        async with gate.batch():
            order.append("batch")

    async def scenario():
        first = asyncio.ensure_future(read("r1", 0.05))
        await asyncio.sleep(0.01)
        writing = asyncio.ensure_future(batch())
        await asyncio.sleep(0.01)
        late = asyncio.ensure_future(read("r2", 0))
        await asyncio.gather(first, writing, late)

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert order.index("batch") < order.index("r2 in")
    assert order.index("r1 out") < order.index("batch")


def test_a_batch_that_lost_a_lock_race_is_retried_without_refusing_anyone(user):
    """A deadlock (or a lock timeout) is not an outage: the batch is written again, and requests meanwhile are
    admitted, not answered 503."""
    from psycopg import errors

    books = Books()
    real = books._write
    failures = []

    async def write(**batch):
        if not failures:
            lost = OperationalError("deadlock detected")
            lost.__cause__ = errors.DeadlockDetected("deadlock detected")
            failures.append(lost)
            raise lost
        return await real(**batch)

    async def scenario():
        books._write = write
        first = _hold(user, "first")
        await books.admit(first)
        await _until(lambda: failures)
        await books.admit(_hold(user, "second"))  # not BooksUnavailable
        await books.close(_refund(first))
        await books.close(_refund(_hold(user, "second")))
        await books.drained()

    _run(scenario)
    assert [_rows("req:first"), _rows("req:second")] == [[(LedgerReason.RESERVE, -100), (LedgerReason.REFUND, 100)]] * 2
    _books_balance(user)
