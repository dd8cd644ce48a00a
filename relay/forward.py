"""Going upstream: try candidates in order, pass the answer through (streams chunk by chunk), then settle."""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from billing.charges import Hold
from billing.models import UsageStatus
from relay import errors, metrics
from relay.adapters import adapter_for
from relay.adapters.base import Call, UpstreamResponse
from relay.conf import settings
from relay.http import RelayRequest, Send, json_bytes, send_json, start_stream, watch_disconnect
from relay.overrides import upstream_body
from relay.protocols.sse import FrameSplitter
from relay.snapshots import PriceInfo, TokenContext, UpstreamInfo
from relay.tokenizer import count_text
from relay.transport import body_arrived
from relay.usage import Usage
from relay.wires import ANTHROPIC, OPENAI, error_body
from relay.wires_media import Upload
from relay.wiring import OPENAI_LIKE, responses_native, wire_for

RETRYABLE = {408, 409, 429}
# What the caller gets when the last upstream tried failed after its headers, by the reason the log gives.
UNDELIVERED = {"timeout": errors.upstream_failed("The upstream timed out.", 504),
               "connection error": errors.upstream_failed("The upstream connection broke before the answer.")}
KEY_PATTERN = re.compile(r"\b(?:sk-|sk_|AIza)[-_A-Za-z0-9]{8,}")  # OpenAI-style and Google API keys


def _retry_after(value: str | None) -> int:
    """The upstream's Retry-After in whole seconds (1-60; HTTP dates and nonsense count as 1)."""
    try:
        return min(max(math.ceil(float(value or "")), 1), 60)
    except (ValueError, OverflowError):
        return 1


def _undelivered(exc: BaseException) -> str:
    """Why an answer that began (headers received) could not be delivered: the log's words for it."""
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return "timeout"
    if isinstance(exc, StopAsyncIteration):
        return "empty answer"
    return "connection error"


def redact(text: str, keys: tuple[str, ...]) -> str:
    """Upstream messages may quote the upstream key ("Incorrect API key provided: sk-..."): never pass it on."""
    return _without_keys(text, keys)[:2000]


def _without_keys(text: str, keys: tuple[str, ...]) -> str:
    for key in keys:
        if key:
            text = text.replace(key, "***")
    return KEY_PATTERN.sub("***", text)


def scrub_frame(frame: bytes, keys: tuple[str, ...]) -> bytes:
    """An error frame inside a stream may quote the upstream key as well; other frames pass untouched."""
    if b'"error"' not in frame and b"event: error" not in frame:
        return frame
    return _without_keys(frame.decode("utf-8", "surrogateescape"), keys).encode("utf-8", "surrogateescape")


@dataclass
class Outcome:
    """What happened, for settlement and the usage log."""

    upstream: UpstreamInfo | None = None
    upstream_model: str = ""
    usage: Usage | None = None
    status: str = UsageStatus.SUCCESS
    status_code: int = 200
    error: str = ""
    first_byte_ms: int | None = None
    charge: bool = True  # False: refund the whole reservation
    failures: list[tuple[UpstreamInfo, str]] = field(default_factory=list)


@dataclass
class Job:
    client: str  # the client's protocol: openai, anthropic or gemini
    req: RelayRequest
    ctx: TokenContext
    body: dict[str, Any]
    operation: str
    model: str
    price: PriceInfo
    upstreams: list[UpstreamInfo]
    hold: Hold
    prompt_estimate: int
    headers: list[tuple[bytes, bytes]]
    started: float
    stream: bool
    upload: Upload | None = None  # multipart requests
    stop: asyncio.Event = field(default_factory=asyncio.Event)  # set when the server stops: end the stream now

    def wire(self, family: str, upstream: UpstreamInfo) -> Any:
        return wire_for(self.client, family, self.operation, self.body, model=self.model, stream=self.stream,
                        default_max_tokens=settings.RELAY_DEFAULT_MAX_TOKENS, input_estimate=self.prompt_estimate,
                        upstream_type=upstream.type, request_id=self.req.request_id, upload=self.upload,
                        native_responses=responses_native(upstream))

    def error(self, error: errors.RelayError) -> dict[str, Any]:
        return error_body(self.client, error.status, error.message, type=error.type, code=error.code,
                          param=error.param)


def error_message(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except ValueError:
        return raw[:300].decode("utf-8", errors="replace")
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            return str(err.get("message") or err)
        return str(err)
    return str(data)[:300]


class Forwarder:
    """Per-process: the pooled HTTP client and the attempt loop."""

    def __init__(self, client: httpx.AsyncClient, on_failure: Any) -> None:
        self.client, self.on_failure = client, on_failure

    async def run(self, job: Job, send: Send, receive: Any) -> Outcome:
        outcome = Outcome()
        last: errors.RelayError | None = None
        for upstream in job.upstreams[: settings.RELAY_RETRIES + 1]:
            upstream_model = upstream.upstream_model(job.model)
            adapter = adapter_for(upstream, upstream_model)
            try:
                wire = job.wire(adapter.family, upstream) if adapter is not None else None
            except errors.RelayError:  # this upstream cannot carry the request (the first one was checked before)
                wire = None
            if wire is None:
                continue
            key = random.choice(upstream.keys) if upstream.keys else ""
            body = wire.request(upstream_model, adapter.supports_stream_usage)
            if hasattr(wire, "encode"):  # a multipart upload, sent as it came
                content, content_type, length = wire.encode(body)
            else:
                if upstream.param_override or upstream.system_prompt:
                    body = upstream_body(body, upstream, adapter.family, wire.operation)
                content, content_type, length = json_bytes(body), "application/json", None
            call = Call(upstream=upstream, key=key, operation=wire.operation, body=body, stream=job.stream,
                        model=upstream_model, content_type=content_type, client_headers=job.req.headers)
            outcome.upstream, outcome.upstream_model = upstream, upstream_model
            try:
                async with asyncio.timeout(upstream.first_byte_timeout + upstream.connect_timeout):
                    response = await adapter.send(self.client, call, content, length)
            except (httpx.TimeoutException, TimeoutError):
                last = errors.upstream_failed("The upstream timed out.", 504)
                await self._failed(outcome, upstream, "timeout")
                continue
            except httpx.HTTPError:
                last = errors.upstream_failed("The upstream could not be reached.")
                await self._failed(outcome, upstream, "connection error")
                continue
            status = upstream.status_map.get(response.status_code, response.status_code)
            if status >= 400:
                raw = await self._read_quietly(response)
                message = redact(error_message(raw), upstream.keys)
                if status == 429:
                    last = errors.upstream_rate_limited(message, _retry_after(response.headers.get("retry-after")))
                    await self._failed(outcome, upstream, "HTTP 429")
                    continue
                if status in RETRYABLE or status >= 500:
                    last = errors.upstream_failed(f"Upstream error ({status}): {message}")
                    await self._failed(outcome, upstream, f"HTTP {status}")
                    continue
                if status in (401, 403):
                    last = errors.upstream_failed("The upstream refused its credentials.")
                    await self._failed(outcome, upstream, f"HTTP {status} (credentials)", disable=True, key=key)
                    continue
                passthrough = wire.client == OPENAI and adapter.family in OPENAI_LIKE
                return await self._client_error(job, send, outcome, status, raw, message, passthrough)
            if getattr(wire, "binary", False):
                failure = await self._bytes(job, send, receive, response, outcome, wire)
            elif job.stream and "text/event-stream" in response.headers.get("content-type", ""):
                failure = await self._stream(job, send, receive, response, outcome, wire)
            else:
                failure = await self._plain(job, send, response, outcome, wire)
            if failure is None:
                return outcome
            last = UNDELIVERED.get(failure) or errors.upstream_failed("The upstream sent an unreadable answer.")
            await self._failed(outcome, upstream, failure)
        outcome.charge = False
        outcome.status, outcome.status_code = UsageStatus.ERROR, (last.status if last else 503)
        error = last or errors.unavailable("No upstream is available for this model.")
        outcome.error = error.message
        headers = job.headers + [(name.encode(), value.encode()) for name, value in error.headers.items()]
        await send_json(send, error.status, job.error(error), headers=headers)
        return outcome

    async def _failed(self, outcome: Outcome, upstream: UpstreamInfo, reason: str, *, disable: bool = False,
                      key: str = "") -> None:
        outcome.failures.append((upstream, reason))
        await self.on_failure(upstream, reason, disable, key)

    @staticmethod
    async def _read_quietly(response: UpstreamResponse) -> bytes:
        try:
            return await response.aread()
        except httpx.HTTPError:
            return b""
        finally:
            await response.aclose()

    async def _client_error(self, job: Job, send: Send, outcome: Outcome, status: int, raw: bytes,
                            message: str, passthrough: bool) -> Outcome:
        """A 4xx about the request itself: the caller gets what the upstream said, in the caller's protocol; nothing
        is charged."""
        outcome.charge, outcome.status, outcome.status_code, outcome.error = False, UsageStatus.ERROR, status, message
        body = error_body(job.client, status, message)
        if passthrough:
            try:
                parsed = json.loads(raw)
                if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
                    parsed["error"]["message"] = message
                    body = parsed
            except ValueError:
                pass
        await send_json(send, status, body, headers=job.headers)
        return outcome

    async def _plain(self, job: Job, send: Send, response: UpstreamResponse, outcome: Outcome,
                     wire: Any) -> str | None:
        try:
            if body_arrived(response):  # as most plain answers are, with their head: no timer to set and cancel
                raw = await response.aread()
            else:
                async with asyncio.timeout(outcome.upstream.total_timeout):
                    raw = await response.aread()
        except (httpx.HTTPError, TimeoutError) as exc:
            return _undelivered(exc)
        finally:
            await response.aclose()
        try:
            answer = wire.plain(raw)
        except errors.RelayError as refused:  # an answer refusing what was asked: the caller's, not an upstream fault
            outcome.charge, outcome.status, outcome.status_code = False, UsageStatus.ERROR, refused.status
            outcome.error = refused.message
            await send_json(send, refused.status, job.error(refused), headers=job.headers)
            return None
        if answer is None:
            return "unreadable answer"
        outcome.first_byte_ms = int((time.monotonic() - job.started) * 1000)
        outcome.usage = answer.usage or Usage(job.prompt_estimate, count_text(answer.text), estimated=True)
        content_type = answer.content_type or response.headers.get("content-type", "application/json").encode()
        await send_json(send, 200, None, headers=job.headers, raw=answer.body, content_type=content_type)
        return None

    async def _bytes(self, job: Job, send: Send, receive: Any, response: UpstreamResponse, outcome: Outcome,
                     wire: Any) -> str | None:
        """Pass a binary body (synthesised speech) through as it arrives, with the upstream's content type. The
        usage is known from the request; a body cut short or a client gone is still charged, as it was produced."""
        chunks = response.aiter_raw()
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            first = b""
        except httpx.HTTPError as exc:
            await response.aclose()
            return _undelivered(exc)
        outcome.first_byte_ms = int((time.monotonic() - job.started) * 1000)
        content_type = response.headers.get("content-type", "application/octet-stream").encode()
        await start_stream(send, 200, job.headers, content_type)
        gone, watcher = watch_disconnect(receive)

        async def pump() -> None:
            if first:
                await send({"type": "http.response.body", "body": first, "more_body": True})
            async for piece in chunks:
                await send({"type": "http.response.body", "body": piece, "more_body": True})

        pumping = asyncio.create_task(pump())
        done, _ = await asyncio.wait({pumping, watcher}, timeout=outcome.upstream.total_timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        broke = pumping not in done or pumping.exception() is not None
        for task in (pumping, watcher):
            task.cancel()
        await asyncio.gather(pumping, watcher, return_exceptions=True)
        await response.aclose()
        if gone.is_set() and broke:
            outcome.status, outcome.status_code, outcome.error = UsageStatus.CLIENT_CLOSED, 499, "client disconnected"
        elif broke:
            outcome.status, outcome.error = UsageStatus.ERROR, "The upstream audio stream broke off."
        if not gone.is_set():
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        outcome.usage = wire.usage()
        return None

    async def _stream(self, job: Job, send: Send, receive: Any, response: UpstreamResponse,
                      outcome: Outcome, wire: Any) -> str | None:
        """Pass the stream through frame by frame. Returns why (so the next upstream is tried) only when the
        upstream failed before anything reached the client."""
        meter = wire.stream()
        splitter = FrameSplitter()
        chunks = response.aiter_raw()
        pending: list[bytes] = []
        received = False
        try:
            while not pending:  # hold the response headers until the first real frame: failover stays possible
                chunk = await chunks.__anext__()
                received = received or bool(chunk.strip())
                pending = [out for frame in splitter.feed(chunk) for out in meter.feed(frame)]
        except (StopAsyncIteration, httpx.HTTPError) as exc:
            await response.aclose()
            return "unreadable answer" if received and isinstance(exc, StopAsyncIteration) else _undelivered(exc)
        keys = outcome.upstream.keys

        async def forward(frames: list[bytes]) -> None:
            """What one read from the upstream produced, in one write to the client."""
            if frames:
                body = b"".join(scrub_frame(out, keys) for out in frames)
                await send({"type": "http.response.body", "body": body, "more_body": True})

        outcome.first_byte_ms = int((time.monotonic() - job.started) * 1000)
        await start_stream(send, 200, job.headers, b"text/event-stream")
        await forward(pending)  # now, not when the pump task first runs: a loop turn sooner under load
        gone, watcher = watch_disconnect(receive)

        async def pump() -> None:
            async for piece in chunks:
                await forward([out for frame in splitter.feed(piece) for out in meter.feed(frame)])
            rest = splitter.rest()
            tail = meter.feed(rest + b"\n\n") if rest.strip() else []
            await forward(tail + meter.finish())

        pumping = asyncio.create_task(pump())
        stopping = asyncio.create_task(job.stop.wait())
        metrics.active_streams.inc()
        try:
            done, _ = await asyncio.wait({pumping, watcher, stopping}, timeout=outcome.upstream.total_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            metrics.active_streams.dec()
        failure = ""
        if pumping in done and pumping.exception() is not None:
            failure = "The upstream stream broke off."
        elif pumping not in done:
            pumping.cancel()
            if stopping in done:
                failure = "The server is restarting; the stream was ended early. Please retry."
            elif not gone.is_set():
                failure = "The upstream stream took longer than the total timeout."
        watcher.cancel()
        stopping.cancel()
        await asyncio.gather(pumping, watcher, stopping, return_exceptions=True)
        await response.aclose()
        if gone.is_set() and not meter.complete:
            outcome.status, outcome.status_code, outcome.error = UsageStatus.CLIENT_CLOSED, 499, "client disconnected"
        elif failure or meter.error:
            outcome.status, outcome.error = UsageStatus.ERROR, failure or redact(meter.error, outcome.upstream.keys)
            if failure:
                err = error_body(job.client, 502, failure, type="upstream_error", code="upstream_error")
                event = b"event: error\n" if job.client == ANTHROPIC else b""
                await send({"type": "http.response.body", "body": event + b"data: " + json_bytes(err) + b"\n\n",
                            "more_body": True})
        if not gone.is_set():
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        outcome.usage = meter.usage or Usage(job.prompt_estimate, count_text(meter.text), estimated=True)
        return None
