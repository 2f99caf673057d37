"""Global rate limits (``scope: global``) against a real redis-server: two gateway masters
sharing one Redis hold one limit within ±2%; Redis stopped (connections refused) or frozen
(SIGSTOP: connections accepted, no answer) → each limit's ``on_error`` (allow, or deny with
503), no request waiting longer than ``redis.timeout`` + 10 ms, one log line per interval;
Redis restarted → limits resume (the script is loaded again); ``sync`` batching.

The fixture installs Debian's redis-server (``apt-get install -y -qq redis-server``) when it
is missing, and starts its own on a free port, stopped by PID."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import (
    HOST,
    Proc,
    free_port,
    gateway_config,
    get_as,
    offer_load,
    start_gateway_on_free_port,
    wait_for,
)

RATE, BURST, SECONDS = 200, 20, 5.0
TIMEOUT_MS = 50


def redis_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=True,
                       capture_output=True, timeout=600)
        path = shutil.which("redis-server")
    assert path, "redis-server could not be installed"
    return path


class RedisServer:
    def __init__(self, tmp: Path) -> None:
        self.tmp, self.port, self.proc, self.starts = tmp, free_port(), None, 0

    def start(self) -> None:
        self.starts += 1
        self.proc = Proc(f"redis-{self.starts}", [
            redis_binary(), "--port", str(self.port), "--bind", HOST, "--save", "",
            "--appendonly", "no", "--dir", str(self.tmp)], self.tmp / f"redis-{self.starts}.log")
        wait_for(self.ping, timeout=15, what="redis-server answering PING")

    def ping(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    r = RedisServer(tmp_path_factory.mktemp("redis"))
    r.start()
    yield r
    r.stop()


def redis_config(port: int, origin_port: int, dead_port: int, redis_port: int) -> dict:
    cfg = gateway_config(port, origin_port, dead_port, routes=[
        {"name": "global", "match": {"path_prefix": "/hello"}, "cluster": "origin",
         "rate_limit": ["everyone"]},
        {"name": "open", "match": {"path_prefix": "/open/"}, "cluster": "origin",
         "rate_limit": ["open"]},
        {"name": "closed", "match": {"path_prefix": "/closed/"}, "cluster": "origin",
         "rate_limit": ["closed"]},
        {"name": "batched", "match": {"path_prefix": "/batched/"}, "cluster": "origin",
         "rate_limit": ["batched"]},
        {"match": {"path_prefix": "/"}, "cluster": "origin"},
    ])
    g = {"scope": "global"}
    cfg["rate_limits"] = {
        "everyone": {"key": "route", "rate": f"{RATE}/s", "burst": BURST, **g},
        "open": {"key": {"header": "X-Client"}, "rate": "2/h", "on_error": "allow", **g},
        "closed": {"key": {"header": "X-Client"}, "rate": "2/h", "on_error": "deny", **g},
        "batched": {"key": "route", "rate": "20/s", "burst": 20, "sync": "100ms", **g},
    }
    cfg["redis"] = {"url": f"redis://{HOST}:{redis_port}/0", "timeout": f"{TIMEOUT_MS}ms",
                    "log_interval": "1h"}
    return cfg


@pytest.fixture(scope="module")
def gateways(origin, dead_port, redis_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ratelimit-redis")
    started = []
    try:
        for name in ("gw-redis-a", "gw-redis-b"):
            started.append(start_gateway_on_free_port(
                lambda port: redis_config(port, origin.port, dead_port, redis_server.port),
                tmp, name))
        yield started
    finally:
        for g in started:
            g.proc.stop()


def timed(port: int, target: str, headers: dict) -> tuple[int, float]:
    start = time.monotonic()
    status = get_as(port, target, headers).status
    return status, time.monotonic() - start


def test_two_masters_share_one_global_limit(gateways) -> None:
    for g in gateways:            # each worker's connection made and the script loaded
        assert get_as(g.port, "/open/warm-up", {"X-Client": "warm-up"}).status == 404
    statuses, elapsed = offer_load([g.port for g in gateways], "/hello", SECONDS)
    expected = BURST + RATE * elapsed
    offered = sum(statuses.values())
    print(f"offered {offered} in {elapsed:.2f} s ({offered / elapsed:.0f}/s) through 2 masters: "
          f"{statuses[200]} accepted, {statuses[429]} refused; expected {expected:.0f} "
          f"({statuses[200] / expected - 1:+.2%})")
    assert set(statuses) == {200, 429}
    assert offered > 2 * expected
    assert abs(statuses[200] - expected) <= 0.02 * expected


def test_sync_batches_locally_within_its_bound(gateways) -> None:
    statuses, elapsed = offer_load([g.port for g in gateways], "/batched/x", 3.0, conns=4)
    expected = 20 + 20 * elapsed
    # each of the 2 hosts may admit up to rate x sync (2 requests) more per sync interval
    bound = 2 * 20 * 0.1 * (elapsed / 0.1 + 1)
    accepted = sum(statuses.values()) - statuses[429]           # the origin answers 404
    print(f"sync: {accepted} accepted of {sum(statuses.values())}, expected {expected:.0f} "
          f"(+{bound:.0f} at most)")
    assert set(statuses) == {404, 429}
    assert 0.98 * expected <= accepted <= expected + bound


def test_redis_down_slow_and_back(gateways, redis_server) -> None:
    a, b = gateways
    h = {"X-Client": "down-test"}
    assert [get_as(a.port, "/closed/x", h).status for _ in range(2)] == [404, 404]
    assert get_as(b.port, "/closed/x", h).status == 429                # global across masters
    r = get_as(b.port, "/closed/x", h)
    assert r.header("ratelimit") == f'"closed";r=0;t={r.header("retry-after")}'
    bound = (TIMEOUT_MS + 10) / 1000
    # frozen: connections are accepted but nothing answers → the timeout, then on_error
    redis_server.proc.popen.send_signal(signal.SIGSTOP)
    try:
        results = [timed(a.port, "/open/x", {"X-Client": f"f{i}"}) for i in range(5)]
        results += [timed(b.port, "/closed/x", {"X-Client": f"f{i}"}) for i in range(5)]
    finally:
        redis_server.proc.popen.send_signal(signal.SIGCONT)
    print("frozen redis:", [(s, round(t * 1000, 1)) for s, t in results])
    assert [s for s, _ in results] == [404] * 5 + [503] * 5
    assert max(t for _, t in results) <= bound
    # stopped: connections refused
    redis_server.stop()
    results = [timed(a.port, "/open/x", h) for _ in range(5)]
    results += [timed(a.port, "/closed/x", h) for _ in range(5)]
    print("stopped redis:", [(s, round(t * 1000, 1)) for s, t in results])
    assert [s for s, _ in results] == [404] * 5 + [503] * 5
    assert max(t for _, t in results) <= bound
    r = get_as(a.port, "/closed/x", h)
    assert r.status == 503 and r.header("retry-after") == "1"
    # one log line per log_interval (1h here), however many failures
    assert a.proc.log().count("rate limit") == 1, a.proc.log_tail()
    # restarted (empty): limits resume, the script is loaded again
    redis_server.start()
    h = {"X-Client": "after-restart"}
    wait_for(lambda: get_as(a.port, "/closed/x", h).status == 404, timeout=10,
             what="limits served again")
    assert get_as(b.port, "/closed/x", h).status == 404
    assert get_as(a.port, "/closed/x", h).status == 429
