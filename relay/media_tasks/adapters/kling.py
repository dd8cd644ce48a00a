"""Kling's official API: a JWT signed with the secret key, text2video / image2video, one query per task
(protocols.md 9.2). Upstream keys are `access_key|secret_key`."""

from __future__ import annotations

import base64
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
    fetch_each,
    message_of,
    seconds_of,
    submit_json,
    task_id_of,
)
from relay.media_tasks.models import TaskKind, TaskStatus
from relay.media_tasks.signing import key_pair, kling_token
from relay.protocols.untrusted import as_dict, as_list
from relay.snapshots import UpstreamInfo

STATUS = {"submitted": (TaskStatus.SUBMITTED, 10), "processing": (TaskStatus.IN_PROGRESS, 50),
          "succeed": (TaskStatus.SUCCESS, 100), "failed": (TaskStatus.FAILURE, 100)}
PASSED = ("negative_prompt", "cfg_scale", "mode", "aspect_ratio", "camera_control", "image_tail", "static_mask",
          "dynamic_masks", "sound")


def _headers(key: str) -> dict[str, str]:
    access, secret = key_pair(key)
    return {"authorization": f"Bearer {kling_token(access, secret)}"}


def kling_body(call: TaskCall) -> dict[str, Any]:
    body: dict[str, Any] = {"model_name": call.model, "prompt": call.body.get("prompt", ""),
                            "duration": str(int(call.body.get("seconds") or 5)), "external_task_id": call.public_id}
    for name in PASSED:
        if name in call.body:
            body[name] = call.body[name]
    image = call.body.get("image")
    if not image and call.files:  # Kling takes raw base64 without the data: prefix
        image = base64.b64encode(call.files[0].data).decode()
    if image:
        body["image"] = image.split(",", 1)[1] if image.startswith("data:") else image
    body.update(call.body.get("metadata") or {})
    return body


def snapshot_of(data: dict[str, Any]) -> Snapshot:
    status, progress = STATUS.get(str(data.get("task_status") or ""), (TaskStatus.IN_PROGRESS, 50))
    videos = as_list(as_dict(data.get("task_result")).get("videos"))
    first = videos[0] if videos and isinstance(videos[0], dict) else {}
    return Snapshot(status=status, progress=progress, result_url=str(first.get("url") or ""),
                    result={"videos": videos}, seconds=seconds_of(first.get("duration")),
                    fail_reason=str(data.get("task_status_msg") or "") if status == TaskStatus.FAILURE else "")


class KlingAdapter(TaskAdapter):
    kinds = frozenset({TaskKind.VIDEO})

    async def submit(self, client: httpx.AsyncClient, call: TaskCall) -> Submitted:
        url = f"{call.upstream.base_url}/v1/videos/{call.operation}"
        status, data = await submit_json(client, call.upstream, "POST", url, headers=_headers(call.key),
                                         key=call.key, body=kling_body(call))
        if isinstance(data, dict) and data.get("code") == 0 and isinstance(data.get("data"), dict):
            return Submitted(task_id_of(data["data"].get("task_id"), "Kling"))
        code = data.get("code") if isinstance(data, dict) else None
        # 1100-1103: this account is out of balance or resources; 5000+: Kling's own failures
        retry = isinstance(code, int) and (1100 <= code < 1200 or code >= 5000)
        raise SubmitRefused(message_of(data), status=400 if status < 500 else 502, code=code, retry=retry)

    async def fetch(self, client: httpx.AsyncClient, upstream: UpstreamInfo, key: str,
                    refs: list[TaskRef]) -> dict[str, Snapshot]:
        async def one(ref: TaskRef) -> Snapshot | None:
            url = f"{upstream.base_url}/v1/videos/{ref.operation}/{ref.upstream_task_id}"
            status, data = await call_json(client, upstream, "GET", url, headers=_headers(key), key=key)
            if status == 200 and isinstance(data, dict) and data.get("code") == 0:
                return snapshot_of(as_dict(data.get("data")))
            if status == 404 or (isinstance(data, dict) and data.get("code") not in (None, 0) and status < 500):
                return Snapshot(TaskStatus.FAILURE, 100, fail_reason=message_of(data))
            return None

        return await fetch_each(refs, one)
