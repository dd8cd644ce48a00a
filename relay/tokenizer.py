"""Offline token counts (o200k_base) for reservations and for streams cut before usage arrived."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

PER_MESSAGE_OVERHEAD = 4
PER_IMAGE_ESTIMATE = 765
CORE = "bpe_openai._bindings"


@lru_cache(maxsize=1)
def _counter() -> Any:
    """o200k_base from bpe-openai's Rust core, loaded alone. Importing the package reads the ranks of every encoding
    it knows into Python dicts (1.4 s and 70 MB in every process, for counting the core does on its own copy), and
    its encoder refuses texts past a million characters or 200,000 tokens, which long-context models take. The core
    is registered under its name, so the package, if imported later, uses this copy."""
    core = sys.modules.get(CORE)
    if core is None:
        package = importlib.util.find_spec("bpe_openai")
        folders = package.submodule_search_locations if package else None
        paths = [Path(folder) / f"_bindings{suffix}" for folder in folders or ()
                 for suffix in importlib.machinery.EXTENSION_SUFFIXES]
        path = next((path for path in paths if path.exists()), None)
        if path is None:
            core = importlib.import_module(CORE)  # another layout: through the package
        else:
            spec = importlib.util.spec_from_file_location(CORE, path)
            core = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(core)
            sys.modules[CORE] = core
    return core.tokenizer_for_encoding("o200k_base")


def counter_load() -> None:
    """Load the counter ahead of the first count (servers, at start)."""
    _counter()


def count_text(text: str) -> int:
    """o200k_base tokens in `text`, special tokens' names counted as text (as `encode_ordinary` does)."""
    if not text:
        return 0
    try:
        return _counter().count(text)
    except UnicodeEncodeError:  # lone surrogates (from JSON escapes): counted as replacement characters
        return _counter().count(text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"))


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
