"""`make test` runs the suite in several pytest-xdist worker processes. Each gets its own test database (pytest-django
adds the worker's name) and, from this plugin, its own block of Redis databases: one worker's tests do not empty,
drain or publish into another's. Loaded with `-p` so it runs before Django reads REDIS_URL."""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

REDIS_DATABASES_PER_WORKER = 16
REDIS_DATABASES = 64  # as with-services.sh starts Redis: room for four workers


def _worker_index() -> int | None:
    """This worker's place among the workers (a worker xdist starts in place of a crashed one takes its place)."""
    match = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    if match is None:
        return None
    return int(match.group(1)) % max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1), 1)


def redis_url_moved(url: str, by: int) -> str:
    """`url` with its database number (0 when it names none) `by` higher."""
    parts = urlsplit(url)
    number = parts.path.strip("/") or "0"
    if not number.isdigit():
        raise SystemExit(f"REDIS_URL names database {number!r}; the test workers need a number")
    return urlunsplit(parts._replace(path=f"/{int(number) + by}"))


def own_redis_block(url: str, index: int) -> str:
    """`url` moved to the worker's block: its database number plus 16 per worker before it."""
    moved = redis_url_moved(url, index * REDIS_DATABASES_PER_WORKER)
    database = int(urlsplit(moved).path.strip("/"))
    if database + REDIS_DATABASES_PER_WORKER > REDIS_DATABASES:
        raise SystemExit(f"Redis database {database} and the {REDIS_DATABASES_PER_WORKER} after it do not fit in "
                         f"{REDIS_DATABASES}: run fewer workers (PYTEST_WORKERS)")
    return moved


index = _worker_index()
if index is not None and os.environ.get("REDIS_URL"):
    os.environ["REDIS_URL"] = own_redis_block(os.environ["REDIS_URL"], index)
