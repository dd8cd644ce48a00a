"""OpenAI and every OpenAI-compatible provider (DeepSeek, Qwen, Doubao, Hunyuan, Moonshot, GLM, Mistral, xAI ...)."""

from __future__ import annotations

from relay.adapters.base import Adapter, Call


class OpenAIAdapter(Adapter):
    family = "openai"

    def url(self, call: Call) -> str:
        base = call.upstream.base_url
        prefix = call.upstream.provider.api_prefix
        # An operator may give the root (https://api.openai.com) or the API base (https://api.openai.com/v1).
        if prefix and base.endswith(prefix):
            prefix = ""
        return f"{base}{prefix}/{call.operation}"

    def headers(self, call: Call) -> dict[str, str]:
        return {"content-type": call.content_type, "authorization": f"Bearer {call.key}"}
