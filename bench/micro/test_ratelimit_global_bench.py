"""Global rate limits (issue 11, item 7): the cost of one check against a real redis-server on
127.0.0.1, with and without local batching (``sync``).

- ``round trip``: one ``RemoteLimit.take`` — EVALSHA of the GCRA script, one request and
  answer over the asyncio client (hiredis), awaited alone: the latency a request pays.
- ``pipelined``: 32 takes of different keys under way at once (``asyncio.gather``), per take:
  the throughput one worker gets from one connection pool.
- ``batched``: ``sync: 100ms``: a take served from the worker's local budget
  (``take_local``), no round trip — what most requests pay with batching on.

    .venv/bin/python -m pytest bench/micro/test_ratelimit_global_bench.py \\
        --benchmark-columns=min,median,ops --benchmark-group-by=group

Needs ``redis-server`` (Debian's package; skipped when missing). The server is started on a
free port and stopped by its PID.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from gwcore.config import Redis, parse


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no", "--dir", tmp],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)


def _limit(url: str, sync: str | None = None):
    from gwcore.limits.redis_limits import RedisLimits

    extra = f", sync: {sync}" if sync else ""
    cfg = parse(f"""
listeners: [{{name: p, address: "127.0.0.1:8080"}}]
clusters: [{{name: c, endpoints: ["127.0.0.1:9000"]}}]
routes: [{{cluster: c, rate_limit: [g]}}]
redis: {{url: "{url}", timeout: 1s}}
rate_limits: {{g: {{key: source_ip, rate: 100000000/s, scope: global{extra}}}}}
""")
    return RedisLimits(cfg.redis or Redis()).limit("g", cfg.rate_limits["g"])


@pytest.mark.benchmark(group="global")
def test_round_trip(benchmark, redis_url: str) -> None:
    loop = asyncio.new_event_loop()
    limit = _limit(redis_url)
    loop.run_until_complete(limit.take(b"warm"))
    benchmark(lambda: loop.run_until_complete(limit.take(b"k")))
    loop.close()


@pytest.mark.benchmark(group="global")
def test_pipelined_32_at_once(benchmark, redis_url: str) -> None:
    loop = asyncio.new_event_loop()
    limit = _limit(redis_url)
    keys = [b"k%d" % i for i in range(32)]

    async def batch() -> None:
        await asyncio.gather(*(limit.take(k) for k in keys))

    loop.run_until_complete(batch())
    benchmark.extra_info["per"] = len(keys)
    benchmark(lambda: loop.run_until_complete(batch()))
    loop.close()


@pytest.mark.benchmark(group="global")
def test_batched_local_take(benchmark, redis_url: str) -> None:
    loop = asyncio.new_event_loop()
    limit = _limit(redis_url, sync="100ms")

    async def prime() -> None:
        _, remaining, _, _ = await limit.take(b"k")
        limit.learn(b"k", remaining)

    loop.run_until_complete(prime())

    def take() -> None:
        if not limit.take_local(b"k"):
            loop.run_until_complete(prime())

    benchmark(take)
    loop.close()
