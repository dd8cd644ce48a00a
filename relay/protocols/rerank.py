"""Rerank shapes (protocols.md section 6): Jina/Xinference (`/v1/rerank`) and Cohere v2 (`/v2/rerank`).

Requests are normalised to Jina's shape; answers from any of the three to `{index, relevance_score, document?}`
sorted by score, with `top_n` honoured.
"""

from __future__ import annotations

from typing import Any

from relay.protocols.untrusted import as_list


def document_text(document: Any) -> str:
    """A document given as a string or as `{"text": ...}` (Jina, Cohere v1, Xinference)."""
    if isinstance(document, dict):
        return str(document.get("text") or "")
    return "" if document is None else str(document)


def jina_request_from_cohere(body: dict[str, Any]) -> dict[str, Any]:
    """A Cohere v2 rerank request in Jina's shape (Cohere v2 returns no documents)."""
    jina = {"model": body.get("model"), "query": body.get("query"), "documents": body.get("documents") or []}
    if body.get("top_n") is not None:
        jina["top_n"] = body["top_n"]
    return jina


def cohere_request_from_jina(body: dict[str, Any]) -> dict[str, Any]:
    """A Jina-shaped request for Cohere v2, which takes plain strings only."""
    cohere = {"model": body.get("model"), "query": body.get("query"),
              "documents": [document_text(d) for d in body.get("documents") or []]}
    if body.get("top_n") is not None:
        cohere["top_n"] = body["top_n"]
    return cohere


def rerank_results(data: dict[str, Any], documents: list[Any], *, top_n: int | None,
                   return_documents: bool) -> list[dict[str, Any]]:
    """Results from a Jina, Cohere or Xinference answer, best first; documents filled from the request."""
    results = []
    for item in as_list(data.get("results")) or as_list(data.get("data")):
        if not isinstance(item, dict) or not isinstance(item.get("index"), int):
            continue
        score = item.get("relevance_score", item.get("score"))
        if not isinstance(score, (int, float)) or isinstance(score, bool):
            continue
        row: dict[str, Any] = {"index": item["index"], "relevance_score": float(score)}
        if return_documents and 0 <= item["index"] < len(documents):
            row["document"] = {"text": document_text(documents[item["index"]])}
        results.append(row)
    results.sort(key=lambda r: r["relevance_score"], reverse=True)
    return results[:top_n] if top_n else results


def rerank_tokens(data: dict[str, Any]) -> int | None:
    """Tokens the upstream reported: Jina's `usage`, Xinference's `meta.tokens`; Cohere bills search units only."""
    usage = data.get("usage")
    if isinstance(usage, dict):
        for name in ("total_tokens", "prompt_tokens"):
            if isinstance(usage.get(name), int) and usage[name] > 0:
                return usage[name]
    tokens = (data.get("meta") or {}).get("tokens") if isinstance(data.get("meta"), dict) else None
    if isinstance(tokens, dict) and isinstance(tokens.get("input_tokens"), int) and tokens["input_tokens"] > 0:
        return tokens["input_tokens"]
    return None


def jina_response(model: str, results: list[dict[str, Any]], tokens: int) -> dict[str, Any]:
    return {"model": model, "results": results,
            "usage": {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens}}


def cohere_response(request_id: str, results: list[dict[str, Any]], tokens: int) -> dict[str, Any]:
    return {"id": request_id, "results": [{"index": r["index"], "relevance_score": r["relevance_score"]}
                                          for r in results],
            "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1, "input_tokens": tokens}}}


def cohere_error_body(message: str) -> dict[str, Any]:
    return {"message": message}
