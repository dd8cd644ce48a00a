"""`GET /mj/image/{id}`: a Midjourney task's image, fetched from where the upstream left it and passed on, for
clients that cannot reach Discord's CDN. Asked with the owner's key, or at the signed address a task's `imageUrl`
becomes when MJ_IMAGE_PROXY is on (an `<img>` sends no key)."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

import httpx
from django.conf import settings

from relay import errors
from relay.http import RelayRequest, Send
from relay.media_tasks.adapters.base import timeout_of
from relay.media_tasks.models import MediaTask, TaskKind, TaskStatus
from relay.media_tasks.selectors import media_task_of, media_task_with_id
from relay.media_tasks.upstreams import upstream_load
from relay.snapshots import TokenContext, in_thread

if TYPE_CHECKING:
    from relay.asgi import RelayApp


def image_signature(public_id: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), f"mj-image:{public_id}".encode(), hashlib.sha256).hexdigest()[:32]


def image_signed(req: RelayRequest, public_id: str) -> bool:
    return hmac.compare_digest(req.query.get("sig", ""), image_signature(public_id))


def image_base(req: RelayRequest) -> str:
    """This site's address as the caller reached it (SITE_URL when set)."""
    if settings.SITE_URL:
        return settings.SITE_URL
    scheme = "https" if req.headers.get("x-forwarded-proto", "").lower() == "https" else "http"
    return f"{scheme}://{req.headers.get('host', 'localhost')}"


def image_address(base: str, public_id: str) -> str:
    return f"{base}/mj/image/{public_id}?sig={image_signature(public_id)}"


async def mj_image(app: RelayApp, req: RelayRequest, ctx: TokenContext | None, args: dict[str, str],
                   send: Send) -> None:
    """`ctx` is None for a signed address (the task may be anyone's: the signature says it was given out)."""
    public_id, kinds = args["id"], (TaskKind.MIDJOURNEY,)
    if ctx is None:
        task: MediaTask | None = await in_thread(media_task_with_id)(public_id=public_id, kinds=kinds)
    else:
        task = await in_thread(media_task_of)(user_id=ctx.user_id, public_id=public_id, kinds=kinds)
    if task is None or task.status != TaskStatus.SUCCESS or not task.result_url.startswith(("http://", "https://")):
        raise errors.not_found(f"The task '{public_id}' has no image.", code="task_not_found")
    info = await in_thread(upstream_load)(task.upstream_id) if task.upstream_id else None
    timeout = timeout_of(info) if info is not None else httpx.Timeout(30)
    try:
        response = await app.client.send(app.client.build_request("GET", task.result_url, timeout=timeout),
                                         stream=True)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise errors.upstream_failed(f"The image could not be fetched: {type(exc).__name__}") from None
    try:
        if response.status_code != 200:
            raise errors.upstream_failed(f"The image host answered HTTP {response.status_code}.")
        kind = response.headers.get("content-type", "")
        content_type = kind if kind.startswith("image/") else "application/octet-stream"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type.encode()), (b"cache-control", b"private, max-age=86400"),
                                (b"x-content-type-options", b"nosniff"), *req.extra_headers]})
        async for chunk in response.aiter_bytes():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        await response.aclose()
