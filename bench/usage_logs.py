"""The usage log table at scale: load a few million rows into a throwaway PostgreSQL database, then time the queries
the console, the management API and `/v1/usage` run, and show whether each plan uses an index.

    make bench-logs                                  # 3,000,000 rows
    make bench-logs BENCH_ARGS="--rows 500000"

Needs DATABASE_URL (PostgreSQL); `make bench-logs` starts a throwaway server. The bench creates its own database
on that server and drops it at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "platform")]
MODELS = [f"model-{n}" for n in range(20)]
USERS = 1_000
HEAVY_SHARE = 10  # the heavy user owns one row in HEAVY_SHARE


def fresh_database(url: str) -> tuple[str, Callable[[], None]]:
    """A new database on the server of `url`; returns its URL and a function that drops it."""
    import psycopg

    base, _, _name = url.rpartition("/")
    name = f"modelgate_logbench_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{base}/{name}", drop


def load(rows: int) -> int:
    """Users, one heavy user's keys, and `rows` usage logs over the last 30 days; returns the heavy user's id."""
    from django.db import connection

    from accounts.models import User
    from billing.groups import group_default
    from billing.models import UsageLog
    from billing.retention import usage_rollup

    group = group_default()
    User.objects.bulk_create([User(username=f"bench{n}", group=group, invite_code=f"b{n:07d}")
                              for n in range(USERS)], batch_size=1000)
    ids = list(User.objects.order_by("id").values_list("id", flat=True))
    heavy = ids[0]
    table = connection.ops.quote_name(UsageLog._meta.db_table)
    models = "ARRAY[" + ",".join(f"'{m}'" for m in MODELS) + "]"
    step = 500_000
    with connection.cursor() as cursor:
        for start in range(0, rows, step):
            cursor.execute(f"""
                INSERT INTO {table} (created_at, user_id, token_name, provider, model, upstream_model, endpoint,
                    is_stream, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens,
                    audio_prompt_tokens, audio_completion_tokens, quota, group_ratio, model_ratio,
                    completion_ratio, cache_ratio, usage_estimated, latency_ms, status, status_code, error,
                    request_id)
                SELECT now() - (random() * interval '30 days'),
                       CASE WHEN mod(i, {HEAVY_SHARE}) = 0 THEN %(heavy)s ELSE %(first)s + mod(i, {USERS - 1}) END,
                       'key-' || (mod(i, 5)), 'openai', ({models})[1 + mod(i, {len(MODELS)})], '', '/v1/chat/completions',
                       mod(i, 3) = 0, 100 + mod(i, 900), 20 + mod(i, 400), 0, 0, 0, 0, 50 + mod(i, 5000), 1, 1, 2, 1, false,
                       200 + mod(i, 3000), CASE WHEN mod(i, 50) = 0 THEN 'error' ELSE 'success' END,
                       CASE WHEN mod(i, 50) = 0 THEN 502 ELSE 200 END, '', md5(i::text)
                FROM generate_series(%(start)s, %(stop)s) AS i
            """, {"heavy": heavy, "first": ids[1], "start": start, "stop": min(start + step, rows) - 1})
        cursor.execute(f"ANALYZE {table}")
    rolled = -1
    while (mark := usage_rollup()) != rolled:  # what the hourly beat job has done by now (logs older than its lag)
        rolled = mark
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return heavy


def queries(heavy: int) -> list[tuple[str, Callable[[], Any]]]:
    """(name, function running one query as the product runs it) for the heavy user."""
    from django.utils import timezone

    from billing import reports
    from billing.retention import usage_totals
    from billing.selectors import LogFilter, usage_logs

    now = timezone.now()
    day = now - timedelta(days=1)

    def page(f: LogFilter, offset: int = 0) -> Callable[[], Any]:
        return lambda: list(usage_logs(user_id=heavy, f=f)[offset:offset + 50])

    return [
        ("console logs, first page", page(LogFilter())),
        ("console logs, page 20", page(LogFilter(), 950)),
        ("console logs, one model", page(LogFilter(model=MODELS[3]))),
        ("console logs, one key", page(LogFilter(token_name="key-2"))),
        ("console logs, errors", page(LogFilter(status="error"))),
        ("console logs, last day", page(LogFilter(start=day))),
        ("console totals, last day", lambda: reports.log_totals(usage_logs(user_id=heavy, f=LogFilter(start=day)))),
        ("console totals, one model", lambda: reports.log_totals(usage_logs(user_id=heavy,
                                                                            f=LogFilter(model=MODELS[3])))),
        ("dashboard, spend today", lambda: reports.spend_today(user_id=heavy)),
        ("dashboard, 30-day chart", lambda: reports.spend_by_day(user_id=heavy)),
        ("dashboard, by model (30 days)", lambda: reports.spend_by_model(user_id=heavy, since=now - timedelta(days=30))),
        ("operator logs, first page", lambda: list(usage_logs(user_id=None, f=LogFilter())[:50])),
        ("operator logs, one model", lambda: list(usage_logs(user_id=None, f=LogFilter(model=MODELS[5]))[:50])),
        ("/v1/usage, 30 days", lambda: usage_totals(user_id=heavy, since=now - timedelta(days=30), until=now)),
    ]


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, list[str]]:
    """Median milliseconds over `repeat` runs (after one warm run), and the SQL of the last run."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    fn()
    times = []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            fn()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), [q["sql"] for q in captured.captured_queries]


def plan_of(sql: str) -> str:
    """How the plan reads the usage log table: the index names, or "SEQ SCAN"."""
    import re

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    if "Seq Scan on billing_usagelog" in plan:
        return "SEQ SCAN"
    names = sorted(set(re.findall(r"(?:Index|Index Only|Bitmap Index) Scan (?:Backward )?(?:using|on) (\w+)", plan)))
    return ", ".join(names) or "(no log table scan)"


def run(rows: int, repeat: int) -> list[tuple[str, float, str]]:
    heavy = load(rows)
    results = []
    for name, fn in queries(heavy):
        median, statements = timed(fn, repeat)
        plans = [plan_of(sql) for sql in statements if "billing_usage" in sql]
        results.append((name, median, "; ".join(plans)))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        print("needs DATABASE_URL pointing at PostgreSQL (make bench-logs starts one)", file=sys.stderr)
        return 2
    database, drop = fresh_database(url)
    os.environ["DATABASE_URL"] = database
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    from django.core.management import call_command

    django.setup()
    try:
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        results = run(args.rows, args.repeat)
        loaded = time.perf_counter() - started
    finally:
        drop()
    print(f"# Usage log queries at {args.rows:,} rows ({USERS:,} users; the user queried owns one row in "
          f"{HEAVY_SHARE}, {args.rows // HEAVY_SHARE:,} rows); median of {args.repeat} runs\n")
    print("| query | ms | how the log table is read |\n|---|---:|---|")
    for name, median, plan in results:
        print(f"| {name} | {median:,.1f} | {plan} |")
    print(f"\nloading and measuring took {loaded:,.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
