"""The relay benchmark runs end to end at a tiny size on the embedded setup, writes its report, and its books agree
(the figures themselves belong to the benchmark's output, not to tests)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.report import held_streams_check
from tests.processes import ROOT

RESULT_COLUMNS = ["scenario", "clients", "target", "req/s", "p50 ms", "p90 ms", "p99 ms", "TTFB p50 ms", "CPU ms/req",
                  "peak RSS MB", "errors", "req/s ÷ direct"]


def table(markdown: str, heading: str) -> list[dict[str, str]]:
    """The rows of the markdown table under `heading`, as dicts keyed by the header's cells."""
    lines = markdown.split(heading, 1)[1].splitlines()
    lines = lines[next(i for i, line in enumerate(lines) if line.startswith("|")):]
    table_lines = lines[:next((i for i, line in enumerate(lines) if not line.startswith("|")), len(lines))]
    header, _rule, *rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table_lines]
    return [dict(zip(header, row, strict=True)) for row in rows]


@pytest.mark.subprocess
def test_one_second_run_on_the_embedded_setup_reports_every_target_and_balanced_books(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    report_path = tmp_path / "report.md"

    done = subprocess.run(
        [sys.executable, "bench/relay.py", "--targets", "modelgate-sqlite", "--scenarios", "nonstream0",
         "--duration", "1", "--warmup", "0.2", "--prime", "0.5", "--concurrency", "2", "--markdown", str(report_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = report_path.read_text()
    assert report.strip() in done.stdout  # the file holds what was printed
    rows = table(report, "## Results")
    assert list(rows[0]) == RESULT_COLUMNS
    assert [(r["scenario"], r["clients"], r["target"]) for r in rows] == [
        ("nonstream0", "2", "direct"), ("nonstream0", "2", "modelgate-sqlite")]
    for row in rows:
        assert row["errors"] == "0"
        assert float(row["req/s"].replace(",", "")) > 0
        assert float(row["CPU ms/req"].replace(",", "")) >= 0
        assert float(row["peak RSS MB"].replace(",", "")) > 0
    assert rows[0]["req/s ÷ direct"] == "1.000"
    assert [r["target"] for r in table(report, "## Ratios to direct")] == ["modelgate-sqlite"]
    assert "### modelgate-sqlite" in report and "books: ok" in report and "MISMATCH" not in report


def test_held_streams_fail_when_one_is_lost_buffered_or_memory_grows_too_much():
    fine = {"ok": 10, "buffered": 0, "rss_growth_mb": 20.0}

    assert held_streams_check(fine, 10, 200) == (True, "ok")
    for broken, words in [({"ok": 9}, "did not complete"), ({"buffered": 1}, "buffered"),
                          ({"rss_growth_mb": 250.0}, "RSS grew")]:
        ok, verdict = held_streams_check({**fine, **broken}, 10, 200)
        assert not ok and words in verdict
