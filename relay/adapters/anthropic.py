"""Anthropic's Messages API (api.anthropic.com and servers that speak it)."""

from __future__ import annotations

import re

from relay.adapters.base import Adapter, Call

ANTHROPIC_VERSION = "2023-06-01"
BETA_NAMES = re.compile(r"[A-Za-z0-9._-]+(?:\s*,\s*[A-Za-z0-9._-]+){0,31}")  # comma-separated feature names


class AnthropicAdapter(Adapter):
    family = "anthropic"
    supports_stream_usage = False  # Anthropic always streams usage

    def url(self, call: Call) -> str:
        base = call.upstream.base_url.removesuffix("/v1")
        return f"{base}/v1/{call.operation}"

    def headers(self, call: Call) -> dict[str, str]:
        headers = {"content-type": "application/json", "x-api-key": call.key, "anthropic-version": ANTHROPIC_VERSION}
        beta = call.client_headers.get("anthropic-beta", "")
        if beta and BETA_NAMES.fullmatch(beta):  # the caller's opt-in features (Claude Code sends several)
            headers["anthropic-beta"] = beta
        return headers
