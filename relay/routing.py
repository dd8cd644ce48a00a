"""Which upstreams may serve a request, in the order to try them."""

from __future__ import annotations

import math
import random

from relay.snapshots import UpstreamInfo, upstreams_serving

# Names callers use to pin a provider (body `provider` or header X-AI-Provider) -> provider types.
PROVIDER_ALIASES = {"aliyun": "ali", "dashscope": "ali", "qwen": "ali", "doubao": "volc", "ark": "volc",
                    "hunyuan": "tencent", "kimi": "moonshot", "glm": "zhipu", "grok": "xai", "claude": "anthropic",
                    "google": "gemini"}


def provider_canonical(name: str) -> str:
    name = name.strip().lower()
    return PROVIDER_ALIASES.get(name, name)


def candidates(upstreams: list[UpstreamInfo], *, model: str, group: str, provider: str = "",
               rng: random.Random | None = None) -> list[UpstreamInfo]:
    """Upstreams serving `model` to `group`: highest priority first, weighted random order within a priority (each
    next one drawn from those left with its weight's share: a weight-0 upstream comes after the others of its
    priority, and the weight-0 ones of a priority in an even draw among them)."""
    draw = (rng or random).random
    pinned = provider_canonical(provider) if provider else ""
    eligible = [u for u in upstreams_serving(upstreams, model)
                if group in u.groups and (not pinned or u.type == pinned)]
    if len(eligible) < 2:
        return eligible
    # Each upstream's waiting time on an exponential clock ticking at its weight (Efraimidis and Spirakis): sorted
    # by it, the order is that of drawing one at a time by weight, in one pass rather than a draw per place.
    keyed = sorted((-u.priority, -math.log(1.0 - draw()) / (max(u.weight, 0) + 1e-9), index)
                   for index, u in enumerate(eligible))
    return [eligible[index] for _, _, index in keyed]
