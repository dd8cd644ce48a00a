"""Offline token counts (o200k_base) for reservations and for streams cut before usage arrived."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import bpe_openai

PER_MESSAGE_OVERHEAD = 4
PER_IMAGE_ESTIMATE = 765


@lru_cache(maxsize=1)
def _encoding() -> Any:
    return bpe_openai.get_encoding("o200k_base")


def count_text(text: str) -> int:
    return len(_encoding().encode_ordinary(text)) if text else 0


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return count_text(content)
    total = 0
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                total += count_text(part["text"])
            elif part.get("type") in {"image_url", "input_image", "image"}:
                total += PER_IMAGE_ESTIMATE
    return total


def estimate_prompt(body: dict[str, Any], operation: str) -> int:
    """Input tokens of an OpenAI-shaped request, counted the way the providers roughly do."""
    if operation == "chat/completions":
        total = 3
        for message in body.get("messages") or []:
            if isinstance(message, dict):
                total += PER_MESSAGE_OVERHEAD + _content_tokens(message.get("content"))
                for call in message.get("tool_calls") or []:
                    if isinstance(call, dict):
                        total += count_text(str(call.get("function", "")))
        if body.get("tools"):
            total += count_text(str(body["tools"]))
        return total
    if operation in ("responses", "responses/compact"):  # instructions plus input: a string, or items with text
        items = body.get("input")
        items = [{"content": items}] if isinstance(items, str) else items if isinstance(items, list) else []
        total = count_text(str(body.get("instructions") or ""))
        for item in items:
            if isinstance(item, dict):
                total += PER_MESSAGE_OVERHEAD + _content_tokens(item.get("content"))
                total += count_text(str(item.get("output") or item.get("arguments") or ""))
        return total
    if operation == "rerank":  # the query and every document
        documents = body.get("documents") or []
        texts = [d.get("text", "") if isinstance(d, dict) else str(d) for d in documents]
        return count_text(str(body.get("query") or "")) + sum(count_text(t) for t in texts)
    if operation in {"embedContent", "batchEmbedContents"}:  # Gemini embeddings: each request's text
        from relay.wires_gemini_embed import embed_texts

        return sum(count_text(text) for text in embed_texts(body, operation))
    if operation == "generateContent":  # Gemini: count it as the chat it translates to
        from relay.protocols.gemini_request import gemini_request_to_openai_chat

        return estimate_prompt(gemini_request_to_openai_chat("", body), "chat/completions")
    if operation == "messages":  # Anthropic: a top-level system prompt, then the same turns as chat
        system = body.get("system")
        return estimate_prompt({"messages": body.get("messages") or [], "tools": body.get("tools")},
                               "chat/completions") + _content_tokens(system)
    field = "prompt" if operation in {"completions", "images/generations"} else "input"
    value = body.get(field)
    if isinstance(value, str):
        return count_text(value)
    if isinstance(value, list):
        return sum(count_text(v) if isinstance(v, str) else len(v) if isinstance(v, list) else 1 for v in value)
    return 0
