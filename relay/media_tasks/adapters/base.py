"""The task-adapter interface: submit a generation, fetch many, normalise each upstream's status to ours."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from relay.media_tasks.models import MediaTask, TaskStatus
from relay.media_tasks.storable import storable_text
from relay.overrides import headers_with_overrides
from relay.snapshots import UpstreamInfo

TASK_ID_MAX = MediaTask._meta.get_field("upstream_task_id").max_length


@dataclass(frozen=True)
class Upload:
    """A file sent along with a submit (a reference image), passed to upstreams that take files."""

    name: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class TaskCall:
    """One submit attempt at one upstream. `body` holds the client's fields after intake, in the client's names."""

    upstream: UpstreamInfo
    key: str
    kind: str
    action: str
    operation: str  # the protocol's own verb: Midjourney's "imagine", Suno's "music", video's "text2video"
    model: str  # the upstream's model name
    body: dict[str, Any]
    public_id: str
    files: list[Upload] = field(default_factory=list)


@dataclass(frozen=True)
class TaskRef:
    """A submitted task, as a fetch needs it."""

    upstream_task_id: str
    kind: str
    action: str
    operation: str
    model: str
    request: dict[str, Any]
    submitted_ts: float


@dataclass
class Submitted:
    upstream_task_id: str
    properties: dict[str, Any] = field(default_factory=dict)
    code: int = 1  # Midjourney's reply code: 1, or 21 when a modal step must follow
    done: Snapshot | None = None  # the upstream finished it in its answer: nothing to poll


@dataclass
class Snapshot:
    """What the upstream says about one task, normalised."""

    status: str
    progress: int = 0
    result_url: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    fail_reason: str = ""
    seconds: Decimal | None = None  # the delivered duration, when the upstream reports it


class SubmitRefused(Exception):
    """The upstream did not take the task. `retry`: another upstream may; `code`: the protocol's own code."""

    def __init__(self, message: str, *, status: int = 502, code: Any = None, retry: bool = False,
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message, self.status, self.code, self.retry, self.body = message, status, code, retry, body


class TaskAdapter:
    """One upstream family. `fetch` returns snapshots by upstream task id; ids it cannot see are left out."""

    kinds: frozenset[str] = frozenset()
    remixes = False  # takes `remix` submits of a video it made (OpenAI's /v1/videos/{id}/remix)

    async def submit(self, client: httpx.AsyncClient, call: TaskCall) -> Submitted:
        raise NotImplementedError

    async def fetch(self, client: httpx.AsyncClient, upstream: UpstreamInfo, key: str,
                    refs: list[TaskRef]) -> dict[str, Snapshot]:
        raise NotImplementedError


def timeout_of(upstream: UpstreamInfo) -> httpx.Timeout:
    return httpx.Timeout(connect=upstream.connect_timeout, read=upstream.first_byte_timeout,
                         write=upstream.first_byte_timeout, pool=upstream.connect_timeout)


def progress_of(value: Any, status: str) -> int:
    """"45%", 45 or 0.45 as a whole percentage; 100 once succeeded."""
    if status == TaskStatus.SUCCESS:
        return 100
    if isinstance(value, str):
        value = value.strip().rstrip("%") or "0"
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return 0
    if number != number:  # NaN
        return 0
    if 0 < number < 1 and not isinstance(value, str):
        number *= 100
    return int(max(0.0, min(100.0, number)))


def task_id_of(value: Any, upstream: str) -> str:
    """The task id an accepting answer names; an answer naming none (or an object, or an id too long to keep) did not
    accept the task."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise SubmitRefused(f"{upstream} answered without a task id.", retry=True)
    text = str(value)
    if len(text) > TASK_ID_MAX or not storable_text(text):
        raise SubmitRefused(f"{upstream} answered with a task id that cannot be kept.", retry=True)
    return text


def seconds_of(value: Any) -> Decimal | None:
    try:
        seconds = Decimal(str(value))
    except ArithmeticError:
        return None
    return seconds if seconds.is_finite() and seconds > 0 else None


async def call_json(client: httpx.AsyncClient, upstream: UpstreamInfo, method: str, url: str, *,
                    headers: dict[str, str], key: str = "", body: Any = None,
                    content: bytes | None = None) -> tuple[int, Any]:
    """Send one request (a JSON `body` or raw `content`, with the upstream's header overrides, `{api_key}` being
    `key`) and read its JSON answer (None when it is not JSON). Transport errors propagate."""
    headers = headers_with_overrides(headers, upstream.header_override, key)
    kwargs: dict[str, Any] = {"headers": headers, "timeout": timeout_of(upstream)}
    if content is not None:
        kwargs["content"] = content
    elif body is not None:
        kwargs["json"] = body
    response = await client.request(method, url, **kwargs)
    return response.status_code, json_or_none(response.content)


def json_or_none(content: bytes) -> Any:
    """An answer's JSON; None when it is empty, not JSON, or nested past what the parser takes."""
    try:
        return json.loads(content) if content else None
    except (ValueError, RecursionError):
        return None


async def submit_json(client: httpx.AsyncClient, upstream: UpstreamInfo, method: str, url: str, *,
                      headers: dict[str, str], **kwargs: Any) -> tuple[int, Any]:
    """`call_json` for a submit: an unreachable upstream or a 429/5xx is a refusal another upstream may take."""
    try:
        status, data = await call_json(client, upstream, method, url, headers=headers, **kwargs)
    except httpx.HTTPError as exc:
        raise SubmitRefused(f"The upstream could not be reached: {type(exc).__name__}", retry=True) from None
    if status == 429 or status >= 500:
        raise SubmitRefused(f"The upstream answered HTTP {status}: {message_of(data)}", retry=True)
    return status, data


def message_of(data: Any) -> str:
    """The human message in an upstream error body, whatever its shape."""
    if isinstance(data, dict):
        for key in ("message", "description", "msg", "error", "detail", "fail_reason"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("msg")
            if isinstance(value, str) and value:
                return value[:500]
    return "no details" if data is None else str(data)[:500]


async def fetch_each(refs: list[TaskRef], one: Any, limit: int = 8) -> dict[str, Snapshot]:
    """Fetch tasks one request each (upstreams without a batch query), at most `limit` at a time. A task whose
    request fails is left out; it is asked again at the next poll."""
    gate = asyncio.Semaphore(limit)
    found: dict[str, Snapshot] = {}

    async def run(ref: TaskRef) -> None:
        async with gate:
            try:
                snapshot = await one(ref)
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                return
            if snapshot is not None:
                found[ref.upstream_task_id] = snapshot

    await asyncio.gather(*(run(ref) for ref in refs))
    return found
