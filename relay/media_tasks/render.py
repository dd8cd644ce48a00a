"""Tasks in each protocol's shape: Midjourney task objects, Suno/new-api TaskDto, OpenAI video objects, Kling task
objects and the generation objects of `/v1/music|audio/generations`. Also the body a notifyHook receives."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from relay.media_tasks.mj_image import image_address
from relay.media_tasks.models import MediaTask, TaskKind, TaskStatus

OPENAI_STATUS = {TaskStatus.NOT_START: "queued", TaskStatus.SUBMITTED: "queued",
                 TaskStatus.IN_PROGRESS: "in_progress", TaskStatus.SUCCESS: "completed",
                 TaskStatus.FAILURE: "failed"}

KLING_STATUS = {TaskStatus.NOT_START: "submitted", TaskStatus.SUBMITTED: "submitted",
                TaskStatus.IN_PROGRESS: "processing", TaskStatus.SUCCESS: "succeed", TaskStatus.FAILURE: "failed"}


def _ms(moment: datetime | None) -> int | None:
    return int(moment.timestamp() * 1000) if moment else None


def _s(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment else None


def mj_task(task: MediaTask, image_base: str = "") -> dict[str, Any]:
    """A midjourney-proxy task object (times in epoch milliseconds, progress as "45%"); with `image_base`, the image
    at this site's signed `/mj/image/{id}` address instead of the upstream's."""
    result, request = task.result or {}, task.request or {}
    image_url = image_address(image_base, task.public_id) if image_base and task.result_url else task.result_url
    prompt = str(request.get("prompt") or result.get("prompt") or "")
    return {
        "id": task.public_id, "action": task.action, "customId": str(request.get("customId") or ""),
        "botType": str(request.get("botType") or ""), "prompt": prompt,
        "promptEn": str(result.get("promptEn") or prompt), "description": str(result.get("description") or ""),
        "state": task.state, "submitTime": _ms(task.submitted_at), "startTime": _ms(task.started_at),
        "finishTime": _ms(task.finished_at), "imageUrl": image_url, "status": task.status,
        "progress": f"{task.progress}%", "failReason": task.fail_reason, "buttons": result.get("buttons") or [],
        "maskBase64": "", "properties": result.get("properties") or {},
    }


def task_dto(task: MediaTask) -> dict[str, Any]:
    """new-api's TaskDto, used by the Suno routes and `/v1/video/generations` (times in epoch seconds)."""
    result = task.result or {}
    return {
        "task_id": task.public_id, "action": task.action, "status": task.status, "fail_reason": task.fail_reason,
        "result_url": task.result_url, "submit_time": _s(task.submitted_at), "start_time": _s(task.started_at),
        "finish_time": _s(task.finished_at), "progress": f"{task.progress}%", "model": task.model,
        "quota": task.quota_charged if task.settled_at else task.quota_reserved,
        "data": result.get("data") if task.kind == TaskKind.MUSIC else result,
    }


def _error(task: MediaTask) -> dict[str, str] | None:
    if task.status != TaskStatus.FAILURE:
        return None
    return {"code": "task_failed", "message": task.fail_reason or "The task failed."}


def openai_video(task: MediaTask) -> dict[str, Any]:
    """OpenAI's video object; the file is at `/v1/videos/{id}/content` (and in metadata.url when public)."""
    request = task.request or {}
    return {
        "id": task.public_id, "task_id": task.public_id, "object": "video", "model": task.model,
        "status": OPENAI_STATUS[task.status], "progress": task.progress, "created_at": _s(task.submitted_at),
        "completed_at": _s(task.finished_at) if task.status == TaskStatus.SUCCESS else None, "expires_at": None,
        "seconds": str(request.get("seconds") or int(task.units)), "size": str(request.get("size") or ""),
        "prompt": str(request.get("prompt") or ""), "remixed_from_video_id": request.get("remixed_from_video_id"), "error": _error(task),
        "metadata": {"url": task.result_url} if task.result_url else {},
    }


def generation(task: MediaTask) -> dict[str, Any]:
    """A music or audio generation task in the OpenAI style."""
    result = task.result or {}
    return {
        "id": task.public_id, "object": f"{task.kind}.generation", "model": task.model,
        "status": OPENAI_STATUS[task.status], "progress": task.progress, "created_at": _s(task.submitted_at),
        "completed_at": _s(task.finished_at) if task.status == TaskStatus.SUCCESS else None,
        "result_url": task.result_url or None, "error": _error(task),
        "data": result.get("data") if task.kind == TaskKind.MUSIC else {k: v for k, v in result.items()
                                                                         if k != "properties"},
    }


def kling_task(task: MediaTask) -> dict[str, Any]:
    """Kling's task object (protocols.md 9.2): submitted | processing | succeed | failed, times in milliseconds."""
    result = task.result or {}
    videos = result.get("videos") if isinstance(result.get("videos"), list) else []
    if not videos and task.result_url:
        videos = [{"id": task.public_id, "url": task.result_url, "duration": str(task.units)}]
    return {"task_id": task.public_id, "task_status": KLING_STATUS[task.status],
            "task_status_msg": task.fail_reason if task.status == TaskStatus.FAILURE else "",
            "task_info": {"external_task_id": task.state}, "task_result": {"videos": videos},
            "created_at": _ms(task.submitted_at),
            "updated_at": _ms(task.finished_at or task.started_at or task.submitted_at)}


def kling_reply(request_id: str, data: Any) -> dict[str, Any]:
    return {"code": 0, "message": "SUCCEED", "request_id": request_id, "data": data}


def kling_error(status: int, message: str, code: Any, request_id: str) -> dict[str, Any]:
    """Kling's error codes: 1000 authentication, 1102 out of balance, 1103 not allowed, 1201 invalid parameters,
    1202 wrong method, 1203 no such task, 1302 too many requests, 1303 too many at once, 5000 internal error."""
    if status >= 500:
        number = 5000
    elif status == 429:
        number = 1303 if code == "concurrency_limit_exceeded" else 1302
    else:
        refused = 1102 if code == "insufficient_quota" else 1103
        number = {401: 1000, 403: refused, 404: 1201 if code == "unknown_url" else 1203, 405: 1202}.get(status, 1201)
    return kling_refusal(number, message, request_id)


def kling_refusal(code: int, message: str, request_id: str) -> dict[str, Any]:
    return {"code": code, "message": message, "request_id": request_id, "data": None}


def envelope(data: Any) -> dict[str, Any]:
    return {"code": "success", "message": "", "data": data}


def notify_body(task: MediaTask) -> dict[str, Any]:
    """What a notifyHook receives: the task as its submit route's fetch would show it."""
    endpoint = task.endpoint
    if task.kind == TaskKind.MIDJOURNEY:
        return mj_task(task)
    if endpoint.startswith("/v1/videos"):
        return openai_video(task)
    if endpoint.startswith("/kling/"):
        return kling_task(task)
    if endpoint.startswith(("/suno/", "/v1/video/")):
        return task_dto(task)
    return generation(task)
