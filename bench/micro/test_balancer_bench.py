"""The balancer's pick per request, for each policy (gwcore.proxy._balancer), through its
Python entry ``choose`` (the proxy calls the C-level ``pick`` directly, without the Python
call). Each round picks for the same 1,000 keys with ``map``; divide by 1,000 for one pick.

    /work/venv/bin/python -m pytest bench/micro/test_balancer_bench.py --benchmark-columns=min,median,ops
"""

from __future__ import annotations

import pytest

from gwcore.proxy._balancer import Balancer

NODES = [f"10.0.0.{i + 1}:8080" for i in range(10)]
KEYS = [f"/video/{i:06d}/segment-{i % 97}.ts".encode() for i in range(1000)]
NONE = [None] * 1000


@pytest.mark.parametrize("policy", ["round_robin", "least_request", "random", "ring_hash",
                                    "maglev"])
def test_pick(benchmark, policy):
    benchmark.group = "balancer pick, 10 endpoints, x1000 requests"
    b = Balancer(policy, NODES, [1] * len(NODES))
    keys = KEYS if policy in ("ring_hash", "maglev") else NONE
    picks = benchmark(lambda: list(map(b.choose, keys)))
    assert len(set(picks)) > 1


def test_pick_maglev_bounded(benchmark):
    benchmark.group = "balancer pick, 10 endpoints, x1000 requests"
    b = Balancer("maglev", NODES, [1] * len(NODES), balance_factor=1.25)
    assert len(set(benchmark(lambda: list(map(b.choose, KEYS))))) > 1


def test_map_overhead(benchmark):
    """The loop alone (a no-op builtin over the same keys), to subtract."""
    benchmark.group = "balancer pick, 10 endpoints, x1000 requests"
    benchmark(lambda: list(map(len, KEYS)))
