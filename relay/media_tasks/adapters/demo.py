"""The built-in demo task upstream: no network; a task finishes `task_seconds` after its submit.

Failure modes for trying refunds: a prompt containing "[refuse]" is refused at submit and one containing "[fail]"
ends in FAILURE; the upstream's provider settings may force either with `task_failure`: "submit" or "task".
"""

from __future__ import annotations

import hashlib
import time
import uuid
from decimal import Decimal
from typing import Any

import httpx
from django.conf import settings

from relay.media_tasks.adapters.base import (
    Snapshot,
    SubmitRefused,
    Submitted,
    TaskAdapter,
    TaskCall,
    TaskRef,
)
from relay.media_tasks.models import TaskKind, TaskStatus
from relay.snapshots import UpstreamInfo

RESULT_HOST = "https://demo.modelgate.invalid"  # a reserved name: the demo makes no files
EXTENSION = {TaskKind.MIDJOURNEY: "png", TaskKind.MUSIC: "mp3", TaskKind.VIDEO: "mp4", TaskKind.AUDIO: "mp3"}


def _delay(upstream: UpstreamInfo) -> float:
    try:
        return max(float(upstream.extras.get("task_seconds", settings.DEMO_TASK_SECONDS)), 0.0)
    except (TypeError, ValueError):
        return float(settings.DEMO_TASK_SECONDS)


def _buttons() -> list[dict]:
    return [{"customId": f"MJ::JOB::{kind}::{i}::demo", "emoji": "", "label": f"{kind[0].upper()}{i}", "type": 2,
             "style": 2} for kind in ("upsample", "variation") for i in range(1, 5)]


class DemoTaskAdapter(TaskAdapter):
    remixes = True  # a remix is one more demo video
    kinds = frozenset(TaskKind.values)

    async def submit(self, client: httpx.AsyncClient, call: TaskCall) -> Submitted:
        prompt = str(call.body.get("prompt") or call.body.get("gpt_description_prompt") or "")
        if "[refuse]" in prompt or call.upstream.extras.get("task_failure") == "submit":
            raise SubmitRefused("The demo upstream refused this task.", status=400, code=4)
        if call.action == "UPLOAD":  # Midjourney uploads are answered at once, with where the images went
            images = call.body.get("base64Array") or []
            urls = [f"{RESULT_HOST}/upload/{uuid.uuid4().hex}.png" for _ in images]
            return Submitted("", done=Snapshot(TaskStatus.SUCCESS, 100, result_url=urls[0] if urls else "",
                                               result={"urls": urls}))
        return Submitted(f"demo-{uuid.uuid4().hex}")

    async def fetch(self, client: httpx.AsyncClient, upstream: UpstreamInfo, key: str,
                    refs: list[TaskRef]) -> dict[str, Snapshot]:
        delay, now = _delay(upstream), time.time()
        found = {}
        for ref in refs:
            elapsed = now - ref.submitted_ts
            if elapsed < delay:
                progress = int(elapsed / delay * 100) if delay else 0
                status = TaskStatus.IN_PROGRESS if progress else TaskStatus.SUBMITTED
                found[ref.upstream_task_id] = Snapshot(status, progress)
                continue
            prompt = str(ref.request.get("prompt") or "")
            if "[fail]" in prompt or upstream.extras.get("task_failure") == "task":
                found[ref.upstream_task_id] = Snapshot(TaskStatus.FAILURE, 100, fail_reason="The demo task failed.")
                continue
            url = f"{RESULT_HOST}/{ref.kind}/{ref.upstream_task_id}.{EXTENSION.get(ref.kind, 'bin')}"
            result: dict = {"prompt": prompt}
            if ref.kind == TaskKind.MIDJOURNEY:
                result.update(buttons=_buttons(), properties={"finalPrompt": prompt})
            seconds = ref.request.get("seconds")
            found[ref.upstream_task_id] = Snapshot(
                TaskStatus.SUCCESS, 100, result_url=url, result=result,
                seconds=Decimal(str(seconds)) if seconds and ref.kind in (TaskKind.VIDEO, TaskKind.AUDIO) else None)
        return found

    async def image_seed(self, client: httpx.AsyncClient, upstream: UpstreamInfo, key: str,
                         upstream_task_id: str) -> tuple[int, Any]:
        """A seed derived from the task's id, as a Midjourney proxy answers it."""
        seed = int(hashlib.sha256(upstream_task_id.encode()).hexdigest()[:8], 16)
        return 200, {"code": 1, "description": "Success", "result": str(seed)}
