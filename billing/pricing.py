"""The billing formula, as pure functions on Decimals (no floats, no I/O).

quota = round_half_up(group_ratio x model_ratio x (text prompt + cached x cache_ratio + cache writes x cache_write_ratio
        + audio prompt x audio_ratio + text completion x completion_ratio + audio completion x audio_completion_ratio))
per call: round_half_up(price_usd x 500,000 x group_ratio). Model ratio 1 is $2 per million tokens.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

QUOTA_PER_USD = 500_000
USD_PER_MILLION_AT_RATIO_1 = Decimal(1_000_000) / QUOTA_PER_USD


def round_half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def quota_for_tokens(
    *,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
    group_ratio: Decimal,
    model_ratio: Decimal,
    completion_ratio: Decimal,
    cache_ratio: Decimal = Decimal(1),
    cache_write_tokens: int = 0,
    cache_write_ratio: Decimal = Decimal(1),
    audio_prompt_tokens: int = 0,
    audio_ratio: Decimal = Decimal(1),
    audio_completion_tokens: int = 0,
    audio_completion_ratio: Decimal = Decimal(1),
    prompt_multiplier: Decimal = Decimal(1),
    completion_multiplier: Decimal = Decimal(1),
) -> int:
    """Quota for a per-token request; at least 1 when any tokens were used. Cache reads, cache writes and audio
    input are parts of the prompt; audio output is part of the completion (the audio output ratio is relative to
    the input price, as the completion ratio is). The multipliers are a long-context tier's."""
    cached = min(max(cached_tokens, 0), prompt_tokens)
    writes = min(max(cache_write_tokens, 0), prompt_tokens - cached)
    audio_in = min(max(audio_prompt_tokens, 0), prompt_tokens - cached - writes)
    audio_out = min(max(audio_completion_tokens, 0), completion_tokens)
    weighted = (((prompt_tokens - cached - writes - audio_in) + cached * cache_ratio + writes * cache_write_ratio
                 + audio_in * audio_ratio) * prompt_multiplier
                + ((completion_tokens - audio_out) * completion_ratio + audio_out * audio_completion_ratio)
                * completion_multiplier)
    quota = round_half_up(group_ratio * model_ratio * weighted)
    if quota == 0 and (prompt_tokens or completion_tokens) and group_ratio > 0 and model_ratio > 0:
        return 1
    return quota


def quota_for_call(*, price_usd: Decimal, group_ratio: Decimal) -> int:
    return round_half_up(price_usd * QUOTA_PER_USD * group_ratio)


def quota_for_minutes(*, seconds: float, price_usd_per_minute: Decimal, group_ratio: Decimal) -> int:
    """Quota for audio priced by the minute (to the millisecond); at least 1 for any audio at a non-zero price."""
    minutes = Decimal(str(round(max(seconds, 0.0), 3))) / 60
    quota = round_half_up(minutes * price_usd_per_minute * QUOTA_PER_USD * group_ratio)
    if quota == 0 and seconds > 0 and price_usd_per_minute > 0 and group_ratio > 0:
        return 1
    return quota


def usd_per_million(*, model_ratio: Decimal, group_ratio: Decimal, side_ratio: Decimal = Decimal(1)) -> Decimal:
    """Price in USD per million tokens shown to users (input: side_ratio 1; output: the completion ratio)."""
    return (USD_PER_MILLION_AT_RATIO_1 * model_ratio * group_ratio * side_ratio).normalize()


def quota_to_usd(quota: int) -> Decimal:
    return (Decimal(quota) / QUOTA_PER_USD).quantize(Decimal("0.000001"))
