"""The billing formula against hand-computed figures."""

from decimal import Decimal
from decimal import Decimal as D

import pytest

from billing.pricing import (
    quota_for_call, quota_for_minutes, quota_for_tokens, quota_to_usd, round_half_up, usd_per_million,
)


@pytest.mark.parametrize(
    "prompt, completion, cached, group, model, completion_ratio, cache_ratio, expected",
    [
        # 1 x 1 x (1000 + 500 x 1) = 1500
        (1000, 500, 0, "1", "1", "1", "1", 1500),
        # gpt-4o at group 1.5: 1.5 x 1.25 x (1000 + 200 x 4) = 1.875 x 1800 = 3375
        (1000, 200, 0, "1.5", "1.25", "4", "1", 3375),
        # cached half price: 1 x 2 x ((800 - 300) + 300 x 0.5 + 100 x 3) = 2 x 950 = 1900
        (800, 100, 300, "1", "2", "3", "0.5", 1900),
        # rounding half up: 0.3 x 0.075 x (10 + 10 x 4) = 1.125 -> 1 ; 0.5 x 1 x 5 = 2.5 -> 3
        (10, 10, 0, "0.3", "0.075", "4", "1", 1),
        (5, 0, 0, "0.5", "1", "1", "1", 3),
        # tiny usage still costs at least 1
        (1, 0, 0, "0.1", "0.01", "1", "1", 1),
        # no tokens, no charge
        (0, 0, 0, "1", "1", "1", "1", 0),
    ],
)
def test_quota_for_tokens(prompt, completion, cached, group, model, completion_ratio, cache_ratio, expected):
    assert quota_for_tokens(
        prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached, group_ratio=D(group),
        model_ratio=D(model), completion_ratio=D(completion_ratio), cache_ratio=D(cache_ratio),
    ) == expected


def test_per_call_price_is_usd_times_500k_times_group_ratio():
    assert quota_for_call(price_usd=D("0.04"), group_ratio=D("1")) == 20_000
    assert quota_for_call(price_usd=D("0.1"), group_ratio=D("0.3")) == 15_000


def test_model_ratio_one_is_two_dollars_per_million():
    assert usd_per_million(model_ratio=D(1), group_ratio=D(1)) == D(2)
    assert usd_per_million(model_ratio=D("1.25"), group_ratio=D(1), side_ratio=D(4)) == D(10)
    assert quota_to_usd(500_000) == D(1)


def test_round_half_up_is_not_bankers_rounding():
    assert round_half_up(D("2.5")) == 3
    assert round_half_up(D("3.5")) == 4
    assert round_half_up(D("2.4999")) == 2


def test_cache_writes_and_audio_are_priced_at_their_own_ratios():
    # 1000 prompt = 100 read + 200 written + 300 audio + 400 text; 50 completion = 20 audio + 30 text
    quota = quota_for_tokens(prompt_tokens=1000, completion_tokens=50, cached_tokens=100, cache_write_tokens=200,
                             audio_prompt_tokens=300, audio_completion_tokens=20, group_ratio=Decimal(1),
                             model_ratio=Decimal(2), completion_ratio=Decimal(4), cache_ratio=Decimal("0.1"),
                             cache_write_ratio=Decimal("1.25"), audio_ratio=Decimal(8), audio_completion_ratio=Decimal(16))
    assert quota == 2 * (400 + 100 * Decimal("0.1") + 200 * Decimal("1.25") + 300 * 8 + 30 * 4 + 20 * 16)


def test_parts_never_exceed_their_whole():
    # cached 80 of 100 leaves at most 20 for writes and nothing for audio; audio output capped at the completion
    assert quota_for_tokens(prompt_tokens=100, completion_tokens=5, cached_tokens=80, cache_write_tokens=500,
                            audio_prompt_tokens=500, audio_completion_tokens=50, group_ratio=Decimal(1),
                            model_ratio=Decimal(1), completion_ratio=Decimal(1), cache_ratio=Decimal(0),
                            cache_write_ratio=Decimal(2), audio_ratio=Decimal(100),
                            audio_completion_ratio=Decimal(3)) == 20 * 2 + 5 * 3


@pytest.mark.parametrize(("seconds", "expected"), [(60, 3_000), (30, 1_500), (12, 600), (0.001, 1), (0, 0)])
def test_audio_minutes_at_six_tenths_of_a_cent(seconds, expected):
    assert quota_for_minutes(seconds=seconds, price_usd_per_minute=Decimal("0.006"), group_ratio=Decimal(1)) == expected


def test_image_price_variants_pick_the_most_specific_key():
    from relay.snapshots import PriceInfo, _variants

    price = PriceInfo("dall-e-3", "openai", "image", None, Decimal(1), Decimal(1), Decimal(1), Decimal("0.04"),
                      price_variants=_variants({"1024x1792": 0.08, "HD  1024x1792": "0.12", "hd": "0.09",
                                                "bad": "x", "neg": -1}))
    assert price.call_usd("1024x1792", "hd") == Decimal("0.12")
    assert price.call_usd("1024x1792", "standard") == Decimal("0.08")
    assert price.call_usd("1024x1024", "hd") == Decimal("0.09")
    assert price.call_usd("1024x1024", "") == Decimal("0.04")
    assert dict(price.price_variants).keys() == {"1024x1792", "hd 1024x1792", "hd"}


def test_a_long_prompt_bills_the_whole_request_at_the_long_context_multipliers():
    from relay.gate import cost_of
    from relay.snapshots import PriceInfo
    from relay.usage import Usage

    # Gemini 2.5 Pro: $1.25/M in, $10/M out (ratio 0.625, completion x8); past 200k: $2.50 in, $15 out.
    price = PriceInfo("gemini-2.5-pro", "gemini", "general", None, D("0.625"), D(8), D("0.25"), None,
                      long_context=(200_000, D(2), D("1.5")))
    short = cost_of(price, D(1), Usage(200_000, 1_000, cached_tokens=100_000))
    long = cost_of(price, D(1), Usage(200_001, 1_000, cached_tokens=100_000))
    assert short == round(D("0.625") * (100_000 + 100_000 * D("0.25") + 1_000 * 8))  # 83,125 = $0.16625
    assert long == round(D("0.625") * ((100_001 + 100_000 * D("0.25")) * 2 + 1_000 * 8 * D("1.5")))  # 163,751
    assert long / 500_000 == pytest.approx(2 * 100_001 * 1.25e-6 + 2 * 100_000 * 0.3125e-6 + 1_000 * 15e-6, rel=1e-5)
    untiered = PriceInfo("m", "", "general", None, D("0.625"), D(8), D("0.25"), None)
    assert cost_of(untiered, D(1), Usage(300_000, 0)) == round(D("0.625") * 300_000)
