"""Prices seeded on first run; operators change them in admin or /api/pricing/ and re-runs keep their changes.

Ratios follow the providers' public list prices: model ratio 1 = $2 per million input tokens.
"""

from __future__ import annotations

from decimal import Decimal as D

DEMO_MODELS = ["demo-chat", "demo-reasoner", "demo-embedding", "demo-realtime"]
# Served by a `demo` upstream as generation tasks (relay/media_tasks): finished after DEMO_TASK_SECONDS.
DEMO_TASK_MODELS = ["demo-video", "demo-music", "demo-audio"]

# model, provider, category, context window, model ratio, completion ratio, cache ratio
DEFAULT_PRICES: list[tuple[str, str, str, int | None, D, D, D]] = [
    ("demo-chat", "demo", "fast", 32_768, D("0.5"), D("2"), D("0.5")),
    ("demo-reasoner", "demo", "general", 65_536, D("1"), D("4"), D("0.25")),
    ("demo-embedding", "demo", "embedding", 8_192, D("0.01"), D("1"), D("1")),
    ("demo-realtime", "demo", "realtime", 32_768, D("0.5"), D("2"), D("0.5")),
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

# Fields beyond the ratios above, and models priced per image, per character or per audio minute.
# Speech models bill input characters as prompt tokens (tts-1: $15 per million characters = ratio 7.5).
PRICE_EXTRAS: dict[str, dict] = {
    "demo-realtime": {"audio_ratio": D("4"), "audio_completion_ratio": D("8")},
    # Past 200,000 prompt tokens the whole request costs more (Claude Sonnet 4's 1M context, Gemini 2.5 Pro).
    "claude-sonnet-4-20250514": {"cache_write_ratio": D("1.25"), "long_context_threshold": 200_000,
                                 "long_context_prompt_multiplier": D("2"),
                                 "long_context_completion_multiplier": D("1.5")},
    "gemini-2.5-pro": {"long_context_threshold": 200_000, "long_context_prompt_multiplier": D("2"),
                       "long_context_completion_multiplier": D("1.5")},
    "claude-3-5-haiku-20241022": {"cache_write_ratio": D("1.25")},
    "gpt-4o-realtime-preview": {
        "provider": "openai", "category": "realtime", "context_window": 128_000, "model_ratio": D("2.5"),
        "completion_ratio": D("4"), "cache_ratio": D("0.5"), "audio_ratio": D("8"), "audio_completion_ratio": D("16"),
    },
    "gpt-4o-mini-realtime-preview": {
        "provider": "openai", "category": "realtime", "context_window": 128_000, "model_ratio": D("0.3"),
        "completion_ratio": D("4"), "cache_ratio": D("0.5"), "audio_ratio": D("16.666667"),
        "audio_completion_ratio": D("33.333333"),
    },
    "dall-e-3": {
        "provider": "openai", "category": "image", "price_per_call": D("0.04"),
        "price_variants": {"1024x1024": "0.04", "1024x1792": "0.08", "1792x1024": "0.08", "hd 1024x1024": "0.08",
                           "hd 1024x1792": "0.12", "hd 1792x1024": "0.12"},
    },
    "dall-e-2": {
        "provider": "openai", "category": "image", "price_per_call": D("0.02"),
        "price_variants": {"256x256": "0.016", "512x512": "0.018", "1024x1024": "0.02"},
    },
    "gpt-image-1": {"provider": "openai", "category": "image", "model_ratio": D("2.5"), "completion_ratio": D("8")},
    "tts-1": {"provider": "openai", "category": "audio", "model_ratio": D("7.5")},
    "tts-1-hd": {"provider": "openai", "category": "audio", "model_ratio": D("15")},
    "whisper-1": {"provider": "openai", "category": "audio", "price_per_minute": D("0.006")},
    "gpt-4o-transcribe": {"provider": "openai", "category": "audio", "model_ratio": D("1.25"),
                          "audio_ratio": D("2.4"), "completion_ratio": D("4")},
    "gpt-4o-mini-transcribe": {"provider": "openai", "category": "audio", "model_ratio": D("0.625"),
                               "audio_ratio": D("2.4"), "completion_ratio": D("4")},
    # Generation tasks: Midjourney and Suno per task; video and audio per second of output (variants by size or
    # by Kling's mode).
    **{f"mj_{action}": {"provider": "midjourney", "category": "image", "price_per_call": D(price)} for action, price in [
        ("imagine", "0.1"), ("upscale", "0.05"), ("variation", "0.1"), ("reroll", "0.1"), ("blend", "0.1"),
        ("describe", "0.05"), ("upload", "0.05"), ("modal", "0.1"), ("zoom", "0.1"), ("pan", "0.1"),
        ("low_variation", "0.1"),
        ("high_variation", "0.1"), ("inpaint", "0.1"), ("custom_zoom", "0.1"), ("action", "0.1"), ("shorten", "0.1")]},
    "swap_face": {"provider": "midjourney", "category": "image", "price_per_call": D("0.05")},
    "suno_music": {"provider": "suno", "category": "audio", "price_per_call": D("0.1")},
    "suno_lyrics": {"provider": "suno", "category": "audio", "price_per_call": D("0.01")},
    "kling-v1": {"provider": "kling", "category": "video", "price_per_call": D("0.028"),
                 "price_variants": {"pro": "0.049"}},
    "jimeng-v1": {"provider": "jimeng", "category": "video", "price_per_call": D("0.03")},
    "sora-2": {"provider": "openai", "category": "video", "price_per_call": D("0.1")},
    "sora-2-pro": {"provider": "openai", "category": "video", "price_per_call": D("0.3"),
                   "price_variants": {"1024x1792": "0.5", "1792x1024": "0.5"}},
    "demo-video": {"provider": "demo", "category": "video", "price_per_call": D("0.01")},
    "demo-music": {"provider": "demo", "category": "audio", "price_per_call": D("0.02")},
    "demo-audio": {"provider": "demo", "category": "audio", "price_per_call": D("0.001")},
}
