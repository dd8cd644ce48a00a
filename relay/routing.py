"""Which upstreams may serve a request, in the order to try them."""

from __future__ import annotations

import random

from relay.snapshots import UpstreamInfo

# Names callers use to pin a provider (body `provider` or header X-AI-Provider) -> provider types.
PROVIDER_ALIASES = {"aliyun": "ali", "dashscope": "ali", "qwen": "ali", "doubao": "volc", "ark": "volc",
                    "hunyuan": "tencent", "kimi": "moonshot", "glm": "zhipu", "grok": "xai", "claude": "anthropic",
                    "google": "gemini"}


def provider_canonical(name: str) -> str:
    name = name.strip().lower()
    return PROVIDER_ALIASES.get(name, name)


def candidates(upstreams: list[UpstreamInfo], *, model: str, group: str, provider: str = "",
               rng: random.Random | None = None) -> list[UpstreamInfo]:
    """Upstreams serving `model` to `group`: highest priority first, weighted random order within a priority."""
    rng = rng or random
    pinned = provider_canonical(provider) if provider else ""
    eligible = [u for u in upstreams if u.serves(model, group) and (not pinned or u.type == pinned)]
    ordered: list[UpstreamInfo] = []
    for priority in sorted({u.priority for u in eligible}, reverse=True):
        tier = [u for u in eligible if u.priority == priority]
        while len(tier) > 1:
            weights = [max(u.weight, 0) + 1e-9 for u in tier]
            pick = rng.choices(range(len(tier)), weights=weights)[0]
            ordered.append(tier.pop(pick))
        ordered += tier  # the last one left: no draw needed
    return ordered
