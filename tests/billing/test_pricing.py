"""The billing formula against hand-computed figures."""

from decimal import Decimal as D

import pytest

from billing.pricing import quota_for_call, quota_for_tokens, quota_to_usd, round_half_up, usd_per_million


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
