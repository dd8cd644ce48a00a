"""A midjourney-proxy on loopback whose task list answers only while its gate is open, so a test knows a worker is
inside the poll (its fetch is pending here) and can kill it there, or let two workers hold the same tasks at once.

Submits are answered at once; a task ends FAILURE when its prompt contains "[fail]", SUCCESS otherwise, on the
first fetch. ``with GatedMidjourney() as up: up.gate.clear(); ...; up.wait_pending(1); up.gate.set()``.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET = "mj-secret"
GATE_LIMIT = 30.0  # a fetch never waits longer than this, whatever the test does


class GatedMidjourney:
    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.prompts: dict[str, str] = {}
        self.answered: Counter[str] = Counter()  # task id -> how many fetch answers named it
        self._pending = 0
        self._changed = threading.Condition()
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def reset(self) -> None:
        self.gate.set()
        self.prompts.clear()
        self.answered.clear()

    @property
    def pending(self) -> int:
        """Fetches waiting at the closed gate."""
        with self._changed:
            return self._pending

    def wait_pending(self, count: int, timeout: float = 20) -> bool:
        """Wait until `count` fetches are held at the gate."""
        with self._changed:
            return self._changed.wait_for(lambda: self._pending >= count, timeout=timeout)

    def _submit(self, body: dict[str, Any]) -> dict[str, Any]:
        task_id = f"gated-{next(self._ids)}"
        self.prompts[task_id] = str(body.get("prompt") or "")
        return {"code": 1, "description": "submitted", "result": task_id}

    def _list(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        with self._changed:
            self._pending += 1
            self._changed.notify_all()
        try:
            self.gate.wait(timeout=GATE_LIMIT)
        finally:
            with self._changed:
                self._pending -= 1
                self._changed.notify_all()
        out = []
        for task_id in body.get("ids", []):
            prompt = self.prompts.get(task_id)
            if prompt is None:
                continue
            failed = "[fail]" in prompt
            self.answered[task_id] += 1
            out.append({"id": task_id, "action": "IMAGINE", "status": "FAILURE" if failed else "SUCCESS",
                        "progress": "100%", "prompt": prompt, "failReason": "banned" if failed else "",
                        "imageUrl": "" if failed else f"https://cdn.example/{task_id}.png"})
        return out

    def __enter__(self) -> GatedMidjourney:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler(fake: GatedMidjourney) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
            if self.headers.get("mj-api-secret") != SECRET:
                return self._reply(401, {"code": 4, "description": "bad secret"})
            if self.path.startswith("/mj/submit/"):
                return self._reply(200, fake._submit(body))
            if self.path == "/mj/task/list-by-condition":
                return self._reply(200, fake._list(body))
            return self._reply(404, {"code": 3, "description": "not found"})

        def _reply(self, status: int, data: Any) -> None:
            raw = json.dumps(data).encode()
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
            except OSError:  # the worker that asked was killed meanwhile
                self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    return Handler

