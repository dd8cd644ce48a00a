"""Anthropic's Messages API (api.anthropic.com and servers that speak it)."""

from __future__ import annotations

from relay.adapters.base import Adapter, Call

ANTHROPIC_VERSION = "2023-06-01"


class AnthropicAdapter(Adapter):
    family = "anthropic"
    supports_stream_usage = False  # Anthropic always streams usage

    def url(self, call: Call) -> str:
        base = call.upstream.base_url.removesuffix("/v1")
        return f"{base}/v1/{call.operation}"

    def headers(self, call: Call) -> dict[str, str]:
        return {"content-type": "application/json", "x-api-key": call.key, "anthropic-version": ANTHROPIC_VERSION}
