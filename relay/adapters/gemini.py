"""Google's Gemini API (AI Studio keys): the model and the action are in the path."""

from __future__ import annotations

from relay.adapters.base import Adapter, Call

EMBED_ACTIONS = frozenset({"embedContent", "batchEmbedContents"})  # Gemini clients' embeddings, passed through


class GeminiAdapter(Adapter):
    family = "gemini"
    supports_stream_usage = False  # usageMetadata always arrives on the last chunk

    def url(self, call: Call) -> str:
        base = call.upstream.base_url.removesuffix("/v1beta")
        return f"{base}/v1beta/models/{call.model}:{self.action(call)}"

    @staticmethod
    def action(call: Call) -> str:
        if call.operation in EMBED_ACTIONS or call.operation == "predict":  # embeddings, Imagen
            return call.operation
        return "streamGenerateContent?alt=sse" if call.stream else "generateContent"

    def headers(self, call: Call) -> dict[str, str]:
        return {"content-type": "application/json", "x-goog-api-key": call.key}
