"""What the relay needs from the database, read through short-lived in-process caches.

With warm caches an authenticated request reaches the upstream without waiting on a query. A change made by an
operator or a user (a disabled token, a new price) is seen by every process within RELAY_CACHE_SECONDS.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Generic, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.utils import timezone

from accounts.models import UserStatus
from billing.models import ModelPrice
from config.options import option
from relay.conf import settings
from relay.models import Upstream, UpstreamStatus
from relay.providers import PROVIDERS, Provider
from relay.sensitive import WordFilter
from relay.warm import KEEP_AHEAD, REFRESH_AHEAD, Recent
from tokens.keys import secret_hash
from tokens.models import ApiToken, TokenStatus

T = TypeVar("T")
logger = logging.getLogger(__name__)


class TtlCache(Generic[T]):
    """A dict whose entries expire; misses are loaded by the caller. Single-threaded use on the event loop."""

    def __init__(self, ttl: Callable[[], float]) -> None:
        self.ttl = ttl
        self._items: dict[Any, tuple[float, float, T]] = {}  # key: (expires, reload from, value)

    def get(self, key: Any) -> tuple[bool, T | None, bool]:
        """(hit, value, due): due when the entry is in the last REFRESH_AHEAD of its life."""
        hit = self._items.get(key)
        now = time.monotonic()
        if hit is None or hit[0] < now:
            return False, None, False
        return True, hit[2], hit[1] <= now

    def ending(self, key: Any, share: float) -> bool:
        """Missing, expired, or in the last `share` of its life."""
        hit = self._items.get(key)
        return hit is None or hit[0] - time.monotonic() <= self.ttl() * share

    def put(self, key: Any, value: T) -> None:
        if len(self._items) > 50_000:
            self._items.clear()
        now, ttl = time.monotonic(), self.ttl()
        self._items[key] = (now + ttl, now + ttl * (1 - REFRESH_AHEAD), value)

    def clear(self) -> None:
        self._items.clear()


def in_thread(fn: Callable[..., T]) -> Callable[..., Any]:
    """Run a blocking ORM function in the thread pool (not serialised on one thread), with a healthy connection."""

    def wrapped(*args: Any, **kwargs: Any) -> T:
        close_old_connections()
        return fn(*args, **kwargs)

    return sync_to_async(wrapped, thread_sensitive=False)


@dataclass(frozen=True)
class TokenContext:
    token_id: int
    token_name: str
    user_id: int
    active: bool
    refusal: str  # why the token cannot be used, when not active
    expires_at: float | None
    unlimited: bool
    model_limits: frozenset[str]
    allow_ips: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    group: str
    group_ratio: Decimal
    rpm_limit: int | None
    concurrency_limit: int | None

    def ip_allowed(self, ip: str | None) -> bool:
        if not self.allow_ips:
            return True
        try:
            address = ipaddress.ip_address(ip or "")
        except ValueError:
            return False
        return any(address in net for net in self.allow_ips)


@dataclass(frozen=True)
class PriceInfo:
    model: str
    provider: str
    category: str
    context_window: int | None
    model_ratio: Decimal
    completion_ratio: Decimal
    cache_ratio: Decimal
    price_per_call: Decimal | None
    cache_write_ratio: Decimal = Decimal(1)
    audio_ratio: Decimal = Decimal(1)
    audio_completion_ratio: Decimal = Decimal(1)
    price_per_minute: Decimal | None = None
    price_variants: tuple[tuple[str, Decimal], ...] = ()  # per-image prices by "quality size", "size" or "quality"
    long_context: tuple[int, Decimal, Decimal] | None = None  # (prompt tokens above which, prompt x, completion x)

    def call_usd(self, size: str = "", quality: str = "") -> Decimal | None:
        """The price of one call (one image): the most specific variant for size and quality, else the base price."""
        if self.price_variants:
            variants = dict(self.price_variants)
            size, quality = size.strip().lower(), quality.strip().lower()
            for key in (f"{quality} {size}".strip(), size, quality):
                if key and key in variants:
                    return variants[key]
        return self.price_per_call


@dataclass(frozen=True)
class UpstreamInfo:
    id: int
    name: str
    type: str
    provider: Provider
    base_url: str
    keys: tuple[str, ...]
    models: frozenset[str]
    model_mapping: dict[str, str]
    groups: frozenset[str]
    priority: int
    weight: int
    connect_timeout: float
    first_byte_timeout: float
    total_timeout: float
    extras: dict[str, Any]
    param_override: dict[str, Any] = field(default_factory=dict)
    header_override: dict[str, str] = field(default_factory=dict)
    status_map: dict[int, int] = field(default_factory=dict)  # an upstream error status read as another
    system_prompt: str = ""
    system_prompt_prepend: bool = False

    def serves(self, model: str, group: str) -> bool:
        return group in self.groups and (model in self.models or model in self.model_mapping)

    def upstream_model(self, model: str) -> str:
        return self.model_mapping.get(model, model)


def _token_load(key: str) -> TokenContext | None:
    return _tokens_load([key])[key]


TOKEN_COLUMNS = ("key_hash", "pk", "name", "status", "expires_at", "unlimited_quota", "model_limits", "allow_ips",
                 "rpm_limit", "concurrency_limit", "user_id", "user__status", "user__is_active", "group_id",
                 *(f"{owner}group__{field}" for owner in ("", "user__")
                   for field in ("name", "ratio", "rpm_limit", "concurrency_limit")))


def _tokens_load(keys: list[str]) -> dict[str, TokenContext | None]:
    """Each key's context, in one query of the columns it needs (building the token, its user and both groups as
    model instances cost eight times as much for a batch of keys); None for a key no token has."""
    hashes = {secret_hash(key): key for key in keys}
    found: dict[str, TokenContext | None] = dict.fromkeys(keys)
    for row in ApiToken.objects.filter(key_hash__in=list(hashes)).values(*TOKEN_COLUMNS):
        found[hashes[row["key_hash"]]] = _token_context(row)
    return found


def _token_context(row: dict[str, Any]) -> TokenContext:
    group = "group__" if row["group_id"] is not None else "user__group__"  # the key's own group, else its owner's
    refusal = ""
    if row["status"] != TokenStatus.ENABLED:
        refusal = "This API key has been disabled."
    elif row["user__status"] != UserStatus.ENABLED or not row["user__is_active"]:
        refusal = "This account has been disabled."
    nets = []
    for value in row["allow_ips"]:
        try:
            nets.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            continue
    return TokenContext(
        token_id=row["pk"], token_name=row["name"], user_id=row["user_id"], active=not refusal, refusal=refusal,
        expires_at=row["expires_at"].timestamp() if row["expires_at"] else None, unlimited=row["unlimited_quota"],
        model_limits=frozenset(row["model_limits"]), allow_ips=tuple(nets), group=row[group + "name"],
        group_ratio=row[group + "ratio"],
        rpm_limit=row["rpm_limit"] or row[group + "rpm_limit"] or settings.RELAY_DEFAULT_RPM or None,
        concurrency_limit=row["concurrency_limit"] or row[group + "concurrency_limit"],
    )


def _variants(raw: Any) -> tuple[tuple[str, Decimal], ...]:
    """Per-image prices from the JSON field, keys normalised; entries that are not prices are skipped."""
    out = []
    for key, value in (raw or {}).items() if isinstance(raw, dict) else ():
        try:
            price = Decimal(str(value))
        except ArithmeticError:
            continue
        if price >= 0:
            out.append((" ".join(str(key).lower().split()), price))
    return tuple(out)


def _long_context(p: ModelPrice) -> tuple[int, Decimal, Decimal] | None:
    if not p.long_context_threshold:
        return None
    return p.long_context_threshold, p.long_context_prompt_multiplier, p.long_context_completion_multiplier


def _prices_load() -> dict[str, PriceInfo]:
    return {
        p.model: PriceInfo(p.model, p.provider, p.category, p.context_window, p.model_ratio, p.completion_ratio,
                           p.cache_ratio, p.price_per_call, p.cache_write_ratio, p.audio_ratio,
                           p.audio_completion_ratio, p.price_per_minute, _variants(p.price_variants),
                           _long_context(p))
        for p in ModelPrice.objects.all()
    }


def upstream_info(u: Upstream, groups: frozenset[str] = frozenset()) -> UpstreamInfo | None:
    """The relay's view of one upstream row; None for a provider type this build does not know."""
    provider = PROVIDERS.get(u.type)
    if provider is None:
        return None
    return UpstreamInfo(
        id=u.pk, name=u.name, type=u.type, provider=provider,
        base_url=(u.base_url or provider.default_base_url).rstrip("/"), keys=tuple(u.active_keys()),
        models=frozenset(u.served_models), model_mapping=dict(u.model_mapping or {}), groups=groups,
        priority=u.priority, weight=u.weight, connect_timeout=u.connect_timeout,
        first_byte_timeout=u.first_byte_timeout, total_timeout=u.total_timeout, extras=dict(u.extras or {}),
        param_override=dict(u.param_override or {}), header_override=dict(u.header_override or {}),
        status_map={int(k): int(v) for k, v in (u.status_code_mapping or {}).items()},
        system_prompt=u.system_prompt, system_prompt_prepend=u.system_prompt_prepend,
    )


class Upstreams(list):
    """The enabled upstreams, with those serving a model found once per model rather than by a scan per request
    (an operator with hundreds of upstreams made routing a tenth of a request's time)."""

    LOOKUPS_KEPT = 10_000  # model names are the callers': past this many, looked up without keeping

    def __init__(self, upstreams: list[UpstreamInfo]) -> None:
        super().__init__(upstreams)
        self._serving: dict[str, list[UpstreamInfo]] = {}

    def serving(self, model: str) -> list[UpstreamInfo]:
        """The upstreams offering `model` (by name or mapping) to any group, in order."""
        found = self._serving.get(model)
        if found is None:
            found = [u for u in self if model in u.models or model in u.model_mapping]
            if len(self._serving) < self.LOOKUPS_KEPT:
                self._serving[model] = found
        return found


def upstreams_serving(upstreams: list[UpstreamInfo], model: str) -> list[UpstreamInfo]:
    """The upstreams offering `model` to any group: the snapshot's lookup, or a scan of a plain list."""
    if isinstance(upstreams, Upstreams):
        return upstreams.serving(model)
    return [u for u in upstreams if model in u.models or model in u.model_mapping]


def _upstreams_load() -> Upstreams:
    """Every enabled upstream, its groups read in one query of group names (prefetching them built a related
    manager per upstream: half of a load of 300 upstreams, reloaded every RELAY_CACHE_SECONDS)."""
    groups: dict[int, set[str]] = {}
    served = Upstream.groups.through.objects.filter(upstream__status=UpstreamStatus.ENABLED)
    for upstream_id, name in served.values_list("upstream_id", "usergroup__name"):
        groups.setdefault(upstream_id, set()).add(name)
    rows = []
    for u in Upstream.objects.filter(status=UpstreamStatus.ENABLED):
        info = upstream_info(u, frozenset(groups.get(u.pk, ())))
        if info is not None:
            rows.append(info)
    return Upstreams(rows)


class Snapshots:
    """The relay's per-process view of tokens, prices and upstreams."""

    def __init__(self) -> None:
        def ttl() -> float:
            return settings.RELAY_CACHE_SECONDS

        self._tokens: TtlCache[TokenContext | None] = TtlCache(ttl)
        self._prices: TtlCache[dict[str, PriceInfo]] = TtlCache(ttl)
        self._upstreams: TtlCache[Upstreams] = TtlCache(ttl)
        self._words: TtlCache[WordFilter] = TtlCache(ttl)
        self._load_token = in_thread(_token_load)
        self._load_tokens = in_thread(_tokens_load)
        self._recent_keys: Recent[str] = Recent()  # keys that authenticated lately: kept loaded (`refresh`)
        self._load_prices = in_thread(_prices_load)
        self._load_upstreams = in_thread(_upstreams_load)
        self._load_words = in_thread(lambda: WordFilter(option("SENSITIVE_WORDS")))
        self._loading: dict[tuple[int, Any, int], asyncio.Future] = {}
        self._generation = 0  # bumped by clear(): a load that straddled a clear may predate the change, not kept

    async def token(self, key: str) -> TokenContext | None:
        ctx = await self._cached(self._tokens, key, self._load_token, key)
        if ctx is not None:
            self._recent_keys.saw(key, time.monotonic())
        return ctx

    async def prices(self) -> dict[str, PriceInfo]:
        return await self._cached(self._prices, None, self._load_prices) or {}

    async def upstreams(self) -> list[UpstreamInfo]:
        return await self._cached(self._upstreams, None, self._load_upstreams) or []

    async def word_filter(self) -> WordFilter:
        """The operator's sensitive words (a site option)."""
        return await self._cached(self._words, None, self._load_words) or WordFilter([])

    async def refresh(self, since: float, most: int) -> None:
        """Reload what is in the last KEEP_AHEAD of its life, or gone: the shared snapshots, and the tokens of the
        `most` keys last used since `since` (in one query). Requests meanwhile join these loads (`relay.warm`)."""
        loads = []
        for cache, load in ((self._prices, self._load_prices), (self._upstreams, self._load_upstreams),
                            (self._words, self._load_words)):
            if cache.ending(None, KEEP_AHEAD):
                loads.append(self._load(cache, None, load, ()))
        keys = [key for key in self._recent_keys.since(since, most)
                if self._tokens.ending(key, KEEP_AHEAD) and self._flight(self._tokens, key) not in self._loading]
        if keys:
            loads.append(self._reload_tokens(keys))
        outcomes = await asyncio.gather(*map(asyncio.shield, loads), return_exceptions=True)
        if keys and isinstance(outcomes[-1], Exception):  # the shared loads' failures are logged by `_done`
            raise outcomes[-1]

    def _reload_tokens(self, keys: list[str]) -> asyncio.Future:
        """Reload these keys' tokens together; a request meanwhile that misses one or finds it due joins the load."""
        loop = asyncio.get_running_loop()
        generation = self._generation
        each = {key: loop.create_future() for key in keys}
        for key, future in each.items():
            future.add_done_callback(lambda done: done.cancelled() or done.exception())  # its waiters have it
            self._loading[self._flight(self._tokens, key)] = future

        def loaded(batch: asyncio.Future) -> None:
            for key, future in each.items():
                flight = self._flight(self._tokens, key)
                if self._loading.get(flight) is future:
                    del self._loading[flight]
                if batch.cancelled():
                    future.cancel()
                elif batch.exception() is not None:
                    future.set_exception(batch.exception())
                else:
                    ctx = batch.result()[key]
                    if generation == self._generation:
                        self._tokens.put(key, ctx)
                    if ctx is None:
                        self._recent_keys.forget(key)
                    future.set_result(ctx)

        batch = asyncio.ensure_future(self._load_tokens(keys))
        batch.add_done_callback(loaded)
        return batch

    async def _cached(self, cache: TtlCache[Any], key: Any, load: Callable[..., Any], *args: Any) -> Any:
        """The cached value, or one load shared by every request that misses meanwhile (no stampede when an entry
        expires under load). A hit near its expiry starts the reload and is answered at once: under steady traffic
        no request waits on a reload (each second, one in several did, for a query per cache). A load that straddled
        a clear() is returned to its waiters but not kept."""
        hit, value, due = cache.get(key)
        if hit:
            if due:
                self._load(cache, key, load, args)
            return value
        return await asyncio.shield(self._load(cache, key, load, args))

    def _load(self, cache: TtlCache[Any], key: Any, load: Callable[..., Any], args: tuple) -> asyncio.Future:
        """The load of this entry in flight, started if none is."""
        flight = self._flight(cache, key)
        loading = self._loading.get(flight)
        if loading is None:
            loading = asyncio.ensure_future(self._load_and_keep(cache, key, load, args))
            self._loading[flight] = loading
            loading.add_done_callback(lambda done: self._done(flight, done))
        return loading

    @staticmethod
    def _flight(cache: TtlCache[Any], key: Any) -> tuple[int, Any, int]:
        return id(cache), key, id(asyncio.get_running_loop())

    def _done(self, flight: tuple, done: asyncio.Future) -> None:
        if self._loading.get(flight) is done:
            self._loading.pop(flight)
        if not done.cancelled() and done.exception() is not None:  # a waiter has it too; a reload ahead, only this
            logger.warning("relay cache: a load failed (%s); the entry, if any, stays until it expires",
                           type(done.exception()).__name__)

    async def _load_and_keep(self, cache: TtlCache[Any], key: Any, load: Callable[..., Any], args: tuple) -> Any:
        generation = self._generation
        value = await load(*args)
        if generation == self._generation:
            cache.put(key, value)
        return value

    def clear(self) -> None:
        self._generation += 1
        self._loading.clear()  # requests after a change start their own load rather than join one from before it
        for cache in (self._tokens, self._prices, self._upstreams, self._words):
            cache.clear()


def now_ts() -> float:
    return timezone.now().timestamp()
