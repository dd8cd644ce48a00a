"""The Suno-API server: `{code: "success", data}` envelopes, Bearer auth, batch fetch by ids (protocols.md 8).

Music submits pass the client's Suno fields through; audio tasks become an instrumental in description mode.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from relay.media_tasks.adapters.base import (
    Snapshot,
    SubmitRefused,
    Submitted,
    TaskAdapter,
    TaskCall,
    TaskRef,
    call_json,
    message_of,
    progress_of,
    seconds_of,
    submit_json,
    task_id_of,
)
from relay.media_tasks.models import TaskKind, TaskStatus
from relay.protocols.untrusted import as_dict
from relay.snapshots import UpstreamInfo

STATUS = {"NOT_START": TaskStatus.NOT_START, "SUBMITTED": TaskStatus.SUBMITTED, "QUEUED": TaskStatus.SUBMITTED,
          "IN_PROGRESS": TaskStatus.IN_PROGRESS, "SUCCESS": TaskStatus.SUCCESS, "FAILURE": TaskStatus.FAILURE}
MUSIC_FIELDS = ("prompt", "tags", "title", "mv", "make_instrumental", "gpt_description_prompt", "task_id",
                "continue_clip_id", "continue_at", "negative_tags")
FETCH_CHUNK = 100


def _headers(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if key else {}


def music_body(call: TaskCall) -> dict[str, Any]:
    if call.operation == "lyrics":
        return {"prompt": call.body.get("prompt", "")}
    if call.kind == TaskKind.AUDIO:
        return {"gpt_description_prompt": call.body.get("prompt", ""), "make_instrumental": True, "prompt": ""}
    body = {k: call.body[k] for k in MUSIC_FIELDS if k in call.body}
    if "mv" not in body and call.model.startswith("chirp"):
        body["mv"] = call.model
    return body


def snapshot_of(task: dict[str, Any]) -> Snapshot:
    status = STATUS.get(str(task.get("status") or "").upper(), TaskStatus.IN_PROGRESS)
    data = task.get("data")
    clips = [c for c in data if isinstance(c, dict)] if isinstance(data, list) else []
    url = next((str(c.get("audio_url")) for c in clips if c.get("audio_url")), "")
    durations = [seconds_of(as_dict(c.get("metadata")).get("duration")) for c in clips]
    seconds = max((d for d in durations if d is not None), default=None)
    return Snapshot(status=status, progress=progress_of(task.get("progress"), status), result_url=url,
                    result={"data": data}, fail_reason=str(task.get("fail_reason") or ""),
                    seconds=Decimal(seconds) if seconds is not None else None)


class SunoAdapter(TaskAdapter):
    kinds = frozenset({TaskKind.MUSIC, TaskKind.AUDIO})

    async def submit(self, client: httpx.AsyncClient, call: TaskCall) -> Submitted:
        operation = "lyrics" if call.operation == "lyrics" else "music"
        status, data = await submit_json(client, call.upstream, "POST",
                                         f"{call.upstream.base_url}/suno/submit/{operation}",
                                         headers=_headers(call.key), key=call.key, body=music_body(call))
        if status == 200 and isinstance(data, dict) and data.get("code") == "success" and data.get("data"):
            return Submitted(task_id_of(data["data"], "Suno"))
        code = data.get("code") if isinstance(data, dict) and isinstance(data.get("code"), str) else "upstream_error"
        raise SubmitRefused(message_of(data), status=400 if status < 500 else 502, code=code)

    async def fetch(self, client: httpx.AsyncClient, upstream: UpstreamInfo, key: str,
                    refs: list[TaskRef]) -> dict[str, Snapshot]:
        found: dict[str, Snapshot] = {}
        ids = [ref.upstream_task_id for ref in refs]
        for start in range(0, len(ids), FETCH_CHUNK):
            status, data = await call_json(client, upstream, "POST", f"{upstream.base_url}/suno/fetch",
                                           headers=_headers(key), key=key,
                                           body={"ids": ids[start:start + FETCH_CHUNK]})
            if status != 200 or not isinstance(data, dict) or not isinstance(data.get("data"), list):
                raise httpx.HTTPError(f"suno fetch answered HTTP {status}")
            for task in data["data"]:
                if isinstance(task, dict) and task.get("task_id"):
                    found[str(task["task_id"])] = snapshot_of(task)
        return found
