"""A fake OpenAI Realtime upstream: a real `websockets` server on loopback, run in a daemon thread.

In tests: ``with FakeRealtime(api_key="sk-rt-up") as up: up.behave(input_tokens=...); ... up.events``

It speaks the beta event protocol (protocols.md section 3): `session.created` on connect, then answers
`session.update`, `conversation.item.create`, `response.create` and `response.cancel`. Test-only client events:
`fake.echo` (sent back as it is), `fake.close` (close with the event's `code` and `reason`) and `fake.abort`
(drop the TCP connection without a closing handshake). Binary frames are echoed back as binary frames.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response


@dataclass
class Behaviour:
    """How the fake answers `response.create`; token counts go into `response.done` as OpenAI reports them."""

    text: str = "Hello from the fake realtime model."
    input_tokens: int = 120
    input_text_tokens: int = 100
    input_audio_tokens: int = 20
    cached_tokens: int = 0
    cached_text_tokens: int = 0
    cached_audio_tokens: int = 0
    output_text_tokens: int = 10
    output_audio_tokens: int = 0
    deltas: int = 3
    delta_delay: float = 0.0
    hold_response: bool = False  # stream the deltas, then wait for response.cancel (or the end) before done
    refuse_status: int | None = None  # answer the handshake with this HTTP status

    def usage(self) -> dict[str, Any]:
        output = self.output_text_tokens + self.output_audio_tokens
        return {"total_tokens": self.input_tokens + output, "input_tokens": self.input_tokens, "output_tokens": output,
                "input_token_details": {
                    "cached_tokens": self.cached_tokens, "text_tokens": self.input_text_tokens,
                    "audio_tokens": self.input_audio_tokens,
                    "cached_tokens_details": {"text_tokens": self.cached_text_tokens,
                                              "audio_tokens": self.cached_audio_tokens}},
                "output_token_details": {"text_tokens": self.output_text_tokens,
                                         "audio_tokens": self.output_audio_tokens}}


@dataclass
class Handshake:
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lowercased names


@dataclass
class Session:
    """One connection the fake accepted: what it was sent, and how it was closed."""

    handshake: Handshake
    events: list[dict[str, Any]] = field(default_factory=list)
    binary: list[bytes] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    ended: bool = False


class FakeRealtime:
    def __init__(self, *, api_key: str = "sk-rt-upstream", host: str = "127.0.0.1") -> None:
        self.api_key, self.host = api_key, host
        self.behaviour = Behaviour()
        self.handshakes: list[Handshake] = []  # every handshake attempted, refused ones included
        self.sessions: list[Session] = []
        self.url = ""
        self._ids = itertools.count(1)
        self._pending: dict[int, Handshake] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    # Test controls

    def behave(self, **fields: Any) -> Behaviour:
        self.behaviour = Behaviour(**fields)
        return self.behaviour

    def reset(self) -> None:
        self.behaviour = Behaviour()
        self.handshakes.clear()
        self.sessions.clear()

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for session in self.sessions for event in session.events]

    def wait(self, predicate: Any, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    # The server

    def _authorised(self, headers: dict[str, str]) -> bool:
        return headers.get("authorization") == f"Bearer {self.api_key}" or headers.get("api-key") == self.api_key

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        headers = {k.lower(): v for k, v in request.headers.raw_items()}
        handshake = Handshake(parts.path, dict(parse_qsl(parts.query)), headers)
        self.handshakes.append(handshake)
        self._pending[id(connection)] = handshake
        if self.behaviour.refuse_status is not None:
            return connection.respond(self.behaviour.refuse_status, "refused by the test\n")
        if not self._authorised(headers):
            return connection.respond(401, "Incorrect API key provided.\n")
        return None

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    async def _send(self, ws: ServerConnection, event: dict[str, Any]) -> None:
        await ws.send(json.dumps({"event_id": self._id("event"), **event}))

    async def _handle(self, ws: ServerConnection) -> None:
        session = Session(self._pending.pop(id(ws)))
        self.sessions.append(session)
        cancel = asyncio.Event()
        responding: asyncio.Task | None = None
        await self._send(ws, {"type": "session.created", "session": {"id": self._id("sess"), "model": "fake",
                                                                     "modalities": ["text"]}})
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    session.binary.append(message)
                    await ws.send(message)
                    continue
                event = json.loads(message)
                session.events.append(event)
                kind = event.get("type")
                if kind == "fake.echo":
                    await ws.send(message)
                elif kind == "fake.close":
                    await ws.close(event.get("code", 1000), event.get("reason", ""))
                elif kind == "fake.abort":
                    ws.transport.abort()
                elif kind == "session.update":
                    await self._send(ws, {"type": "session.updated", "session": event.get("session", {})})
                elif kind == "conversation.item.create":
                    item = {"id": self._id("item"), **event.get("item", {})}
                    await self._send(ws, {"type": "conversation.item.created", "previous_item_id": None,
                                          "item": item})
                elif kind == "response.create":
                    cancel.clear()
                    responding = asyncio.ensure_future(self._respond(ws, cancel))
                elif kind == "response.cancel":
                    cancel.set()
        except ConnectionClosed:
            pass
        finally:
            if responding is not None:
                responding.cancel()
            close = ws.protocol.close_rcvd
            session.close_code, session.close_reason = (close.code, close.reason) if close else (None, "")
            session.ended = True

    async def _respond(self, ws: ServerConnection, cancel: asyncio.Event) -> None:
        b = self.behaviour
        response_id, item_id = self._id("resp"), self._id("item")
        where = {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
        await self._send(ws, {"type": "response.created", "response": {"id": response_id, "status": "in_progress",
                                                                       "output": [], "usage": None}})
        await self._send(ws, {"type": "response.output_item.added", "response_id": response_id, "output_index": 0,
                              "item": {"id": item_id, "type": "message", "role": "assistant", "content": []}})
        size = max(1, -(-len(b.text) // max(b.deltas, 1)))
        for start in range(0, len(b.text), size):
            if b.delta_delay:
                await asyncio.sleep(b.delta_delay)
            await self._send(ws, {"type": "response.text.delta", **where, "delta": b.text[start:start + size]})
        status = "completed"
        if b.hold_response:
            await cancel.wait()
            status = "cancelled"
        await self._send(ws, {"type": "response.text.done", **where, "text": b.text})
        await self._send(ws, {"type": "response.done", "response": {
            "id": response_id, "object": "realtime.response", "status": status,
            "output": [{"id": item_id, "type": "message", "role": "assistant",
                        "content": [{"type": "text", "text": b.text}]}], "usage": b.usage()}})

    async def _serve(self, started: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        async with serve(self._handle, self.host, 0, process_request=self._process_request, compression=None,
                         max_size=None) as server:
            self._server = server
            port = next(iter(server.sockets)).getsockname()[1]
            self.url = f"http://{self.host}:{port}"
            started.set()
            await self._stopped.wait()

    def start(self) -> FakeRealtime:
        started = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve(started)), daemon=True,
                                        name="fake-realtime")
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the fake realtime upstream did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = self._loop = None

    def __enter__(self) -> FakeRealtime:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
