"""Balancer policies (gwcore.proxy._balancer) on their own: weights, choices, exclusion,
availability, panic mode."""

import collections

import pytest

from gwcore.proxy._balancer import Balancer

NAMES = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]


def counts(b: Balancer, n: int, key=None, exclude=-1) -> collections.Counter:
    return collections.Counter(b.choose(key, exclude) for _ in range(n))


def test_smooth_weighted_round_robin_sequence_and_shares():
    b = Balancer("round_robin", NAMES, [5, 1, 1])
    # NGINX's smooth WRR: a a b a c a a, then again
    assert [b.choose() for _ in range(7)] == [0, 0, 1, 0, 2, 0, 0]
    assert counts(b, 7000) == {0: 5000, 1: 1000, 2: 1000}


def test_random_follows_weights():
    c = counts(Balancer("random", NAMES, [2, 1, 1]), 40000)
    assert abs(c[0] / 40000 - 0.5) < 0.02 and abs(c[1] / 40000 - 0.25) < 0.02


def test_least_request_prefers_fewer_in_flight():
    b = Balancer("least_request", NAMES, [1, 1, 1])
    for _ in range(10):
        b.begin(0)
    c = counts(b, 3000)
    # power of two choices: the loaded endpoint only wins when drawn twice (never, as the
    # second draw is forced distinct), so it gets nothing while others tie
    assert c[0] == 0 and c[1] > 1000 and c[2] > 1000
    for _ in range(10):
        b.end(0)
    assert b.in_flight(0) == 0


@pytest.mark.parametrize("policy", ["round_robin", "least_request", "random", "ring_hash",
                                    "maglev"])
def test_unavailable_and_excluded_endpoints_are_skipped(policy):
    b = Balancer(policy, NAMES, [1, 1, 1])
    b.set_up(1, False)
    keys = [f"k{i}".encode() for i in range(300)]
    assert all(b.choose(k) != 1 for k in keys)
    assert all(b.choose(k, exclude=0) == 2 for k in keys)
    # panic: nothing available → every endpoint is eligible again rather than failing
    b.set_up(0, False)
    b.set_up(2, False)
    assert {b.choose(k) for k in keys} <= {0, 1, 2} and b.choose(b"x") >= 0


@pytest.mark.parametrize("policy", ["ring_hash", "maglev"])
def test_hash_policies_move_only_the_keys_of_an_unavailable_endpoint(policy):
    b = Balancer(policy, NAMES, [1, 1, 1])
    keys = [f"user-{i}".encode() for i in range(3000)]
    before = {k: b.choose(k) for k in keys}
    assert all(b.choose(k) == before[k] for k in keys)        # sticky
    b.set_up(2, False)
    after = {k: b.choose(k) for k in keys}
    moved = [k for k in keys if after[k] != before[k]]
    assert moved and all(before[k] == 2 for k in moved)
    b.set_up(2, True)
    assert {k: b.choose(k) for k in keys} == before


def test_ring_hash_is_uhashring_ketama():
    import uhashring
    ring = uhashring.HashRing(NAMES, hash_fn="ketama")
    b = Balancer("ring_hash", NAMES, [1, 1, 1])
    for i in range(2000):
        key = f"/video/seg{i}.ts"
        assert NAMES[b.choose(key.encode())] == ring.get_node(key)


def test_bounded_load_caps_an_endpoint():
    b = Balancer("maglev", NAMES, [1, 1, 1], balance_factor=1.25)
    picks = []
    for _ in range(300):                    # one hot key, requests all in flight
        i = b.choose(b"hot")
        b.begin(i)
        picks.append(i)
    c = collections.Counter(picks)
    assert max(c.values()) <= -(-1.25 * 300 // 3) + 1, c
    assert len(c) == 3


def test_validation():
    with pytest.raises(ValueError):
        Balancer("fastest", NAMES, [1, 1, 1])
    with pytest.raises(ValueError):
        Balancer("round_robin", NAMES, [1, 0, 1])
    with pytest.raises(ValueError):
        Balancer("round_robin", [], [])


def test_least_request_follows_weights_when_idle():
    c = counts(Balancer("least_request", NAMES, [5, 1, 1]), 7000)
    assert c[0] > c[1] + c[2], c


def test_python_entries_check_the_index():
    b = Balancer("random", NAMES, [1, 1, 1])
    for call in (b.is_up, b.in_flight, b.begin, b.end):
        with pytest.raises(IndexError):
            call(10**6)
    with pytest.raises(ValueError):
        Balancer("ring_hash", ["a", "a"], [1, 1])
