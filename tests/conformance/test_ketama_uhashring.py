"""gwcore's ketama ring against the oracle: uhashring's HashRing(nodes, hash_fn="ketama").

Same node names and weights must give the same node for every key (100,000 keys per node set),
the same continuum, the same hash and the same replica order, before and after membership
changes.
"""

from __future__ import annotations

import random

import pytest
import uhashring

from gwcore.proxy._ring import HashRing


def _keys() -> list[str]:
    rng = random.Random(20180101)
    keys = ["", "a", "/", "ключ", "键/值", "🎥" * 20]
    keys += [f"key-{i}" for i in range(40_000)]
    keys += [f"/video/{rng.getrandbits(40):x}/seg-{i}.ts" for i in range(30_000)]
    keys += [f"user:{i}:sessión-ü" for i in range(20_000)]
    # > 55 bytes: MD5 needs two blocks
    keys += [f"/assets/{'x' * (i % 90)}/{i}" for i in range(10_000 - 6)]
    assert len(keys) == 100_000
    return keys


KEYS = _keys()

NODE_SETS = {
    "three": ["alpha", "beta", "gamma"],
    "memcached-10": [f"10.0.0.{i}:11211" for i in range(1, 11)],
    "fifty": [f"cache-{i}.example.net" for i in range(50)],
    "non-ascii": ["узел-1", "узел-2", "节点三", "café", "🎥-origin", "naïve"],
    "one": ["solo"],
    "weighted": {f"w{i}": i + 1 for i in range(8)},
    "skewed-zero-points": {"tiny": 1, "huge": 1000, "mid": 37},
    "big-weights": {"a": 2**31, "b": 3, "c": 123_456_789},
    "two-hundred-random": {
        f"node-{i}": w for i, w in enumerate(random.Random(7).choices(range(1, 11), k=200))
    },
}


def oracle(nodes):
    return uhashring.HashRing(nodes, hash_fn="ketama")


def assert_same(ring: HashRing, ref, keys=KEYS) -> None:
    ours = [ring.get_node(k) for k in keys]
    theirs = [ref.get_node(k) for k in keys]
    mismatches = [(k, a, b) for k, a, b in zip(keys, ours, theirs) if a != b]
    assert not mismatches, f"{len(mismatches)} keys differ, e.g. {mismatches[:3]}"


def expected_points(ref) -> list[tuple[int, str]]:
    # uhashring keeps a repeated point once per repetition, all mapped to its last writer
    return [(p, ref.ring[p]) for p in sorted(set(ref._keys))]


@pytest.mark.parametrize("name", list(NODE_SETS))
def test_same_node_for_100k_keys(name):
    nodes = NODE_SETS[name]
    ring, ref = HashRing(nodes), oracle(nodes)
    assert_same(ring, ref)
    assert ring.get_points() == expected_points(ref)


@pytest.mark.parametrize("name", ["three", "non-ascii", "weighted"])
def test_bytes_keys_match_their_utf8_str(name):
    nodes = NODE_SETS[name]
    ring, ref = HashRing(nodes), oracle(nodes)
    for key in KEYS[::10]:
        assert ring.get_node(key.encode("utf-8")) == ref.get_node(key)


def test_hash_is_hashi():
    ring, ref = HashRing(["x"]), oracle(["x"])
    for key in KEYS[::50]:
        assert ring.hash(key) == ref.hashi(key)


def test_weights_argument_equals_dict_nodes():
    nodes = NODE_SETS["weighted"]
    ring = HashRing(list(nodes), weights=nodes)
    assert_same(ring, oracle(nodes), KEYS[:20_000])


@pytest.mark.parametrize("name", ["memcached-10", "weighted", "non-ascii"])
def test_range_is_uhashring_distinct_order(name):
    nodes = NODE_SETS[name]
    ring, ref = HashRing(nodes), oracle(nodes)
    for key in KEYS[::50]:
        for n in (1, 3, len(nodes)):
            assert ring.range(key, n) == [c["nodename"] for c in ref.range(key, n)]


def test_empty_ring_matches():
    assert HashRing().get_node("k") is oracle([]).get_node("k") is None


def test_same_after_membership_changes():
    nodes = dict(NODE_SETS["weighted"])
    ring, ref = HashRing(nodes), oracle(nodes)
    steps = [
        ("add", "new-node", 3),
        ("remove", "w0", None),
        ("add", "w5", 11),  # weight change of an existing node keeps its place
        ("add", "узел-новый", 1),
        ("remove", "w7", None),
        ("add", "w0", 2),  # back, now at the end
    ]
    for op, node, weight in steps:
        if op == "add":
            ring.add_node(node, weight)
            ref.add_node(node, weight)
        else:
            ring.remove_node(node)
            ref.remove_node(node)
        assert ring.nodes == list(ref.get_nodes())
        assert_same(ring, ref)
        assert ring.get_points() == expected_points(ref)


# "n81-<k>" and "n975-<k>" (equal weights) produce the same point 607858066: uhashring gives
# a repeated point to the node built last, so the owner depends on the node order.
TIE_POINT = 607_858_066


@pytest.mark.parametrize("nodes", [["n81", "n975"], ["n975", "n81"], ["n81", "z", "n975"]])
def test_equal_points_go_to_the_later_node(nodes):
    ring, ref = HashRing(nodes), oracle(nodes)
    assert ref._keys.count(TIE_POINT) == 2
    assert ring.get_points() == expected_points(ref)
    points = [p for p, _ in ring.get_points()]
    below = points[points.index(TIE_POINT) - 1]
    probe = next(k for k in (f"probe-{i}" for i in range(200_000))
                 if below <= ring.hash(k) < TIE_POINT)
    assert ring.get_node(probe) == ref.get_node(probe) == nodes[-1]
