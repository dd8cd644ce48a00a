"""The rerank wire: Jina-shaped (`/v1/rerank`) and Cohere v2 (`/v2/rerank`) clients over Jina-shaped upstreams
(Jina, Xinference, SiliconFlow, vLLM ...) or Cohere's own."""

from __future__ import annotations

import json
from typing import Any

from relay.protocols.rerank import (
    cohere_request_from_jina, cohere_response, jina_request_from_cohere, jina_response, rerank_results,
    rerank_tokens,
)
from relay.usage import Usage
from relay.wires import OPENAI, Plain, _json

COHERE = "cohere"


class RerankWire:
    operation = "rerank"

    def __init__(self, client: str, body: dict[str, Any], *, cohere_upstream: bool, request_id: str) -> None:
        self.client, self.cohere_upstream, self.request_id = client, cohere_upstream, request_id
        self.jina = body if client == OPENAI else jina_request_from_cohere(body)
        self.documents = list(self.jina.get("documents") or [])
        self.top_n = self.jina.get("top_n")
        self.return_documents = client == OPENAI and bool(body.get("return_documents", False))
        self.model = str(body.get("model", ""))

    def request(self, model: str, stream_usage: bool) -> dict[str, Any]:
        body = dict(self.jina, model=model)
        if self.cohere_upstream:
            return cohere_request_from_jina(body)
        return {**body, "return_documents": False}  # documents are filled in from the request

    def plain(self, raw: bytes) -> Plain | None:
        data = _json(raw)
        if data is None or not isinstance(data.get("results", data.get("data")), list):
            return None
        results = rerank_results(data, self.documents, top_n=self.top_n, return_documents=self.return_documents)
        tokens = rerank_tokens(data)
        usage = Usage(tokens, 0) if tokens else None
        if self.client == OPENAI:
            body = jina_response(self.model, results, tokens or 0)
        else:
            body = cohere_response(self.request_id, results, tokens or 0)
        return Plain(json.dumps(body, ensure_ascii=False).encode(), usage, "")

    def stream(self) -> Any:
        raise RuntimeError("rerank answers are never streamed")
