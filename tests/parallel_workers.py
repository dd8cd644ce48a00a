"""`make test` runs the suite in several pytest-xdist worker processes. Each gets its own test database (pytest-django
adds the worker's name) and, from this plugin, its own block of Redis databases: one worker's tests do not empty,
drain or publish into another's. Loaded with `-p` so it runs before Django reads REDIS_URL."""

from __future__ import annotations

import os
import re

REDIS_DATABASES_PER_WORKER = 16  # with-services.sh starts Redis with room for four workers


def _worker_index() -> int | None:
    match = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    return int(match.group(1)) if match else None


def _own_redis_block(url: str, index: int) -> str:
    base, _, database = url.rpartition("/")
    if not base.startswith("redis") or base.endswith("/"):  # redis://host:port without a database number
        base, database = url.rstrip("/"), "0"
    return f"{base}/{int(database or 0) + index * REDIS_DATABASES_PER_WORKER}"


index = _worker_index()
if index is not None and os.environ.get("REDIS_URL"):
    os.environ["REDIS_URL"] = _own_redis_block(os.environ["REDIS_URL"], index)
