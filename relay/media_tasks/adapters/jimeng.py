"""Jimeng on Volcengine's visual API: V4-signed `CVSync2AsyncSubmitTask` / `CVSync2AsyncGetResult` (protocols.md 9.3).

Keys are `access_key|secret_key`. The model's upstream name is the `req_key` when it looks like one; otherwise the
text-to-video or image-to-video default below. Status values beyond `in_queue` and `done` come from Volcengine's
docs only and are unverified.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from relay.media_tasks.adapters.base import (
    Snapshot,
    SubmitRefused,
    Submitted,
    TaskAdapter,
    TaskCall,
    TaskRef,
    fetch_each,
    json_or_none,
    message_of,
    submit_json,
    task_id_of,
    timeout_of,
)
from relay.media_tasks.models import TaskKind, TaskStatus
from relay.media_tasks.signing import key_pair, volc_sign
from relay.protocols.untrusted import as_dict
from relay.snapshots import UpstreamInfo

SUBMIT = "/?Action=CVSync2AsyncSubmitTask&Version=2022-08-31"
RESULT = "/?Action=CVSync2AsyncGetResult&Version=2022-08-31"
OK = 10000
TEXT_TO_VIDEO, IMAGE_TO_VIDEO = "jimeng_vgfm_t2v_l20", "jimeng_vgfm_i2v_l20"
STATUS = {"in_queue": (TaskStatus.SUBMITTED, 10), "generating": (TaskStatus.IN_PROGRESS, 50),
          "done": (TaskStatus.SUCCESS, 100), "not_found": (TaskStatus.FAILURE, 100),
          "expired": (TaskStatus.FAILURE, 100)}


def req_key_of(model: str, operation: str) -> str:
    if model.startswith("jimeng_"):
        return model
    return IMAGE_TO_VIDEO if operation == "image2video" else TEXT_TO_VIDEO


def jimeng_body(call: TaskCall) -> dict[str, Any]:
    body: dict[str, Any] = {"req_key": req_key_of(call.model, call.operation), "prompt": call.body.get("prompt", ""),
                            "seed": -1, "frames": 241 if int(call.body.get("seconds") or 5) >= 10 else 121}
    if call.body.get("aspect_ratio"):
        body["aspect_ratio"] = call.body["aspect_ratio"]
    if call.body.get("image"):
        body["image_urls"] = [call.body["image"]]
    elif call.files:
        body["binary_data_base64"] = [base64.b64encode(f.data).decode() for f in call.files]
    body.update(call.body.get("metadata") or {})
    return body


async def _signed(client: httpx.AsyncClient, upstream: UpstreamInfo, key: str, path: str,
                  body: dict[str, Any]) -> httpx.Response:
    url = upstream.base_url + path
    raw = json.dumps(body, separators=(",", ":")).encode()
    access, secret = key_pair(key)
    headers = volc_sign("POST", url, raw, access, secret)
    return await client.post(url, content=raw, headers=headers, timeout=timeout_of(upstream))


def snapshot_of(data: dict[str, Any]) -> Snapshot:
    if data.get("code") != OK:
        return Snapshot(TaskStatus.FAILURE, 100, fail_reason=message_of(data))
    inner = data.get("data") if isinstance(data.get("data"), dict) else {}
    status, progress = STATUS.get(str(inner.get("status") or ""), (TaskStatus.IN_PROGRESS, 50))
    reason = f"Jimeng task {inner.get('status')}" if status == TaskStatus.FAILURE else ""
    return Snapshot(status=status, progress=progress, result_url=str(inner.get("video_url") or ""),
                    result={"video_url": inner.get("video_url") or ""}, fail_reason=reason)


class JimengAdapter(TaskAdapter):
    kinds = frozenset({TaskKind.VIDEO})

    async def submit(self, client: httpx.AsyncClient, call: TaskCall) -> Submitted:
        body = jimeng_body(call)
        raw = json.dumps(body, separators=(",", ":")).encode()
        access, secret = key_pair(call.key)
        url = call.upstream.base_url + SUBMIT
        status, data = await submit_json(client, call.upstream, "POST", url, content=raw,
                                         headers=volc_sign("POST", url, raw, access, secret), key=call.key)
        if isinstance(data, dict) and data.get("code") == OK and isinstance(data.get("data"), dict):
            return Submitted(task_id_of(data["data"].get("task_id"), "Jimeng"), properties={"req_key": body["req_key"]})
        raise SubmitRefused(message_of(data), status=400 if status < 500 else 502,
                            code=data.get("code") if isinstance(data, dict) else None)

    async def fetch(self, client: httpx.AsyncClient, upstream: UpstreamInfo, key: str,
                    refs: list[TaskRef]) -> dict[str, Snapshot]:
        async def one(ref: TaskRef) -> Snapshot | None:
            metadata = ref.request.get("metadata") if isinstance(ref.request.get("metadata"), dict) else {}
            req_key = metadata.get("req_key") or req_key_of(ref.model, ref.operation)
            response = await _signed(client, upstream, key, RESULT, {"req_key": req_key,
                                                                     "task_id": ref.upstream_task_id})
            if response.status_code >= 500 or response.status_code == 429:
                return None
            return snapshot_of(as_dict(json_or_none(response.content)))

        return await fetch_each(refs, one)
