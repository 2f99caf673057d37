"""gwcore.cache.Store against lru-dict, cachetools and functools.lru_cache, in one run; and the
miss ratios of S3-FIFO and LRU on Zipf traces.

- get-hit: a store of 100,000 entries (str keys shaped like request paths), 1,000 of its keys
  looked up per round with ``map`` so the loop adds as little as possible: divide a round by
  1,000 for one lookup. ``get`` is the method call; ``[]`` the subscript, in a list
  comprehension (``[c[k] for k in keys]``: BINARY_SUBSCR, as code uses it; the comprehension
  costs more than ``map``, see the dict floors); ``lru_cache`` is a hit on a cached one-argument
  function.
- set with eviction: the same stores, full, given 1,000 keys they do not hold per round (each
  set evicts one entry); the keys cycle through a pool of 300,000 so a key comes back only
  long after it was evicted (and after S3-FIFO's ghost forgot it). ``lru_cache`` is a miss on
  the cached function, so it includes one call of a trivial Python function.
- miss ratios: ``cache_miss_ratio.py`` (next to this file) on its four cases, asserted against
  the targets: S3-FIFO below LRU, and within 0.5 percentage point of the paper's algorithm.

    PYTHONPATH=. python -m pytest bench/micro/test_cache_bench.py \
        --benchmark-columns=min,median,ops -s
"""

from __future__ import annotations

import functools
import itertools
import random

import cachetools
import pytest
from cache_miss_ratio import ALPHAS, CACHE_FRACTIONS, miss_ratios, zipf_trace
from lru import LRU

from gwcore.cache import Store

N = 100_000
BATCH = 1000
POOL = [f"/video/{i:07d}/segment-{i % 97}.ts" for i in range(3 * N)]
KEYS = POOL[:N]
PROBE = random.Random(1).sample(KEYS, BATCH)
VALUE = b"x" * 64

GET_GROUP = f"cache get-hit, {N:,} entries, x{BATCH} keys"
SET_GROUP = f"cache set with eviction, {N:,} entries, x{BATCH} new keys"


def filled(kind: str):
    """A full cache of the given kind, and its get, subscript and set callables."""
    if kind.startswith("gwcore"):
        cache = Store(max_entries=N, policy=kind.split("-")[1])
        for k in KEYS:
            cache.set(k, VALUE)
        return cache, cache.get, cache.__getitem__, cache.set
    if kind == "lru-dict":
        cache = LRU(N)
        for k in KEYS:
            cache[k] = VALUE
        return cache, cache.get, cache.__getitem__, cache.__setitem__
    if kind == "cachetools":
        cache = cachetools.LRUCache(maxsize=N)
        for k in KEYS:
            cache[k] = VALUE
        return cache, cache.get, cache.__getitem__, cache.__setitem__
    if kind == "lru_cache":
        cache = functools.lru_cache(maxsize=N)(lambda key: VALUE)
        for k in KEYS:
            cache(k)
        return cache, cache, cache, None
    raise ValueError(kind)


KINDS = ["gwcore-s3fifo", "gwcore-lru", "lru-dict", "cachetools", "lru_cache"]


def lookups(fn):
    return list(map(fn, PROBE))


def subscripts(cache):
    return [cache[k] for k in PROBE]


@pytest.mark.parametrize("kind", KINDS)
def test_get_hit(benchmark, kind):
    benchmark.group = GET_GROUP
    _cache, get, _, _ = filled(kind)
    assert benchmark(lookups, get) == [VALUE] * BATCH


@pytest.mark.parametrize("kind", ["gwcore-s3fifo", "gwcore-lru", "lru-dict", "cachetools"])
def test_subscript_hit(benchmark, kind):
    benchmark.group = GET_GROUP
    cache, _, _, _ = filled(kind)
    assert benchmark(subscripts, cache) == [VALUE] * BATCH


def test_dict_get_floor(benchmark):
    """A plain dict's get over the same keys: the floor any of these can reach."""
    benchmark.group = GET_GROUP
    d = dict.fromkeys(KEYS, VALUE)
    assert benchmark(lookups, d.get) == [VALUE] * BATCH


def test_dict_subscript_floor(benchmark):
    """A plain dict's subscript in the same comprehension (specialised by the interpreter)."""
    benchmark.group = GET_GROUP
    d = dict.fromkeys(KEYS, VALUE)
    assert benchmark(subscripts, d) == [VALUE] * BATCH


@pytest.mark.parametrize("kind", KINDS)
def test_set_with_eviction(benchmark, kind):
    benchmark.group = SET_GROUP
    cache, _, _, put = filled(kind)
    batches = itertools.cycle(
        [POOL[i : i + BATCH] for i in range(N, len(POOL), BATCH)]
        + [POOL[i : i + BATCH] for i in range(0, N, BATCH)]
    )
    values = [VALUE] * BATCH
    if put is None:  # lru_cache: a miss computes and stores

        def run():
            return list(map(cache, next(batches)))
    else:

        def run():
            return list(map(put, next(batches), values))

    benchmark(run)
    size = cache.cache_info().currsize if kind == "lru_cache" else len(cache)
    assert size == N
    if kind.startswith("gwcore"):
        assert cache.stats()["evictions"] >= BATCH


def test_miss_ratios_on_zipf_traces(benchmark):
    """The four cases of cache_miss_ratio.py (one round: ~3 s); figures in extra_info."""
    benchmark.group = "cache miss ratio, Zipf, 1,000,000 requests over 100,000 keys"

    def table():
        rows = {}
        for alpha in ALPHAS:
            trace = zipf_trace(alpha)
            for fraction in CACHE_FRACTIONS:
                rows[f"alpha={alpha} cache={fraction:.0%}"] = miss_ratios(alpha, fraction, trace)
        return rows

    rows = benchmark.pedantic(table, rounds=1, iterations=1)
    for case, r in rows.items():
        benchmark.extra_info[case] = {k: round(v, 5) for k, v in r.items()}
        print(f"\n{case}: s3fifo {r['s3fifo']:.2%}, paper {r['s3fifo_reference']:.2%}, "
              f"lru {r['lru']:.2%}", end="")
        assert r["s3fifo"] < r["lru"], case
        assert abs(r["s3fifo"] - r["s3fifo_reference"]) <= 0.005, case
