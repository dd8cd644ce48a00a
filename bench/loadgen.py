"""A small closed-loop HTTP/1.1 load generator on raw asyncio streams, for the relay benchmark.

Each worker holds one keep-alive connection and sends the request again as soon as the previous answer has been read
in full (a closed loop for a bounded time; or `pause` seconds after it), or sends it once (`once`: many long streams
held open together). With `keys`, the requests take those keys in turn. httpx tops out far below what the servers
carry, so the client is kept to what HTTP/1.1 needs: a status line, headers, then a body framed by Content-Length or
chunked transfer encoding.

Run it in its own process (`run_in_process`) so it never competes with a server for one event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Iterator

import uvloop

STREAM_END = b"data: [DONE]"


@dataclass(frozen=True)
class Scenario:
    """One run: `concurrency` workers repeat the same POST for `seconds` after `warmup` seconds, or, with `once`,
    each sends it once (no warm-up), their starts spread evenly over `ramp` seconds."""

    host: str
    port: int
    path: str
    body: dict
    key: str = ""
    keys: tuple[str, ...] = ()  # if given, the requests take these keys in turn instead of `key`
    headers: dict[str, str] = field(default_factory=dict)
    concurrency: int = 1
    seconds: float = 5.0
    warmup: float = 0.5
    timeout: float = 30.0  # per request
    once: bool = False
    ramp: float = 0.0
    min_spread: float = 0.0  # streams: less than this between the first data frame and the end counts as buffered
    pause: float = 0.0  # seconds each worker waits after an answer before its next request

    @property
    def budget(self) -> float:
        """The longest a run may take, requests in flight at its end included."""
        return self.ramp + (0 if self.once else self.warmup + self.seconds) + self.timeout

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    def requests(self) -> list[bytes]:
        """The request, once for each key the scenario takes in turn."""
        return [self.request_bytes(key) for key in self.keys or (self.key,)]

    def request_bytes(self, key: str) -> bytes:
        payload = json.dumps(self.body, separators=(",", ":")).encode()
        head = [f"POST {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Content-Type: application/json",
                f"Content-Length: {len(payload)}", "Accept: */*"]
        if key:
            head.append(f"Authorization: Bearer {key}")
        head += [f"{name}: {value}" for name, value in self.headers.items()]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload


@dataclass
class Result:
    """What one run measured. Latencies and TTFBs are in milliseconds; warm-up requests are counted apart."""

    ok: int = 0
    errors: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    ttfbs: list[float] = field(default_factory=list)
    warmup_ok: int = 0
    warmup_errors: int = 0
    buffered: int = 0  # streams whose first data frame came less than `min_spread` before their end
    error_samples: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def p(self, q: float, values: list[float] | None = None) -> float | None:
        """The q-th percentile (nearest rank) of latencies, or of `values`."""
        data = sorted(self.latencies if values is None else values)
        if not data:
            return None
        return data[max(0, math.ceil(q / 100 * len(data)) - 1)]

    def summary(self) -> dict:
        """The numbers the report prints (small, so it crosses the process boundary cheaply)."""
        return {"ok": self.ok, "errors": self.errors, "rps": self.rps, "p50": self.p(50), "p90": self.p(90),
                "p99": self.p(99), "ttfb_p50": self.p(50, self.ttfbs), "ttfb_p99": self.p(99, self.ttfbs),
                "warmup_ok": self.warmup_ok, "warmup_errors": self.warmup_errors, "buffered": self.buffered,
                "elapsed": self.elapsed, "error_samples": self.error_samples[:3]}


class BadResponse(Exception):
    pass


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str],
                     started: float) -> tuple[bytes, float | None]:
    """The whole body and, for event streams, the time the first `data:` frame arrived (None otherwise)."""
    first: float | None = None
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        while True:
            size_line = await reader.readline()
            if not size_line:
                raise BadResponse("connection closed inside a chunked body")
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                break
            parts.append((await reader.readexactly(size + 2))[:-2])
            if first is None and b"data:" in parts[-1]:
                first = time.perf_counter() - started
        return b"".join(parts), first
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:  # no framing: the body runs to the end of the connection
        body = await reader.read()
    if b"data:" in body:
        first = time.perf_counter() - started
    return body, first


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes,
                   stream: bool) -> tuple[float, float | None, bool]:
    """Send one request and read its answer: (latency s, first data frame s or None, keep the connection)."""
    started = time.perf_counter()
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    if not status_line:
        raise BadResponse("connection closed before the status line")
    parts = status_line.split(None, 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n"):
        if not line:
            raise BadResponse("connection closed inside the headers")
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body, first = await _read_body(reader, headers, started)
    latency = time.perf_counter() - started
    if status != 200:
        raise BadResponse(f"HTTP {status}: {body[:200]!r}")
    if stream and STREAM_END not in body[-64:]:
        raise BadResponse(f"stream did not end with [DONE]: {body[-200:]!r}")
    if not stream and b'"choices"' not in body:
        raise BadResponse(f"no choices in the answer: {body[:200]!r}")
    framed = "content-length" in headers or "chunked" in headers.get("transfer-encoding", "").lower()
    return latency, first, framed and headers.get("connection", "").lower() != "close"


async def _worker(scenario: Scenario, requests: Iterator[bytes], measure_from: float, stop_at: float, result: Result,
                  delay: float = 0.0) -> None:
    reader = writer = None
    await asyncio.sleep(delay)
    sent = 0
    try:
        while (sent == 0) if scenario.once else (time.perf_counter() < stop_at):
            sent += 1
            measured = time.perf_counter() >= measure_from
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(scenario.host, scenario.port), scenario.timeout)  # sets TCP_NODELAY
                latency, first, keep = await asyncio.wait_for(
                    exchange(reader, writer, next(requests), scenario.stream), scenario.timeout)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, BadResponse, ValueError) as exc:
                if measured:
                    result.errors += 1
                else:
                    result.warmup_errors += 1
                if len(result.error_samples) < 10:
                    result.error_samples.append(f"{type(exc).__name__}: {exc}"[:300])
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.01)  # a refused connection must not spin
                continue
            if measured:
                result.ok += 1
                result.latencies.append(latency * 1000)
                if first is not None and scenario.stream:
                    result.ttfbs.append(first * 1000)
                    if latency - first < scenario.min_spread:
                        result.buffered += 1
            else:
                result.warmup_ok += 1
            if not keep:
                writer.close()
                reader = writer = None
            if scenario.pause:
                await asyncio.sleep(scenario.pause)
    finally:
        if writer is not None:
            writer.close()


async def run(scenario: Scenario) -> Result:
    """Drive the scenario on this event loop and return every measurement."""
    result = Result()
    requests = itertools.cycle(scenario.requests())  # shared by the workers: each request takes the next key
    begin = time.perf_counter()
    measure_from = begin + (0 if scenario.once else scenario.warmup)
    stop_at = measure_from + scenario.seconds
    step = scenario.ramp / scenario.concurrency
    await asyncio.gather(*(_worker(scenario, requests, measure_from, stop_at, result, delay=i * step)
                           for i in range(scenario.concurrency)))
    result.elapsed = time.perf_counter() - measure_from  # includes finishing the requests in flight at the end
    return result


def run_summary(scenario: Scenario) -> dict:
    """Entry point for the generator process."""
    return uvloop.run(run(scenario)).summary()  # uvloop: the generator's own CPU is a third lower, leaving more to the servers


class LoadProcess:
    """One spawned generator process, reused for scenario after scenario (runs never overlap)."""

    def __init__(self) -> None:
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        self._failed = False

    def run(self, scenario: Scenario) -> dict:
        try:
            return self._pool.submit(run_summary, scenario).result(timeout=scenario.budget + 30)
        except BaseException:
            self._failed = True
            raise

    def close(self) -> None:
        """Stop the process: politely after clean runs, killed after a failure or an overrun."""
        if self._failed:
            for process in list((self._pool._processes or {}).values()):  # no public handle on the workers
                if process.is_alive():
                    process.kill()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> LoadProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
