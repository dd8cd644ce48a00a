"""Reservation and settlement on PostgreSQL, each one statement inside its transaction.

The ORM versions in `billing.charges` take seven to nine statements for the same work, each a round trip while the
user's row is locked, and every request of a busy user waits on that row. Here the key's row, the user's row, the
ledger row and the usage log are written by one statement (data-modifying CTEs), so the locks are held for one round
trip. The key's row is always locked before the user's (the user update waits on the key update's result), as the
ORM versions do, so reservations and settlements of one key never deadlock.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection

from billing.models import LedgerEntry, UsageLog
from tokens.models import ApiToken


@cache
def _tables() -> dict[str, str]:
    quote = connection.ops.quote_name
    return {"user": quote(get_user_model()._meta.db_table), "token": quote(ApiToken._meta.db_table),
            "ledger": quote(LedgerEntry._meta.db_table), "log": quote(UsageLog._meta.db_table),
            "upstream": quote(UsageLog._meta.get_field("upstream").related_model._meta.db_table)}


@cache
def _log_columns() -> dict[str, tuple[str, str, Any]]:
    """UsageLog attribute name -> (quoted column, SQL type to cast the parameter to, the field's default)."""
    out = {}
    for field in UsageLog._meta.concrete_fields:
        if field.primary_key or field.attname == "created_at":
            continue
        default = field.get_default() if field.has_default() or field.null else ""
        out[field.attname] = (connection.ops.quote_name(field.column), field.db_type(connection), default)
    return out


def reserve(*, user_id: int, token_id: int | None, limited: bool, amount: int, ref: str) -> str:
    """Take `amount` from the key (when it has a limit) and the balance; the ledger row records it. Returns "" on
    success, "token" or "balance" for what was short (the caller's transaction is then rolled back)."""
    t = _tables()
    sql = f"""
        WITH tok AS (
            UPDATE {t['token']} SET remain_quota = remain_quota - %(amount)s
            WHERE id = %(token)s AND %(limited)s AND remain_quota >= %(amount)s RETURNING id
        ), usr AS (
            UPDATE {t['user']} SET quota = quota - %(amount)s
            WHERE id = %(user)s AND quota >= %(amount)s
              AND (NOT %(limited)s OR (SELECT count(*) FROM tok) = 1)
            RETURNING quota
        ), led AS (
            INSERT INTO {t['ledger']} (user_id, token_id, amount, reason, balance_after, ref, note, created_at)
            SELECT %(user)s, %(token)s, -%(amount)s, 'reserve', usr.quota, %(ref)s, '', now() FROM usr
            RETURNING id
        )
        SELECT (SELECT count(*) FROM tok), (SELECT count(*) FROM led)
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, {"amount": amount, "token": token_id, "limited": limited, "user": user_id, "ref": ref})
        took_token, booked = cursor.fetchone()
    if booked:
        return ""
    return "token" if limited and not took_token else "balance"


def settle(*, user_id: int, token_id: int | None, unlimited: bool, amount: int, cost: int, reason: str, ref: str,
           request_id: str, log: dict[str, Any] | None) -> None:
    """Give back `amount - cost`, count the use, write the closing ledger row and the usage log: one statement.
    A second closing row for `ref` violates the ledger's unique index and the whole statement is undone."""
    t = _tables()
    back = amount - cost
    params: dict[str, Any] = {
        "user": user_id, "token": token_id, "back": back, "cost": cost, "ref": ref,
        "token_back": 0 if unlimited else back, "counted": 0 if reason == "refund" else 1, "reason": reason,
    }
    log_insert = ""
    if log is not None:
        columns = _log_columns()
        values = {name: default for name, (_column, _type, default) in columns.items()}
        values.update(log, user_id=user_id, token_id=token_id, quota=cost, request_id=request_id)
        names, casts = [], []
        for position, (name, value) in enumerate(values.items()):
            column, sql_type, _default = columns[name]
            params[f"v{position}"] = value
            names.append(column)
            cast = f"CAST(%(v{position})s AS {sql_type})"
            # A key or upstream deleted while the request ran is logged as gone (SET_NULL), not an error at commit.
            if name == "upstream_id":
                cast = f"(SELECT id FROM {t['upstream']} WHERE id = {cast} FOR KEY SHARE)"
            elif name == "token_id":
                cast = "(SELECT id FROM tok)"
            casts.append(cast)
        names.append(connection.ops.quote_name(UsageLog._meta.get_field("created_at").column))
        casts.append("now()")
        log_insert = f""", logged AS (
            INSERT INTO {t['log']} ({', '.join(names)}) SELECT {', '.join(casts)} FROM led RETURNING id
        )"""
    sql = f"""
        WITH tok AS (
            UPDATE {t['token']} SET used_quota = used_quota + %(cost)s, last_used_at = now(),
                   remain_quota = remain_quota + %(token_back)s
            WHERE id = %(token)s RETURNING id
        ), usr AS (
            UPDATE {t['user']} SET quota = quota + %(back)s, used_quota = used_quota + %(cost)s,
                   request_count = request_count + %(counted)s
            WHERE id = %(user)s AND (SELECT count(*) FROM tok) >= 0
            RETURNING quota
        ), led AS (
            INSERT INTO {t['ledger']} (user_id, token_id, amount, reason, balance_after, ref, note, created_at)
            SELECT %(user)s, (SELECT id FROM tok), %(back)s, %(reason)s, usr.quota, %(ref)s, '', now() FROM usr
            RETURNING id
        ){log_insert}
        SELECT count(*) FROM led
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
