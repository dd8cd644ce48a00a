"""While one target is measured the others are stopped, and they are always continued afterwards."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.processes import paused
from bench.relay import Route, Target


def state(pid: int) -> str:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2]


def wait_for(pid: int, wanted: str) -> str:
    deadline = time.monotonic() + 5
    while (now := state(pid)) != wanted and time.monotonic() < deadline:
        time.sleep(0.01)
    return now


@pytest.fixture
def family():
    """A process with a child of its own (a gateway started through a launcher)."""
    parent = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                               "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
                               "print(flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
    parent.stdout.readline()
    from bench.processes import process_tree

    deadline = time.monotonic() + 5
    while len(tree := process_tree([parent.pid])) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    yield tree
    for pid in reversed(tree):
        subprocess.run(["kill", "-CONT", str(pid)], check=False)
        subprocess.run(["kill", "-KILL", str(pid)], check=False)
    parent.wait(timeout=5)
    parent.stdout.close()


@pytest.mark.subprocess
def test_a_paused_tree_is_stopped_inside_the_block_and_continued_after_it(family):
    assert len(family) == 2
    with paused(family[:1]):
        assert [wait_for(pid, "T") for pid in family] == ["T", "T"]
    assert [wait_for(pid, "S") for pid in family] == ["S", "S"]


@pytest.mark.subprocess
def test_a_failure_inside_the_block_still_continues_them(family):
    with pytest.raises(RuntimeError), paused(family[:1]):
        raise RuntimeError("a run failed")
    assert [wait_for(pid, "S") for pid in family] == ["S", "S"]


def test_the_direct_upstreams_fakes_are_never_paused():
    direct = Target("direct", "", {"fast": Route(1, "m", [101]), "lat50": Route(2, "m", [102])})
    gateway = Target("modelgate-pg", "k", {"fast": Route(3, "m", [7, 8]), "lat50": Route(3, "m", [8, 7])})

    assert direct.servers() == [] and gateway.servers() == [7, 8]
