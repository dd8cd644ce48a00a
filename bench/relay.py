"""Benchmark the relay against a fast local fake upstream, and the same upstream called directly.

    make bench                        # PostgreSQL + Redis (throwaway, via scripts/with-services.sh)
    .venv/bin/python bench/relay.py   # SQLite + in-process cache under a temporary folder

Non-streaming and streaming chat, each at concurrency 1, 16 and 64, for a bounded time each. Prints a markdown
table (requests/s, p50/p99 latency, streaming time to first byte, errors), the relay/direct ratios, then checks the
books: one usage log per successful relayed request, and logged quota equal to what the ledger settled.
See bench/README.md for what each column means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.loadgen import LoadProcess, Scenario  # noqa: E402

MODEL = "bench-model"
FAKE = ROOT / "tests" / "fakes" / "openai_upstream.py"
START_BALANCE = 10**15
PATH = "/v1/chat/completions"


# ---- the processes under test ------------------------------------------------------------------------------------

class Processes:
    """Child processes and temporary resources, all released by `close()` whatever happened."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.cleanups: list[Callable[[], object]] = []

    def start(self, name: str, command: list[str], env: dict[str, str], **popen: object) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "wb")
        self.cleanups.append(log.close)
        popen.setdefault("stdout", log)
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stderr=log, start_new_session=True, **popen)
        self.children.append((name, proc))
        return proc

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def close(self) -> None:
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                proc.terminate()
        for _name, proc in reversed(self.children):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as exc:  # keep releasing the rest
                print(f"cleanup failed: {exc}", file=sys.stderr)


def start_fake(procs: Processes, env: dict[str, str], args: argparse.Namespace) -> str:
    """The fake upstream on a port the OS picks; returns its root URL (without /v1)."""
    command = [sys.executable, str(FAKE), "--port", "0", "--latency-ms", str(args.latency_ms),
               "--chunks", str(args.chunks), "--chunk-delay-ms", str(args.chunk_delay_ms), "--api-key", ""]
    proc = procs.start("fake", command, env, stdout=subprocess.PIPE)
    first: list[bytes] = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=30)
    if not first or b"listening on http://" not in first[0]:
        raise RuntimeError(f"the fake upstream did not start:\n{procs.log_tail('fake')}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep its stdout drained
    return first[0].decode().split("listening on ", 1)[1].strip().removesuffix("/v1")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_relay(procs: Processes, env: dict[str, str]) -> int:
    """Daphne as `manage.py serve` runs it, on a free port the OS picks. (This Twisted has no `fd:` endpoint, so
    `daphne --fd` cannot adopt a socket bound here; a port taken in the moment between is retried once.)"""
    for attempt in range(2):
        port = free_port()
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"]
        proc = procs.start(f"daphne-{attempt}", command, env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2) as response:
                    if response.status == 200:
                        return port
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
        if proc.poll() is None:
            break
    raise RuntimeError(f"Daphne did not answer:\n{procs.log_tail(f'daphne-{attempt}')}")


def run_python(env: dict[str, str], command: list[str], timeout: float = 180) -> str:
    """Run a Python command in the project's environment; its stdout, or an error with its output."""
    done = subprocess.run([sys.executable, *command], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done.stdout


def django_step(env: dict[str, str], *args: str, timeout: float = 180) -> dict:
    """Run this file's Django side (below) in a subprocess; it answers one JSON line."""
    return json.loads(run_python(env, [__file__, "--django", *args], timeout).strip().splitlines()[-1])


def fresh_postgres(database_url: str, procs: Processes) -> str:
    """A new database beside the one in DATABASE_URL, dropped at the end; returns its URL."""
    import psycopg

    name = f"modelgate_bench_{os.getpid()}"
    with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    procs.cleanups.append(drop)
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def relay_ok(port: int, key: str) -> None:
    """One request through the relay before measuring, so a broken setup fails loudly instead of as errors."""
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{PATH}", data=body, method="POST",
                                     headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"the relay refused the bench request: HTTP {exc.code} {exc.read()[:500]!r}") from None


# ---- measuring and reporting -------------------------------------------------------------------------------------

def chat_body(stream: bool) -> dict:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}
    if stream:  # the relay asks the upstream for usage anyway; asking directly too keeps the two wires alike
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(header: list[str], rows: list[list[str]], *, text_columns: int = 2) -> str:
    """A markdown table: the first `text_columns` columns left-aligned, the numbers right-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    left = [i < text_columns for i in range(len(widths))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if l else c.rjust(w) for c, w, l in zip(cells, widths, left)) + " |"

    rule = "|" + "|".join(":" + "-" * (w + 1) if l else "-" * (w + 1) + ":" for w, l in zip(widths, left)) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def results_table(results: dict[tuple[str, str, int], dict]) -> str:
    rows = [[target, mode, str(c), fmt(r["rps"]), fmt(r["p50"], 2), fmt(r["p99"], 2), fmt(r["ttfb_p50"], 2),
             str(r["errors"])] for (target, mode, c), r in results.items()]
    return markdown(["target", "mode", "concurrency", "requests/s", "p50 ms", "p99 ms", "TTFB p50 ms", "errors"],
                    rows)


def ratios_table(results: dict[tuple[str, str, int], dict]) -> str:
    rows = []
    for (target, mode, c), relay in results.items():
        direct = results.get(("direct", mode, c))
        if target != "relay" or direct is None:
            continue
        ratio = relay["rps"] / direct["rps"] if direct["rps"] else None
        added = [None if relay[k] is None or direct[k] is None else relay[k] - direct[k]
                 for k in ("p50", "p99", "ttfb_p50")]
        rows.append([mode, str(c), fmt(ratio, 3), *(fmt(value, 2) for value in added)])
    return markdown(["mode", "concurrency", "relay/direct requests/s", "added p50 ms", "added p99 ms",
                     "added TTFB p50 ms"], rows, text_columns=1)


def books_report(books: dict, sent_ok: int, sent_errors: int) -> tuple[bool, str]:
    settled = books["start_balance"] - books["end_balance"]
    checks = {
        "usage logs (success) == successful relayed requests": (books["success_rows"], sent_ok),
        "sum(UsageLog.quota) == start balance - end balance": (books["sum_quota"], settled),
        "sum(UsageLog.quota) == -sum(ledger reserve+settle+refund)": (books["sum_quota"], books["ledger_settled"]),
        "open reservations == 0": (books["open_reservations"], 0),
    }
    other = books["rows"] - books["success_rows"]
    lines = [f"usage log rows: {books['rows']} ({books['success_rows']} success, {other} other); "
             f"relayed requests: {sent_ok} ok, {sent_errors} failed at the client",
             f"quota logged: {books['sum_quota']:,}; settled by the ledger: {settled:,} "
             f"(start {books['start_balance']:,}, end {books['end_balance']:,})"]
    bad = [f"{name}: {got:,} != {want:,}" for name, (got, want) in checks.items() if got != want]
    lines.append("books: ok" if not bad else "books: MISMATCH: " + "; ".join(bad))
    return not bad, "\n".join(lines)


def measure(loadgen: LoadProcess, targets: dict[str, int], key: str,
            args: argparse.Namespace) -> dict[tuple[str, str, int], dict]:
    """Every scenario, one after the other, each in the generator process; progress goes to stderr."""
    results: dict[tuple[str, str, int], dict] = {}
    for target, port in targets.items():
        for mode in ("non-stream", "stream"):
            for concurrency in args.concurrency:
                scenario = Scenario(host="127.0.0.1", port=port, path=PATH, body=chat_body(mode == "stream"),
                                    key=key, concurrency=concurrency, seconds=args.seconds, warmup=args.warmup)
                result = results[(target, mode, concurrency)] = loadgen.run(scenario)
                sample = f" (first: {result['error_samples'][0]})" if result["error_samples"] else ""
                print(f"  {target:6} {mode:10} c={concurrency:<3} {result['rps']:9,.1f} req/s  "
                      f"{result['errors']} errors{sample}", file=sys.stderr, flush=True)
    return results


def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="modelgate-bench-"))
    procs = Processes(workdir)
    procs.cleanups.append(lambda: shutil.rmtree(workdir, ignore_errors=True))
    with ExitStack() as stack:
        stack.callback(procs.close)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "platform")]),
               "DJANGO_SETTINGS_MODULE": "config.settings", "MODELGATE_VAR_DIR": str(workdir / "var"),
               "RELAY_DEFAULT_RPM": "0",  # the site-wide default of 600 requests per minute would throttle the bench
               "ADMIN_PASSWORD": "bench-admin-password"}
        database = env.get("DATABASE_URL", "")
        if database.startswith(("postgres://", "postgresql://")):
            env["DATABASE_URL"] = fresh_postgres(database, procs)
        print(f"# Modelgate relay benchmark\n\n{platform.python_implementation()} {platform.python_version()}, "
              f"{os.cpu_count()} cores; database: {'PostgreSQL' if database else 'SQLite'}; "
              f"cache/limits: {'Redis' if env.get('REDIS_URL') else 'in-process'}; "
              f"{args.seconds:g} s per scenario after {args.warmup:g} s warm-up; fake upstream: "
              f"{args.latency_ms:g} ms latency, {args.chunks} chunks, {args.chunk_delay_ms:g} ms between chunks",
              flush=True)
        run_python(env, ["manage.py", "migrate", "-v0"])
        run_python(env, ["manage.py", "bootstrap"])
        upstream = start_fake(procs, env, args)
        setup = django_step(env, "setup", upstream)
        port = start_relay(procs, env)
        relay_ok(port, setup["key"])
        loadgen = stack.enter_context(LoadProcess())
        results = measure(loadgen, {"direct": urlsplit(upstream).port, "relay": port}, setup["key"], args)
        print("\n## Results\n\n" + results_table(results))
        print("\n## Relay versus direct\n\n" + ratios_table(results))
        relayed = [r for (target, _mode, _c), r in results.items() if target == "relay"]
        sent_ok = 1 + sum(r["ok"] + r["warmup_ok"] for r in relayed)  # 1: relay_ok's check request
        sent_errors = sum(r["errors"] + r["warmup_errors"] for r in relayed)
        books = django_step(env, "books", str(setup["user_id"]), str(sent_ok), timeout=120)
        ok, report = books_report(books, sent_ok, sent_errors)
        print("\n## Books\n\n" + report, flush=True)
        return 0 if ok else 1


# ---- the Django side: runs in a subprocess with the project's environment ----------------------------------------

def django_main(argv: list[str]) -> None:
    sys.path[:0] = [str(ROOT), str(ROOT / "platform")]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django as django_pkg

    django_pkg.setup()
    step, *rest = argv
    print(json.dumps(django_setup(upstream=rest[0]) if step == "setup" else
                     django_books(user_id=int(rest[0]), expected=int(rest[1]))))


def django_setup(*, upstream: str) -> dict:
    """The fake as the only upstream of `bench-model`, a price, and a user with an unthrottled unlimited key."""
    from decimal import Decimal

    from accounts.services import user_adjust_quota, user_register
    from billing.groups import price_save
    from relay.upstreams import upstream_save
    from tokens.services import token_create

    upstream_save(name="bench-fake", type="openai", base_url=upstream, keys="x", served_models=[MODEL],
                  groups=["default"])
    price_save(model=MODEL, model_ratio=Decimal("1"), completion_ratio=Decimal("2"))
    user = user_register(username="bench", password="bench-password-8421")
    user = user_adjust_quota(user=user, amount=START_BALANCE - user.quota)
    token, key = token_create(user=user, name="bench", unlimited_quota=True, rpm_limit=None, concurrency_limit=None)
    return {"key": key, "user_id": user.pk, "token_id": token.pk}


def django_books(*, user_id: int, expected: int) -> dict:
    """Usage logs and ledger totals of the bench user, once the relay has settled what it answered."""
    from django.db.models import Count, Q, Sum

    from accounts.models import User
    from billing.models import LedgerEntry, LedgerReason, UsageLog, UsageStatus

    def snapshot() -> dict:
        logs = UsageLog.objects.filter(user_id=user_id).aggregate(
            rows=Count("id"), success_rows=Count("id", filter=Q(status=UsageStatus.SUCCESS)), sum_quota=Sum("quota"))
        requests = LedgerEntry.objects.filter(user_id=user_id, ref__startswith="req:")
        reserves = requests.filter(reason=LedgerReason.RESERVE).count()
        closings = requests.filter(reason__in=(LedgerReason.SETTLE, LedgerReason.REFUND)).count()
        return {**logs, "sum_quota": logs["sum_quota"] or 0,
                "ledger_settled": -(requests.aggregate(total=Sum("amount"))["total"] or 0),
                "open_reservations": reserves - closings, "start_balance": START_BALANCE,
                "end_balance": User.objects.get(pk=user_id).quota}

    # Settlement runs after each response has been sent: wait until it has caught up, or has stood still for 5 s.
    deadline = time.monotonic() + 60
    books, still_since = snapshot(), time.monotonic()
    while books["open_reservations"] or books["success_rows"] < expected:
        if time.monotonic() > deadline or time.monotonic() - still_since > 5:
            break
        time.sleep(0.25)
        latest = snapshot()
        if latest != books:
            books, still_since = latest, time.monotonic()
    return books


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--django"]:
        django_main(argv[1:])
        return 0
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # clean up as on Ctrl-C
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per scenario (default 5)")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds before each (default 0.5)")
    parser.add_argument("--concurrency", type=lambda s: [int(c) for c in s.split(",")], default=[1, 16, 64],
                        help="comma-separated concurrency levels (default 1,16,64)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="fake upstream latency (default 0)")
    parser.add_argument("--chunks", type=int, default=20, help="fake upstream stream chunks (default 20)")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="fake upstream delay between chunks")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
