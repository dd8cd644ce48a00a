"""OpenAI's videos API (Sora) on OpenAI-compatible upstreams: multipart create, one GET per task, content by id
(protocols.md 9.4). The finished file is fetched through the relay, since it needs the upstream's key."""

from __future__ import annotations

import uuid
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
    Upload,
    call_json,
    fetch_each,
    message_of,
    progress_of,
    seconds_of,
    submit_json,
    task_id_of,
)
from relay.media_tasks.models import TaskKind, TaskStatus
from relay.snapshots import UpstreamInfo

STATUS = {"queued": TaskStatus.SUBMITTED, "in_progress": TaskStatus.IN_PROGRESS, "completed": TaskStatus.SUCCESS,
          "failed": TaskStatus.FAILURE}


def _base(upstream: UpstreamInfo) -> str:
    return f"{upstream.base_url}{upstream.provider.api_prefix}/videos"


def _headers(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def multipart_encode(fields: dict[str, str], files: list[Upload]) -> tuple[bytes, str]:
    """A multipart/form-data body (the videos API takes no JSON), and its content type."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for upload in files:
        filename = upload.filename.replace('"', "")
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{upload.name}"; filename="{filename}"\r\n'
                     f'Content-Type: {upload.content_type or "application/octet-stream"}\r\n\r\n'.encode()
                     + upload.data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def snapshot_of(video: dict[str, Any]) -> Snapshot:
    status = STATUS.get(str(video.get("status") or ""), TaskStatus.IN_PROGRESS)
    error = video.get("error") if isinstance(video.get("error"), dict) else {}
    kept = {k: video[k] for k in ("id", "seconds", "size", "expires_at") if k in video}
    return Snapshot(status=status, progress=progress_of(video.get("progress"), status), result=kept,
                    seconds=seconds_of(video.get("seconds")) if status == TaskStatus.SUCCESS else None,
                    fail_reason=str(error.get("message") or "") if status == TaskStatus.FAILURE else "")


def _submitted(status: int, data: Any) -> Submitted:
    if status == 200 and isinstance(data, dict) and data.get("id"):
        return Submitted(task_id_of(data["id"], "The video upstream"))
    error = data.get("error") if isinstance(data, dict) and isinstance(data.get("error"), dict) else {}
    raise SubmitRefused(message_of(data), status=400 if status < 500 else 502, code=error.get("code"))


class OpenAIVideosAdapter(TaskAdapter):
    kinds = frozenset({TaskKind.VIDEO})
    remixes = True

    async def submit(self, client: httpx.AsyncClient, call: TaskCall) -> Submitted:
        if call.action == "remix":  # JSON, to the video being remixed (its upstream id)
            url = f"{_base(call.upstream)}/{quote(str(call.body['video_id']), safe='')}/remix"
            status, data = await submit_json(client, call.upstream, "POST", url, body={"prompt": call.body["prompt"]},
                                             headers=_headers(call.key), key=call.key)
            return _submitted(status, data)
        fields = {"prompt": call.body.get("prompt", ""), "model": call.model,
                  "seconds": str(int(call.body.get("seconds") or 4))}
        if call.body.get("size"):
            fields["size"] = call.body["size"]
        body, content_type = multipart_encode(fields, call.files)
        status, data = await submit_json(client, call.upstream, "POST", _base(call.upstream), content=body,
                                         headers={**_headers(call.key), "content-type": content_type}, key=call.key)
        return _submitted(status, data)

    async def fetch(self, client: httpx.AsyncClient, upstream: UpstreamInfo, key: str,
                    refs: list[TaskRef]) -> dict[str, Snapshot]:
        async def one(ref: TaskRef) -> Snapshot | None:
            status, data = await call_json(client, upstream, "GET", f"{_base(upstream)}/{ref.upstream_task_id}",
                                           headers=_headers(key), key=key)
            if status == 200 and isinstance(data, dict):
                return snapshot_of(data)
            if status == 404:
                return Snapshot(TaskStatus.FAILURE, 100, fail_reason=message_of(data))
            return None

        return await fetch_each(refs, one)

    def content_request(self, upstream: UpstreamInfo, key: str, upstream_task_id: str,
                        variant: str) -> tuple[str, dict[str, str]]:
        """Where the finished file is, and the headers to ask for it."""
        return (f"{_base(upstream)}/{upstream_task_id}/content?variant={variant}",
                {**_headers(key), "accept": "application/binary"})
