"""The money side of one realtime session: a standing hold, a charge per response, one refund at the end.

The session reserves the cost of one large response (`REALTIME_RESERVE_TOKENS` audio tokens in and out, at the
model's price) when it opens, under the reference `req:<session id>`. Each `response.done` is charged at once
(`billing.usage_charges.usage_charge`, ledger reference `rt:<session id>:<n>`). A response may start only while the
hold is whole, that is while the balance (and the token's own quota) is not below zero; the charge that takes it
below zero ends the session. So a session spends at most one response beyond the user's money, and that response
is paid from the hold up to the hold's size: the overspend is bounded by what one response costs beyond
the hold. When the session ends, however it ends, the hold is refunded exactly once (the ledger's one-closing-row
index makes a second refund, or the sweeper's, change nothing).
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from django.conf import settings

from billing.charges import Hold, charge_reserve, charge_settle
from billing.models import UsageStatus
from billing.usage_charges import Funds, funds_of, usage_charge
from relay import gate, metrics
from relay.snapshots import PriceInfo, TokenContext, UpstreamInfo, in_thread
from relay.usage import Usage

ENDPOINT = "/v1/realtime"
STATUS_CODES = {UsageStatus.SUCCESS: 200, UsageStatus.CLIENT_CLOSED: 499}


def reserve_amount(price: PriceInfo, group_ratio: Decimal) -> int:
    """The hold for a session: one response of REALTIME_RESERVE_TOKENS audio tokens in and out."""
    n = settings.REALTIME_RESERVE_TOKENS
    return gate.cost_of(price, group_ratio, Usage(n, n, audio_prompt_tokens=n, audio_completion_tokens=n))


class SessionBilling:
    """Reserve, charge each response, refund once. Methods are awaited from the session's event loop."""

    def __init__(self, *, session_id: str, ctx: TokenContext, model: str, price: PriceInfo,
                 client_ip: str | None) -> None:
        self.session_id, self.ctx, self.model, self.price, self.client_ip = session_id, ctx, model, price, client_ip
        self.hold = Hold(request_id=session_id, user_id=ctx.user_id, token_id=ctx.token_id, unlimited=ctx.unlimited,
                         amount=reserve_amount(price, ctx.group_ratio))
        self.upstream: UpstreamInfo | None = None
        self.responses = 0
        self.reserved = False
        self._closed = False
        self._lock = asyncio.Lock()  # charges and funds checks in the order they were asked for
        self._reserve = in_thread(charge_reserve)
        self._settle = in_thread(charge_settle)
        self._charge = in_thread(usage_charge)
        self._funds = in_thread(funds_of)

    async def reserve(self) -> None:
        """Take the hold; raises `billing.ledger.InsufficientQuota` with nothing taken."""
        await self._reserve(hold=self.hold)
        self.reserved = True
        metrics.realtime_sessions.inc()

    @staticmethod
    def may_respond(funds: Funds) -> bool:
        """Whether another response may start: the hold is still whole (nothing spent beyond the balance)."""
        return funds.covers(0)

    async def funds(self) -> Funds:
        async with self._lock:
            return await self._funds(user_id=self.ctx.user_id, token_id=self.ctx.token_id,
                                     unlimited=self.ctx.unlimited)

    async def charge(self, usage: Usage, *, latency_ms: int = 0, status: str = UsageStatus.SUCCESS,
                     error: str = "") -> Funds | None:
        """Charge one response's usage now and log it; None when there was nothing to charge."""
        if not (usage.prompt_tokens or usage.completion_tokens):
            return None
        cost = gate.cost_of(self.price, self.ctx.group_ratio, usage)
        metrics.request_observe(endpoint="realtime", model=self.model, upstream=self.upstream.name if self.upstream
                                else "", status=status, seconds=latency_ms / 1000, first_byte_seconds=None,
                                prompt=usage.prompt_tokens, completion=usage.completion_tokens,
                                cached=usage.cached_tokens, cost=cost)
        async with self._lock:
            self.responses += 1
            n = self.responses
            return await self._charge(
                user_id=self.ctx.user_id, token_id=self.ctx.token_id, unlimited=self.ctx.unlimited, cost=cost,
                ref=f"rt:{self.session_id}:{n}", request_id=f"{self.session_id}:{n}",
                log=self._log(usage, latency_ms=latency_ms, status=status, error=error))

    def _log(self, usage: Usage, *, latency_ms: int, status: str, error: str) -> dict[str, object]:
        upstream = self.upstream
        return {
            "token_name": self.ctx.token_name, "upstream_id": upstream.id if upstream else None,
            "provider": upstream.type if upstream else "", "model": self.model,
            "upstream_model": upstream.upstream_model(self.model) if upstream else "", "endpoint": ENDPOINT,
            "is_stream": True, "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "cached_tokens": usage.cached_tokens, "cache_write_tokens": usage.cache_write_tokens,
            "audio_prompt_tokens": usage.audio_prompt_tokens,
            "audio_completion_tokens": usage.audio_completion_tokens, "group_ratio": self.ctx.group_ratio,
            "model_ratio": self.price.model_ratio, "completion_ratio": self.price.completion_ratio,
            "cache_ratio": self.price.cache_ratio, "price_per_call": self.price.price_per_call,
            "usage_estimated": usage.estimated, "latency_ms": max(latency_ms, 0), "first_byte_ms": None,
            "status": status, "status_code": STATUS_CODES.get(status, 502), "error": error[:2000],
            "client_ip": self.client_ip,
        }

    async def close(self) -> None:
        """Refund the hold, once; later calls do nothing."""
        if self._closed or not self.reserved:
            return
        self._closed = True
        metrics.realtime_sessions.dec()
        async with self._lock:
            await self._settle(hold=self.hold, cost=0, log=None, refund=True)


def elapsed_ms(since: float) -> int:
    return int((time.monotonic() - since) * 1000)
