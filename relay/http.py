"""Plain ASGI plumbing for the relay: read a bounded request, answer JSON, stream, notice disconnects."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl

from relay import jsonio
from relay.client_ip import ip_from
from relay.errors import RelayError

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class RelayRequest:
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes
    client_ip: str | None
    request_id: str
    extra_headers: list[tuple[bytes, bytes]] = field(default_factory=list)  # added to every response

    def json(self) -> dict[str, Any]:
        """The body as a JSON object, or a 400 in OpenAI's shape."""
        if not self.body:
            raise RelayError(400, "The request body is empty; send a JSON object.")
        try:
            data = jsonio.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise RelayError(400, "The request body is not valid JSON.") from None
        except RecursionError:  # "[[[[...": json's decoder recurses once per level
            raise RelayError(400, "The request body is nested too deeply.") from None
        if not isinstance(data, dict):
            raise RelayError(400, "The request body must be a JSON object.")
        return data


async def read_request(scope: Scope, receive: Receive, *, max_body: int, request_id: str) -> RelayRequest:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        headers[raw_name.decode("latin-1").lower()] = raw_value.decode("latin-1")
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_body:
        raise RelayError(413, f"The request body is larger than {max_body} bytes.", code="request_too_large")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_body:
            raise RelayError(413, f"The request body is larger than {max_body} bytes.", code="request_too_large")
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    client = scope.get("client")
    return RelayRequest(
        method=scope["method"], path=scope["path"], headers=headers,
        query=dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))), body=b"".join(chunks),
        client_ip=ip_from(client[0] if client else None, headers.get("x-forwarded-for")), request_id=request_id,
    )


class ClientGone(Exception):
    """The client closed the connection."""


json_bytes = jsonio.dumps  # compact UTF-8 JSON; an unpaired surrogate becomes "?"


async def send_json(
    send: Send, status: int, data: Any, *, headers: list[tuple[bytes, bytes]] = (), raw: bytes | None = None,
    content_type: bytes = b"application/json",
) -> None:
    body = raw if raw is not None else json_bytes(data)
    await send({
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *headers],
    })
    await send({"type": "http.response.body", "body": body})


async def start_stream(send: Send, status: int, headers: list[tuple[bytes, bytes]], content_type: bytes) -> None:
    await send({
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", content_type), (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no"),
                    *headers],
    })


def watch_disconnect(receive: Receive) -> tuple[asyncio.Event, asyncio.Task]:
    """An event set when the client disconnects (the body was already read, so receive() waits for that)."""
    gone = asyncio.Event()

    async def watch() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
                return

    return gone, asyncio.create_task(watch())
