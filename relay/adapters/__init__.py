"""Adapters by upstream family."""

from __future__ import annotations

from relay.adapters.anthropic import AnthropicAdapter
from relay.adapters.azure import AzureAdapter
from relay.adapters.base import Adapter
from relay.adapters.bedrock import BEDROCK
from relay.adapters.bedrock_converse import BEDROCK_CONVERSE, converse_model
from relay.adapters.demo import DemoAdapter
from relay.adapters.gemini import GeminiAdapter
from relay.adapters.openai import OpenAIAdapter
from relay.adapters.rerank import RerankAdapter
from relay.adapters.vertex import vertex_adapter_for
from relay.snapshots import UpstreamInfo

ADAPTERS: dict[str, Adapter] = {
    a.family: a
    for a in (OpenAIAdapter(), DemoAdapter(), AnthropicAdapter(), GeminiAdapter(), AzureAdapter(), RerankAdapter())
}


def adapter_for(upstream: UpstreamInfo, model: str = "") -> Adapter | None:
    """The adapter for the upstream's family (on clouds hosting several, for the upstream's `model` too); None for
    families the relay core does not speak. The adapter's own `family` is the wire format it speaks."""
    family = upstream.provider.family
    if family == "vertex":
        return vertex_adapter_for(model)
    if family == "bedrock":
        return BEDROCK_CONVERSE if converse_model(model) else BEDROCK
    return ADAPTERS.get(family)
