"""The benchmark's child processes: starting and stopping servers, and what they cost (CPU time and memory from /proc).

CPU and memory are read for a server's whole process tree (the process and every descendant alive at the time), so
a gateway that forks workers or is started through a launcher is measured whole.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


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
        popen.setdefault("cwd", ROOT)
        proc = subprocess.Popen(command, env=env, stderr=log, start_new_session=True, **popen)
        self.children.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        """Stop one child and its process group (launchers such as npx leave their server in it)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=10)
                return
            except subprocess.TimeoutExpired:
                continue

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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(procs: Processes, name: str, command: Callable[[int], list[str]], env: dict[str, str],
                 health_path: str, *, timeout: float = 60, **popen: object) -> tuple[subprocess.Popen, int]:
    """Start a server on a free port and wait until `health_path` answers 200; returns it and its port.

    The port is picked here and handed over, so a port taken in the moment between is possible: retried once."""
    for attempt in range(2):
        port = free_port()
        proc = procs.start(f"{name}-{attempt}", command(port), env, **popen)
        if answers([proc], port, health_path, timeout):
            return proc, port
        if proc.poll() is None:
            procs.stop(proc)
            break
    raise RuntimeError(f"{name} did not answer on {health_path}:\n{procs.log_tail(f'{name}-{attempt}')}")


def start_servers_on_sockets(procs: Processes, name: str, listeners: list[socket.socket], commands: list[list[str]],
                             env: dict[str, str], health_path: str, *, timeout: float = 60) -> list[subprocess.Popen]:
    """Start servers each accepting on its own listening socket of one port (each inherits its own), close this
    process's copies, and wait until `health_path` answers 200 with every server still running."""
    port = listeners[0].getsockname()[1]
    servers = [procs.start(f"{name}-{index}", command, env, pass_fds=[listener.fileno()])
               for index, (command, listener) in enumerate(zip(commands, listeners))]
    for listener in listeners:
        listener.close()
    if answers(servers, port, health_path, timeout):
        return servers
    for server in servers:
        procs.stop(server)
    logs = "\n".join(procs.log_tail(f"{name}-{index}") for index in range(len(servers)))
    raise RuntimeError(f"{name} did not answer on {health_path}:\n{logs}")


def answers(servers: list[subprocess.Popen], port: int, health_path: str, timeout: float) -> bool:
    """Whether `health_path` on the port answers 200 within `timeout` while none of the servers has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and all(server.poll() is None for server in servers):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{health_path}", timeout=2) as response:
                if response.status == 200:
                    return True
        except (OSError, urllib.error.URLError):
            time.sleep(0.2)
    return False


# ---- what a process tree costs -----------------------------------------------------------------------------------

def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 on (after the command name, which may hold spaces), or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


def process_tree(roots: list[int]) -> list[int]:
    """The roots and all their live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], [pid for pid in roots if Path(f"/proc/{pid}").exists()]
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system time of these processes, with their reaped children's (utime, stime, cutime, cstime)."""
    ticks = 0
    for pid in pids:
        if (fields := _stat_fields(pid)) is not None:
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / CLOCK_TICKS


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of these processes, added up (shared pages count once per process)."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
        except (OSError, IndexError, ValueError):
            pass
    return total


@contextmanager
def paused(roots: list[int]) -> Iterator[None]:
    """These process trees stopped (SIGSTOP) for the block and continued after, whatever happened: while one target
    is measured, the others' background work (Modelgate's caches kept warm, about 3% of a core per idle process)
    takes no CPU from it."""
    stopped = []
    try:
        for pid in process_tree(roots):
            stopped.append(pid)  # before the signal: an interruption between the two still continues it
            try:
                os.kill(pid, signal.SIGSTOP)
            except OSError:  # gone meanwhile
                pass
        yield
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass


class Meter:
    """CPU time and sampled peak RSS of a process tree over a `with` block (RSS every `interval` seconds)."""

    def __init__(self, roots: list[int], interval: float = 0.1) -> None:
        self.roots = roots
        self.interval = interval
        self.cpu = 0.0
        self.start_rss = self.peak_rss = 0
        self._cpu_before = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True, name="bench-meter")

    def _sample(self) -> None:
        pids = process_tree(self.roots)
        rescan = time.monotonic() + 1
        while not self._stop.wait(self.interval):
            if time.monotonic() > rescan:  # children come and go rarely: look for them once a second
                pids, rescan = process_tree(self.roots), time.monotonic() + 1
            self.peak_rss = max(self.peak_rss, rss_bytes(pids))

    def __enter__(self) -> Meter:
        pids = process_tree(self.roots)
        self._cpu_before = cpu_seconds(pids)
        self.start_rss = self.peak_rss = rss_bytes(pids)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        pids = process_tree(self.roots)
        self.peak_rss = max(self.peak_rss, rss_bytes(pids))
        self.cpu = cpu_seconds(pids) - self._cpu_before
