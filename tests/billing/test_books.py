"""Many requests' reservations, settlements and usage logs in one transaction (`billing.books.books_write`): the same
rows the one-request versions write, written once however often a batch is retried, and every balance equal to its
ledger."""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection

from accounts.models import User
from accounts.services import user_adjust_quota
from billing import books
from billing.books import Closing, books_write
from billing.charges import Hold
from billing.ledger import ledger_sum
from billing.models import LedgerEntry, LedgerReason, UsageLog, UsageStatus
from relay.models import Upstream
from tests.billing.test_charges import LOG
from tokens.models import ApiToken
from tokens.services import token_create


@pytest.fixture
def key(user):
    token, _key = token_create(user=user, name="main", unlimited_quota=False, remain_quota=1_000)
    return token


def _hold(user, token, amount, request_id="r1", unlimited=False):
    return Hold(request_id=request_id, user_id=user.pk, token_id=token.pk if token else None, unlimited=unlimited,
                amount=amount)


def _settle(hold, cost, log=LOG):
    return Closing(hold=hold, cost=cost, refund=False, log=log)


def _refund(hold, log=None):
    return Closing(hold=hold, cost=0, refund=True, log=log)


def _balance_set(user, amount):
    """Give the user exactly `amount` through the ledger, as an operator would."""
    user.refresh_from_db(fields=["quota"])
    if user.quota != amount:
        user_adjust_quota(user=user, amount=amount - user.quota)


def _books_state():
    """Everything a batch can change, to compare before and after."""
    return (sorted(LedgerEntry.objects.values_list("id", "user_id", "token_id", "amount", "reason", "balance_after",
                                                   "ref")),
            sorted(UsageLog.objects.values_list("id", "request_id", "quota")),
            sorted(User.objects.values_list("id", "quota", "used_quota", "request_count")),
            sorted(ApiToken.objects.values_list("id", "remain_quota", "used_quota", "last_used_at")))


def _running_balances_are_consecutive(user):
    """Each of the user's ledger rows, in order, leaves the balance the previous one left plus its amount."""
    balance = 0
    for amount, balance_after in LedgerEntry.objects.filter(user=user).order_by("id").values_list(
            "amount", "balance_after"):
        balance += amount
        assert balance_after == balance, list(LedgerEntry.objects.filter(user=user).order_by("id").values_list(
            "reason", "amount", "balance_after"))
    return balance


def test_a_reservation_and_its_settlement_in_one_batch(user, key):
    start = user.quota
    hold = _hold(user, key, 400)
    written = books_write(reserves=[hold], closings=[_settle(hold, 150)])
    user.refresh_from_db()
    key.refresh_from_db()
    assert (user.quota, user.used_quota, user.request_count) == (start - 150, 150, 1)
    assert (key.remain_quota, key.used_quota, key.last_used_at is not None) == (850, 150, True)
    assert user.quota == ledger_sum(user_id=user.pk)
    reserve, settle = LedgerEntry.objects.filter(ref="req:r1").order_by("id")
    assert (reserve.reason, reserve.amount, reserve.balance_after, reserve.token_id) == (
        LedgerReason.RESERVE, -400, start - 400, key.pk)
    assert (settle.reason, settle.amount, settle.balance_after, settle.token_id) == (
        LedgerReason.SETTLE, 250, start - 150, key.pk)
    log = UsageLog.objects.get()
    assert (log.quota, log.request_id, log.user_id, log.token_id, log.model, log.prompt_tokens) == (
        150, "r1", user.pk, key.pk, "gpt-4o", 10)
    assert (written.booked, written.closed, written.dropped, written.short) == ({"req:r1"}, {"req:r1"}, set(), [])
    assert (written.balances[user.pk], written.key_quotas[key.pk]) == (start - 150, 850)


def test_writing_the_same_batch_twice_changes_nothing_the_second_time(user, key):
    start = user.quota
    first, second = _hold(user, key, 400, "r1"), _hold(user, None, 300, "r2", unlimited=True)
    batch = {"reserves": [first, second], "closings": [_settle(first, 150), _refund(second, dict(LOG, status="error"))]}
    books_write(**batch)
    before = _books_state()
    again = books_write(**batch)
    assert _books_state() == before
    assert again.booked == again.closed == {"req:r1", "req:r2"}
    assert (again.short, again.dropped) == ([], set())
    assert again.balances[user.pk] == start - 150 == ledger_sum(user_id=user.pk)
    assert LedgerEntry.objects.filter(reason=LedgerReason.RESERVE).count() == 2
    assert UsageLog.objects.count() == 2


def test_a_reservation_closed_in_a_later_batch_by_a_refund(user, key):
    start = user.quota
    hold = _hold(user, key, 300)
    reserved = books_write(reserves=[hold], closings=[])
    assert (reserved.booked, reserved.closed) == ({"req:r1"}, set())
    user.refresh_from_db()
    key.refresh_from_db()
    assert (user.quota, key.remain_quota, key.last_used_at) == (start - 300, 700, None)
    closed = books_write(reserves=[], closings=[_refund(hold, dict(LOG, status="error", status_code=502))])
    assert closed.closed == {"req:r1"}
    user.refresh_from_db()
    key.refresh_from_db()
    assert (user.quota, user.used_quota, user.request_count) == (start, 0, 0)
    assert (key.remain_quota, key.used_quota) == (1_000, 0)
    assert list(LedgerEntry.objects.filter(ref="req:r1").order_by("id").values_list("reason", "amount")) == [
        (LedgerReason.RESERVE, -300), (LedgerReason.REFUND, 300)]
    assert UsageLog.objects.get().status_code == 502
    assert user.quota == ledger_sum(user_id=user.pk)


def test_several_users_and_keys_in_one_batch(user, key, other_user, make_user):
    carol = make_user("carol")
    bob_key, _ = token_create(user=other_user, name="bob", unlimited_quota=True)
    starts = {u.pk: u.quota for u in (user, other_user, carol)}
    a1, a2 = _hold(user, key, 300, "a1"), _hold(user, key, 200, "a2")
    b1 = _hold(other_user, bob_key, 500, "b1", unlimited=True)
    c1 = _hold(carol, None, 100, "c1", unlimited=True)
    carol_key, _ = token_create(user=carol, name="carol", unlimited_quota=False, remain_quota=1_000)
    c2 = _hold(carol, carol_key, 70, "c2")  # reserved only: its key is not stamped as used yet
    written = books_write(reserves=[a1, b1, a2, c1, c2],
                          closings=[_settle(a2, 50), _settle(b1, 480), _settle(a1, 100), _refund(c1)])
    starts[carol.pk] -= 70  # still held
    expected = {user.pk: starts[user.pk] - 150, other_user.pk: starts[other_user.pk] - 480, carol.pk: starts[carol.pk]}
    for someone in (user, other_user, carol):
        someone.refresh_from_db()
        assert someone.quota == expected[someone.pk] == written.balances[someone.pk], someone.username
        assert _running_balances_are_consecutive(someone) == someone.quota
    assert [(u.used_quota, u.request_count) for u in (user, other_user, carol)] == [(150, 2), (480, 1), (0, 0)]
    key.refresh_from_db()
    bob_key.refresh_from_db()
    assert (key.remain_quota, key.used_quota) == (850, 150)
    assert (bob_key.remain_quota, bob_key.used_quota) == (0, 480)  # unlimited: counted, not taken
    carol_key.refresh_from_db()
    assert (carol_key.remain_quota, carol_key.used_quota, carol_key.last_used_at) == (930, 0, None)
    assert key.last_used_at is not None and bob_key.last_used_at is not None
    alice_rows = list(LedgerEntry.objects.filter(user=user, ref__startswith="req:").order_by("id").values_list(
        "ref", "amount", "balance_after"))
    start = starts[user.pk]
    assert alice_rows == [("req:a1", -300, start - 300), ("req:a2", -200, start - 500),
                          ("req:a2", 150, start - 350), ("req:a1", 200, start - 150)]
    assert sorted(UsageLog.objects.values_list("request_id", "user_id", "quota")) == [
        ("a1", user.pk, 100), ("a2", user.pk, 50), ("b1", other_user.pk, 480)]


def test_booking_beyond_the_balance_or_the_key_quota_is_reported_short(user, key, caplog):
    _balance_set(user, 1_000)
    fits, beyond_key = _hold(user, key, 600, "fits"), _hold(user, key, 500, "beyond-key")
    written = books_write(reserves=[fits, beyond_key], closings=[])
    assert written.short == ["req:beyond-key"]  # the key has 1,000: the second one takes it to -100
    assert written.booked == {"req:fits", "req:beyond-key"}
    key.refresh_from_db()
    user.refresh_from_db()
    assert (key.remain_quota, user.quota) == (-100, -100)
    assert user.quota == ledger_sum(user_id=user.pk) == written.balances[user.pk]

    keyless = _hold(user, None, 50, "keyless", unlimited=True)
    written = books_write(reserves=[], closings=[_settle(keyless, 50)])
    assert written.short == ["req:keyless"]
    user.refresh_from_db()
    assert user.quota == -150 == ledger_sum(user_id=user.pk)
    assert "req:keyless" in caplog.text


def test_a_user_deleted_before_the_batch_is_dropped(user, key, make_user):
    gone = make_user("gone")
    gone_hold, kept_hold = _hold(gone, None, 100, "gone", unlimited=True), _hold(user, key, 100, "kept")
    gone_id = gone.pk
    gone.delete()
    written = books_write(reserves=[gone_hold, kept_hold], closings=[_settle(gone_hold, 40), _settle(kept_hold, 40)])
    assert written.dropped == {"req:gone"}
    assert "req:gone" not in written.booked | written.closed
    assert not LedgerEntry.objects.filter(ref="req:gone").exists()
    assert not UsageLog.objects.filter(user_id=gone_id).exists()
    assert LedgerEntry.objects.filter(ref="req:kept").count() == 2 and UsageLog.objects.filter(request_id="kept").exists()


def test_a_deleted_key_or_upstream_is_written_as_null(user, key):
    start = user.quota
    spare, _ = token_create(user=user, name="spare", unlimited_quota=False, remain_quota=1_000)
    gone_upstream = Upstream.objects.create(name="gone", type="openai")
    kept_upstream = Upstream.objects.create(name="kept", type="openai")
    first, second = _hold(user, key, 300, "r1"), _hold(user, spare, 300, "r2")
    gone_upstream_id = gone_upstream.pk
    key.delete()
    gone_upstream.delete()
    written = books_write(reserves=[first, second], closings=[
        _settle(first, 100, dict(LOG, upstream_id=gone_upstream_id)),
        _settle(second, 100, dict(LOG, upstream_id=kept_upstream.pk))])
    assert written.closed == {"req:r1", "req:r2"}
    assert set(LedgerEntry.objects.filter(ref="req:r1").values_list("token_id", flat=True)) == {None}
    assert set(LedgerEntry.objects.filter(ref="req:r2").values_list("token_id", flat=True)) == {spare.pk}
    first_log = UsageLog.objects.get(request_id="r1")
    assert (first_log.token_id, first_log.upstream_id) == (None, None)
    second_log = UsageLog.objects.get(request_id="r2")
    assert (second_log.token_id, second_log.upstream_id) == (spare.pk, kept_upstream.pk)
    user.refresh_from_db()
    assert user.quota == start - 200 == ledger_sum(user_id=user.pk)
    assert (user.used_quota, user.request_count) == (200, 2)


def test_a_row_the_database_rejects_writes_nothing_of_the_batch(user, key, other_user):
    before = _books_state()
    good, bad = _hold(other_user, None, 100, "good", unlimited=True), _hold(user, key, 100, "bad")
    with pytest.raises(IntegrityError):
        books_write(reserves=[good, bad],
                    closings=[_settle(good, 40), _settle(bad, 40, dict(LOG, status_code=-1))])  # a CHECK constraint
    assert _books_state() == before
    assert books_write(reserves=[], closings=[_settle(good, 40)]).closed == {"req:good"}  # the transaction is usable


@pytest.mark.django_db(transaction=True)
def test_deleting_a_key_while_a_batch_holds_it_waits_for_the_batch(make_user, monkeypatch):
    """The key's deletion waits for the batch (`row_lock_before_delete`) and then clears the batch's references to
    it too; without the lock it cleared the references it could see and failed at commit on the batch's new rows."""
    if connection.vendor != "postgresql":  # SQLite's in-memory test database answers the second writer at once with
        pytest.skip("row locks are PostgreSQL's")  # "table is locked"; it has no row locks to wait on
    user = make_user("alice")
    key, _ = token_create(user=user, name="main", unlimited_quota=False, remain_quota=1_000)
    start = user.quota
    hold = _hold(user, key, 300)
    holding, release = threading.Event(), threading.Event()
    errors: dict[str, BaseException] = {}
    real = books._existing_upstreams

    def pause_inside_the_batch(closings):
        holding.set()  # the key's and the user's rows are locked now
        assert release.wait(20), "the test never let the batch go on"
        return real(closings)

    monkeypatch.setattr(books, "_existing_upstreams", pause_inside_the_batch)

    def run(name, work):
        try:
            work()
        except BaseException as exc:  # reported to the test thread
            errors[name] = exc
        finally:
            connection.close()

    batch = threading.Thread(target=run, args=("batch", lambda: books_write(
        reserves=[hold], closings=[_settle(hold, 100)])), daemon=True)
    deletion = threading.Thread(target=run, args=("deletion", lambda: ApiToken.objects.filter(pk=key.pk).delete()),
                                daemon=True)
    batch.start()
    try:
        assert holding.wait(20), "the batch never started"
        deletion.start()
        assert _someone_waits_for_a_lock(timeout=20), "the deletion did not wait for the batch"
    finally:
        release.set()
    batch.join(20)
    deletion.join(20)
    assert not batch.is_alive() and not deletion.is_alive()
    assert errors == {}
    assert not ApiToken.objects.filter(pk=key.pk).exists()
    assert list(LedgerEntry.objects.filter(ref="req:r1").values_list("reason", "token_id").order_by("id")) == [
        (LedgerReason.RESERVE, None), (LedgerReason.SETTLE, None)]
    assert UsageLog.objects.get().token_id is None
    user.refresh_from_db()
    assert user.quota == start - 100 == ledger_sum(user_id=user.pk)


def _someone_waits_for_a_lock(*, timeout: float) -> bool:
    """Whether another session of this database is blocked on a lock (polled; bounded by `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
            if cursor.fetchone()[0]:
                return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("client_ip", ["203.0.113.9", "2001:db8::7", "", None])
def test_a_batch_writes_usage_logs_exactly_as_the_orm_does(user, key, client_ip):
    log = {**LOG, "client_ip": client_ip, "status": UsageStatus.CLIENT_CLOSED, "status_code": 499,
           "model": "模型-'quoted' %s %(x)s", "error": '100% "bad"\n', "model_ratio": Decimal("1.23456789"),
           "price_per_call": Decimal("0.002"), "first_byte_ms": None, "prompt_tokens": 2**40, "usage_estimated": True}
    hold = _hold(user, key, 400)
    books_write(reserves=[hold], closings=[_settle(hold, 150, log)])
    by_orm = UsageLog.objects.create(**log, user=user, token=key, quota=150, request_id="r1")
    batch = UsageLog.objects.exclude(pk=by_orm.pk).values().get()
    orm = UsageLog.objects.filter(pk=by_orm.pk).values().get()
    assert {k: v for k, v in batch.items() if k not in ("id", "created_at")} == {
        k: v for k, v in orm.items() if k not in ("id", "created_at")}
    assert (batch["model_ratio"], batch["client_ip"], batch["status"]) == (Decimal("1.234568"), client_ip or None,
                                                                             "client_closed")


def test_a_whole_number_given_as_a_float_for_an_integer_column_is_booked_and_a_nan_ratio_refused(user, key):
    hold, other = _hold(user, key, 400), _hold(user, key, 400, request_id="r2")
    books_write(reserves=[hold], closings=[_settle(hold, 150, {**LOG, "completion_tokens": 12.0})])
    assert UsageLog.objects.get().completion_tokens == 12
    with pytest.raises(ValidationError):  # as the ORM refuses it
        books_write(reserves=[other], closings=[_settle(other, 150, {**LOG, "model_ratio": Decimal("NaN")})])
    assert UsageLog.objects.count() == 1


def test_an_error_text_holding_a_nul_is_booked_without_it(user, key):
    hold = _hold(user, key, 400)
    books_write(reserves=[hold], closings=[_settle(hold, 150, {**LOG, "error": "bad\x00byte", "status": "error"})])
    assert UsageLog.objects.get().error == "badbyte"
    assert LedgerEntry.objects.filter(ref="req:r1").count() == 2


def test_an_error_text_holding_a_lone_surrogate_is_booked_with_a_mark_in_its_place(user, key):
    hold = _hold(user, key, 400)
    error = json.loads('"bad \\udc80 byte, \\ud83d\\ude00 kept"')  # as an upstream's JSON error can carry it
    books_write(reserves=[hold], closings=[_settle(hold, 150, {**LOG, "error": error, "status": "error"})])
    assert UsageLog.objects.get().error == "bad ? byte, \U0001F600 kept"
    assert LedgerEntry.objects.filter(ref="req:r1").count() == 2


def test_a_number_given_for_a_text_column_is_booked_as_its_text(user, key):
    hold = _hold(user, key, 400)
    books_write(reserves=[hold], closings=[_settle(hold, 150, {**LOG, "upstream_model": 4})])
    assert str(UsageLog.objects.get().upstream_model) == "4"


def test_a_batch_prepares_no_statement_even_when_the_connection_would(user, key):
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    connection.ensure_connection()
    connection.connection.prepare_threshold = 0  # prepare everything: what PgBouncer in transaction mode cannot take
    try:
        holds = [_hold(user, key, 10, request_id=f"r{i}") for i in range(3)]
        books_write(reserves=holds, closings=[_settle(h, 5) for h in holds])
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements")
            assert cursor.fetchone()[0] == 0
        assert connection.connection.prepare_threshold == 0  # the connection's own setting is left as it was
    finally:
        connection.connection.prepare_threshold = None
    assert UsageLog.objects.count() == 3
