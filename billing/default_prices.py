"""Prices seeded on first run; operators change them in admin or /api/pricing/ and re-runs keep their changes.

Ratios follow the providers' public list prices: model ratio 1 = $2 per million input tokens.
"""

from __future__ import annotations

from decimal import Decimal as D

DEMO_MODELS = ["demo-chat", "demo-reasoner", "demo-embedding"]

# model, provider, category, context window, model ratio, completion ratio, cache ratio
DEFAULT_PRICES: list[tuple[str, str, str, int | None, D, D, D]] = [
    ("demo-chat", "demo", "fast", 32_768, D("0.5"), D("2"), D("0.5")),
    ("demo-reasoner", "demo", "general", 65_536, D("1"), D("4"), D("0.25")),
    ("demo-embedding", "demo", "embedding", 8_192, D("0.01"), D("1"), D("1")),
    ("gpt-4o", "openai", "general", 128_000, D("1.25"), D("4"), D("0.5")),
    ("gpt-4o-mini", "openai", "fast", 128_000, D("0.075"), D("4"), D("0.5")),
    ("gpt-4.1", "openai", "long-context", 1_047_576, D("1"), D("4"), D("0.25")),
    ("gpt-4.1-mini", "openai", "fast", 1_047_576, D("0.2"), D("4"), D("0.25")),
    ("o3-mini", "openai", "general", 200_000, D("0.55"), D("4"), D("0.5")),
    ("text-embedding-3-small", "openai", "embedding", 8_191, D("0.01"), D("1"), D("1")),
    ("text-embedding-3-large", "openai", "embedding", 8_191, D("0.065"), D("1"), D("1")),
    ("claude-sonnet-4-20250514", "anthropic", "general", 200_000, D("1.5"), D("5"), D("0.1")),
    ("claude-3-5-haiku-20241022", "anthropic", "fast", 200_000, D("0.4"), D("5"), D("0.1")),
    ("gemini-2.5-flash", "gemini", "fast", 1_048_576, D("0.15"), D("8.333333"), D("0.25")),
    ("gemini-2.5-pro", "gemini", "long-context", 1_048_576, D("0.625"), D("8"), D("0.25")),
    ("deepseek-chat", "deepseek", "general", 65_536, D("0.135"), D("4.074074"), D("0.259259")),
    ("deepseek-reasoner", "deepseek", "general", 65_536, D("0.275"), D("3.981818"), D("0.254545")),
    ("qwen-plus", "ali", "general", 131_072, D("0.2"), D("2.5"), D("1")),
    ("qwen-max", "ali", "general", 32_768, D("1.2"), D("4"), D("1")),
    ("doubao-pro", "volc", "general", 131_072, D("0.055"), D("2.5"), D("1")),
    ("moonshot-v1-8k", "moonshot", "general", 8_192, D("0.833333"), D("1"), D("1")),
    ("glm-4-plus", "zhipu", "general", 128_000, D("0.35"), D("1"), D("1")),
]
