"""gwcore.proxy._ring: API contract, Maglev disruption and fairness, bounded load, availability.

Ketama equality with uhashring lives in tests/conformance/test_ketama_uhashring.py.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import random

import pytest

from gwcore.proxy._ring import DEFAULT_TABLE_SIZE, HashRing, Maglev, xxh64

RINGS = [HashRing, Maglev]
KEYS = [f"/video/{i}/segment-{i % 97}.ts" for i in range(100_000)]


def names(n: int) -> list[str]:
    return [f"10.0.{i // 250}.{i % 250 + 1}:8080" for i in range(n)]


def is_prime(m: int) -> bool:
    return m >= 2 and all(m % d for d in range(2, math.isqrt(m) + 1))


# ---- construction and validation -----------------------------------------------------------


@pytest.mark.parametrize("cls", RINGS)
def test_nodes_as_list_dict_or_with_weights(cls):
    a = cls(["a", "b", "c"], {"b": 3})
    b = cls({"a": 1, "b": 3, "c": 1})
    assert a.nodes == b.nodes == ["a", "b", "c"]
    assert a.weights == b.weights == {"a": 1, "b": 3, "c": 1}
    assert len(a) == 3 and "b" in a and "z" not in a
    assert a.index("c") == 2
    assert [a.get_node(k) for k in KEYS[:2000]] == [b.get_node(k) for k in KEYS[:2000]]
    assert repr(a) == f"{cls.__name__}({{'a': 1, 'b': 3, 'c': 1}})"


@pytest.mark.parametrize("cls", RINGS)
@pytest.mark.parametrize(
    ("nodes", "weights", "exc"),
    [
        (["a", "a"], None, ValueError),  # duplicate
        (["a", 1], None, TypeError),  # not str
        ("abc", None, TypeError),  # a str is not a node list
        (["a"], {"a": 0}, ValueError),  # weight 0
        (["a"], {"a": -2}, ValueError),
        (["a"], {"a": 2**32}, ValueError),
        (["a"], {"a": 1.5}, TypeError),
        (["a"], {"b": 1}, ValueError),  # weight for an unknown node
        ({"a": 1}, {"a": 1}, TypeError),  # weights twice
        (["a", "b"], [1, 2], TypeError),  # weights must be a mapping
        (["\udc80"], None, UnicodeEncodeError),  # lone surrogate has no UTF-8
    ],
)
def test_rejected_configurations(cls, nodes, weights, exc):
    with pytest.raises(exc):
        cls(nodes, weights)


def test_hash_fn_must_be_ketama():
    assert HashRing(["a"], hash_fn="ketama").get_node("k") == "a"
    with pytest.raises(ValueError, match="ketama"):
        HashRing(["a"], hash_fn="md5")


@pytest.mark.parametrize("cls", RINGS)
@pytest.mark.parametrize("factor", [0.99, 1.001, 655.36, 0, -1])
def test_balance_factor_rejected(cls, factor):
    with pytest.raises(ValueError, match="balance_factor"):
        cls(["a"], balance_factor=factor)
    ring = cls(["a"])
    with pytest.raises(ValueError):
        ring.balance_factor = factor


@pytest.mark.parametrize("cls", RINGS)
def test_balance_factor_property(cls):
    ring = cls(["a", "b"], balance_factor=1.25)
    assert ring.balance_factor == 1.25
    ring.balance_factor = 1.1
    assert ring.balance_factor == 1.1
    ring.balance_factor = None
    assert ring.balance_factor is None
    assert cls(["a"]).balance_factor is None


def test_uninitialised_object_fails_cleanly():
    ring = HashRing.__new__(HashRing)
    assert ring.get_node("k") is None
    assert ring.range("k") == []
    with pytest.raises(ValueError, match="before __init__"):
        ring.hash("k")
    with pytest.raises(IndexError):
        ring.acquire(0)


# ---- keys --------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", RINGS)
def test_str_keys_hash_as_utf8_bytes(cls):
    ring = cls(names(7))
    for key in ["plain", "ünïcødé", "键", "🎥/seg", "", "x" * 300]:
        assert ring.get_node(key) == ring.get_node(key.encode("utf-8"))
        assert ring.hash(key) == ring.hash(key.encode("utf-8"))
    with pytest.raises(TypeError, match="str or bytes"):
        ring.get_node(42)
    with pytest.raises(TypeError):
        ring.get_index(bytearray(b"k"))
    with pytest.raises(UnicodeEncodeError):
        ring.get_node("\udc80")


def test_ketama_hash_is_md5_prefix_little_endian():
    import hashlib

    ring = HashRing(["a"])
    for key in [b"", b"abc", b"k" * 200]:
        assert ring.hash(key) == int.from_bytes(hashlib.md5(key).digest()[:4], "little")


def _libxxhash():
    path = ctypes.util.find_library("xxhash")
    if path is None:
        return None
    lib = ctypes.CDLL(path)
    lib.XXH64.restype = ctypes.c_uint64
    lib.XXH64.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
    return lib


def test_xxh64_published_values():
    assert xxh64(b"") == 0xEF46DB3751D8E999
    assert xxh64(b"a") == 0xD24EC4F1A98C6E5B
    assert xxh64("abc") == 0x44BC2CF5AD770999
    assert Maglev(["a"]).hash(b"abc") == 0x44BC2CF5AD770999


def test_xxh64_matches_reference_library():
    lib = _libxxhash()
    if lib is None:
        pytest.skip("libxxhash not installed")
    rng = random.Random(5)
    for length in list(range(80)) + [127, 128, 129, 1000, 4099]:
        data = rng.randbytes(length)
        seed = rng.getrandbits(64)
        assert xxh64(data, seed) == lib.XXH64(data, length, seed), (length, seed)


# ---- empty, single, membership changes -----------------------------------------------------


@pytest.mark.parametrize("cls", RINGS)
def test_empty_ring(cls):
    ring = cls()
    assert len(ring) == 0 and ring.nodes == []
    assert ring.get_node("k") is None and ring.get_node_bounded("k") is None
    assert ring.get_index("k") == -1 and ring.get_index_bounded(b"k") == -1
    assert ring.range("k", 3) == []
    assert ring.total_inflight == 0
    ring.add_node("x")
    assert ring.get_node("k") == "x"
    ring.remove_node("x")
    assert ring.get_node("k") is None


@pytest.mark.parametrize("cls", RINGS)
def test_single_node_owns_everything(cls):
    ring = cls(["solo"])
    assert {ring.get_node(k) for k in KEYS[:5000]} == {"solo"}
    assert ring.range("k", 5) == ["solo"]


@pytest.mark.parametrize("cls", RINGS)
def test_add_remove_and_reweight(cls):
    ring = cls(["a", "b", "c"])
    ring.add_node("d", 2)
    assert ring.nodes == ["a", "b", "c", "d"] and ring.weights["d"] == 2
    ring.add_node("b", 5)  # existing: new weight, same index
    assert ring.index("b") == 1 and ring.weights["b"] == 5
    ring.remove_node("a")
    assert ring.nodes == ["b", "c", "d"] and ring.index("d") == 2
    fresh = cls({"b": 5, "c": 1, "d": 2})
    assert [ring.get_node(k) for k in KEYS[:5000]] == [fresh.get_node(k) for k in KEYS[:5000]]
    with pytest.raises(KeyError):
        ring.remove_node("a")
    with pytest.raises(ValueError):
        ring.add_node("e", 0)
    with pytest.raises(TypeError):
        ring.add_node(b"e")
    assert ring.nodes == ["b", "c", "d"]  # failed changes leave the ring as it was


@pytest.mark.parametrize("cls", RINGS)
def test_state_follows_nodes_across_rebuilds(cls):
    ring = cls(["a", "b", "c"], balance_factor=1.5)
    for _ in range(3):
        ring.acquire(ring.index("c"))
    ring.acquire(ring.index("a"))
    ring.set_available(ring.index("b"), False)
    ring.remove_node("a")
    assert ring.index("c") == 1 and ring.inflight(1) == 3 and ring.total_inflight == 3
    assert not ring.is_available(ring.index("b"))
    ring.add_node("e")
    assert ring.inflight(ring.index("e")) == 0 and ring.is_available(ring.index("e"))
    assert ring.balance_factor == 1.5


# ---- in-flight bookkeeping ------------------------------------------------------------------


@pytest.mark.parametrize("cls", RINGS)
def test_acquire_release(cls):
    ring = cls(["a", "b"])
    ring.acquire(1)
    ring.acquire(1)
    assert ring.inflight(1) == 2 and ring.inflight(0) == 0 and ring.total_inflight == 2
    ring.release(1)
    assert ring.inflight(1) == 1 and ring.total_inflight == 1
    with pytest.raises(ValueError, match="no request in flight"):
        ring.release(0)
    for bad in (2, -1):
        with pytest.raises(IndexError):
            ring.acquire(bad)
        with pytest.raises(IndexError):
            ring.inflight(bad)
        with pytest.raises(IndexError):
            ring.set_available(bad, False)
    assert ring.total_inflight == 1


# ---- range ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", RINGS)
def test_range_distinct_owner_first(cls):
    ring = cls({n: 1 + i % 3 for i, n in enumerate(names(9))})
    for key in KEYS[:500]:
        full = ring.range(key)
        assert sorted(full) == sorted(ring.nodes)
        assert full[0] == ring.get_node(key)
        assert ring.range(key, 3) == full[:3]
        assert ring.range(key, 100) == full
        assert ring.range(key, 0) == []
    with pytest.raises(ValueError):
        ring.range("k", -1)


# ---- availability ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", RINGS)
def test_unavailable_nodes_move_only_their_keys(cls):
    ring = cls(names(10))
    before = [ring.get_node(k) for k in KEYS[:20000]]
    down = {ring.nodes[2], ring.nodes[7]}
    for name in down:
        ring.set_available(ring.index(name), False)
    after = [ring.get_node(k) for k in KEYS[:20000]]
    for b, a in zip(before, after):
        assert a not in down
        if b not in down:
            assert a == b
    assert any(b in down for b in before)
    assert all(n not in down for n in ring.range(KEYS[0]))
    for name in down:
        ring.set_available(ring.index(name), True)
    assert [ring.get_node(k) for k in KEYS[:20000]] == before


@pytest.mark.parametrize("cls", RINGS)
def test_all_unavailable(cls):
    ring = cls(["a", "b"])
    ring.set_available(0, False)
    ring.set_available(1, False)
    assert ring.get_node("k") is None and ring.get_index_bounded("k") == -1
    assert ring.range("k") == []


# ---- Maglev: table size, fairness, disruption -----------------------------------------------


def test_maglev_table_size():
    assert Maglev(names(3)).table_size == DEFAULT_TABLE_SIZE == 65537
    big = Maglev(names(700))
    assert big.table_size == 70001 and is_prime(70001)  # smallest prime >= 100 x 700
    assert Maglev(names(3), table_size=307).table_size == 307
    for bad in (65536, 299, 1, 0, -5, 2**26 + 1):
        with pytest.raises(ValueError, match="table"):
            Maglev(names(3), table_size=bad)
    ring = Maglev(names(3), table_size=307)
    with pytest.raises(ValueError, match="table size"):
        ring.add_node("fourth")  # 307 < 100 x 4
    assert len(ring) == 3


@pytest.mark.parametrize("n", [3, 10, 50, 100, 300])
@pytest.mark.parametrize("weighted", [False, True])
def test_maglev_shares_within_one_percent(n, weighted):
    """Each node's slots are within 1% of M * w / W once its fair share is >= 100 slots:
    M >= 100 N for equal weights, M >= 100 W / min(w) with weights."""
    weights = {name: (1 + i % 4 if weighted else 1) for i, name in enumerate(names(n))}
    total = sum(weights.values())
    smallest = 100 * total // min(weights.values())
    sizes = {next(m for m in range(smallest, 2 * smallest) if is_prime(m))}
    if smallest <= DEFAULT_TABLE_SIZE:
        sizes.add(DEFAULT_TABLE_SIZE)
    for size in sizes:
        ring = Maglev(weights, table_size=size)
        counts = ring.slot_counts()
        assert sum(counts.values()) == size
        for name, w in weights.items():
            fair = size * w / total
            assert abs(counts[name] - fair) <= 0.01 * fair, (name, counts[name], fair)


def test_maglev_key_shares_follow_table():
    ring = Maglev(names(10))
    counts = dict.fromkeys(ring.nodes, 0)
    for key in KEYS:
        counts[ring.get_node(key)] += 1
    for c in counts.values():  # 10,000 expected; sampling sd is ~95
        assert abs(c - 10_000) < 500


@pytest.mark.parametrize("n", [3, 5, 10, 20, 40])
def test_maglev_disruption_on_removal(n):
    """Removing one of N nodes (default table of 65537 slots) moves <= 1.2/N of the keys."""
    all_names = names(n)
    ring = Maglev(all_names)
    before = [ring.get_node(k) for k in KEYS]
    for victim in all_names[:: max(1, n // 4)]:
        smaller = Maglev([x for x in all_names if x != victim])
        moved = sum(smaller.get_node(k) != b for k, b in zip(KEYS, before))
        owned = before.count(victim)
        assert moved >= owned  # the victim's keys must move
        assert moved / len(KEYS) <= 1.2 / n, (victim, moved)


def test_maglev_disruption_weighted():
    weights = {name: 1 + i % 3 for i, name in enumerate(names(12))}
    total = sum(weights.values())
    ring = Maglev(weights)
    before = [ring.get_node(k) for k in KEYS]
    for victim in list(weights)[:3]:
        smaller = Maglev({k: w for k, w in weights.items() if k != victim})
        moved = sum(smaller.get_node(k) != b for k, b in zip(KEYS, before))
        assert moved / len(KEYS) <= 1.2 * weights[victim] / total, victim


# ---- bounded load ---------------------------------------------------------------------------


def _cap(factor: float, total: int, weight: int, weight_sum: int) -> int:
    # ceil(c * total * w / W) in exact integers (factor has two decimals)
    num = round(factor * 100) * total * weight
    return -(-num // (100 * weight_sum))


@pytest.mark.parametrize("cls", RINGS)
@pytest.mark.parametrize("factor", [1.0, 1.25, 2.0])
@pytest.mark.parametrize("departures", [False, True])
def test_bounded_load_never_exceeds_factor_times_average(cls, factor, departures):
    rng = random.Random(f"{cls.__name__}{factor}{departures}")
    weights = {name: (3 if i == 0 else 1) for i, name in enumerate(names(8))}
    ring = cls(weights, balance_factor=factor)
    w = [weights[n] for n in ring.nodes]
    hot = [f"/hot/{i}" for i in range(3)]  # a few hot keys overload their owners unbounded
    live: list[int] = []
    moved = 0
    for _ in range(20_000):
        if departures and live and rng.random() < 0.4:
            ring.release(live.pop(rng.randrange(len(live))))
            continue
        key = rng.choice(hot) if rng.random() < 0.8 else f"/cold/{rng.random()}"
        i = ring.get_index_bounded(key)
        moved += i != ring.get_index(key)
        ring.acquire(i)
        live.append(i)
        total = ring.total_inflight
        assert ring.inflight(i) <= _cap(factor, total, w[i], sum(w))
        if not departures:
            for j in range(len(w)):
                assert ring.inflight(j) <= _cap(factor, total, w[j], sum(w))
    assert moved > 0
    assert ring.total_inflight == len(live) == sum(ring.inflight(j) for j in range(len(w)))


@pytest.mark.parametrize("cls", RINGS)
def test_bounded_without_factor_is_plain_lookup(cls):
    ring = cls(names(5))
    for key in KEYS[:2000]:
        i = ring.get_index(key)
        ring.acquire(i)
        assert ring.get_index_bounded(key) == i
        assert ring.get_node_bounded(key) == ring.get_node(key)


@pytest.mark.parametrize("cls", RINGS)
def test_bounded_skips_unavailable_and_uses_available_weight(cls):
    ring = cls(["a", "b", "c"], balance_factor=1.0)
    ring.set_available(ring.index("a"), False)
    for _ in range(200):
        i = ring.get_index_bounded("same-key")
        assert ring.nodes[i] != "a"
        ring.acquire(i)
    # the bound is over the two available nodes: they split the load evenly
    assert ring.inflight(ring.index("b")) == ring.inflight(ring.index("c")) == 100


def test_all_down_fails_fast_with_no_node():
    ring = Maglev(["a", "b", "c"])
    for i in range(3):
        ring.set_available(i, False)
    assert ring.range("k", 3) == []
