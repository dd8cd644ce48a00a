"""`make soak` starts: its script imports what it drives (servers, fakes) and reads its options. The soak itself runs
for minutes against throwaway services and is not part of the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_soak_script_imports_what_it_drives_and_reads_its_options():
    done = subprocess.run([sys.executable, "scripts/soak.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "The fault mix under load" in done.stdout and "--seconds" in done.stdout
