"""Submitting a task: price it, reserve, hand it to the first upstream that takes it, or refund at once."""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, AsyncIterator

from django.conf import settings

from billing.ledger import InsufficientQuota
from relay import errors, gate
from relay.http import RelayRequest
from relay.media_tasks.adapters import adapter_for
from relay.media_tasks.adapters.base import SubmitRefused, Submitted, TaskCall
from relay.media_tasks.intake import Submission
from relay.media_tasks.models import MediaTask, TaskStatus
from relay.media_tasks.notify import hook_allowed_literal
from relay.media_tasks.selectors import media_task_of
from relay.media_tasks.services import (
    media_task_open,
    media_task_refuse,
    media_task_submitted,
)
from relay.media_tasks.settlement import task_price
from relay.snapshots import TokenContext, UpstreamInfo, in_thread

if TYPE_CHECKING:
    from relay.asgi import RelayApp


class TaskRefused(Exception):
    """No upstream took the task; it was refunded. Carries the last upstream refusal."""

    def __init__(self, refusal: SubmitRefused, task: MediaTask) -> None:
        super().__init__(refusal.message)
        self.refusal, self.task = refusal, task


@dataclass
class Accepted:
    task: MediaTask
    submitted: Submitted


async def rate_limit(app: RelayApp, ctx: TokenContext) -> None:
    """The key's requests-per-minute limit, counted for this request."""
    if not ctx.rpm_limit:
        return
    rpm = await app.limits.rpm_hit(ctx.token_id, ctx.rpm_limit)
    if rpm.remaining < 0:
        raise errors.key_rate_limited(ctx.rpm_limit, rpm.retry_after)


async def _parent(ctx: TokenContext, sub: Submission) -> MediaTask | None:
    """The task a change, action, modal or continuation works on: the caller's own, already at an upstream."""
    if not sub.parent_id:
        return None
    parent = await in_thread(media_task_of)(user_id=ctx.user_id, public_id=sub.parent_id, kinds=(sub.kind,))
    if parent is None or not parent.upstream_task_id or parent.upstream_id is None:
        raise errors.not_found(f"The task '{sub.parent_id}' does not exist.", code="task_not_found")
    if parent.status == TaskStatus.FAILURE:
        raise errors.bad_request(f"The task '{sub.parent_id}' failed; it cannot be continued.", param=sub.parent_field)
    sub.body[sub.parent_field] = parent.upstream_task_id
    return parent


async def task_submit(app: RelayApp, req: RelayRequest, ctx: TokenContext, sub: Submission) -> Accepted:
    """Check, price, reserve and submit; raises `TaskRefused` (refunded) or a `RelayError` (nothing reserved)."""
    if sub.notify_hook and not hook_allowed_literal(sub.notify_hook):
        raise errors.bad_request("The notify hook points at a private, loopback or link-local address.",
                                 param="notifyHook", code="notify_hook_not_allowed")
    route = await gate.route(app.snapshots, ctx, {}, sub.model, "")
    await gate.screen(app.snapshots, sub.body)
    parent = await _parent(ctx, sub)
    upstreams: list[UpstreamInfo] = [u for u in route.upstreams if adapter_for(u, sub.kind) is not None
                                     and (parent is None or u.id == parent.upstream_id)]
    if not upstreams:
        raise errors.unavailable(f"No upstream is available for '{sub.model}' in group '{ctx.group}'.")
    if sub.action == "remix" and not adapter_for(upstreams[0], sub.kind).remixes:
        raise errors.bad_request("The upstream that made this video cannot remix it.", param="video_id")
    await rate_limit(app, ctx)
    async with _concurrency_slot(app, ctx):
        return await _priced_and_submitted(app, req, ctx, sub, route, parent, upstreams)


@contextlib.asynccontextmanager
async def _concurrency_slot(app: RelayApp, ctx: TokenContext) -> AsyncIterator[None]:
    """A submit counts against the key's concurrency limit while it is being priced, reserved and sent (the task's
    run at the upstream afterwards does not)."""
    if not ctx.concurrency_limit:
        yield
        return
    if not await app.limits.concurrency_enter(ctx.token_id, ctx.concurrency_limit):
        raise errors.key_too_many_concurrent(ctx.concurrency_limit)
    try:
        yield
    finally:
        await app.limits.concurrency_leave(ctx.token_id)


async def _priced_and_submitted(app: RelayApp, req: RelayRequest, ctx: TokenContext, sub: Submission,
                                route: gate.Route, parent: MediaTask | None,
                                upstreams: list[UpstreamInfo]) -> Accepted:
    unit_price = route.price.call_usd(sub.size, sub.quality)
    if unit_price is None:
        raise errors.forbidden(f"The model '{sub.model}' has no per-call price; ask the operator to set one.",
                               "model_price_not_set")
    amount = task_price(unit_price_usd=unit_price, units=sub.units, group_ratio=ctx.group_ratio)
    try:
        task = await in_thread(media_task_open)(ctx=ctx, sub=sub, amount=amount, unit_price_usd=Decimal(unit_price),
                                                parent=parent, client_ip=req.client_ip)
    except InsufficientQuota as exc:
        raise errors.forbidden(exc.message, "insufficient_quota") from None
    refusal = SubmitRefused("No upstream took the task.")
    for upstream in upstreams[: settings.RELAY_RETRIES + 1]:
        adapter = adapter_for(upstream, sub.kind)
        key = random.choice(upstream.keys) if upstream.keys else ""
        call = TaskCall(upstream=upstream, key=key, kind=sub.kind, action=sub.action, operation=sub.operation,
                        model=upstream.upstream_model(sub.model), body=sub.body, public_id=task.public_id,
                        files=sub.files)
        try:
            submitted = await adapter.submit(app.client, call)
        except SubmitRefused as exc:
            refusal = exc
            if exc.retry:
                continue
            break
        except BaseException:
            await in_thread(media_task_refuse)(task=task, reason="The submit failed inside the relay.")
            raise
        task = await in_thread(media_task_submitted)(task=task, upstream=upstream, key=key, submitted=submitted)
        return Accepted(task, submitted)
    await in_thread(media_task_refuse)(task=task, reason=refusal.message)
    raise TaskRefused(refusal, task)
