"""Consistent-hash lookups: gwcore HashRing (ketama) and Maglev vs uhashring's ketama get_node.

Every benchmark maps the same 1,000 keys (str, as a gateway hashing a path would pass) through
``get_node`` with ``map`` so the loop adds as little as possible; divide a round's time by 1,000
for one lookup. gwcore's ketama answers are checked equal to uhashring's on the same input.

    /work/venv/bin/python -m pytest bench/micro/test_ring_bench.py --benchmark-columns=min,median,ops
"""

from __future__ import annotations

import pytest
from uhashring import HashRing as UHashRing

from gwcore.proxy._ring import HashRing, Maglev

KEYS = [f"/video/{i:06d}/segment-{i % 97}.ts" for i in range(1000)]
BYTES_KEYS = [k.encode() for k in KEYS]
SIZES = [10, 100]


def nodes(n: int) -> list[str]:
    return [f"10.0.{i // 250}.{i % 250 + 1}:8080" for i in range(n)]


def lookups(get_node, keys=KEYS):
    return list(map(get_node, keys))


@pytest.mark.parametrize("n", SIZES)
def test_uhashring_ketama_get_node(benchmark, n):
    benchmark.group = f"ring lookup, {n} nodes, x1000 keys"
    ref = UHashRing(nodes(n), hash_fn="ketama")
    assert len(set(benchmark(lookups, ref.get_node))) > 1


@pytest.mark.parametrize("n", SIZES)
def test_gwcore_ketama_get_node(benchmark, n):
    benchmark.group = f"ring lookup, {n} nodes, x1000 keys"
    ring = HashRing(nodes(n))
    expected = lookups(UHashRing(nodes(n), hash_fn="ketama").get_node)
    assert benchmark(lookups, ring.get_node) == expected


@pytest.mark.parametrize("n", SIZES)
def test_gwcore_ketama_get_index_bytes(benchmark, n):
    benchmark.group = f"ring lookup, {n} nodes, x1000 keys"
    ring = HashRing(nodes(n))
    assert benchmark(lookups, ring.get_index, BYTES_KEYS) == lookups(ring.get_index)


@pytest.mark.parametrize("n", SIZES)
def test_gwcore_ketama_bounded(benchmark, n):
    benchmark.group = f"ring lookup, {n} nodes, x1000 keys"
    ring = HashRing(nodes(n), balance_factor=1.25)
    for i in range(n):  # some load so the bound is evaluated, nobody over it
        ring.acquire(i)
    assert benchmark(lookups, ring.get_node_bounded) == lookups(ring.get_node)


@pytest.mark.parametrize("n", SIZES)
def test_gwcore_maglev_get_node(benchmark, n):
    benchmark.group = f"ring lookup, {n} nodes, x1000 keys"
    ring = Maglev(nodes(n))
    assert len(set(benchmark(lookups, ring.get_node))) == n


@pytest.mark.parametrize("n", SIZES)
def test_gwcore_maglev_bounded(benchmark, n):
    benchmark.group = f"ring lookup, {n} nodes, x1000 keys"
    ring = Maglev(nodes(n), balance_factor=1.25)
    for i in range(n):
        ring.acquire(i)
    assert benchmark(lookups, ring.get_node_bounded) == lookups(ring.get_node)


def test_python_map_floor(benchmark):
    """The cost of map + list around a trivial C call (str.__len__): the loop's share."""
    benchmark.group = "ring lookup, 10 nodes, x1000 keys"
    assert benchmark(lookups, len) == [len(k) for k in KEYS]
