"""The relay's own ASGI app: `/v1/...` requests never pass through Django's request stack."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from django.db import InterfaceError, OperationalError

from billing.books import Closing
from billing.charges import Hold
from config.logs import request_id as log_context
from billing.ledger import InsufficientQuota
from billing.models import UsageStatus
from relay import errors, gate, info, invalidation, metrics, playground
from relay.books import Books, BooksUnavailable
from relay.conf import settings
from relay.eager import eager_task
from relay.forward import Forwarder, Job, Outcome
from relay.http import ClientGone, Receive, RelayRequest, Scope, Send, read_request, send_json
from relay.limits import Limits
from relay.media_tasks import routes as media_routes
from relay.multipart import form_parse
from relay.transport import UpstreamTransport
from relay.upstream_client import upstream_client
from relay.audio import audio_seconds_estimate
from relay.snapshots import Snapshots, UpstreamInfo, in_thread
from relay.warm import KeepWarm
from relay.key_vault import key_fingerprint
from relay.upstreams import upstream_auto_disable, upstream_key_disable
from relay.tokenizer import estimate_prompt
from relay.wires_gemini import GEMINI
from relay.adapters.gemini import EMBED_ACTIONS
from relay.wires_media import Upload
from relay.protocols.cohere_chat import cohere_request_to_openai
from relay.wires_rerank import COHERE
from relay.paths import GEMINI_ACTION, GEMINI_OPENAI_BASE, OPERATIONS, PREFIXES, client_protocol, error_for
from relay.wiring import MULTIPART_OPERATIONS, carries, wire_check

logger = logging.getLogger("relay")

AUTH_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key"})
SHUTDOWN = asyncio.Event()  # set once the server has begun to stop (config.asgi); /readyz then answers 503


def read_upload(req: RelayRequest, operation: str) -> Upload:
    """A multipart request's form, with the audio's duration read for transcription (priced per minute)."""
    form = form_parse(req.body, req.headers.get("content-type", ""))
    wanted = ("image", "image[]") if operation == "images/edits" else ("file",)
    files = form.files(*wanted)
    if not files or not any(part.end > part.start for part in files):
        raise errors.bad_request(f"Upload the {'image' if operation == 'images/edits' else 'audio file'} as the "
                                 f"multipart field '{wanted[0]}'.", param=wanted[0])
    if operation == "images/edits":
        return Upload(form)
    seconds, estimated = audio_seconds_estimate(form.file_bytes(files[0]))
    return Upload(form, seconds, estimated)


def upload_fields(upload: Upload) -> dict[str, Any]:
    """The form's text fields as a request body: numbers and booleans as JSON would carry them."""
    body: dict[str, Any] = dict(upload.form.fields)
    if "n" in body:
        try:
            body["n"] = int(body["n"])
        except ValueError:
            raise errors.bad_request("'n' must be an integer.", param="n") from None
    if "stream" in body:
        body["stream"] = body["stream"].strip().lower() == "true"
    return body


def gemini_token_count(body: dict[str, Any]) -> dict[str, Any]:
    """`:countTokens`, answered here from the local count (not billed): `contents`, or a `generateContentRequest`."""
    request = body.get("generateContentRequest")
    request = request if isinstance(request, dict) else body
    gate.validate(request, "generateContent")
    tokens = estimate_prompt(request, "generateContent")
    return {"totalTokens": tokens, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}]}


def is_relay_path(path: str) -> bool:
    return path.startswith(PREFIXES) or path.rstrip("/") in info.ROOT_PATHS


def _error_with_attempts(outcome: Outcome) -> str:
    """The log row's error, with every failed attempt: what each upstream did before the answer (or the refusal)."""
    if not outcome.failures:
        return outcome.error
    attempts = "; ".join(f"upstream #{upstream.id}: {reason}" for upstream, reason in outcome.failures)
    return f"{outcome.error} (attempts: {attempts})" if outcome.error else f"failed over after {attempts}"


class RelayApp:
    def __init__(self) -> None:
        self.snapshots = Snapshots()
        self._listener: asyncio.Future | None = None  # empties the snapshots when any process changes a cached row
        self.limits = Limits()
        # Identity encoding: streams are passed on as read (aiter_raw), so they must not be gzipped.
        self.client = upstream_client(transport=UpstreamTransport(max_connections=1000, max_keepalive=200),
                                      headers={"accept-encoding": "identity"})
        self.forwarder = Forwarder(self.client, self.upstream_failed)
        self.books = Books()
        self.warm = KeepWarm(self.snapshots.refresh, self.books.refresh)
        self._stops: set[asyncio.Event] = set()  # each call in flight's stop (wind_down ends their streams)
        self._disable = in_thread(upstream_auto_disable)
        self._disable_key = in_thread(upstream_key_disable)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.listen_for_changes()
        self.warm.called()
        request_id = os.urandom(16).hex()  # 32 random hex digits, as uuid4().hex without building a UUID
        log_context.set(request_id)
        headers = [(b"x-request-id", request_id.encode())]
        try:
            req = await read_request(scope, receive, max_body=settings.RELAY_MAX_BODY_BYTES, request_id=request_id)
            req.extra_headers = headers
            if req.path.startswith(GEMINI_OPENAI_BASE):  # Gemini's OpenAI-compatible base URL, as users copy it
                req.path = "/v1/" + req.path[len(GEMINI_OPENAI_BASE):]
            await self.dispatch(req, receive, send)
        except ClientGone:
            return
        except errors.RelayError as exc:
            body = error_for(scope["path"], exc.status, exc.message, type=exc.type, code=exc.code, param=exc.param,
                             request_id=request_id)
            await send_json(send, exc.status, body,
                            headers=headers + [(k.encode(), v.encode()) for k, v in exc.headers.items()])
        except (OperationalError, InterfaceError, BooksUnavailable):
            logger.warning("relay request %s: the database is unreachable", request_id, exc_info=True)
            try:
                await send_json(send, 503, error_for(
                    scope["path"], 503, "The database is unavailable; nothing was charged. Please retry shortly.",
                    type="server_error", code="database_unavailable", request_id=request_id),
                    headers=headers + [(b"retry-after", b"5")])
            except Exception:  # the response had already started
                pass
        except Exception:
            logger.exception("relay request %s failed", request_id)
            try:
                await send_json(send, 500, error_for(scope["path"], 500, "Internal error; it has been logged.",
                                                     type="server_error", request_id=request_id), headers=headers)
            except Exception:  # the response had already started
                pass

    def listen_for_changes(self) -> None:
        """Start (once, on the serving loop) emptying the snapshots whenever any process changes a cached row."""
        if self._listener is None:
            self._listener = asyncio.ensure_future(invalidation.listen(self.changed, self.books.heard))

    def changed(self) -> None:
        """A cached row changed somewhere: drop the snapshots and read balances again before admitting."""
        self.snapshots.clear()
        self.books.forget()

    async def dispatch(self, req: RelayRequest, receive: Receive, send: Send) -> None:
        operation = OPERATIONS.get(req.path)  # no task route's path is one of these: looked up first, as cheaper
        if operation is None and media_routes.owns(req.path):
            return await media_routes.dispatch(self, req, send)
        if operation is not None:
            if req.method != "POST":
                raise errors.RelayError(405, f"Use POST for {req.path}.")
            await self.relay(req, operation, receive, send)
            return
        if req.path == playground.PATH and req.method == "POST":  # the console's playground, on the session
            key = await playground.playground_key(req)
            req.headers = {name: value for name, value in req.headers.items() if name not in AUTH_HEADERS}
            req.headers["authorization"] = f"Bearer {key}"
            await self.relay(req, "chat/completions", receive, send)
            return
        gemini = GEMINI_ACTION.match(req.path)
        if gemini is not None and req.method == "POST":
            action = gemini["action"]
            if action == "countTokens":
                await gate.authenticate(self.snapshots, req, query_key=True)
                await send_json(send, 200, gemini_token_count(req.json()), headers=req.extra_headers)
            elif action in EMBED_ACTIONS:
                await self.relay(req, action, receive, send, model=gemini["model"], stream=False)
            else:
                await self.relay(req, "generateContent", receive, send, model=gemini["model"],
                                 stream=action == "streamGenerateContent")
            return
        if req.path.rstrip("/") == "/v1beta/models" and req.method == "GET":
            ctx = await gate.authenticate(self.snapshots, req, query_key=True)
            await send_json(send, 200, await info.gemini_models(self, ctx), headers=req.extra_headers)
            return
        if req.path == "/v1/messages/count_tokens" and req.method == "POST":
            await gate.authenticate(self.snapshots, req)
            body = req.json()
            gate.validate(dict(body, max_tokens=1), "messages")
            await send_json(send, 200, {"input_tokens": estimate_prompt(body, "messages")}, headers=req.extra_headers)
            return
        handler = info.route(req.path)
        if handler is None or req.method != "GET":
            raise errors.not_found(f"Unknown path: {req.method} {req.path}", code="unknown_url")
        ctx = await gate.authenticate(self.snapshots, req)
        status, body = await handler(self, ctx, req)
        await send_json(send, status, body, headers=req.extra_headers)

    async def relay(self, req: RelayRequest, operation: str, receive: Receive, send: Send, *, model: str = "",
                    stream: bool | None = None) -> None:
        """Relay one model call; Gemini calls name the model and whether to stream in the path."""
        started = time.monotonic()
        upload = read_upload(req, operation) if operation in MULTIPART_OPERATIONS else None
        body = upload_fields(upload) if upload is not None else req.json()
        client = client_protocol(req.path)
        ctx = await gate.authenticate(self.snapshots, req, query_key=client == GEMINI)
        if client == COHERE and operation != "rerank":  # Cohere v2 chat and embed: checked as the OpenAI they become
            body = cohere_request_to_openai(body, operation)
        model = model or gate.validate(body, operation)
        if client == GEMINI:
            gate.validate(body, operation)
        model, body = await gate.model_resolve(self.snapshots, body, model, operation)
        stream = bool(body.get("stream")) if stream is None else stream
        pin = body.pop("provider", None) or req.headers.get("x-ai-provider", "")
        if not isinstance(pin, str):
            raise errors.bad_request("'provider' must be a string.", param="provider")
        route = await gate.route(self.snapshots, ctx, body, model, pin)
        await gate.screen(self.snapshots, body)
        route.upstreams = [u for u in route.upstreams
                           if carries(client, operation, body, u, model=model, stream=stream, upload=upload)]
        if not route.upstreams:
            raise errors.bad_request(f"The model '{model}' is not offered on {req.path}.", param="model",
                                     code="model_not_supported")
        # the first upstream's wire raises its 400 now, before anything is reserved, for what it cannot carry as
        # sent (a Responses request chat cannot express, token arrays for a Gemini embedding model)
        wire_check(client, operation, body, route.upstreams[0], model=model, stream=stream, upload=upload)
        if operation == "completions" and req.path == "/v1/code/completions":
            body.pop("language", None)
        headers = list(req.extra_headers)
        if ctx.rpm_limit:
            rpm = await self.limits.rpm_hit(ctx.token_id, ctx.rpm_limit)
            headers += rpm.headers()
            if rpm.remaining < 0:
                raise errors.key_rate_limited(ctx.rpm_limit, rpm.retry_after,
                                              {k.decode(): v.decode() for k, v in headers})
        worst = gate.worst_case(body, operation, audio_seconds=upload.audio_seconds if upload else 0.0)
        amount = gate.cost_of(route.price, ctx.group_ratio, worst, gate.calls_of(body, operation),
                              **gate.shape_of(body, operation))
        hold = Hold(request_id=req.request_id, user_id=ctx.user_id, token_id=ctx.token_id, unlimited=ctx.unlimited,
                    amount=amount)
        entered = False
        if ctx.concurrency_limit:
            entered = await self.limits.concurrency_enter(ctx.token_id, ctx.concurrency_limit)
            if not entered:
                raise errors.key_too_many_concurrent(ctx.concurrency_limit,
                                                     {k.decode(): v.decode() for k, v in headers})
        try:
            try:
                await self.books.admit(hold)
            except InsufficientQuota as exc:
                raise errors.forbidden(exc.message, "insufficient_quota") from None
            job = Job(client=client, req=req, ctx=ctx, body=body, operation=operation, model=model,
                      price=route.price, upstreams=route.upstreams, hold=hold, prompt_estimate=worst.prompt_tokens,
                      headers=headers, started=started, stream=stream, upload=upload)
            outcome = Outcome(charge=False, status=UsageStatus.ERROR, status_code=500, error="internal error")
            running = eager_task(self.forwarder.run(job, send, receive))
            self._stops.add(job.stop)
            try:
                outcome = await asyncio.shield(running)
            except asyncio.CancelledError:  # the server is stopping (Daphne cancels every request it serves)
                outcome = await self._drain(job, running) or outcome
            finally:
                self._stops.discard(job.stop)
                written = self._close(job, outcome)
        finally:
            if entered:  # the slot is free once the answer is, not only once its rows are written
                await self.limits.concurrency_leave(ctx.token_id)
        try:
            await asyncio.shield(written)
        except asyncio.CancelledError:  # the server is stopping: stay (bounded) until this request's rows are written
            await asyncio.wait({written}, timeout=settings.RELAY_SHUTDOWN_GRACE_SECONDS)
            raise
        except (OperationalError, InterfaceError):
            pass  # logged by the books; the reservation, if booked, is refunded by the sweep

    async def wind_down(self) -> None:
        """The server stops without cancelling its requests (uvicorn): /readyz answers 503, calls in flight get
        RELAY_SHUTDOWN_GRACE_SECONDS, then streams still open end early (billed for what was sent)."""
        SHUTDOWN.set()
        await asyncio.sleep(settings.RELAY_SHUTDOWN_GRACE_SECONDS)
        for stop in list(self._stops):
            stop.set()

    async def books_drained(self, timeout: float) -> None:
        """Wait (at most `timeout` seconds) until the rows of every request answered are written."""
        try:
            await asyncio.wait_for(self.books.drained(), timeout)
        except TimeoutError:
            logger.warning("stopping with requests' rows still unwritten; the sweep refunds their reservations")

    async def _drain(self, job: Job, running: asyncio.Future) -> Outcome | None:
        """Let a call in flight finish within RELAY_SHUTDOWN_GRACE_SECONDS; then end its stream early (billed for
        what was sent). None when it had to be cancelled (nothing was sent: refunded)."""
        done, _ = await asyncio.wait({running}, timeout=settings.RELAY_SHUTDOWN_GRACE_SECONDS)
        if not done:
            job.stop.set()
            done, _ = await asyncio.wait({running}, timeout=5)
        if not done:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            return None
        return running.result() if not running.cancelled() and running.exception() is None else None

    def _close(self, job: Job, outcome: Outcome) -> asyncio.Future:
        """Settle at the real cost (or refund) and write the usage log: once, whatever happened above. Queued for
        the books' writer: done once written."""
        calls = gate.calls_of(job.body, job.operation)
        cost = gate.cost_of(job.price, job.ctx.group_ratio, outcome.usage, calls, **gate.shape_of(job.body, job.operation)) \
            if outcome.charge and outcome.usage else 0
        usage = outcome.usage if outcome.charge and outcome.usage else None
        upstream = outcome.upstream
        log = {
            "token_name": job.ctx.token_name, "upstream_id": upstream.id if upstream else None,
            "provider": upstream.type if upstream else "", "model": job.model,
            "upstream_model": outcome.upstream_model, "endpoint": job.req.path, "is_stream": job.stream,
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "completion_tokens": usage.completion_tokens if usage else 0,
            "cached_tokens": usage.cached_tokens if usage else 0,
            "cache_write_tokens": usage.cache_write_tokens if usage else 0,
            "audio_prompt_tokens": usage.audio_prompt_tokens if usage else 0,
            "audio_completion_tokens": usage.audio_completion_tokens if usage else 0, "group_ratio": job.ctx.group_ratio,
            "model_ratio": job.price.model_ratio, "completion_ratio": job.price.completion_ratio,
            "cache_ratio": job.price.cache_ratio, "price_per_call": job.price.price_per_call,
            "usage_estimated": bool(usage and usage.estimated),
            "latency_ms": int((time.monotonic() - job.started) * 1000), "first_byte_ms": outcome.first_byte_ms,
            "status": outcome.status, "status_code": outcome.status_code, "error": _error_with_attempts(outcome)[:2000],
            "client_ip": job.req.client_ip,
        }
        written = self.books.close(Closing(hold=job.hold, cost=cost, refund=not outcome.charge, log=log))
        metrics.request_observe(
            endpoint=job.operation, model=job.model, upstream=upstream.name if upstream else "",
            status=outcome.status, seconds=log["latency_ms"] / 1000,
            first_byte_seconds=outcome.first_byte_ms / 1000 if outcome.first_byte_ms is not None else None,
            prompt=log["prompt_tokens"], completion=log["completion_tokens"], cached=log["cached_tokens"], cost=cost)
        for failed, reason in outcome.failures:
            metrics.upstream_errors.labels(failed.name, reason).inc()
        return written

    async def upstream_failed(self, upstream: UpstreamInfo, reason: str, disable: bool, key: str = "") -> None:
        """Count a failure (across processes, in fixed windows); disable the upstream on bad credentials or when the
        failures in the window reach UPSTREAM_FAILURES_TO_DISABLE. Refused credentials of an upstream with other
        keys in use disable only that key."""
        if disable and key and len(upstream.keys) > 1 and await self._disable_key(
                upstream_id=upstream.id, key=key, reason=reason):
            logger.warning("upstream %s (%s): key %s disabled automatically: %s", upstream.id, upstream.name,
                           key_fingerprint(key), reason)
            self.snapshots.clear()
            return
        window = settings.UPSTREAM_FAILURE_WINDOW_SECONDS
        count = await self.limits.failure_hit(upstream.id, window)
        if disable or count >= settings.UPSTREAM_FAILURES_TO_DISABLE:
            await self.limits.failures_clear(upstream.id, window)
            why = reason if disable else (
                f"{settings.UPSTREAM_FAILURES_TO_DISABLE} failures within {window} s (last: {reason})")
            logger.warning("upstream %s (%s) disabled automatically: %s", upstream.id, upstream.name, why)
            await self._disable(upstream_id=upstream.id, reason=why)
            self.snapshots.clear()

    async def aclose(self) -> None:
        await self.client.aclose()
