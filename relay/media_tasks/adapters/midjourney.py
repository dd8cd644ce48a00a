"""midjourney-proxy (and Plus): `mj-api-secret` auth, `{code, description, result}` submits, batch fetch by ids.

Protocol: protocols.md section 7. Codes 1, 21 and 22 are accepted submits; 21 for INPAINT and CUSTOM_ZOOM asks for
the modal step and is passed on as 21.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from relay.media_tasks.adapters.base import (
    Snapshot,
    SubmitRefused,
    Submitted,
    TaskAdapter,
    TaskCall,
    TaskRef,
    call_json,
    progress_of,
    submit_json,
    task_id_of,
)
from relay.media_tasks.models import TaskKind, TaskStatus
from relay.snapshots import UpstreamInfo

ACCEPTED = {1, 21, 22}
MODAL_ACTIONS = {"INPAINT", "CUSTOM_ZOOM"}
RETRY_CODES = {3, 23}  # no usable account instance, queue full: another proxy may take it
STATUS = {"NOT_START": TaskStatus.NOT_START, "SUBMITTED": TaskStatus.SUBMITTED, "MODAL": TaskStatus.SUBMITTED,
          "IN_PROGRESS": TaskStatus.IN_PROGRESS, "SUCCESS": TaskStatus.SUCCESS, "FAILURE": TaskStatus.FAILURE,
          "FAILED": TaskStatus.FAILURE, "CANCEL": TaskStatus.FAILURE}
PATHS = {"swap_face": "/mj/insight-face/swap"}  # submits not under /mj/submit/
FETCH_CHUNK = 100
KEPT_FIELDS = ("action", "customId", "botType", "prompt", "promptEn", "description", "imageUrl", "buttons",
               "properties", "failReason")


def _headers(key: str) -> dict[str, str]:
    return {"mj-api-secret": key} if key else {}


def status_of(value: Any) -> str:
    return STATUS.get(str(value or "").upper(), TaskStatus.IN_PROGRESS)


def snapshot_of(task: dict[str, Any]) -> Snapshot:
    status = status_of(task.get("status"))
    return Snapshot(
        status=status, progress=progress_of(task.get("progress"), status), result_url=str(task.get("imageUrl") or ""),
        result={k: task[k] for k in KEPT_FIELDS if k in task},
        fail_reason=str(task.get("failReason") or "") if status == TaskStatus.FAILURE else "",
    )


class MidjourneyAdapter(TaskAdapter):
    kinds = frozenset({TaskKind.MIDJOURNEY})

    async def submit(self, client: httpx.AsyncClient, call: TaskCall) -> Submitted:
        url = call.upstream.base_url + PATHS.get(call.operation, f"/mj/submit/{call.operation}")
        status, data = await submit_json(client, call.upstream, "POST", url, headers=_headers(call.key), key=call.key,
                                         body=call.body)
        if not isinstance(data, dict):
            raise SubmitRefused(f"The Midjourney proxy answered HTTP {status} without JSON.", code=9, retry=True)
        code = data.get("code") if isinstance(data.get("code"), (int, str)) else None
        if call.action == "UPLOAD" and code == 1 and isinstance(data.get("result"), list):
            urls = [str(url) for url in data["result"]]
            return Submitted("", done=Snapshot(TaskStatus.SUCCESS, 100, result_url=urls[0] if urls else "",
                                               result={"urls": urls}))
        if code in ACCEPTED and isinstance(data.get("result"), (str, int)) and data["result"] != "":
            reply = 21 if code == 21 and call.action in MODAL_ACTIONS else 1
            properties = data.get("properties") if isinstance(data.get("properties"), dict) else {}
            return Submitted(task_id_of(data["result"], "The Midjourney proxy"), properties=properties, code=reply)
        description = str(data.get("description") or f"refused with code {code}")
        raise SubmitRefused(description, status=400 if status < 500 else 502, code=code if isinstance(code, int) else 9,
                            retry=code in RETRY_CODES, body=data)

    async def fetch(self, client: httpx.AsyncClient, upstream: UpstreamInfo, key: str,
                    refs: list[TaskRef]) -> dict[str, Snapshot]:
        found: dict[str, Snapshot] = {}
        ids = [ref.upstream_task_id for ref in refs]
        for start in range(0, len(ids), FETCH_CHUNK):
            status, data = await call_json(client, upstream, "POST", f"{upstream.base_url}/mj/task/list-by-condition",
                                           headers=_headers(key), key=key,
                                           body={"ids": ids[start:start + FETCH_CHUNK]})
            if status != 200 or not isinstance(data, list):
                raise httpx.HTTPError(f"list-by-condition answered HTTP {status}")
            for task in data:
                if isinstance(task, dict) and task.get("id"):
                    found[str(task["id"])] = snapshot_of(task)
        return found

    async def image_seed(self, client: httpx.AsyncClient, upstream: UpstreamInfo, key: str,
                         upstream_task_id: str) -> tuple[int, Any]:
        """The proxy's `{code, description, result: "<seed>"}` for a task it ran."""
        url = f"{upstream.base_url}/mj/task/{quote(upstream_task_id, safe='')}/image-seed"
        return await call_json(client, upstream, "GET", url, headers=_headers(key), key=key)
