"""Which upstreams serve a request and in what order: priority first, then a draw by weight; the snapshot's index of
who serves a model agrees with a scan of every upstream."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from relay.gate import _known
from relay.routing import candidates
from relay.snapshots import UpstreamInfo, Upstreams

DRAWS = 4000


def upstream(number: int, *, priority: int = 0, weight: int = 1, models=("gpt-4o",), mapping=None,
             groups=("default",), kind: str = "openai") -> UpstreamInfo:
    return UpstreamInfo(id=number, name=f"u{number}", type=kind, provider=None, base_url="http://x", keys=("k",),
                        models=frozenset(models), model_mapping=dict(mapping or {}), groups=frozenset(groups),
                        priority=priority, weight=weight, connect_timeout=5, first_byte_timeout=60,
                        total_timeout=600, extras={})


def orders(upstreams, model: str = "gpt-4o", **options) -> Counter:
    rng = random.Random(7)
    return Counter(tuple(u.id for u in candidates(upstreams, model=model, group="default", rng=rng, **options))
                   for _ in range(DRAWS))


@pytest.mark.parametrize("wrap", [list, Upstreams], ids=["list", "snapshot"])
def test_higher_priorities_come_first(wrap):
    found = orders(wrap([upstream(1, priority=0), upstream(2, priority=10), upstream(3, priority=5)]))
    assert set(found) == {(2, 3, 1)}


@pytest.mark.parametrize("wrap", [list, Upstreams], ids=["list", "snapshot"])
def test_within_a_priority_each_place_is_drawn_by_weight(wrap):
    found = orders(wrap([upstream(1, weight=1), upstream(2, weight=2), upstream(3, weight=7)]))
    share = {order: count / DRAWS for order, count in found.items()}
    first = Counter()
    for order, count in found.items():
        first[order[0]] += count / DRAWS
    assert first[1] == pytest.approx(0.1, abs=0.03) and first[3] == pytest.approx(0.7, abs=0.03)
    assert share[(3, 2, 1)] == pytest.approx(0.7 * 2 / 3, abs=0.03)  # then 2 of the 3 left
    assert share[(1, 3, 2)] == pytest.approx(0.1 * 7 / 9, abs=0.03)


def test_weight_zero_comes_after_the_others_and_zeros_draw_evenly():
    assert set(orders([upstream(1, weight=0), upstream(2, weight=5)])) == {(2, 1)}
    first = Counter()
    for order, count in orders([upstream(1, weight=0), upstream(2, weight=0), upstream(3, weight=0)]).items():
        first[order[0]] += count / DRAWS
    assert all(share == pytest.approx(1 / 3, abs=0.03) for share in first.values()) and len(first) == 3


def test_groups_models_mappings_and_pinned_providers_choose_who_serves():
    pool = Upstreams([upstream(1), upstream(2, groups=("vip",)), upstream(3, models=(), mapping={"gpt-4o": "x"}),
                      upstream(4, kind="anthropic", models=("claude",)), upstream(5, kind="ali")])
    assert {u.id for u in candidates(pool, model="gpt-4o", group="default")} == {1, 3, 5}
    assert [u.id for u in candidates(pool, model="gpt-4o", group="default", provider="qwen")] == [5]
    assert candidates(pool, model="gpt-5", group="default") == []


def test_the_snapshots_index_finds_what_a_scan_finds():
    rng = random.Random(3)
    names = [f"m{i}" for i in range(40)]
    upstreams = [upstream(i, priority=rng.randrange(3), weight=rng.randrange(4),
                          models=rng.sample(names, 6), mapping={rng.choice(names): "x"},
                          groups=rng.sample(["default", "vip", "free"], rng.randrange(0, 3)))
                 for i in range(120)]
    indexed = Upstreams(upstreams)
    for model in names + ["unknown"]:
        for group in ("default", "vip", "free"):
            scanned = {u.id for u in candidates(upstreams, model=model, group=group)}
            assert {u.id for u in candidates(indexed, model=model, group=group)} == scanned
        assert _known(model, {}, indexed) == _known(model, {}, upstreams) == any(
            u.serves(model, group) for u in upstreams for group in u.groups)


def test_the_index_keeps_a_bounded_number_of_lookups(monkeypatch):
    monkeypatch.setattr(Upstreams, "LOOKUPS_KEPT", 5)
    indexed = Upstreams([upstream(1)])
    for number in range(20):
        assert indexed.serving(f"model-{number}") == []
    assert indexed.serving("gpt-4o")[0].id == 1
    assert len(indexed._serving) == 5
