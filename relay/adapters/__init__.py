"""Adapters by upstream family."""

from __future__ import annotations

from relay.adapters.anthropic import AnthropicAdapter
from relay.adapters.azure import AzureAdapter
from relay.adapters.base import Adapter
from relay.adapters.demo import DemoAdapter
from relay.adapters.gemini import GeminiAdapter
from relay.adapters.openai import OpenAIAdapter
from relay.adapters.rerank import RerankAdapter
from relay.snapshots import UpstreamInfo

ADAPTERS: dict[str, Adapter] = {a.family: a for a in (OpenAIAdapter(), DemoAdapter(), AnthropicAdapter(), GeminiAdapter(), AzureAdapter(), RerankAdapter())}


def adapter_for(upstream: UpstreamInfo) -> Adapter | None:
    """The adapter for the upstream's family; None for families the relay core does not speak yet."""
    return ADAPTERS.get(upstream.provider.family)
