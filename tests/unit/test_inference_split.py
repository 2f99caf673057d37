"""gwcore.inference.split.WeightedSplit: smooth weighted round-robin and sticky picks."""

from __future__ import annotations

import random
from collections import Counter
from itertools import pairwise

import pytest

from gwcore.inference.split import WeightedSplit


def picks(split: WeightedSplit, n: int) -> list[int]:
    return [split.pick() for _ in range(n)]


# ---- pick: smooth weighted round-robin ---------------------------------------------------------

def test_95_5_exact_over_10000() -> None:
    assert Counter(picks(WeightedSplit([95, 5]), 10_000)) == {0: 9_500, 1: 500}


def test_any_window_of_the_total_is_exact() -> None:
    """Every run of sum(weights) consecutive picks, aligned or not, holds each weight exactly."""
    weights = [95, 5]
    seq = picks(WeightedSplit(weights), 10_000 + 137)
    for start in (0, 1, 37, 99, 137):
        assert Counter(seq[start:start + 10_000]) == {0: 9_500, 1: 500}
    weights = [5, 3, 0, 2, 7]
    seq = picks(WeightedSplit(weights), 5 * 17)
    for start in range(4 * 17):
        window = Counter(seq[start:start + 17])
        assert window == {i: w for i, w in enumerate(weights) if w}


def test_nginx_example_order() -> None:
    """The sequence of NGINX's commit message for weights a=5, b=1, c=1."""
    assert picks(WeightedSplit([5, 1, 1]), 7) == [0, 0, 1, 0, 2, 0, 0]


def test_95_5_minority_spread_one_in_20() -> None:
    seq = picks(WeightedSplit([95, 5]), 10_000)
    at = [i for i, x in enumerate(seq) if x == 1]
    assert {b - a for a, b in pairwise(at)} == {20}


@pytest.mark.parametrize("a", range(1, 41))
def test_two_way_gaps_even(a: int) -> None:
    """With two entries, the gap between consecutive picks of either is floor or ceil of
    total / weight: never bunched closer than the ratio allows, never further apart."""
    for b in range(1, a + 1):
        total = a + b
        seq = picks(WeightedSplit([a, b]), 3 * total)
        for who, w in ((0, a), (1, b)):
            at = [i for i, x in enumerate(seq) if x == who]
            gaps = {q - p for p, q in pairwise(at)}
            assert gaps <= {total // w, -(-total // w)}, (a, b, who, gaps)


def test_single_and_equal_weights() -> None:
    assert picks(WeightedSplit([3]), 5) == [0] * 5
    assert picks(WeightedSplit([1, 1, 1]), 6) == [0, 1, 2, 0, 1, 2]


def test_zero_weights_never_picked() -> None:
    seq = picks(WeightedSplit([0, 95, 0, 5, 0]), 10_000)
    assert Counter(seq) == {1: 9_500, 3: 500}
    split = WeightedSplit([0, 0, 1])
    assert {split.pick() for _ in range(100)} == {2}
    assert {split.pick_sticky(str(i).encode()) for i in range(1_000)} == {2}


# ---- pick_sticky ---------------------------------------------------------------------------

def test_sticky_stable_across_instances_and_calls() -> None:
    keys = [f"user-{i}".encode() for i in range(2_000)]
    a, b = WeightedSplit([95, 5]), WeightedSplit((95, 5))
    first = [a.pick_sticky(k) for k in keys]
    a.pick()  # round-robin state does not move sticky picks
    assert [a.pick_sticky(k) for k in keys] == first
    assert [b.pick_sticky(k) for k in keys] == first


def test_sticky_pinned_values() -> None:
    """Seedless: the same answers in every process (these were computed once and pinned)."""
    split = WeightedSplit([25, 25, 25, 25])
    keys = (b"alice", b"bob", b"carol", b"dave", b"", b"10.0.0.1", b"2001:db8::1", b"user-42")
    assert [split.pick_sticky(k) for k in keys] == [1, 1, 0, 2, 3, 1, 2, 3]


def test_sticky_shares_follow_weights() -> None:
    rng = random.Random(15)
    keys = {rng.randbytes(16) for _ in range(10_000)}
    assert len(keys) == 10_000
    split = WeightedSplit([95, 5])
    share = Counter(split.pick_sticky(k) for k in keys)[1] / len(keys)
    assert abs(share - 0.05) <= 0.01, share


def test_sticky_three_way_shares() -> None:
    split = WeightedSplit([60, 0, 30, 10])
    got = Counter(split.pick_sticky(f"sub-{i}".encode()) for i in range(30_000))
    assert set(got) == {0, 2, 3}
    for i, w in ((0, 60), (2, 30), (3, 10)):
        assert abs(got[i] / 30_000 - w / 100) <= 0.01


def test_sticky_accepts_bytes_likes() -> None:
    split = WeightedSplit([1, 1, 1, 1])
    assert split.pick_sticky(memoryview(b"k1")) == split.pick_sticky(b"k1")
    assert split.pick_sticky(bytearray(b"k1")) == split.pick_sticky(b"k1")


# ---- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("weights", [[], [0], [0, 0], [-1, 2], [1.5, 1], [True, 1], ["1"]])
def test_bad_weights(weights: list) -> None:
    with pytest.raises(ValueError):
        WeightedSplit(weights)


def test_weights_kept() -> None:
    assert WeightedSplit([95, 5]).weights == (95, 5)
