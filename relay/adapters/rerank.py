"""Rerank providers: Cohere (`/v2/rerank`) and Jina (`/v1/rerank`), with Bearer keys."""

from __future__ import annotations

from relay.adapters.base import Adapter, Call


class RerankAdapter(Adapter):
    family = "rerank"

    def url(self, call: Call) -> str:
        base = call.upstream.base_url.removesuffix("/v1").removesuffix("/v2")
        return f"{base}/v2/rerank" if call.upstream.type == "cohere" else f"{base}/v1/rerank"

    def headers(self, call: Call) -> dict[str, str]:
        return {"content-type": "application/json", "authorization": f"Bearer {call.key}"}
