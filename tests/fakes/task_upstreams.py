"""Fake task upstreams on loopback, one server speaking five protocols (protocols.md 7-9): midjourney-proxy
(`/mj/...`), the Suno-API server (`/suno/...`), Kling (`/v1/videos/text2video`, JWT checked), Jimeng (Volcengine V4
signature checked) and OpenAI videos (`/v1/videos`, multipart). Also a notifyHook receiver at `/hook`.

A task answers "in progress" on its first fetch and ends on the next one: FAILURE when its prompt contains "fail",
SUCCESS otherwise. ``with FakeTasks() as up: up.url, up.requests, up.hooks, up.submits``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import socket
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, quote

import uvicorn

MJ_SECRET = "mj-secret"
SUNO_KEY = "suno-key"
KLING_AK, KLING_SK = "kling-ak", "kling-sk"
VOLC_AK, VOLC_SK = "volc-ak", "volc-sk"
OPENAI_KEY = "sk-upstream-openai"
VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42fake-video"
PNG_BYTES = b"\x89PNG\r\n\x1a\nfake-image"


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_valid(token: str, access: str, secret: str) -> bool:
    """HS256 signature, `iss`, and the `nbf`..`exp` window, checked from scratch."""
    try:
        header, payload, signature = token.split(".")
        expected = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
        claims = json.loads(_b64url_decode(payload))
        head = json.loads(_b64url_decode(header))
    except (ValueError, json.JSONDecodeError):
        return False
    now = time.time()
    return (hmac.compare_digest(expected, _b64url_decode(signature)) and head.get("alg") == "HS256"
            and claims.get("iss") == access and claims.get("nbf", 0) <= now < claims.get("exp", 0))


def volc_valid(method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> bool:
    """Recompute the Volcengine V4 signature from what arrived on the wire."""
    auth = headers.get("authorization", "")
    try:
        algorithm, rest = auth.split(" ", 1)
        fields = dict(item.strip().split("=", 1) for item in rest.split(","))
        access, day, region, service, terminator = fields["Credential"].split("/")
    except ValueError:
        return False
    if algorithm != "HMAC-SHA256" or access != VOLC_AK or terminator != "request":
        return False
    body_hash = hashlib.sha256(body).hexdigest()
    if headers.get("x-content-sha256") != body_hash:
        return False
    names = fields["SignedHeaders"].split(";")
    canonical_query = "&".join(sorted(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                                      for k, v in parse_qsl(query, keep_blank_values=True)))
    canonical = "\n".join([method, path, canonical_query, "".join(f"{n}:{headers.get(n, '').strip()}\n" for n in names),
                           ";".join(names), body_hash])
    scope = f"{day}/{region}/{service}/request"
    to_sign = f"HMAC-SHA256\n{headers.get('x-date', '')}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = VOLC_SK.encode()
    for part in (day, region, service, "request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), fields["Signature"])


class FakeTasks:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.submits: list[dict[str, Any]] = []
        self.hooks: list[dict[str, Any]] = []
        self.tasks: dict[str, dict[str, Any]] = {}
        self.refuse: dict[str, Any] = {}  # protocol -> a refusal to answer submits with
        self.kling_seconds = "5.0"  # the duration Kling reports for a finished video
        self.hook_status = 200
        self.submit_delay = 0.0  # seconds every submit waits before it is answered
        self._ids = itertools.count(1)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, lifespan="off", interface="asgi3",
                                log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)

    def reset(self) -> None:
        for collected in (self.requests, self.submits, self.hooks):
            collected.clear()
        self.tasks.clear()
        self.refuse.clear()
        self.kling_seconds, self.hook_status, self.submit_delay = "5.0", 200, 0.0

    # --- the task life cycle shared by every protocol ---

    def _new(self, protocol: str, prompt: str, **extra: Any) -> str:
        task_id = f"{protocol}-{next(self._ids)}"
        self.tasks[task_id] = {"protocol": protocol, "prompt": prompt, "fetches": 0, **extra}
        self.submits.append({"protocol": protocol, "id": task_id, "prompt": prompt, **extra})
        return task_id

    def _advance(self, task_id: str) -> tuple[str, dict[str, Any]] | None:
        """'running' on the first fetch, then 'success' or 'failure'."""
        task = self.tasks.get(task_id)
        if task is None:
            return None
        task["fetches"] += 1
        if task["fetches"] < 2:
            return "running", task
        return ("failure" if "fail" in task["prompt"] else "success"), task

    # --- ASGI ---

    async def app(self, scope: dict, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path, method, query = scope["path"], scope["method"], scope.get("query_string", b"").decode()
        self.requests.append({"method": method, "path": path, "query": query, "headers": headers, "body": body})
        if self.submit_delay and "/submit/" in path:
            await asyncio.sleep(self.submit_delay)
        if path == "/hook":
            self.hooks.append(json.loads(body or b"{}"))
            return await self._reply(send, self.hook_status, {"ok": True})
        if path.startswith("/attachments/") and method == "GET":  # where the images are, as Discord's CDN holds them
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"image/png")]})
            return await send({"type": "http.response.body", "body": PNG_BYTES + path.encode()})
        if path.startswith("/mj/"):
            return await self._reply(send, *self._midjourney(path, headers, body))
        if path.startswith("/suno/"):
            return await self._reply(send, *self._suno(path, headers, body))
        if path == "/" and "Action=" in query:
            return await self._reply(send, *self._jimeng(method, path, query, headers, body))
        if path.startswith(("/v1/videos/text2video", "/v1/videos/image2video")):
            return await self._reply(send, *self._kling(path, method, headers, body))
        if path.startswith("/v1/videos"):
            if path.endswith("/content"):
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"video/mp4")]})
                return await send({"type": "http.response.body", "body": VIDEO_BYTES})
            return await self._reply(send, *self._openai(path, method, headers, body))
        return await self._reply(send, 404, {"message": "not found"})

    @staticmethod
    async def _reply(send: Any, status: int, data: Any) -> None:
        raw = json.dumps(data).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]})
        await send({"type": "http.response.body", "body": raw})

    def _midjourney(self, path: str, headers: dict, body: bytes) -> tuple[int, Any]:
        if headers.get("mj-api-secret") != MJ_SECRET:
            return 401, {"code": 4, "description": "bad secret"}
        data = json.loads(body or b"{}")
        if path.startswith(("/mj/submit/", "/mj/insight-face/")):
            if "midjourney" in self.refuse:
                return 200, self.refuse["midjourney"]
            if path == "/mj/submit/upload-discord-images":
                images = data.get("base64Array") or []
                if not all(str(image).startswith("data:image/") for image in images):
                    return 200, {"code": 4, "description": "base64格式错误"}
                return 200, {"code": 1, "description": "成功",
                             "result": [f"{self.url}/attachments/upload-{next(self._ids)}.png" for _ in images]}
            if path.endswith("/change") and data.get("taskId") not in self.tasks:
                return 200, {"code": 3, "description": "关联任务不存在或已失效"}
            task_id = self._new("mj", str(data.get("prompt") or data.get("taskId") or ""), body=data, path=path)
            return 200, {"code": 22 if path.endswith("imagine") else 1, "description": "排队中", "result": task_id,
                         "properties": {"numberOfQueues": 1}}
        if path.startswith("/mj/task/") and path.endswith("/image-seed"):
            task_id = path.split("/")[3]
            if task_id not in self.tasks:
                return 200, {"code": 3, "description": "任务不存在", "result": None}
            return 200, {"code": 1, "description": "成功", "result": f"seed-of-{task_id}"}
        if path == "/mj/task/list-by-condition":
            out = []
            for task_id in data.get("ids", []):
                state = self._advance(task_id)
                if state is None:
                    continue
                phase, task = state
                status = {"running": "IN_PROGRESS", "success": "SUCCESS", "failure": "FAILURE"}[phase]
                out.append({"id": task_id, "action": "IMAGINE", "status": status,
                            "progress": "100%" if phase != "running" else "45%", "prompt": task["prompt"],
                            "promptEn": task["prompt"], "imageUrl": f"{self.url}/attachments/{task_id}.png"
                            if phase == "success" else "", "failReason": "banned" if phase == "failure" else "",
                            "buttons": [{"customId": "MJ::JOB::upsample::1::abc", "label": "U1", "type": 2,
                                         "style": 2, "emoji": ""}], "properties": {"finalPrompt": task["prompt"]}})
            return 200, out
        return 404, {"code": 3, "description": "not found"}

    def _suno(self, path: str, headers: dict, body: bytes) -> tuple[int, Any]:
        if headers.get("authorization") != f"Bearer {SUNO_KEY}":
            return 401, {"code": "unauthorized", "message": "bad token", "data": None}
        data = json.loads(body or b"{}")
        if path.startswith("/suno/submit/"):
            if "suno" in self.refuse:
                return 400, self.refuse["suno"]
            prompt = str(data.get("gpt_description_prompt") or data.get("prompt") or "")
            return 200, {"code": "success", "message": "", "data": self._new("suno", prompt, body=data)}
        if path == "/suno/fetch":
            out = []
            for task_id in data.get("ids", []):
                state = self._advance(task_id)
                if state is None:
                    continue
                phase, _task = state
                status = {"running": "IN_PROGRESS", "success": "SUCCESS", "failure": "FAILURE"}[phase]
                clips = [{"id": "clip-1", "status": "complete" if phase == "success" else "streaming",
                          "audio_url": f"https://cdn1.suno.example/{task_id}.mp3", "title": "Song",
                          "metadata": {"duration": 12.5, "tags": "pop"}}]
                out.append({"task_id": task_id, "action": "MUSIC", "status": status,
                            "fail_reason": "generation failed" if phase == "failure" else "",
                            "progress": "100%" if phase != "running" else "60%", "data": clips})
            return 200, {"code": "success", "message": "", "data": out}
        return 404, {"code": "not_found", "message": "not found", "data": None}

    def _kling(self, path: str, method: str, headers: dict, body: bytes) -> tuple[int, Any]:
        token = headers.get("authorization", "").removeprefix("Bearer ")
        if not jwt_valid(token, KLING_AK, KLING_SK):
            return 401, {"code": 1004, "message": "Authorization is invalid", "request_id": "r"}
        if method == "POST":
            if "kling" in self.refuse:
                return 400, self.refuse["kling"]
            data = json.loads(body or b"{}")
            task_id = self._new("kling", data.get("prompt", ""), body=data)
            return 200, {"code": 0, "message": "SUCCEED", "request_id": "r",
                         "data": {"task_id": task_id, "task_status": "submitted"}}
        state = self._advance(path.rsplit("/", 1)[1])
        if state is None:
            return 404, {"code": 1203, "message": "task not found"}
        phase, task = state
        status = {"running": "processing", "success": "succeed", "failure": "failed"}[phase]
        videos = [{"id": "v1", "url": f"https://kling.example/{task['prompt'][:8]}.mp4",
                   "duration": self.kling_seconds}] if phase == "success" else []
        return 200, {"code": 0, "message": "SUCCEED", "data": {
            "task_id": path.rsplit("/", 1)[1], "task_status": status,
            "task_status_msg": "content risk" if phase == "failure" else "", "task_result": {"videos": videos}}}

    def _jimeng(self, method: str, path: str, query: str, headers: dict, body: bytes) -> tuple[int, Any]:
        if not volc_valid(method, path, query, headers, body):
            return 401, {"code": 50400, "message": "signature does not match"}
        data = json.loads(body or b"{}")
        action = dict(parse_qsl(query)).get("Action")
        if action == "CVSync2AsyncSubmitTask":
            if "jimeng" in self.refuse:
                return 200, self.refuse["jimeng"]
            task_id = self._new("jimeng", data.get("prompt", ""), body=data)
            return 200, {"code": 10000, "message": "Success", "data": {"task_id": task_id}, "status": 10000}
        state = self._advance(data.get("task_id", ""))
        if state is None:
            return 200, {"code": 50413, "message": "task not found"}
        phase, _task = state
        if phase == "failure":
            return 200, {"code": 50411, "message": "Post Img Risk Not Pass", "data": None}
        inner = {"status": "in_queue"} if phase == "running" else {
            "status": "done", "video_url": f"https://jimeng.example/{data['task_id']}.mp4"}
        return 200, {"code": 10000, "message": "Success", "data": inner}

    def _openai(self, path: str, method: str, headers: dict, body: bytes) -> tuple[int, Any]:
        if headers.get("authorization") != f"Bearer {OPENAI_KEY}":
            return 401, {"error": {"message": "Incorrect API key", "type": "invalid_request_error"}}
        if method == "POST" and path == "/v1/videos":
            if "openai" in self.refuse:
                return 400, self.refuse["openai"]
            fields = _multipart_fields(body, headers.get("content-type", ""))
            task_id = self._new("video", fields.get("prompt", ""), body=fields)
            return 200, {"id": task_id, "object": "video", "model": fields.get("model"), "status": "queued",
                         "progress": 0, "seconds": fields.get("seconds"), "size": fields.get("size", "720x1280")}
        if method == "POST" and path.startswith("/v1/videos/") and path.endswith("/remix"):
            original = self.tasks.get(path.split("/")[3])
            if original is None:
                return 404, {"error": {"message": "No such video", "type": "invalid_request_error"}}
            prompt = json.loads(body).get("prompt", "")
            task_id = self._new("video", prompt, body={**original["body"], "prompt": prompt},
                                remixed_from=path.split("/")[3])
            return 200, {"id": task_id, "object": "video", "status": "queued", "progress": 0,
                         "remixed_from_video_id": path.split("/")[3]}
        state = self._advance(path.rsplit("/", 1)[1])
        if state is None:
            return 404, {"error": {"message": "No such video", "type": "invalid_request_error"}}
        phase, task = state
        status = {"running": "in_progress", "success": "completed", "failure": "failed"}[phase]
        return 200, {"id": path.rsplit("/", 1)[1], "object": "video", "status": status,
                     "progress": 100 if phase != "running" else 30, "seconds": task["body"].get("seconds"),
                     "error": {"code": "moderation", "message": "blocked"} if phase == "failure" else None}

    def __enter__(self) -> FakeTasks:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)


def _multipart_fields(body: bytes, content_type: str) -> dict[str, str]:
    """Text fields of a multipart body, plus `<name>:file` = filename for file parts."""
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    fields: dict[str, str] = {}
    for part in body.split(b"--" + boundary)[1:-1]:
        head, _, value = part.strip(b"\r\n").partition(b"\r\n\r\n")
        disposition = head.decode(errors="replace")
        name = disposition.split('name="', 1)[1].split('"', 1)[0]
        if 'filename="' in disposition:
            fields[f"{name}:file"] = disposition.split('filename="', 1)[1].split('"', 1)[0]
        else:
            fields[name] = value.decode(errors="replace")
    return fields
