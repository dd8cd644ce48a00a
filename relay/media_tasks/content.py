"""`GET /v1/videos/{id}/content`: the finished file, streamed from upstreams that need their key for it (OpenAI),
else a redirect to the public URL the upstream gave."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from relay import errors
from relay.http import RelayRequest, Send
from relay.media_tasks.adapters import adapter_for
from relay.media_tasks.adapters.base import timeout_of
from relay.media_tasks.models import MediaTask, TaskStatus
from relay.media_tasks.upstreams import key_for, upstream_load
from relay.snapshots import in_thread

if TYPE_CHECKING:
    from relay.asgi import RelayApp

VARIANTS = {"video", "thumbnail", "spritesheet"}


async def video_content(app: RelayApp, req: RelayRequest, task: MediaTask, send: Send) -> None:
    if task.status != TaskStatus.SUCCESS:
        raise errors.RelayError(409, "The video is not ready yet.", code="video_not_ready")
    variant = req.query.get("variant", "video")
    if variant not in VARIANTS:
        raise errors.bad_request("'variant' must be video, thumbnail or spritesheet.", param="variant")
    info = await in_thread(upstream_load)(task.upstream_id) if task.upstream_id else None
    adapter = adapter_for(info, task.kind) if info is not None else None
    content_request = getattr(adapter, "content_request", None)
    if content_request is None:
        if not task.result_url or variant != "video":
            raise errors.not_found("This video has no downloadable content.", code="content_not_found")
        await send({"type": "http.response.start", "status": 302,
                    "headers": [(b"location", task.result_url.encode()), (b"content-length", b"0"),
                                *req.extra_headers]})
        await send({"type": "http.response.body", "body": b""})
        return
    url, headers = content_request(info, key_for(info, task.key_fingerprint), task.upstream_task_id, variant)
    request = app.client.build_request("GET", url, headers=headers, timeout=timeout_of(info))
    try:
        response = await app.client.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise errors.upstream_failed(f"The upstream could not be reached: {type(exc).__name__}") from None
    try:
        if response.status_code != 200:
            raise errors.upstream_failed(f"The upstream answered HTTP {response.status_code} for the content.")
        content_type = response.headers.get("content-type", "application/octet-stream").encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type), *req.extra_headers]})
        async for chunk in response.aiter_bytes():  # decoded: the client gets no Content-Encoding header
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        await response.aclose()
