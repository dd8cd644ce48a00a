"""Modelgate as a benchmark target: its environments (PostgreSQL + Redis, or embedded SQLite), its setup through the
product's own services, Daphne started as `manage.py serve` starts it (WEB_PROCESSES processes on one port, through
the same `config.web_processes`), and the books read back afterwards.

The Django side runs in subprocesses (`python bench/modelgate.py --django setup|books ...`), each with the target's
environment, so one benchmark process can drive several Modelgates on different databases.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "platform") not in sys.path:
    sys.path.append(str(ROOT / "platform"))  # last: only for config.web_processes, which imports no Django

from bench.processes import Processes, start_server, start_servers_on_sockets  # noqa: E402
from config.web_processes import server_command, web_commands  # noqa: E402

START_BALANCE = 10**15
KEYS = 200  # the bench user's keys: one for most scenarios, all of them for `keys200` (many callers at once)
PATH = "/v1/chat/completions"
TARGETS = ("modelgate-pg", "modelgate-sqlite", "modelgate-uvicorn")


@dataclass
class Modelgate:
    """A started Modelgate: its Daphne processes and port, the bench user's key, and its Django environment."""

    name: str
    pids: list[int]
    port: int
    key: str
    user_id: int
    env: dict[str, str]
    keys: list[str]


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


def fresh_postgres(database_url: str, procs: Processes, suffix: str = "") -> str:
    """A new database beside the one in DATABASE_URL, dropped at the end; returns its URL."""
    import psycopg

    name = f"modelgate_bench_{os.getpid()}{suffix and '_' + suffix}"
    with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    procs.cleanups.append(drop)
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def relay_ok(port: int, key: str, model: str) -> None:
    """One request through the relay before measuring, so a broken setup fails loudly instead of as errors."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{PATH}", data=body, method="POST",
                                     headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"the relay refused the bench request: HTTP {exc.code} {exc.read()[:500]!r}") from None


def modelgate_start(procs: Processes, name: str, env: dict[str, str], upstreams: dict[str, str]) -> Modelgate:
    """Migrate, register each upstream (model -> root URL) as its model's only one, start Daphne as
    `manage.py serve` does (as many processes as its settings' WEB_PROCESSES), and send one checked request."""
    run_python(env, ["manage.py", "migrate", "-v0"])
    run_python(env, ["manage.py", "bootstrap"])
    setup = django_step(env, "setup", json.dumps(upstreams))
    pids, port = web_start(procs, name, env, setup["web_processes"], setup["web_server"])
    relay_ok(port, setup["key"], next(iter(upstreams)))
    return Modelgate(name, pids, port, setup["key"], setup["user_id"], env, setup["keys"])


def web_start(procs: Processes, name: str, env: dict[str, str], processes: int,
              server: str) -> tuple[list[int], int]:
    """The web server's processes on one free port on 127.0.0.1, answering `/api/status`; their pids and the port."""
    if processes == 1:
        command = lambda port: server_command(server, host="127.0.0.1", port=port)  # noqa: E731
        proc, port = start_server(procs, name, command, env, "/api/status")
        return [proc.pid], port
    listeners, commands = web_commands(host="127.0.0.1", port=0, processes=processes, server=server)
    port = listeners[0].getsockname()[1]
    servers = start_servers_on_sockets(procs, name, listeners, commands, env, "/api/status")
    return [server.pid for server in servers], port


def modelgate_envs(base: dict[str, str], workdir: Path, procs: Processes, wanted: list[str],
                   web_processes: int) -> dict[str, dict[str, str] | str]:
    """Each Modelgate target's environment, or why it is left out. The production target runs `web_processes`
    Daphne processes (0: one per core), the embedded one a single process, as on SQLite by default."""
    envs: dict[str, dict[str, str] | str] = {}
    embedded = {k: v for k, v in base.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    if "modelgate-pg" in wanted:
        database = base.get("DATABASE_URL", "")
        if not database.startswith(("postgres://", "postgresql://")) or not base.get("REDIS_URL"):
            envs["modelgate-pg"] = "needs DATABASE_URL (PostgreSQL) and REDIS_URL: run it with `make bench`"
        else:
            envs["modelgate-pg"] = {**base, "DATABASE_URL": fresh_postgres(database, procs),
                                    "MODELGATE_VAR_DIR": str(workdir / "var-pg"), "WEB_PROCESSES": str(web_processes)}
    if "modelgate-uvicorn" in wanted:  # the production configuration on uvicorn instead of Daphne
        if isinstance(envs.get("modelgate-pg"), str) or not base.get("DATABASE_URL", "").startswith("postgres"):
            envs["modelgate-uvicorn"] = "needs DATABASE_URL (PostgreSQL) and REDIS_URL: run it with `make bench`"
        else:
            envs["modelgate-uvicorn"] = {**base, "DATABASE_URL": fresh_postgres(base["DATABASE_URL"], procs,
                                                                                "uvicorn"),
                                         # its own Redis database: the other target's users have the same ids
                                         "REDIS_URL": urlunsplit(urlsplit(base["REDIS_URL"])._replace(path="/1")),
                                         "MODELGATE_VAR_DIR": str(workdir / "var-uvicorn"),
                                         "WEB_PROCESSES": str(web_processes), "WEB_SERVER": "uvicorn"}
    if "modelgate-sqlite" in wanted:
        envs["modelgate-sqlite"] = {**embedded, "MODELGATE_VAR_DIR": str(workdir / "var-sqlite"), "WEB_PROCESSES": "1"}
    return envs


# ---- the Django side: runs in a subprocess with the project's environment ----------------------------------------

def django_main(argv: list[str]) -> None:
    sys.path[:0] = [str(ROOT), str(ROOT / "platform")]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django as django_pkg

    django_pkg.setup()
    step, *rest = argv
    print(json.dumps(django_setup(upstreams=json.loads(rest[0])) if step == "setup" else
                     django_books(user_id=int(rest[0]), expected=int(rest[1]))))


def django_setup(*, upstreams: dict[str, str]) -> dict:
    """Each fake as the only upstream of its model, a price, and a user with KEYS unthrottled unlimited keys (the
    first is the bench's key); also how many Daphne processes the target's settings ask for."""
    from decimal import Decimal

    from django.conf import settings

    from accounts.services import user_adjust_quota, user_register
    from billing.groups import price_save
    from relay.upstreams import upstream_save
    from tokens.services import token_create

    for model, url in upstreams.items():
        upstream_save(name=f"fake-{model}", type="openai", base_url=url, keys="x", served_models=[model],
                      groups=["default"])
        price_save(model=model, model_ratio=Decimal("1"), completion_ratio=Decimal("2"))
    user = user_register(username="bench", password="bench-password-8421")
    user = user_adjust_quota(user=user, amount=START_BALANCE - user.quota)
    keys = [token_create(user=user, name=f"bench {i}", unlimited_quota=True, rpm_limit=None,
                         concurrency_limit=None)[1] for i in range(KEYS)]
    return {"key": keys[0], "keys": keys, "user_id": user.pk, "web_processes": settings.WEB_PROCESSES,
            "web_server": settings.WEB_SERVER}


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


if __name__ == "__main__":
    if sys.argv[1:2] != ["--django"]:
        sys.exit(__doc__)
    django_main(sys.argv[2:])
