"""The task routes, delegated to by the relay: Midjourney (`/mj/...`), Suno (`/suno/...`), Kling's own video API
(`/kling/v1/...`), Jimeng's (`/jimeng/`), and OpenAI-style music, audio and video generations. Every route
authenticates like the relay core, answers errors in its own protocol's shape, and shows a user only their own
tasks."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from django.conf import settings

from relay import errors, gate
from relay.http import RelayRequest, Send, send_json
from relay.media_tasks import intake, render
from relay.media_tasks.adapters import adapter_for
from relay.media_tasks.adapters.base import Upload
from relay.media_tasks.content import video_content
from relay.media_tasks.jimeng_native import envelope, jimeng_error, jimeng_native
from relay.media_tasks.mj_image import image_base, image_signed, mj_image
from relay.media_tasks.models import MediaTask, TaskKind
from relay.media_tasks.selectors import (
    media_task_of,
    media_tasks_by_ids,
    media_tasks_recent,
)
from relay.media_tasks.storable import unstorable_field
from relay.media_tasks.submit import TaskRefused, rate_limit, task_submit
from relay.media_tasks.upstreams import key_for, upstream_load
from relay.multipart import form_parse
from relay.snapshots import TokenContext, in_thread
from relay.wires import OPENAI, error_body

if TYPE_CHECKING:
    from relay.asgi import RelayApp

MJ, SUNO, KLING, JIMENG = "midjourney", "suno", "kling", "jimeng"
MJ_MODE = re.compile(r"^/mj-(?:fast|relax|turbo)(?=/mj/)")
Reply = tuple[int, Any] | None
Handler = Callable[["RelayApp", RelayRequest, TokenContext, dict[str, str], Send], Awaitable[Reply]]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    signed: bool = False  # a signed address (`?sig=`) stands in for the key


def _storable(body: dict[str, Any]) -> dict[str, Any]:
    """The body, or a 400 when PostgreSQL could not keep part of it (NUL, an unpaired surrogate, NaN)."""
    field = unstorable_field(body)
    if field is not None:
        where = f"'{field}'" if field else "The request body"
        raise errors.bad_request(f"{where} holds a NUL character, an unpaired surrogate or a non-finite number.",
                                 param=field or None, code="invalid_characters")
    return body


def _json(req: RelayRequest) -> dict[str, Any]:
    return _storable(req.json())


async def _task(ctx: TokenContext, public_id: str, kinds: tuple[str, ...]) -> MediaTask:
    task = await in_thread(media_task_of)(user_id=ctx.user_id, public_id=public_id, kinds=kinds)
    if task is None:
        raise errors.not_found(f"The task '{public_id}' does not exist.", code="task_not_found")
    return task


def _ids(body: dict[str, Any]) -> list[str]:
    ids = body.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(ids) > 500:
        raise errors.bad_request("'ids' must be a list of at most 500 task ids.", param="ids")
    return ids


# --- Midjourney ---

async def mj_submit(app: RelayApp, req: RelayRequest, ctx: TokenContext, args: dict[str, str], send: Send) -> Reply:
    sub = intake.midjourney_submission(args["op"], _json(req), req.path)
    accepted = await task_submit(app, req, ctx, sub)
    if sub.action == "UPLOAD":  # the proxy's answer: the images' URLs
        return 200, {"code": 1, "description": "Submit success", "result": accepted.task.result.get("urls") or []}
    return 200, {"code": accepted.submitted.code, "description": "Submit success", "result": accepted.task.public_id,
                 "properties": accepted.submitted.properties}


async def mj_swap_face(app: RelayApp, req: RelayRequest, ctx: TokenContext, args: dict[str, str],
                       send: Send) -> Reply:
    return await mj_submit(app, req, ctx, {"op": "swap_face"}, send)


async def mj_image_seed(app: RelayApp, req: RelayRequest, ctx: TokenContext, args: dict[str, str],
                        send: Send) -> Reply:
    """The seed of one of the caller's images, asked of the upstream that made it (not billed)."""
    task = await _task(ctx, args["id"], (TaskKind.MIDJOURNEY,))
    await rate_limit(app, ctx)  # free, but each one is a call on the operator's proxy account
    info = await in_thread(upstream_load)(task.upstream_id) if task.upstream_id else None
    image_seed = getattr(adapter_for(info, task.kind), "image_seed", None) if info is not None else None
    if image_seed is None or not task.upstream_task_id:
        raise errors.not_found(f"The task '{task.public_id}' has no image seed here.", code="task_not_found")
    try:
        status, data = await image_seed(app.client, info, key_for(info, task.key_fingerprint), task.upstream_task_id)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise errors.upstream_failed(f"The upstream could not be reached: {type(exc).__name__}") from None
    if status != 200 or not isinstance(data, dict):
        raise errors.upstream_failed(f"The upstream answered HTTP {status} for the image seed.")
    return 200, {"code": data.get("code"), "description": str(data.get("description") or ""),
                 "result": data.get("result")}


def _image_base(req: RelayRequest) -> str:
    """Where task images are served from: this site when MJ_IMAGE_PROXY is on, else the upstream's address."""
    return image_base(req) if settings.MJ_IMAGE_PROXY else ""


async def mj_fetch(app: RelayApp, req: RelayRequest, ctx: TokenContext, args: dict[str, str], send: Send) -> Reply:
    return 200, render.mj_task(await _task(ctx, args["id"], (TaskKind.MIDJOURNEY,)), _image_base(req))


async def mj_list(app: RelayApp, req: RelayRequest, ctx: TokenContext, args: dict[str, str], send: Send) -> Reply:
    tasks = await in_thread(media_tasks_by_ids)(user_id=ctx.user_id, public_ids=_ids(_json(req)),
                                                kinds=(TaskKind.MIDJOURNEY,))
    base = _image_base(req)
    return 200, [render.mj_task(t, base) for t in tasks]


# --- Suno ---

async def suno_submit(app: RelayApp, req: RelayRequest, ctx: TokenContext, args: dict[str, str],
                      send: Send) -> Reply:
    accepted = await task_submit(app, req, ctx, intake.suno_submission(args["op"], _json(req), req.path))
    return 200, render.envelope(accepted.task.public_id)


async def suno_fetch_one(app: RelayApp, req: RelayRequest, ctx: TokenContext, args: dict[str, str],
                         send: Send) -> Reply:
    return 200, render.envelope(render.task_dto(await _task(ctx, args["id"], (TaskKind.MUSIC,))))


async def suno_fetch(app: RelayApp, req: RelayRequest, ctx: TokenContext, args: dict[str, str], send: Send) -> Reply:
    body = _json(req)
    tasks = await in_thread(media_tasks_by_ids)(user_id=ctx.user_id, public_ids=_ids(body), kinds=(TaskKind.MUSIC,))
    action = str(body.get("action") or "").upper()
    return 200, render.envelope([render.task_dto(t) for t in tasks if not action or t.action == action])


# --- OpenAI-style music, audio and video ---

async def music_submit(app: RelayApp, req: RelayRequest, ctx: TokenContext, args: dict[str, str],
                       send: Send) -> Reply:
    accepted = await task_submit(app, req, ctx, intake.music_submission(_json(req), req.path))
    return 200, render.generation(accepted.task)


async def audio_submit(app: RelayApp, req: RelayRequest, ctx: TokenContext, args: dict[str, str],
                       send: Send) -> Reply:
    accepted = await task_submit(app, req, ctx, intake.audio_submission(_json(req), req.path))
    return 200, render.generation(accepted.task)


async def music_fetch(app: RelayApp, req: RelayRequest, ctx: TokenContext, args: dict[str, str], send: Send) -> Reply:
    return 200, render.generation(await _task(ctx, args["id"], (TaskKind.MUSIC,)))


async def audio_fetch(app: RelayApp, req: RelayRequest, ctx: TokenContext, args: dict[str, str], send: Send) -> Reply:
    return 200, render.generation(await _task(ctx, args["id"], (TaskKind.AUDIO,)))


def _video_request(req: RelayRequest) -> tuple[dict[str, Any], list[Upload]]:
    """JSON, or multipart as OpenAI's SDK sends it (`input_reference` as a file)."""
    content_type = req.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        return _json(req), []
    form = form_parse(req.body, content_type)
    files = [Upload(p.name, p.filename or "reference", p.content_type, bytes(form.file_bytes(p)))
             for p in form.files("input_reference") if p.end > p.start]
    return _storable(dict(form.fields)), files


async def video_submit(app: RelayApp, req: RelayRequest, ctx: TokenContext, args: dict[str, str],
                       send: Send) -> Reply:
    body, files = _video_request(req)
    accepted = await task_submit(app, req, ctx, intake.video_submission(body, req.path, files))
    return 200, render.openai_video(accepted.task)


async def video_remix(app: RelayApp, req: RelayRequest, ctx: TokenContext, args: dict[str, str],
                      send: Send) -> Reply:
    parent = await _task(ctx, args["id"], (TaskKind.VIDEO,))
    accepted = await task_submit(app, req, ctx, intake.video_remix_submission(parent, req.json(), req.path))
    return 200, render.openai_video(accepted.task)


async def video_fetch(app: RelayApp, req: RelayRequest, ctx: TokenContext, args: dict[str, str], send: Send) -> Reply:
    return 200, render.envelope(render.task_dto(await _task(ctx, args["id"], (TaskKind.VIDEO,))))


async def videos_retrieve(app: RelayApp, req: RelayRequest, ctx: TokenContext, args: dict[str, str],
                          send: Send) -> Reply:
    return 200, render.openai_video(await _task(ctx, args["id"], (TaskKind.VIDEO,)))


async def videos_list(app: RelayApp, req: RelayRequest, ctx: TokenContext, args: dict[str, str], send: Send) -> Reply:
    limit = req.query.get("limit", "20")
    if not re.fullmatch(r"[0-9]{1,3}", limit) or not 1 <= int(limit) <= 100:  # isdigit() takes "²", int() not
        raise errors.bad_request("'limit' must be from 1 to 100.", param="limit")
    ascending = req.query.get("order", "desc") == "asc"
    tasks = await in_thread(media_tasks_recent)(user_id=ctx.user_id, kinds=(TaskKind.VIDEO,),
                                                after=req.query.get("after", ""), limit=int(limit) + 1,
                                                ascending=ascending)
    rows = [render.openai_video(t) for t in tasks[: int(limit)]]
    return 200, {"object": "list", "data": rows, "first_id": rows[0]["id"] if rows else None,
                 "last_id": rows[-1]["id"] if rows else None, "has_more": len(tasks) > int(limit)}


async def kling_submit(app: RelayApp, req: RelayRequest, ctx: TokenContext, args: dict[str, str],
                       send: Send) -> Reply:
    sub = intake.kling_submission(args["op"], _json(req), req.path)
    accepted = await task_submit(app, req, ctx, sub)
    return 200, render.kling_reply(req.request_id, render.kling_task(accepted.task))


async def kling_fetch(app: RelayApp, req: RelayRequest, ctx: TokenContext, args: dict[str, str], send: Send) -> Reply:
    task = await _task(ctx, args["id"], (TaskKind.VIDEO,))
    return 200, render.kling_reply(req.request_id, render.kling_task(task))


async def videos_content(app: RelayApp, req: RelayRequest, ctx: TokenContext, args: dict[str, str],
                         send: Send) -> Reply:
    task = await _task(ctx, args["id"], (TaskKind.VIDEO,))
    await video_content(app, req, task, send)
    return None


def _route(method: str, pattern: str, handler: Handler, *, signed: bool = False) -> Route:
    return Route(method, re.compile(pattern), handler, signed)


ROUTES = [
    _route("POST", r"/mj/submit/(?P<op>[a-z-]+)", mj_submit),
    _route("POST", r"/mj/insight-face/swap", mj_swap_face),
    _route("GET", r"/mj/task/(?P<id>[^/]+)/fetch", mj_fetch),
    _route("GET", r"/mj/task/(?P<id>[^/]+)/image-seed", mj_image_seed),
    _route("POST", r"/mj/task/list-by-condition", mj_list),
    _route("GET", r"/mj/image/(?P<id>[^/]+)", mj_image, signed=True),
    _route("POST", r"/suno/submit/(?P<op>[A-Za-z_-]+)", suno_submit),
    _route("GET", r"/suno/fetch/(?P<id>[^/]+)", suno_fetch_one),
    _route("POST", r"/suno/fetch", suno_fetch),
    _route("POST", r"/kling/v1/videos/(?P<op>text2video|image2video)", kling_submit),
    _route("GET", r"/kling/v1/videos/(?:text2video|image2video)/(?P<id>[^/]+)", kling_fetch),
    _route("POST", r"/v1/music/generations", music_submit),
    _route("GET", r"/v1/music/generations/(?P<id>[^/]+)", music_fetch),
    _route("POST", r"/v1/audio/generations", audio_submit),
    _route("GET", r"/v1/audio/generations/(?P<id>[^/]+)", audio_fetch),
    _route("POST", r"/v1/video/generations", video_submit),
    _route("GET", r"/v1/video/generations/(?P<id>[^/]+)", video_fetch),
    _route("POST", r"/v1/videos", video_submit),
    _route("POST", r"/v1/videos/(?P<id>[^/]+)/remix", video_remix),
    _route("GET", r"/v1/videos", videos_list),
    _route("GET", r"/v1/videos/(?P<id>[^/]+)", videos_retrieve),
    _route("GET", r"/v1/videos/(?P<id>[^/]+)/content", videos_content),
    _route("POST", r"/jimeng/?", jimeng_native),
]


def _protocol(path: str) -> str:
    if path.startswith("/mj/"):
        return MJ
    if path.startswith("/jimeng"):
        return JIMENG
    return SUNO if path.startswith("/suno/") else KLING if path.startswith("/kling/") else OPENAI


def protocol_of(path: str) -> str:
    """The protocol a task route answers in, mode prefix (`/mj-fast/...`) and all: for errors raised before
    `dispatch` (a body over the size limit) to come in the same shape as the route's own."""
    return _protocol(MJ_MODE.sub("", path))


def owns(path: str) -> bool:
    """Whether the relay hands this path to the task routes."""
    path = MJ_MODE.sub("", path)
    return path.startswith(("/mj/", "/suno/", "/kling/")) or any(r.pattern.fullmatch(path) for r in ROUTES)


def error_shape(protocol: str, status: int, message: str, *, type: str = "", code: Any = None,
                param: str | None = None, request_id: str = "") -> dict[str, Any]:
    if protocol == KLING:
        return render.kling_error(status, message, code, request_id)
    if protocol == JIMENG:
        return jimeng_error(status, message, request_id)
    if protocol == MJ:  # midjourney-proxy's codes: 3 not found, 4 validation, 9 system failure
        mj_code = code if isinstance(code, int) else 3 if status == 404 else 9 if status >= 500 else 4
        return {"code": mj_code, "description": message, "type": type or "invalid_request_error", "result": None}
    if protocol == SUNO:
        return {"code": code if isinstance(code, str) and code else type or "invalid_request", "message": message,
                "data": None}
    return error_body(OPENAI, status, message, type=type, code=code if isinstance(code, str) else None, param=param)


def _refusal_reply(protocol: str, refused: TaskRefused, request_id: str) -> tuple[int, dict[str, Any]]:
    refusal = refused.refusal
    if protocol == KLING and isinstance(refusal.code, int) and 1000 <= refusal.code < 6000:  # Kling's own code
        if 1200 <= refusal.code < 1400:  # the request or its content: the caller's to fix
            return refusal.status, render.kling_refusal(refusal.code, refusal.message, request_id)
        status = 502  # the operator's account or Kling itself: not the caller's doing
        return status, render.kling_refusal(5000, f"The upstream refused the task: {refusal.message}", request_id)
    if protocol == JIMENG and isinstance(refusal.code, int) and refusal.code >= 50000:  # Volcengine's own code
        return refusal.status, envelope(request_id, None, code=refusal.code, message=refusal.message)
    if protocol == MJ and isinstance(refusal.code, int):  # the proxy answered: pass its code on, as it does
        body = refusal.body or {}
        return 200, {"code": refusal.code, "description": refusal.message, "result": None,
                     "properties": body.get("properties") if isinstance(body.get("properties"), dict) else {}}
    status = refusal.status if 400 <= refusal.status < 600 else 502
    return status, error_shape(protocol, status, f"The upstream refused the task: {refusal.message}",
                               type="upstream_error", code=refusal.code if protocol == SUNO else "task_refused",
                               request_id=request_id)


async def dispatch(app: RelayApp, req: RelayRequest, send: Send) -> None:
    """Serve one task route; every error is answered here, in the route's protocol."""
    path = MJ_MODE.sub("", req.path)
    protocol = _protocol(path)
    try:
        matches = [(r, m) for r in ROUTES if (m := r.pattern.fullmatch(path))]
        route = next(((r, m) for r, m in matches if r.method == req.method), None)
        if route is None:
            if matches:
                raise errors.RelayError(405, f"Use {matches[0][0].method} for {path}.")
            raise errors.not_found(f"Unknown path: {req.method} {req.path}", code="unknown_url")
        if protocol == MJ and "authorization" not in req.headers and req.headers.get("mj-api-secret"):
            req.headers["authorization"] = f"Bearer {req.headers['mj-api-secret']}"
        args = route[1].groupdict()
        signed = route[0].signed and image_signed(req, args.get("id", ""))
        ctx = None if signed else await gate.authenticate(app.snapshots, req)
        reply = await route[0].handler(app, req, ctx, args, send)
    except errors.RelayError as exc:
        headers = req.extra_headers + [(k.encode(), v.encode()) for k, v in exc.headers.items()]
        body = error_shape(protocol, exc.status, exc.message, type=exc.type, code=exc.code, param=exc.param,
                           request_id=req.request_id)
        await send_json(send, exc.status, body, headers=headers)
        return
    except TaskRefused as refused:
        status, body = _refusal_reply(protocol, refused, req.request_id)
        await send_json(send, status, body, headers=req.extra_headers)
        return
    if reply is not None:
        await send_json(send, reply[0], reply[1], headers=req.extra_headers)
