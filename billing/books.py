"""Relayed requests' reservations, settlements and usage logs written in batches: one transaction for many requests.

The relay admits a request against the balance it knows (`relay.books`) and goes upstream at once; the rows follow
here, a batch at a time. The rows are those `billing.charges` writes one request at a time: a RESERVE row, then one
closing row (SETTLE or REFUND) with the usage log, sharing the reference `req:<request id>`. A batch locks its keys'
rows and then its users' rows (in id order, as the one-request versions lock a key before its user), reads which of
its references are already booked or closed, and skips those, so writing a batch twice (a retry after a connection
died around the commit) changes nothing the second time.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connection, connections, models, transaction
from django.db.models import Max, OuterRef, Subquery
from django.utils import timezone

from billing.charges import CLOSING, Hold
from billing.models import LedgerEntry, LedgerReason, UsageLog
from tokens.models import ApiToken

logger = logging.getLogger("billing")


@dataclass(frozen=True)
class Closing:
    """A request's end: settle its hold at `cost` (or refund it) and write its usage log."""

    hold: Hold
    cost: int
    refund: bool
    log: dict[str, Any] | None


@dataclass
class Written:
    """What a batch left in the database."""

    balances: dict[int, int] = field(default_factory=dict)  # user id -> balance after the batch
    key_quotas: dict[int, int] = field(default_factory=dict)  # limited key id -> remaining quota after the batch
    booked: set[str] = field(default_factory=set)  # references whose RESERVE row exists now
    closed: set[str] = field(default_factory=set)  # references whose closing row exists now
    dropped: set[str] = field(default_factory=set)  # references of users deleted meanwhile: nothing to book
    short: list[str] = field(default_factory=list)  # reservations booked beyond the balance or the key's quota
    refused: dict[str, str] = field(default_factory=dict)  # strict reservations that did not fit: ref -> key/balance
    # user id -> the id of the user's last ledger row in the batch: how recent `balances` (and the user's keys'
    # quotas) are, as ledger ids grow in the order rows are written under the user's lock
    versions: dict[int, int] = field(default_factory=dict)
    key_users: dict[int, int] = field(default_factory=dict)  # key id -> its user's id


@dataclass
class _Counts:
    """One user's or key's changes within a batch."""

    quota: int
    delta: int = 0
    used: int = 0
    requests: int = 0


def books_write(*, reserves: list[Hold], closings: list[Closing], recheck: bool = True,
                booked_before: frozenset[str] = frozenset(), strict: frozenset[str] = frozenset()) -> Written:
    """Book `reserves` and `closings` (a closing whose hold is not booked yet books it first) in one transaction.
    `recheck=False` skips reading which references are already booked or closed: for a first attempt, whose
    references nobody else has written (the sweep closes only reservations older than
    RELAY_RESERVATION_TIMEOUT_MINUTES; should it have, the unique index refuses the batch and it is retried), the
    caller names the closings whose reservation an earlier batch booked (`booked_before`).
    Reservations named in `strict` are not booked beyond the balance or the key's quota: they are `refused`."""
    holds = {hold.ref: hold for hold in reserves} | {c.hold.ref: c.hold for c in closings}
    written = Written()
    if not holds:
        return written
    with transaction.atomic():
        keys = _locked(ApiToken, "remain_quota", {h.token_id for h in holds.values() if h.token_id is not None})
        users = _locked(get_user_model(), "quota", {h.user_id for h in holds.values()})
        if not recheck:
            written.booked |= booked_before & holds.keys()
        else:
            for ref, reason in LedgerEntry.objects.filter(ref__in=list(holds), reason__in=(
                    LedgerReason.RESERVE, *CLOSING)).values_list("ref", "reason"):
                (written.booked if reason == LedgerReason.RESERVE else written.closed).add(ref)
        upstreams = _existing_upstreams(closings)
        rows: list[dict[str, Any]] = []  # ledger rows, by column
        logs: list[dict[str, Any]] = []

        def book(hold: Hold) -> None:
            if hold.ref in written.booked:
                return
            user, key = users[hold.user_id], _key_of(hold, keys)
            if hold.ref in strict:
                limited = key is not None and not hold.unlimited
                if limited and key.quota < hold.amount:
                    written.refused[hold.ref] = "key"
                    return
                if user.quota < hold.amount:
                    written.refused[hold.ref] = "balance"
                    return
            user.quota -= hold.amount
            user.delta -= hold.amount
            if key is not None and not hold.unlimited:
                key.quota -= hold.amount
                key.delta -= hold.amount
            if user.quota < 0 or (key is not None and not hold.unlimited and key.quota < 0):
                written.short.append(hold.ref)
            rows.append({"user_id": hold.user_id, "token_id": hold.token_id if key else None, "amount": -hold.amount,
                         "reason": LedgerReason.RESERVE, "balance_after": user.quota, "ref": hold.ref})
            written.booked.add(hold.ref)

        for hold in reserves:
            if hold.user_id in users:
                book(hold)
        for closing in closings:
            hold = closing.hold
            if hold.user_id not in users or hold.ref in written.closed:
                continue
            book(hold)
            user, key = users[hold.user_id], _key_of(hold, keys)
            back = hold.amount - closing.cost
            user.quota += back
            user.delta += back
            user.used += closing.cost
            user.requests += 0 if closing.refund else 1
            if key is not None:
                key.used += closing.cost
                key.requests += 1
                if not hold.unlimited:
                    key.quota += back
                    key.delta += back
            token_id = hold.token_id if key else None
            rows.append({"user_id": hold.user_id, "token_id": token_id, "amount": back,
                         "reason": LedgerReason.REFUND if closing.refund else LedgerReason.SETTLE,
                         "balance_after": user.quota, "ref": hold.ref})
            if closing.log is not None:
                upstream_id = closing.log.get("upstream_id")
                logs.append({**closing.log, "upstream_id": upstream_id if upstream_id in upstreams else None,
                             "user_id": hold.user_id, "token_id": token_id, "quota": closing.cost,
                             "request_id": hold.request_id})
            written.closed.add(hold.ref)

        written.dropped = {ref for ref, hold in holds.items() if hold.user_id not in users}
        now = timezone.now()
        row_ids = _insert(LedgerEntry, rows, now, returning=("user_id", "pk"))
        _insert(UsageLog, logs, now)
        _add(ApiToken, {key_id: {"remain_quota": key.delta, "used_quota": key.used}
                        for key_id, key in keys.items() if key.delta or key.used or key.requests},
             stamp="last_used_at", stamped={key_id for key_id, key in keys.items() if key.requests}, now=now)
        _add(get_user_model(), {user_id: {"quota": user.delta, "used_quota": user.used, "request_count": user.requests}
                                for user_id, user in users.items() if user.delta or user.used or user.requests})
        for user_id, row_id in row_ids:
            written.versions[user_id] = max(written.versions.get(user_id, 0), row_id)
        unversioned = [user_id for user_id in users if user_id not in written.versions]
        if unversioned:  # nothing written for them here (a retry found it all written): their last row, still locked
            written.versions.update(LedgerEntry.objects.filter(user_id__in=unversioned).order_by().values("user_id")
                                    .annotate(last=Max("id")).values_list("user_id", "last"))
    written.balances = {user_id: user.quota for user_id, user in users.items()}
    written.key_quotas = {key_id: key.quota for key_id, key in keys.items()}
    written.key_users = {h.token_id: h.user_id for h in holds.values() if h.token_id in keys}
    for ref in written.short:
        logger.warning("request %s was admitted beyond its balance or key quota (reserved by another process "
                       "meanwhile); booked below zero", ref)
    return written


def balances_read(*, user_ids: list[int], key_ids: list[int]) -> tuple[dict[int, tuple[int, int]],
                                                                         dict[int, tuple[int, int]]]:
    """Users' balances and keys' quotas, each with the id of the user's last ledger row read in the same statement
    (how recent it is, comparable with `Written.versions`)."""
    def last_row(user: str) -> Subquery:
        return Subquery(LedgerEntry.objects.filter(user_id=OuterRef(user)).order_by("-id").values("id")[:1])

    users = get_user_model().objects.filter(pk__in=user_ids).annotate(version=last_row("pk"))
    keys = ApiToken.objects.filter(pk__in=key_ids).annotate(version=last_row("user_id"))
    return ({pk: (quota, version or 0) for pk, quota, version in users.values_list("pk", "quota", "version")},
            {pk: (quota, version or 0) for pk, quota, version in keys.values_list("pk", "remain_quota", "version")})


def _locked(model: type, column: str, ids: set[int]) -> dict[int, _Counts]:
    """Lock the rows (in id order) and read the balance column of each that still exists."""
    if not ids:
        return {}
    table, pk, balance = _names(model, "pk", column)
    rows = _select(f"SELECT {pk}, {balance} FROM {table} WHERE {pk} IN ({_marks(len(ids))}) ORDER BY {pk}"
                   f"{_for('has_select_for_update', ' FOR UPDATE')}", sorted(ids))
    return {row_id: _Counts(quota=quota) for row_id, quota in rows}


# A batch's statements are written here rather than through the ORM, whose compiling each statement and building a
# model instance per row was most of the writer's CPU (in the relay's processes, beside the event loop).

def _names(model: type, *fields: str) -> tuple[str, ...]:
    """The model's quoted table name, then its fields' quoted column names ("pk": the primary key's)."""
    meta, quote = model._meta, connection.ops.quote_name
    return (quote(meta.db_table),
            *(quote(meta.pk.column if name == "pk" else meta.get_field(name).column) for name in fields))


def _marks(count: int) -> str:
    return ", ".join(["%s"] * count)


def _for(feature: str, clause: str) -> str:
    """A row-locking clause, where the database has it (SQLite locks the whole database for a write instead)."""
    return clause if getattr(connection.features, feature) else ""


def _select(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@functools.cache
def _insert_plan(model: type) -> tuple[tuple[models.Field, ...], frozenset[str], frozenset[str]]:
    """The model's columns to insert (all but the automatic id), those whose values the ORM would prepare for the
    database (times, decimals, addresses), and every name a row may use."""
    fields = tuple(f for f in model._meta.concrete_fields if not f.primary_key)
    plain = (models.BigIntegerField, models.IntegerField, models.PositiveIntegerField,
             models.PositiveSmallIntegerField, models.BooleanField, models.CharField, models.TextField,
             models.ForeignKey)
    converted = frozenset(f.attname for f in fields if type(f) not in plain)
    return fields, converted, frozenset(f.attname for f in fields)


def _insert(model: type, rows: list[dict[str, Any]], now: Any,
            returning: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    """Insert rows (by attribute name; unnamed columns take their defaults, `auto_now_add` ones `now`), in one
    statement; the `returning` columns ("pk": the id) of the new rows, in no particular order."""
    if not rows:
        return []
    fields, converted, known = _insert_plan(model)
    postgresql = connection.vendor == "postgresql"
    names = [f.attname for f in fields]
    db = connections[DEFAULT_DB_ALIAS]  # not the proxy: its every attribute is a context-local look-up
    defaults = {}
    for f in fields:  # prepared once for the batch
        value = now if getattr(f, "auto_now_add", False) else f.get_default()
        value = f.get_db_prep_save(value, db) if f.attname in converted else value
        defaults[f.attname] = _json_value(value) if postgresql and f.attname in converted and value is not None \
            else value
    texts = [i for i, f in enumerate(fields) if isinstance(f, (models.CharField, models.TextField))]
    prepared = [(i, f) for i, f in enumerate(fields) if f.attname in converted]
    values: list[list[Any]] = []
    for row in rows:
        unknown = row.keys() - known
        if unknown:
            raise TypeError(f"{model.__name__} has no field {sorted(unknown)[0]!r}")
        merged = defaults | row
        params = [merged[name] for name in names]
        for i in texts:
            text = params[i]
            if isinstance(text, str) and ("\x00" in text or not text.isascii()):
                params[i] = _storable(text)
        for i, f in prepared:  # as the ORM prepares them (an empty address is NULL, a NaN refused), given values
            value = params[i]
            if f.attname in row and not (postgresql and type(value) is Decimal and value.is_finite()):
                params[i] = f.get_db_prep_save(value, db)  # (a finite decimal goes as it is: PostgreSQL rounds it)
        values.append(params)
    table, *returned = _names(model, *returning)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    tail = f" RETURNING {', '.join(returned)}" if returned else ""
    if postgresql:
        return _insert_from_json(table, columns, fields, values, tail)
    marks = ", ".join([f"({_marks(len(fields))})"] * len(rows))
    return _run(f"INSERT INTO {table} ({columns}) VALUES {marks}{tail}",
                [value for params in values for value in params])


def _storable(text: str) -> str:
    """Text a database can store: without NUL (PostgreSQL's text cannot hold it) and with a lone surrogate (from a
    JSON escape, not encodable as UTF-8) as "?": an upstream's error message quoting one must not stop the request's
    booking."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _insert_from_json(table: str, columns: str, fields: tuple[models.Field, ...], values: list[list[Any]],
                      tail: str) -> list[tuple[Any, ...]]:
    """PostgreSQL: all rows as one JSON array of arrays, one parameter, unpacked and cast column by column on the
    server. Serialising it is the C encoder's work; binding every value apart (one statement per row in a pipeline,
    or one statement of many placeholders) had the driver's Python code run per value, most of the writer's CPU."""
    casts = ", ".join(f"(item->>{i}){_cast(f)}" for i, f in enumerate(fields))
    sql = (f"INSERT INTO {table} ({columns}) SELECT {casts} FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY "
           f"AS batch(item, n) ORDER BY n{tail}")
    return _run(sql, [_json_document(values)])


def _json_document(values: list[list[Any]]) -> str:
    """The rows as JSON text: orjson's (several times faster; times written by `_json_value`, as before), or the
    standard library's for what orjson refuses (an integer past 64 bits, a lone surrogate), which PostgreSQL then
    judges."""
    try:
        return orjson.dumps(values, default=_json_value, option=orjson.OPT_PASSTHROUGH_DATETIME).decode()
    except TypeError:
        return json.dumps(values, default=_json_value, separators=(",", ":"), allow_nan=False)


def _json_value(value: Any) -> Any:
    """Values JSON has no type for, as the text PostgreSQL reads them from (decimals, times, addresses)."""
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, (Decimal, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)
    raise TypeError(f"cannot store a {type(value).__name__} value")


@functools.cache
def _cast(field: models.Field) -> str:
    """The cast to the column's type, without its length or precision: the column itself then refuses a value too
    long (a cast to varchar(n) would cut it) and rounds a decimal, as for a value bound directly. Integers pass
    through numeric, so a whole number written as 12.0 is taken as it was when bound."""
    kind = field.db_type(connection)
    kind = kind[:kind.index("(")].strip() + kind[kind.index(")") + 1:] if "(" in kind else kind
    return f"::numeric::{kind}" if kind in ("bigint", "integer", "smallint") else f"::{kind}"


def _run(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """Run a statement: the rows it returns, if it returns any."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _add(model: type, amounts: dict[int, dict[str, int]], *, stamp: str = "", stamped: set[int] = frozenset(),
         now: Any = None) -> None:
    """Add each row's `amounts` (by primary key; every row names the same columns) to its columns, and set the
    `stamp` column to `now` on the `stamped` rows. PostgreSQL: one statement for all rows (the amounts as one JSON
    array); elsewhere one a row."""
    if not amounts:
        return
    table, pk = _names(model, "pk")
    quote = connection.ops.quote_name
    names = list(next(iter(amounts.values())))
    columns = [quote(model._meta.get_field(name).column) for name in names]
    stamp_column = quote(model._meta.get_field(stamp).column) if stamp else ""
    if connection.vendor == "postgresql":
        sets = [f"{column} = {column} + (item->>{i + 1})::bigint" for i, column in enumerate(columns)]
        if stamp:
            sets.append(f"{stamp_column} = CASE WHEN (item->>{len(columns) + 1})::boolean THEN %s "
                        f"ELSE {stamp_column} END")
        document = json.dumps([[row_id, *(changes[name] for name in names), row_id in stamped]
                               for row_id, changes in amounts.items()])
        _run(f"UPDATE {table} SET {', '.join(sets)} FROM jsonb_array_elements(%s::jsonb) AS batch(item) "
             f"WHERE {table}.{pk} = (item->>0)::bigint", [now, document] if stamp else [document])
        return
    for row_id, changes in amounts.items():
        sets = [f"{column} = {column} + %s" for column in columns]
        params = [changes[name] for name in names]
        if stamp and row_id in stamped:
            sets.append(f"{stamp_column} = %s")
            params.append(model._meta.get_field(stamp).get_db_prep_save(now, connection))
        _run(f"UPDATE {table} SET {', '.join(sets)} WHERE {pk} = %s", [*params, row_id])


def _key_of(hold: Hold, keys: dict[int, _Counts]) -> _Counts | None:
    return keys.get(hold.token_id) if hold.token_id is not None else None


def _existing_upstreams(closings: list[Closing]) -> set[int]:
    """The logged upstreams that still exist, held against deletion until the batch commits (an upstream deleted
    while its request ran is logged as gone)."""
    ids = {c.log["upstream_id"] for c in closings if c.log and c.log.get("upstream_id") is not None}
    if not ids:
        return set()
    table, pk = _names(UsageLog._meta.get_field("upstream").related_model, "pk")
    return {row[0] for row in _select(f"SELECT {pk} FROM {table} WHERE {pk} IN ({_marks(len(ids))}) ORDER BY {pk}"
                                      f"{_for('has_select_for_no_key_update', ' FOR NO KEY UPDATE')}", sorted(ids))}


def row_lock_before_delete(sender: type, instance: Any, **_kwargs: Any) -> None:
    """Lock a key's or upstream's row before Django clears the references to it (pre_delete runs inside the deletion's
    transaction): a batch naming it then either commits first, its rows' references cleared with the others, or
    waits and finds it gone. Without the lock a batch committing in between failed the deletion."""
    list(sender.objects.select_for_update().filter(pk=instance.pk).values_list("pk"))
