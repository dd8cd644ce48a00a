"""The fault mix under load (`make soak`): two relay processes on PostgreSQL and Redis in front of upstreams that
fail in every way the reliability tests cover, driven by many clients for a few minutes; then the books.

    make soak                          # 180 s
    make soak SOAK_ARGS="--seconds 30 --clients 8"

Prints requests, faults injected (by kind, from the usage logs' attempt lists), what the clients got (by status and
error code), and whether the books balance: one usage log per request, one reservation and one closing row each,
every balance equal to its ledger, and the logged quota equal to what was settled. Exits 1 if they do not.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import sys
import threading
import time
from contextlib import ExitStack
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "platform")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db.models import Sum  # noqa: E402

from accounts.services import user_adjust_quota, user_register  # noqa: E402
from billing.charges import reservations_open  # noqa: E402
from billing.groups import group_default, price_save  # noqa: E402
from billing.ledger import ledger_sum  # noqa: E402
from billing.models import LedgerEntry, LedgerReason, UsageLog  # noqa: E402
from relay.upstreams import upstream_save  # noqa: E402
from tests.fakes.openai_upstream import FakeOpenAI  # noqa: E402
from tests.processes import ServerProcesses  # noqa: E402
from tests.reliability.fault_servers import ResettingServer, refused_url  # noqa: E402
from tokens.services import token_create  # noqa: E402

KEY = "sk-soak-upstream"
MODEL = "gpt-4o"
# name: (behaviour of the fake, upstream fields); "url" picks a non-HTTP failure instead of a fake.
FAULTS = {
    "healthy-1": ({}, {}),
    "healthy-2": ({}, {}),
    "5xx": ({"status": 503}, {}),
    "429": ({"status": 429, "retry_after": 1}, {}),
    "slow headers": ({"delay_before_headers": 3}, {"first_byte_timeout": 1}),
    "invalid JSON": ({"raw_body": b'{"choices": [{"mess'}, {}),
    "stream cut": ({"cut_after_chunks": 2}, {}),
    "error mid-stream": ({"error_after_chunks": 2, "error_message": f"overloaded ({KEY})"}, {}),
    "never ends": ({"never_end": True, "chunk_delay_ms": 50}, {"total_timeout": 2}),
    "reset": ({"url": "reset"}, {}),
    "refused": ({"url": "refused"}, {}),
}


def _setup(stack: ExitStack) -> tuple[dict[int, str], str]:
    """The database, the faulty upstreams, and a funded key; returns upstream ids by fault name, and the key."""
    call_command("migrate", verbosity=0)
    price_save(model=MODEL, model_ratio=Decimal("1.25"), completion_ratio=Decimal(4))
    resetting = stack.enter_context(ResettingServer())
    names: dict[int, str] = {}
    for name, (behaviour, fields) in FAULTS.items():
        behaviour = dict(behaviour)
        kind = behaviour.pop("url", None)
        if kind:
            url = resetting.url if kind == "reset" else refused_url()
        else:
            fake = stack.enter_context(FakeOpenAI(api_key=KEY))
            fake.app.record = False  # hours of requests are not kept in memory
            fake.behave(MODEL, chunks=8, **behaviour)
            url = fake.url
        upstream = upstream_save(name=name, type="openai", base_url=url, keys=KEY, served_models=[MODEL],
                                 groups=[group_default().name], **{"first_byte_timeout": 5, **fields})
        names[upstream.pk] = name
    user = user_register(username=f"soak{random.randrange(10**6)}", password="soak-password-1")
    user_adjust_quota(user=user, amount=10**12)
    _token, key = token_create(user=user, name="soak", unlimited_quota=True)
    return names, key


def _client(urls: list[str], key: str, until: float, seen: collections.Counter, lock: threading.Lock) -> None:
    with httpx.Client(timeout=30) as http:
        while time.monotonic() < until:
            stream = random.random() < 0.5
            body = {"model": MODEL, "messages": [{"role": "user", "content": "soak"}], "stream": stream}
            try:
                r = http.post(random.choice(urls) + "/v1/chat/completions", json=body,
                              headers={"authorization": f"Bearer {key}"})
                if r.status_code != 200:
                    kind = f"{r.status_code} {r.json()['error'].get('code')}"
                elif stream and '"error"' in r.text:
                    kind = "200 stream ended by an error event"
                else:
                    kind = "200"
            except httpx.HTTPError as exc:
                kind = f"transport {type(exc).__name__}"
            with lock:
                seen[kind] += 1


def _books(requests: int) -> list[str]:
    """What does not balance (empty: the books are right)."""
    problems = []
    deadline = time.monotonic() + 60
    while reservations_open(older_than=timedelta(0)) and time.monotonic() < deadline:
        time.sleep(0.5)
    if reservations_open(older_than=timedelta(0)):
        problems.append("reservations left open")
    logs = UsageLog.objects.count()
    if logs != requests:
        problems.append(f"{logs} usage logs for {requests} requests")
    rows = collections.Counter(LedgerEntry.objects.filter(ref__startswith="req:").values_list("reason", flat=True))
    closing = rows[LedgerReason.SETTLE] + rows[LedgerReason.REFUND]
    if not rows[LedgerReason.RESERVE] == closing == requests:
        problems.append(f"{rows[LedgerReason.RESERVE]} reservations, {closing} closings for {requests} requests")
    logged = UsageLog.objects.aggregate(total=Sum("quota"))["total"] or 0
    charged = -(LedgerEntry.objects.filter(ref__startswith="req:").aggregate(total=Sum("amount"))["total"] or 0)
    if logged != charged:
        problems.append(f"logged quota {logged} != ledger's net charge {charged}")
    for user in django.contrib.auth.get_user_model().objects.all():
        if user.quota != ledger_sum(user_id=user.pk):
            problems.append(f"{user.username}: balance {user.quota} != ledger {ledger_sum(user_id=user.pk)}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    with ExitStack() as stack:
        names, key = _setup(stack)
        processes = stack.enter_context(ServerProcesses())
        env = {"UPSTREAM_FAILURES_TO_DISABLE": "1000000", "RELAY_CACHE_SECONDS": "30", "RELAY_DEFAULT_RPM": "0"}
        urls = [processes.start(**env)[0] for _ in range(2)]
        seen: collections.Counter = collections.Counter()
        lock = threading.Lock()
        until = time.monotonic() + args.seconds
        threads = [threading.Thread(target=_client, args=(urls, key, until, seen, lock)) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        requests = sum(seen.values())
        faults: collections.Counter = collections.Counter()
        for error, status, code in UsageLog.objects.exclude(error="").values_list("error", "status", "status_code"):
            for upstream_id, reason in re.findall(r"upstream #(\d+): ([^;)]+)", error):
                faults[f"{names.get(int(upstream_id), upstream_id)}: {reason}"] += 1
            if status == "error" and code == 200:  # the stream had begun: no failover possible
                faults[f"during the answer: {error.split(' (attempts')[0][:60]}"] += 1
        problems = _books(requests)
    print(f"Soak: {args.seconds:.0f} s, {args.clients} clients, 2 relay processes, {len(FAULTS)} upstreams "
          f"({len(FAULTS) - 2} faulty)\n")
    print(f"requests: {requests} ({requests / args.seconds:.1f}/s)\n\nfaults injected (from the usage logs):")
    for kind, count in faults.most_common():
        print(f"  {count:7d}  {kind}")
    print("\nwhat the clients got:")
    for kind, count in seen.most_common():
        print(f"  {count:7d}  {kind}")
    print("\nbooks: " + ("balanced" if not problems else "NOT BALANCED\n  " + "\n  ".join(problems)))
    print(json.dumps({"requests": requests, "faults": sum(faults.values()), "balanced": not problems}))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
