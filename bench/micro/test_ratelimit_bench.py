"""What a local rate limit costs per request (issue: rate limiting, item 7), and the key
table at 1M keys.

- ``check``: ``Limit.take`` on a never-limited key — hash, 16-byte CAS in the shared table —
  called from Python (the filter's own call); the issue's target is ≤ 0.3 µs. Next to it the
  whole ``RateLimitFilter.on_request`` (key from the exchange, take, the state kept), and a
  plain-Python GCRA over a dict as the reference a pure-Python filter would be (per process
  only: it could not be shared by workers).
- ``table_1m``: 1M distinct keys cycling through a table of 2M slots (8-way buckets): the cost
  of an insert or an update once the table holds 1M keys, and how many keys a full bucket
  sends to its overflow cell (printed).

    .venv/bin/python -m pytest bench/micro/test_ratelimit_bench.py \\
        --benchmark-columns=min,median,ops --benchmark-group-by=group
"""

from __future__ import annotations

import itertools
import time

import pytest

from gwcore.config import parse
from gwcore.filters.base import Exchange
from gwcore.filters.ratelimit import Policy, RateLimitFilter
from gwcore.http import parse_request
from gwcore.limits import Table
from gwcore.proxy._router import Route

KEYS = 1_000_000


@pytest.mark.benchmark(group="check")
def test_take_gwcore(benchmark) -> None:
    lim = Table(65536).limit("bench", 1e9, 1.0, 1000)
    ok = benchmark(lim.take, "192.0.2.7")
    assert ok[0]


@pytest.mark.benchmark(group="check")
def test_filter_on_request_gwcore(benchmark) -> None:
    cfg = parse("""
listeners: [{name: p, address: "127.0.0.1:8080"}]
clusters: [{name: c, endpoints: ["127.0.0.1:9001"]}]
routes: [{cluster: c, rate_limit: [bench]}]
rate_limits: {bench: {key: source_ip, rate: 1000000000/s}}
""")
    spec = cfg.rate_limits["bench"]
    table = Table(65536)
    f = RateLimitFilter([Policy("bench", spec, table.limit("bench", spec.requests,
                                                           spec.period, spec.burst_size))])
    ex = Exchange(parse_request(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"), Route(None, None, ()),
                  "192.0.2.7")
    assert benchmark(f.on_request, ex) is None


@pytest.mark.benchmark(group="check")
def test_take_python_dict_reference(benchmark) -> None:
    tats: dict[str, int] = {}
    T, tau = 1, 999

    def take(key: str) -> bool:
        now = time.monotonic_ns()
        tat = max(tats.get(key, now), now)
        if tat - now > tau:
            return False
        tats[key] = tat + T
        return True
    assert benchmark(take, "192.0.2.7")


@pytest.mark.benchmark(group="table_1m")
def test_table_1m_keys(benchmark) -> None:
    table = Table(2 * KEYS)
    lim = table.limit("bench", 1.0, 3600.0, 1000)      # every key stays active
    keys = [f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}" for i in range(KEYS)]
    for k in keys:                                     # the table holds 1M keys
        lim.take(k)
    active, used = table.usage()
    first_pass = lim.overflows
    cycle = itertools.cycle(keys)
    take = lim.take
    benchmark(lambda: take(next(cycle)))
    print(f"\n1M keys in {table.slots} slots ({table.nbytes >> 20} MiB): {active} active "
          f"slots; {first_pass} keys ({first_pass / KEYS:.2%}) counted in overflow cells")
    assert active == used and active + first_pass == KEYS
