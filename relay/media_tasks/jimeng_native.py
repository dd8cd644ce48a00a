"""Jimeng's own request format (`POST /jimeng/?Action=...&Version=2022-08-31`, protocols.md 9.3), for clients
written against Volcengine's visual API: the relay key as a Bearer instead of a V4 signature, the operator's
Jimeng upstream behind it.

`CVSync2AsyncSubmitTask` takes Volcengine's body; its `req_key` is the model, priced per call and second (121
frames: five seconds, 241: ten). `CVSync2AsyncGetResult` takes `{"req_key", "task_id"}` and answers the caller's
own task. Answers and errors come in Volcengine's envelope: `{"code", "message", "request_id", "status", "data"}`,
code 10000 for success.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from relay import errors
from relay.http import RelayRequest, Send
from relay.media_tasks.intake import Submission
from relay.media_tasks.models import MediaTask, TaskKind, TaskStatus
from relay.media_tasks.selectors import media_task_of
from relay.media_tasks.submit import task_submit
from relay.snapshots import TokenContext, in_thread

if TYPE_CHECKING:
    from relay.asgi import RelayApp

SUBMIT, RESULT = "CVSync2AsyncSubmitTask", "CVSync2AsyncGetResult"
OK = 10000
STATUS = {TaskStatus.NOT_START: "in_queue", TaskStatus.SUBMITTED: "in_queue", TaskStatus.IN_PROGRESS: "generating",
          TaskStatus.SUCCESS: "done", TaskStatus.FAILURE: "not_found"}
PASSED = ("seed", "aspect_ratio", "image_urls", "binary_data_base64", "camera_strength", "template_id")


def envelope(request_id: str, data: Any, *, code: int = OK, message: str = "Success") -> dict[str, Any]:
    return {"code": code, "message": message, "request_id": request_id, "status": code, "data": data,
            "time_elapsed": ""}


def jimeng_error(status: int, message: str, request_id: str) -> dict[str, Any]:
    """Volcengine's codes: 50429 too many requests, 50500 internal error, 50400 a request it will not take."""
    code = 50429 if status == 429 else 50500 if status >= 500 else 50400
    return envelope(request_id, None, code=code, message=message)


def jimeng_submission(body: dict[str, Any], endpoint: str) -> Submission:
    req_key = body.get("req_key")
    if not isinstance(req_key, str) or not req_key:
        raise errors.bad_request("'req_key' is required.", param="req_key")
    prompt = body.get("prompt") if isinstance(body.get("prompt"), str) else ""
    images = body.get("image_urls") if isinstance(body.get("image_urls"), list) else []
    uploads = body.get("binary_data_base64") if isinstance(body.get("binary_data_base64"), list) else []
    if not prompt and not images and not uploads:
        raise errors.bad_request("'prompt' or an image is required.", param="prompt")
    frames = body.get("frames", 121)
    if frames not in (121, 241):
        raise errors.bad_request("'frames' must be 121 (5 s) or 241 (10 s).", param="frames")
    seconds = 10 if frames == 241 else 5
    passed = {name: body[name] for name in PASSED if body.get(name) not in (None, "", [])}
    operation = "image2video" if images or uploads else "text2video"
    return Submission(kind=TaskKind.VIDEO, action=operation, operation=operation, model=req_key,
                      body={"prompt": prompt, "seconds": seconds, "metadata": passed}, endpoint=endpoint,
                      units=Decimal(seconds))


def jimeng_result(task: MediaTask, request_id: str) -> dict[str, Any]:
    data = {"status": STATUS[task.status], "video_url": task.result_url if task.status == TaskStatus.SUCCESS else ""}
    if task.status == TaskStatus.FAILURE:
        return envelope(request_id, data, code=50500, message=task.fail_reason or "The task failed.")
    return envelope(request_id, data)


async def jimeng_native(app: RelayApp, req: RelayRequest, ctx: TokenContext, args: dict[str, str],
                        send: Send) -> tuple[int, dict[str, Any]]:
    action = req.query.get("Action", "")
    body = req.json()
    if action == SUBMIT:
        accepted = await task_submit(app, req, ctx, jimeng_submission(body, "/jimeng/"))
        return 200, envelope(req.request_id, {"task_id": accepted.task.public_id})
    if action == RESULT:
        task_id = body.get("task_id") if isinstance(body.get("task_id"), str) else ""
        task = await in_thread(media_task_of)(user_id=ctx.user_id, public_id=task_id, kinds=(TaskKind.VIDEO,))
        if task is None or task.model != body.get("req_key"):
            raise errors.not_found(f"The task '{task_id}' does not exist.", code="task_not_found")
        return 200, jimeng_result(task, req.request_id)
    raise errors.bad_request(f"Unknown Action '{action}': use {SUBMIT} or {RESULT}.", param="Action")
