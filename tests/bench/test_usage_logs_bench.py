"""The usage-log benchmark runs end to end on a small table and every query it times reads the log table through
an index (the figures themselves belong to the benchmark's output, not to tests)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings

from tests.processes import ROOT, database_url


@pytest.mark.django_db
def test_every_console_and_usage_query_uses_an_index():
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs PostgreSQL")
    result = subprocess.run([sys.executable, "bench/usage_logs.py", "--rows", "50000", "--repeat", "1"], cwd=ROOT,
                            env=dict(os.environ, DATABASE_URL=database_url()), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and not line.startswith("| query")]
    assert len(rows) == 14
    assert not [row for row in rows if "SEQ SCAN" in row or "(no log table scan)" in row], result.stdout
