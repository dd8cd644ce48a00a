"""A fake rerank provider on loopback: Jina's `/v1/rerank` and Cohere's `/v2/rerank`, scoring by shared words."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

import uvicorn


def score(query: str, document: str, index: int) -> float:
    """Deterministic relevance: words the document shares with the query, ties broken by position."""
    shared = len(set(query.lower().split()) & set(document.lower().split()))
    return round(shared + 1 / (index + 2), 6)


class FakeRerank:
    """`with FakeRerank(api_key=...) as up:` -> `up.url`, `up.requests` (method, path, headers, json)."""

    tokens = 42  # Jina reports usage.total_tokens; Cohere reports search units only

    def __init__(self, api_key: str = "rr-up") -> None:
        self.api_key, self.requests = api_key, []
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, lifespan="off", interface="asgi3",
                                log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)

    async def app(self, scope: dict, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        data = json.loads(body or b"{}")
        self.requests.append({"path": scope["path"], "headers": headers, "json": data})
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return await self._reply(send, 401, {"message": "invalid api token"})
        documents = [d["text"] if isinstance(d, dict) else d for d in data.get("documents", [])]
        ranked = sorted(({"index": i, "relevance_score": score(data["query"], d, i)} for i, d in enumerate(documents)),
                        key=lambda r: r["relevance_score"], reverse=True)[: data.get("top_n") or None]
        if scope["path"] == "/v2/rerank":
            return await self._reply(send, 200, {"id": "co-1", "results": ranked,
                                                 "meta": {"billed_units": {"search_units": 1}}})
        return await self._reply(send, 200, {"model": data["model"], "results": ranked,
                                             "usage": {"total_tokens": self.tokens}})

    @staticmethod
    async def _reply(send: Any, status: int, data: dict) -> None:
        raw = json.dumps(data).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]})
        await send({"type": "http.response.body", "body": raw})

    def __enter__(self) -> "FakeRerank":
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
