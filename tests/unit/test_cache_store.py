"""gwcore.cache.Store: API contract, LRU against an OrderedDict oracle (hypothesis), the S3-FIFO
rules and scan resistance, agreement with the paper's algorithm, TTL, byte accounting, bounded
RSS, and a hit that allocates nothing.

The paper's algorithm (a pure-Python S3-FIFO written from Algorithm 1 of Yang et al., SOSP 2023)
lives with the miss-ratio benchmark in bench/micro/cache_miss_ratio.py and is loaded from there.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import math
import random
import subprocess
import sys
import time
import tracemalloc
import weakref
from collections import OrderedDict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gwcore.cache import MAX_BYTES, Store

ROOT = Path(__file__).resolve().parents[2]


def load_miss_ratio_module():
    path = ROOT / "bench" / "micro" / "cache_miss_ratio.py"
    spec = importlib.util.spec_from_file_location("gw_cache_miss_ratio", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Clock:
    """A timer the tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---- construction and validation ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({}, ValueError),  # neither bound
        ({"max_entries": 10, "policy": "lfu"}, ValueError),
        ({"max_entries": 10, "policy": "S3FIFO"}, ValueError),
        ({"max_entries": 0}, ValueError),
        ({"max_entries": -1}, ValueError),
        ({"max_bytes": 0}, ValueError),
        ({"max_bytes": MAX_BYTES + 1}, ValueError),
        ({"max_entries": 1.5}, TypeError),
        ({"max_bytes": "1KiB"}, TypeError),
        ({"max_entries": 10, "timer": 5}, TypeError),
    ],
)
def test_bad_arguments(kwargs, exc):
    with pytest.raises(exc):
        Store(**kwargs)


@pytest.mark.parametrize("policy", ["s3fifo", "lru"])
def test_properties_and_repr(policy):
    s = Store(max_entries=100, max_bytes=MAX_BYTES, policy=policy)
    assert (s.max_entries, s.max_bytes, s.policy) == (100, MAX_BYTES, policy)
    t = Store(max_bytes=5000)
    assert (t.max_entries, t.max_bytes, t.policy) == (None, 5000, "s3fifo")
    assert repr(t) == "Store(max_entries=None, max_bytes=5000, policy='s3fifo') with 0 entries, 0 bytes"


@pytest.mark.parametrize("policy", ["s3fifo", "lru"])
def test_set_validation(policy):
    s = Store(max_entries=10, policy=policy)
    with pytest.raises(ValueError):
        s.set("k", 1, size=-1)
    with pytest.raises(ValueError):
        s.set("k", 1, size=-(2**80))
    for bad in (1.5, "1", None):
        with pytest.raises(TypeError):
            s.set("k", 1, size=bad)
    with pytest.raises(ValueError):
        s.set("k", 1, ttl=math.nan)
    with pytest.raises(TypeError):
        s.set("k", 1, ttl="10s")
    with pytest.raises(TypeError):
        s.set(["unhashable"], 1)
    with pytest.raises(TypeError):
        s.get({})
    assert len(s) == 0 and s.stats()["bytes"] == 0


def test_an_uninitialised_store_is_safe():
    s = Store.__new__(Store)
    assert s.set("a", 1, size=0) and s.set("b", 2, size=0) and len(s) == 1 and s.get("b") == 2
    assert s.set("c", 3) is False and s.stats()["evictions"] == 1


# ---- the mapping API ----------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["s3fifo", "lru"])
def test_api(policy):
    s = Store(max_entries=10, policy=policy)
    assert s.get("a") is None and s.get("a", 7) == 7
    assert s.set("a", "A") is True
    s["b"] = "B"
    s.set(b"a", "bytes key")
    s.set(3, "int key")
    assert (s.get("a"), s["b"], s.get(b"a"), s[3]) == ("A", "B", "bytes key", "int key")
    assert 3.0 in s and True not in s  # dict key equality: 3 == 3.0
    assert "a" in s and "z" not in s and len(s) == 4
    assert s.pop("a") == "A" and s.pop("a") is None and s.pop("a", 0) == 0
    del s["b"]
    with pytest.raises(KeyError):
        del s["b"]
    with pytest.raises(KeyError):
        s["b"]
    assert s.stats() == {"hits": 4, "misses": 3, "evictions": 0, "expirations": 0,
                         "entries": 2, "bytes": 2}
    value = object()
    s.set(3, value, size=5)  # replace: value and size
    assert s[3] is value and s.bytes == 6 and len(s) == 2
    s.clear()
    assert len(s) == 0 and s.bytes == 0 and s.get(3) is None
    assert s.stats()["hits"] == 5  # counters are kept across clear()


@pytest.mark.parametrize("policy", ["s3fifo", "lru"])
def test_store_of_one(policy):
    s = Store(max_entries=1, policy=policy)
    for i in range(50):
        s.set(i, i)
        s.get(i)
        assert len(s) == 1 and s.get(i) == i
    assert s.stats()["evictions"] == 49


def test_get_returns_the_stored_object():
    s = Store(max_entries=2)
    v = bytearray(b"body")
    s.set("k", v)
    assert s.get("k") is v and s["k"] is v


# ---- LRU against an OrderedDict oracle ----------------------------------------------------


class LRUOracle:
    """Plain LRU over an OrderedDict (first = least recently used) with entry/byte bounds."""

    def __init__(self, max_entries, max_bytes):
        self.max_entries = max_entries
        self.max_bytes = MAX_BYTES if max_bytes is None else max_bytes
        self.d: OrderedDict = OrderedDict()  # key -> (value, size)
        self.bytes = 0
        self.evictions = 0

    def get(self, key):
        if key not in self.d:
            return None
        self.d.move_to_end(key)
        return self.d[key][0]

    def set(self, key, value, size):
        if key in self.d:
            self.bytes -= self.d.pop(key)[1]
        if size > self.max_bytes:
            return False
        while self.d and (
            (self.max_entries is not None and len(self.d) >= self.max_entries)
            or self.bytes + size > self.max_bytes
        ):
            self.bytes -= self.d.popitem(last=False)[1][1]
            self.evictions += 1
        self.d[key] = (value, size)
        self.bytes += size
        return True

    def pop(self, key):
        if key not in self.d:
            return None
        value, size = self.d.pop(key)
        self.bytes -= size
        return value


KEYS = st.sampled_from(["a", "b", "c", "d", "e", "f", b"a", b"g", 1, 2, 3, 4])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("get"), KEYS),
        st.tuples(st.just("set"), KEYS, st.integers(0, 40)),
        st.tuples(st.just("pop"), KEYS),
        st.tuples(st.just("contains"), KEYS),
    ),
    max_size=120,
)
BOUNDS = st.one_of(
    st.tuples(st.integers(1, 8), st.none()),
    st.tuples(st.none(), st.integers(1, 100)),
    st.tuples(st.integers(1, 8), st.integers(1, 100)),
)


@settings(derandomize=True, max_examples=1500, deadline=None)
@given(bounds=BOUNDS, ops=OPS)
def test_lru_matches_ordereddict_oracle(bounds, ops):
    max_entries, max_bytes = bounds
    store = Store(max_entries=max_entries, max_bytes=max_bytes, policy="lru")
    oracle = LRUOracle(max_entries, max_bytes)
    for n, op in enumerate(ops):
        if op[0] == "get":
            assert store.get(op[1]) == oracle.get(op[1])
        elif op[0] == "set":
            value = (op[1], n)
            assert store.set(op[1], value, size=op[2]) == oracle.set(op[1], value, op[2])
        elif op[0] == "pop":
            assert store.pop(op[1]) == oracle.pop(op[1])
        else:
            assert (op[1] in store) == (op[1] in oracle.d)
        assert len(store) == len(oracle.d)
        assert store.bytes == oracle.bytes <= oracle.max_bytes
        mru_first, main, _ = store._debug_queues()
        assert mru_first == list(reversed(oracle.d)) and main == []
    assert store.stats()["evictions"] == oracle.evictions


# ---- S3-FIFO ------------------------------------------------------------------------------


def test_s3fifo_rules_step_by_step():
    s = Store(max_entries=10)  # S's share 1, M 9, ghost 9
    for k in "abc":
        s.set(k, k)
    assert s._debug_queues() == (["c", "b", "a"], [], 0)
    s.get("a")
    s.get("a")  # freq 2: promoted when it reaches S's tail
    s.get("b")  # freq 1: not enough, the paper promotes on freq > 1
    for k in "defghij":
        s.set(k, k)
    assert len(s) == 10 and s._debug_queues()[1] == []
    s.set("k", "k")  # full: S holds more than its share, evict from S
    small, main, ghost = s._debug_queues()
    assert main == ["a"] and "b" not in small and ghost == 1 and "b" not in s
    s.set("b", "b")  # b is in the ghost: it enters M directly
    small, main, ghost = s._debug_queues()
    assert main == ["b", "a"] and ghost == 1 and "c" not in s  # c, the next S tail, left
    assert s.stats()["evictions"] == 2


def test_s3fifo_main_reinserts_with_decremented_frequency():
    s = Store(max_entries=10)  # S's share 1, ghost up to 9
    for k in range(9):  # each hit twice while in S: promoted when it reaches S's tail
        s.set(k, k)
        s.get(k)
        s.get(k)
    for k in range(100, 120):  # one-hit keys: they pass through S into the ghost
        s.set(k, k)
    assert s._debug_queues() == ([119], [8, 7, 6, 5, 4, 3, 2, 1, 0], 9)
    for _ in range(5):
        s.get(0)  # freq capped at 3
    s.get(1)  # freq 1
    s.set(118, "again")  # in the ghost: enters M; S's last entry (119) makes room
    assert s._debug_queues()[:2] == ([], [118, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    s.set(300, 300)  # S is below its share: evict from M, whose tail cycles
    small, main, _ = s._debug_queues()
    assert small == [300] and main == [1, 0, 118, 8, 7, 6, 5, 4, 3] and 2 not in s
    assert s.stats()["evictions"] == 19 + 1 + 1  # 101..119, then 119, then 2


def test_s3fifo_resists_a_scan_that_flushes_lru():
    size, hot = 1000, [f"/hot/{i}" for i in range(500)]
    stores = {p: Store(max_entries=size, policy=p) for p in ("s3fifo", "lru")}
    for store in stores.values():
        for _ in range(4):  # a working set, requested repeatedly
            for key in hot:
                if store.get(key) is None:
                    store.set(key, key)
        for i in range(2 * size):  # then a scan of one-hit keys, twice the cache size
            key = f"/scan/{i}"
            assert store.get(key) is None
            store.set(key, key)
    assert sum(key in stores["s3fifo"] for key in hot) == len(hot)
    assert sum(key in stores["lru"] for key in hot) == 0


def test_s3fifo_agrees_with_the_papers_algorithm():
    m = MISS_RATIO
    for alpha, n_keys, fraction in ((0.8, 20_000, 0.01), (1.0, 20_000, 0.1), (0.6, 5_000, 0.05)):
        trace = m.zipf_trace(alpha, n_keys=n_keys, n_requests=100_000, seed=alpha * 10)
        r = m.miss_ratios(alpha, fraction, trace, n_keys=n_keys)
        assert abs(r["s3fifo"] - r["s3fifo_reference"]) <= 0.005, r
        assert r["s3fifo"] < r["lru"], r


MISS_RATIO = load_miss_ratio_module()


@settings(derandomize=True, max_examples=600, deadline=None)
@given(
    size=st.integers(1, 24),
    trace=st.lists(st.integers(0, 40), max_size=400),
)
def test_s3fifo_matches_the_reference_request_by_request(size, trace):
    """Unit sizes, entry bound: gwcore's S3-FIFO and the paper's algorithm with gwcore's two
    scheduling details (see S3FIFOReference) agree on every hit and on the queues' contents."""
    store, ref = Store(max_entries=size), MISS_RATIO.S3FIFOReference(size, gwcore_schedule=True)
    for key in trace:
        hit = store.get(key) is not None
        if not hit:
            store.set(key, True)
        assert hit == ref.read(key)
    small, main, ghost = store._debug_queues()
    assert small == list(ref.small) and main == list(ref.main) and ghost == len(ref.ghost)


def test_lru_matches_the_benchmark_oracle_on_a_zipf_trace():
    m = MISS_RATIO
    trace = m.zipf_trace(0.9, n_keys=5000, n_requests=50_000, seed=3)
    oracle, misses = LRUOracle(250, None), 0
    for key in trace:
        if oracle.get(key) is None:
            misses += 1
            oracle.set(key, True, 1)
    assert m.misses_store(Store(max_entries=250, policy="lru"), trace) == misses


@pytest.mark.parametrize("policy", ["s3fifo", "lru"])
def test_random_operations_keep_the_invariants(policy):
    rnd = random.Random(policy)
    clock = Clock()
    s = Store(max_entries=50, max_bytes=2000, policy=policy, timer=clock)
    sizes: dict = {}
    for _ in range(20_000):
        key = rnd.randrange(120)
        r = rnd.random()
        if r < 0.45:
            s.get(key)
        elif r < 0.9:
            size, ttl = rnd.randrange(0, 300), rnd.choice([None, None, 0.5, 5.0])
            if s.set(key, key, size=size, ttl=ttl):
                sizes[key] = size
        elif r < 0.95:
            s.pop(key)
        else:
            clock.now += rnd.random()
        small, main, ghost = s._debug_queues()
        held = small + main
        assert len(held) == len(set(held)) == len(s) <= 50
        assert s.bytes == sum(sizes[k] for k in held) <= 2000
        assert ghost <= 45
    stats = s.stats()
    assert stats["evictions"] > 1000 and stats["expirations"] > 100


# ---- TTL ----------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["s3fifo", "lru"])
def test_ttl_with_a_controlled_clock(policy):
    clock = Clock()
    s = Store(max_entries=10, policy=policy, timer=clock)
    s.set("a", 1, ttl=10)
    s.set("b", 2, ttl=10)
    s.set("c", 3, ttl=10)
    s.set("d", 4, ttl=10)
    s.set("forever", 5)
    s.set("inf", 6, ttl=math.inf)
    clock.now += 9.999
    assert s.get("a") == 1 and "b" in s and s["c"] == 3
    clock.now += 0.001  # exactly at expiry: expired
    assert s.get("a") is None and s.get("a", "x") == "x"
    assert "b" not in s
    with pytest.raises(KeyError):
        s["c"]
    assert s.pop("d", "gone") == "gone"
    assert s.get("forever") == 5 and s.get("inf") == 6
    assert s.stats()["expirations"] == 4 and len(s) == 2
    # a replace restarts the TTL; a TTL <= 0 stores nothing and drops the old value
    s.set("r", 1, ttl=1)
    clock.now += 0.5
    s.set("r", 2, ttl=1)
    clock.now += 0.9
    assert s.get("r") == 2
    assert s.set("r", 3, ttl=0) is False and "r" not in s
    assert s.set("r", 3, ttl=-5) is False and len(s) == 2


@pytest.mark.parametrize("policy", ["s3fifo", "lru"])
def test_expired_entries_leave_first_and_count_as_expirations(policy):
    clock = Clock()
    s = Store(max_entries=10, policy=policy, timer=clock)
    for i in range(10):
        s.set(i, i, ttl=1 if i < 5 else None)
    clock.now += 2
    for i in range(10, 15):
        s.set(i, i)
    stats = s.stats()
    assert (stats["expirations"], stats["evictions"], len(s)) == (5, 0, 10)
    assert all(s.get(i) == i for i in range(5, 15))


@pytest.mark.parametrize("policy", ["s3fifo", "lru"])
def test_expire_sweeps(policy):
    clock = Clock()
    s = Store(max_entries=100, policy=policy, timer=clock)
    assert s.expire() == 0
    for i in range(60):
        s.set(i, i, ttl=1 + (i % 3))
    clock.now += 1.5
    assert s.expire() == 20 and len(s) == 40
    clock.now += 1
    assert s.expire() == 20 and len(s) == 20 and s.stats()["expirations"] == 40
    assert sorted(k for q in s._debug_queues()[:2] for k in q) == list(range(2, 60, 3))


def test_ttl_on_the_monotonic_clock():
    s = Store(max_entries=10)
    before = time.monotonic()
    s.set("k", "v", ttl=0.05)
    after = time.monotonic()  # the entry expires within [before, after] + 0.05
    while True:
        asked = time.monotonic()
        if s.get("k") is None:
            break
        assert asked < after + 0.05  # never returned after its TTL
        assert asked < before + 5
        time.sleep(0.002)
    assert time.monotonic() >= before + 0.05
    assert s.stats()["expirations"] == 1


# ---- bytes --------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["s3fifo", "lru"])
def test_byte_accounting_under_a_fill_of_twice_the_budget(policy):
    rnd = random.Random(5)
    max_bytes = 1 << 20
    s = Store(max_bytes=max_bytes, policy=policy)
    sizes, total = {}, 0
    while total < 2 * max_bytes:
        key, size = f"/obj/{len(sizes)}", rnd.randrange(1, 20_000)
        assert s.set(key, b"", size=size)
        sizes[key] = size
        total += size
        assert s.bytes <= max_bytes
        # hit some early keys so S3-FIFO moves them to M and evicts from both queues
        if rnd.random() < 0.3:
            s.get(f"/obj/{rnd.randrange(len(sizes))}")
    small, main, _ = s._debug_queues()
    assert s.bytes == sum(sizes[k] for k in small + main) == s.stats()["bytes"]
    assert s.bytes > max_bytes - 20_000  # full, up to one entry's slack
    assert s.stats()["evictions"] > 0


@pytest.mark.parametrize("policy", ["s3fifo", "lru"])
def test_too_large_is_not_stored(policy):
    s = Store(max_bytes=1000, policy=policy)
    assert s.set("a", 1, size=600) and s.set("b", 2, size=400)
    assert s.set("big", 3, size=1001) is False and "big" not in s
    assert s.set("huge", 3, size=2**100) is False
    assert len(s) == 2 and s.bytes == 1000  # nothing was evicted for it
    assert s.set("a", 4, size=1001) is False  # a replace that does not fit drops the old value
    assert "a" not in s and s.bytes == 400
    assert s.set("whole", 5, size=1000) and len(s) == 1 and s.bytes == 1000
    assert s.set("zero", 6, size=0) and len(s) == 2


@pytest.mark.parametrize("policy", ["s3fifo", "lru"])
def test_replace_grows_and_evicts_others_not_itself(policy):
    s = Store(max_bytes=100, policy=policy)
    for i in range(10):
        s.set(i, i, size=10)
    assert s.set(0, "big", size=95)
    assert s.get(0) == "big" and s.bytes <= 100 and len(s) == 1


def test_unbounded_bytes_stay_exact():
    s = Store(max_entries=3)
    s.set("a", 1, size=2**62)
    s.set("b", 1, size=2**62)  # evicts a: the implicit budget is 2**62
    assert s.bytes == 2**62 and "a" not in s
    assert s.set("c", 1, size=2**62 + 1) is False


# ---- memory -------------------------------------------------------------------------------

RSS_SCRIPT = r"""
import json, os, random, sys
from gwcore.cache import Store

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

max_bytes, per_entry, policy = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rnd = random.Random(11)
bases = [os.urandom(64) * (int(n) // 64) for n in sys.argv[4].split(",")]
store = Store(max_bytes=max_bytes, policy=policy)
base = peak = rss()
total = i = 0
while total < 2 * max_bytes:
    value = rnd.choice(bases)[8:] + i.to_bytes(8, "little")  # a fresh object, mixed sizes
    key = f"/video/{i}/segment-{i % 97}.ts"
    size = len(value) + per_entry
    store.set(key, value, size=size)
    if rnd.random() < 0.2:
        store.get(f"/video/{rnd.randrange(i + 1)}/segment-{i % 97}.ts")
    total += size
    i += 1
    if i % 500 == 0:
        peak = max(peak, rss())
peak = max(peak, rss())
print(json.dumps({"growth": peak - base, "bytes": store.bytes, "entries": len(store),
                  "inserted": i}))
"""


@pytest.mark.parametrize("policy", ["s3fifo", "lru"])
@pytest.mark.parametrize("value_sizes", ["512,4096,16384,60000", "256,512"])
def test_rss_stays_within_the_byte_budget(policy, value_sizes):
    """A worker filling a store to twice max_bytes grows by at most max_bytes + 8 MiB, when each
    set counts the value's length plus a 400-byte per-entry overhead (the store's own entry,
    dict slot, ghost slot and a path-sized key)."""
    max_bytes, fixed = 64 << 20, 8 << 20
    out = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, str(max_bytes), "400", policy, value_sizes],
        capture_output=True, text=True, check=True, timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    r = json.loads(out.stdout)
    assert r["bytes"] <= max_bytes
    assert r["growth"] <= max_bytes + fixed, r


def _traced_peak(fn, keys) -> int:
    for k in keys:
        fn(k)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        for k in keys:
            fn(k)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before


@pytest.mark.parametrize("policy", ["s3fifo", "lru"])
def test_a_hit_allocates_nothing(policy):
    keys = [f"/k/{i}" for i in range(2000)] + [i * 7919 for i in range(2000)]
    s = Store(max_entries=len(keys), policy=policy)
    for k in keys:
        s.set(k, k, ttl=None if isinstance(k, str) else 3600)
    floor = _traced_peak(id, keys)  # the loop's own allocations
    for fn in (s.get, s.__getitem__, s.__contains__):
        assert _traced_peak(fn, keys) <= floor
    assert s.stats()["hits"] == 4 * len(keys)


# ---- references and re-entrancy -----------------------------------------------------------


class Finalised:
    def __init__(self, store, log):
        self.store, self.log = store, log

    def __del__(self):
        self.log.append(len(self.store))
        self.store.set(("from-del", len(self.log)), None)  # re-enters the store


@pytest.mark.parametrize("policy", ["s3fifo", "lru"])
def test_finalisers_may_reenter_during_eviction(policy):
    s, log = Store(max_entries=8, policy=policy), []
    for i in range(200):
        s.set(i, Finalised(s, log))
        if i % 3 == 0:
            s.get(i)
            s.get(i)
    s.clear()
    s.set("x", 1)
    assert log and s.get("x") == 1 and len(s) <= 8


@pytest.mark.parametrize("policy", ["s3fifo", "lru"])
def test_values_are_released_and_cycles_collected(policy):
    class Value:
        pass

    s = Store(max_entries=4, policy=policy)
    v = Value()
    ref = weakref.ref(v)
    s.set("k", v)
    del v
    assert ref() is not None
    for i in range(20):
        s.set(i, i)
    assert ref() is None  # evicted: released
    # a cycle through the store is collected
    s2 = Store(max_entries=4, policy=policy)
    v2 = Value()
    v2.store = s2
    s2.set("self", v2)
    r2 = weakref.ref(v2)
    del v2, s2
    gc.collect()
    assert r2() is None


def test_entries_are_not_gc_objects_but_cycles_are_seen():
    keys = [f"/k/{i}" for i in range(5000)]
    values = [b"v%d" % i for i in range(5000)]
    s = Store(max_entries=10_000)
    gc.collect()
    before = len(gc.get_objects())
    for k, v in zip(keys, values):
        s.set(k, v)
    assert len(gc.get_objects()) - before < 50  # 5,000 entries, none tracked
    referents = gc.get_referents(s)
    assert values[0] in referents and keys[-1] in referents


def test_collections_during_churn_with_cycles_and_reentrant_finalisers():
    rnd = random.Random(3)

    class Node:
        def __init__(self, store):
            self.store, self.cycle = store, None

        def __del__(self):
            self.store.set(("del", rnd.random()), None)

    refs = []
    old = gc.get_threshold()
    gc.set_threshold(5, 2, 2)  # collections in the middle of store operations
    try:
        for round_ in range(60):
            s = Store(max_entries=rnd.randint(1, 20), max_bytes=rnd.choice([None, 500]),
                      policy=rnd.choice(["s3fifo", "lru"]))
            for _ in range(150):
                k, r = rnd.randrange(40), rnd.random()
                if r < 0.5:
                    v = Node(s)
                    v.cycle = [v, s]
                    s.set(k, v, size=rnd.randrange(0, 80), ttl=rnd.choice([None, 1e-6, 10]))
                elif r < 0.8:
                    s.get(k)
                elif r < 0.9:
                    s.pop(k)
                elif r < 0.95:
                    s.expire()
                else:
                    assert (k in s) in (True, False)
            refs.append(weakref.ref(v))
            if round_ % 10 == 0:
                s.clear()
            del s, v
    finally:
        gc.set_threshold(*old)
    gc.collect()
    assert all(r() is None for r in refs)
