"""Benchmark the relay against local fake upstreams, and the same upstreams called directly, in one run.

    make bench                        # direct, Modelgate on PostgreSQL + Redis, Modelgate embedded (SQLite)
    make bench-peers                  # the same, plus LiteLLM's proxy and Portkey's gateway
    .venv/bin/python bench/relay.py   # without DATABASE_URL/REDIS_URL: direct and Modelgate embedded only

Scenarios: non-streaming chat with 0 ms and 50 ms upstream latency, streaming chat (50 ms to the first chunk, 20
chunks 5 ms apart), each at 1, 16 and 64 clients for a bounded time; the 0 ms one again with Modelgate's requests
taking 200 keys in turn (many callers at once); one client calling every 1.3 s (a call after a quiet moment); then
1,000 slow streams held open together.
Prints markdown tables (requests/s, p50/p90/p99 latency, time to first byte, CPU ms per request and peak RSS of each
target's processes, errors, ratios to direct), checks that the held streams were streamed, and checks the books of
each Modelgate target. See bench/README.md for what each column means.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.loadgen import LoadProcess, Scenario  # noqa: E402
from bench.modelgate import TARGETS as MODELGATE_TARGETS  # noqa: E402
from bench.modelgate import KEYS, django_step, modelgate_envs, modelgate_start  # noqa: E402
from bench.peers import PEERS, PeerUnavailable  # noqa: E402
from bench.processes import Meter, Processes, paused  # noqa: E402

MODEL = "bench-model"
FAKE = ROOT / "tests" / "fakes" / "openai_upstream.py"
PATH = "/v1/chat/completions"
MB = 1024 * 1024


@dataclass(frozen=True)
class Upstream:
    """How one fake upstream answers: delay before the first frame (or the JSON), stream chunks, delay between."""

    latency_ms: float
    chunks: int
    chunk_delay_ms: float

    @property
    def stream_spread_s(self) -> float:
        """Seconds from the first to the last data frame: role, content chunks, finish and usage frames."""
        return (self.chunks + 2) * self.chunk_delay_ms / 1000


UPSTREAMS = {
    "fast": Upstream(latency_ms=0, chunks=20, chunk_delay_ms=0),
    "lat50": Upstream(latency_ms=50, chunks=20, chunk_delay_ms=5),
    "slow": Upstream(latency_ms=1000, chunks=12, chunk_delay_ms=1000),  # ~15 s per stream, a frame a second
}


@dataclass(frozen=True)
class Workload:
    upstream: str
    stream: bool
    held: bool = False  # every client sends one request at once and holds it open to the end
    pause: float = 0.0  # seconds one client waits after each answer (a caller that is not always busy)
    many_keys: bool = False  # Modelgate's requests take the bench user's KEYS keys in turn (many callers at once)


WORKLOADS = {
    "nonstream0": Workload("fast", stream=False),
    "nonstream50": Workload("lat50", stream=False),
    "stream50": Workload("lat50", stream=True),
    "stream0": Workload("fast", stream=True),  # not in the default set: the relay's own cost per stream frame
    "quiet0": Workload("fast", stream=False, pause=1.3),  # longer than the relay's caches live (1 s)
    f"keys{KEYS}": Workload("fast", stream=False, many_keys=True),
    "slow": Workload("slow", stream=True, held=True),
}
DEFAULT_SCENARIOS = f"nonstream0,nonstream50,stream50,quiet0,keys{KEYS},slow"
QUIET_CALLS = 12  # measured calls, at least, of a scenario with a pause
MANY_KEYS_WARMUP = 3.0  # seconds, at least, before a many-keys run is measured


def model_name(upstream: str) -> str:
    return f"bench-{upstream}"


@dataclass
class Route:
    """How a target reaches one upstream: its port, the model to ask for, extra headers, the processes to meter."""

    port: int
    model: str
    pids: list[int]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Target:
    name: str
    key: str
    routes: dict[str, Route]
    env: dict[str, str] | None = None  # Modelgate: the environment its Django steps run in
    user_id: int | None = None
    keys: list[str] = field(default_factory=list)  # Modelgate: every key of the bench user

    def servers(self) -> list[int]:
        """The gateway's own processes (none for `direct`: the fakes serve every target)."""
        return [] if self.name == "direct" else sorted({pid for route in self.routes.values() for pid in route.pids})


# ---- the processes under test ------------------------------------------------------------------------------------

def start_fake(procs: Processes, env: dict[str, str], name: str, upstream: Upstream) -> tuple[int, str]:
    """A fake upstream on a port the OS picks; returns its pid and root URL (without /v1)."""
    command = [sys.executable, str(FAKE), "--port", "0", "--latency-ms", str(upstream.latency_ms),
               "--chunks", str(upstream.chunks), "--chunk-delay-ms", str(upstream.chunk_delay_ms), "--api-key", ""]
    proc = procs.start(f"fake-{name}", command, env, stdout=subprocess.PIPE)
    first: list[bytes] = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=30)
    if not first or b"listening on http://" not in first[0]:
        raise RuntimeError(f"the fake upstream did not start:\n{procs.log_tail(f'fake-{name}')}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep its stdout drained
    return proc.pid, first[0].decode().split("listening on ", 1)[1].strip().removesuffix("/v1")


# ---- measuring ---------------------------------------------------------------------------------------------------

def chat_body(stream: bool, model: str = MODEL) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}
    if stream:  # the relay asks the upstream for usage anyway; asking directly too keeps the two wires alike
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


def scenario_for(workload: Workload, route: Route, target: Target, clients: int,
                 args: argparse.Namespace) -> Scenario:
    upstream = UPSTREAMS[workload.upstream]
    common = {"host": "127.0.0.1", "port": route.port, "path": PATH, "body": chat_body(workload.stream, route.model),
              "key": target.key, "keys": tuple(target.keys) if workload.many_keys else (),
              "headers": route.headers, "concurrency": clients}
    if workload.held:
        duration = upstream.latency_ms / 1000 + upstream.stream_spread_s
        return Scenario(**common, once=True, ramp=args.slow_ramp, timeout=2 * duration + 30,
                        min_spread=upstream.stream_spread_s / 2)
    if workload.pause:
        return Scenario(**common, seconds=max(args.duration, QUIET_CALLS * workload.pause), warmup=args.warmup,
                        pause=workload.pause)
    if workload.many_keys:  # each key's first use loads it: a server that has run a while has its callers loaded
        return Scenario(**common, seconds=args.duration, warmup=max(args.warmup, MANY_KEYS_WARMUP))
    return Scenario(**common, seconds=args.duration, warmup=args.warmup)


def measure_one(loadgen: LoadProcess, scenario: Scenario, route: Route) -> dict:
    """One run with the target's processes metered: CPU ms per completed request, peak RSS and its growth."""
    with Meter(route.pids) as meter:
        summary = loadgen.run(scenario)
    done = summary["ok"] + summary["warmup_ok"]
    return {**summary, "cpu_ms": meter.cpu * 1000 / done if done else None, "peak_rss_mb": meter.peak_rss / MB,
            "rss_growth_mb": (meter.peak_rss - meter.start_rss) / MB}


def failed_run(clients: int, exc: BaseException) -> dict:
    return {"ok": 0, "errors": clients, "rps": 0.0, "p50": None, "p90": None, "p99": None, "ttfb_p50": None,
            "ttfb_p99": None, "warmup_ok": 0, "warmup_errors": 0, "buffered": 0, "elapsed": 0.0, "cpu_ms": None,
            "peak_rss_mb": 0.0, "rss_growth_mb": 0.0, "error_samples": [f"{type(exc).__name__}: {exc}"[:300]]}


def prime(loadgen: LoadProcess, targets: list[Target], args: argparse.Namespace) -> dict[str, dict]:
    """Unreported traffic through each target before anything is measured (lazy imports, caches and pools filled,
    as on a server that has run a while): non-streaming and streaming requests to every upstream but the slow one."""
    totals: dict[str, dict] = {}
    for target in targets:
        totals[target.name] = {"ok": 0, "errors": 0}
        routes = [(route, stream) for upstream, route in target.routes.items() if upstream != "slow"
                  for stream in (False, True)]
        for route, stream in routes if args.prime > 0 else []:
            done = loadgen.run(Scenario(host="127.0.0.1", port=route.port, path=PATH, key=target.key,
                                        body=chat_body(stream, route.model), headers=route.headers,
                                        concurrency=4, seconds=0, warmup=args.prime / len(routes)))
            totals[target.name]["ok"] += done["warmup_ok"]
            totals[target.name]["errors"] += done["warmup_errors"]
    return totals


def measure(stack: ExitStack, targets: list[Target],
            args: argparse.Namespace) -> tuple[dict[report.Key, dict], dict[str, dict]]:
    """Every scenario and client count, the targets one after the other at each (so they see the same machine);
    also what priming sent each target (counted in the books, not reported)."""
    results: dict[report.Key, dict] = {}
    loadgen = stack.enter_context(LoadProcess())
    primed = prime(loadgen, targets, args)
    for name in args.scenarios:
        workload = WORKLOADS[name]
        for clients in [args.slow_streams] if workload.held else [1] if workload.pause else args.concurrency:
            for target in targets:
                route = target.routes[workload.upstream]
                scenario = scenario_for(workload, route, target, clients, args)
                others = [pid for other in targets if other is not target for pid in other.servers()]
                try:
                    with paused(others):  # the other gateways idle: their background work is not this one's cost
                        result = measure_one(loadgen, scenario, route)
                except Exception as exc:  # an overrun: record it, replace the generator, go on
                    result = failed_run(clients, exc)
                    loadgen.close()
                    loadgen = stack.enter_context(LoadProcess())
                results[(name, clients, target.name)] = result
                sample = f" (first: {result['error_samples'][0]})" if result["error_samples"] else ""
                print(f"  {name:11} c={clients:<4} {target.name:16} {result['rps']:9,.1f} req/s  "
                      f"{result['errors']} errors{sample}", file=sys.stderr, flush=True)
    return results, primed


# ---- the books ---------------------------------------------------------------------------------------------------

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


def check_books(target: Target, results: dict[report.Key, dict], primed: dict) -> tuple[bool, str]:
    """The target's books against every request the generator sent it (priming and warm-ups included)."""
    mine = [r for (_s, _c, name), r in results.items() if name == target.name]
    sent_ok = 1 + primed["ok"] + sum(r["ok"] + r["warmup_ok"] for r in mine)  # 1: relay_ok's check request
    sent_errors = primed["errors"] + sum(r["errors"] + r["warmup_errors"] for r in mine)
    books = django_step(target.env, "books", str(target.user_id), str(sent_ok), timeout=120)
    ok, text = books_report(books, sent_ok, sent_errors)
    return ok, f"### {target.name}\n\n{text}"


# ---- the run -----------------------------------------------------------------------------------------------------

def start_targets(procs: Processes, base: dict[str, str], workdir: Path,
                  args: argparse.Namespace) -> tuple[list[Target], list[str]]:
    """Every target that starts, and a note for every one that does not."""
    profiles = sorted({WORKLOADS[name].upstream for name in args.scenarios}, key=list(UPSTREAMS).index)
    fakes, direct_routes = {}, {}
    for up in profiles:
        pid, fakes[up] = start_fake(procs, base, up, UPSTREAMS[up])
        direct_routes[up] = Route(urlsplit(fakes[up]).port, model_name(up), [pid])
    targets, notes = [Target("direct", "", direct_routes)], []
    for name, env in modelgate_envs(base, workdir, procs, args.targets, args.web_processes).items():
        if isinstance(env, str):
            notes.append(f"{name}: skipped: {env}")
            continue
        print(f"starting {name}", file=sys.stderr, flush=True)
        mg = modelgate_start(procs, name, env, {model_name(up): url for up, url in fakes.items()})
        routes = {up: Route(mg.port, model_name(up), mg.pids) for up in fakes}  # metered: every server process
        targets.append(Target(name, mg.key, routes, env=mg.env, user_id=mg.user_id, keys=mg.keys))
        server = env.get("WEB_SERVER", "daphne").capitalize()
        notes.append(f"{name}: {len(mg.pids)} {server} processes sharing one port" if len(mg.pids) > 1
                     else f"{name}: 1 {server} process")
    for name in (t for t in args.targets if t in PEERS):
        print(f"starting {name}", file=sys.stderr, flush=True)
        try:
            peer = PEERS[name](procs, {model_name(up): f"{url}/v1" for up, url in fakes.items()})
        except PeerUnavailable as exc:
            notes.append(f"{name}: NOT MEASURED: {exc}")
            print(f"{name}: NOT MEASURED: {exc}", file=sys.stderr, flush=True)
            continue
        notes.append(f"{name} {peer.version}: started")
        routes = {up: Route(peer.port, model_name(up), [peer.pid], peer.headers[model_name(up)]) for up in fakes}
        targets.append(Target(name, peer.key, routes))
    return targets, notes


def header(args: argparse.Namespace, targets: list[Target]) -> str:
    ups = "; ".join(f"{name} {u.latency_ms:g} ms latency, {u.chunks} chunks {u.chunk_delay_ms:g} ms apart"
                    for name, u in UPSTREAMS.items())
    return (f"# Modelgate relay benchmark\n\n{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; "
            f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores; "
            f"targets: {', '.join(t.name for t in targets)}; scenarios: {', '.join(args.scenarios)}; "
            f"{args.duration:g} s per closed-loop run after {args.warmup:g} s warm-up; "
            f"held streams: {args.slow_streams}. Fake upstreams: {ups}.")


def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="modelgate-bench-"))
    procs = Processes(workdir)
    procs.cleanups.append(lambda: shutil.rmtree(workdir, ignore_errors=True))
    with ExitStack() as stack:
        stack.callback(procs.close)
        base = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "platform")]),
                "DJANGO_SETTINGS_MODULE": "config.settings", "MODELGATE_VAR_DIR": str(workdir / "var"),
                "RELAY_DEFAULT_RPM": "0",  # the site-wide default of 600 requests per minute would throttle the bench
                "ADMIN_PASSWORD": "bench-admin-password"}
        targets, notes = start_targets(procs, base, workdir, args)
        results, primed = measure(stack, targets, args)
        sections = [header(args, targets)]
        if notes:
            sections.append("Targets:\n\n" + "\n".join(f"- {note}" for note in notes))
        sections += ["## Results\n\n" + report.results_table(results),
                     "## Ratios to direct (same scenario and clients)\n\n" + report.ratios_table(results)]
        ok = True
        if "slow" in args.scenarios:
            sections.append(f"## {args.slow_streams} slow streams held open\n\n"
                            + report.held_streams_table(results, "slow", args.slow_streams, args.max_rss_growth_mb))
            for target in targets:
                held = results.get(("slow", args.slow_streams, target.name))
                if target.env is not None and held is not None:
                    ok &= report.held_streams_check(held, args.slow_streams, args.max_rss_growth_mb)[0]
        if lines := report.peer_ratio_lines(results, "nonstream0", 16):
            sections.append("\n".join(lines))
        books = [check_books(target, results, primed[target.name]) for target in targets if target.env is not None]
        sections.append("## Books\n\n" + "\n\n".join(text for _ok, text in books))
        ok &= all(good for good, _text in books)
        text = "\n\n".join(sections) + "\n"
        print("\n" + text, flush=True)
        if args.markdown:
            Path(args.markdown).write_text(text)
        return 0 if ok else 1


def comma_list(choices: tuple[str, ...] | dict) -> object:
    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown: {', '.join(unknown)} (choose from {', '.join(choices)})")
        return names
    return parse


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # clean up as on Ctrl-C
    target_names = (*MODELGATE_TARGETS, *PEERS)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", type=comma_list(WORKLOADS), default=DEFAULT_SCENARIOS.split(","),
                        help=f"comma-separated, from {', '.join(WORKLOADS)} (default {DEFAULT_SCENARIOS})")
    parser.add_argument("--targets", type=comma_list(target_names), default=list(MODELGATE_TARGETS),
                        help=f"besides direct, from {', '.join(target_names)} (default: both Modelgate targets)")
    parser.add_argument("--peers", action="store_true", help="also LiteLLM and Portkey (installed on first use)")
    parser.add_argument("--duration", "--seconds", type=float, default=5.0,
                        help="measured seconds per closed-loop run (default 5)")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds before each (default 0.5)")
    parser.add_argument("--prime", type=float, default=2.0,
                        help="unmeasured seconds of traffic per target before the first run (default 2)")
    parser.add_argument("--concurrency", type=lambda s: [int(c) for c in s.split(",")], default=[1, 16, 64],
                        help="comma-separated client counts (default 1,16,64)")
    parser.add_argument("--web-processes", type=non_negative_int, default=2,
                        help="server processes of modelgate-pg and modelgate-uvicorn, as WEB_PROCESSES (0: one per core; default 2); "
                             "modelgate-sqlite always runs one")
    parser.add_argument("--slow-streams", type=int, default=1000, help="streams held open together (default 1000)")
    parser.add_argument("--slow-ramp", type=float, default=2.0, help="seconds over which they open (default 2)")
    parser.add_argument("--max-rss-growth-mb", type=float, default=200.0,
                        help="the held streams' limit on a target's RSS growth (default 200)")
    parser.add_argument("--markdown", metavar="PATH", help="also write the report to this markdown file")
    args = parser.parse_args(argv)
    if args.peers:
        args.targets += [name for name in PEERS if name not in args.targets]
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
