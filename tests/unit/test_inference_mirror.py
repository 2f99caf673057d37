"""gwcore.inference._mirror against a real origin process (tests/unit/mirror_origin.py) on a
real uvloop loop, with Clusters built as the worker builds them (make_cluster from config):
every accepted copy reaches the origin, statuses and latency come back through on_done, the
in-flight bound holds at the origin, a dead endpoint and a slow one end in errors (nothing
raised), pooled connections are reused, and the cluster's circuit breakers apply."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from gwcore.config import parse
from gwcore.http._wire import Clock
from gwcore.inference._mirror import Mirror
from gwcore.process.worker import make_cluster
from gwcore.proxy._upstream import Cluster

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
Done = tuple[Any, int, float, str | None]      # on_done's arguments


# --------------------------------------------------------------------------- the origin


class Origin:
    """An origin process (mirror_origin.py), stopped by its PID."""

    def __init__(self) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, str(HERE / "mirror_origin.py"), "--port", "0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True)
        self.pid = self.popen.pid
        line = self.popen.stdout.readline().decode()
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"origin did not start: {line!r}")
        self.port = int(line.split()[1])

    def stats(self, target: str = "/stats") -> dict[str, int]:
        """The origin's counters (its /stats, on a connection it does not count); ``/drop``
        closes its other connections first."""
        with socket.create_connection((HOST, self.port), timeout=5) as s:
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: o\r\n\r\n".encode())
            data = b""
            while b"\r\n\r\n" not in data or not data.endswith(b"}"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data.split(b"\r\n\r\n", 1)[1])

    def stop(self) -> None:
        """SIGTERM to the PID, then SIGKILL to its process group if it lingers."""
        if self.popen.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(5)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


@pytest.fixture
def origin() -> Iterator[Origin]:
    o = Origin()
    try:
        yield o
    finally:
        o.stop()


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- the loop


def cluster_config(ports: list[int], extra: str = "") -> Any:
    """A config's cluster "m" on 127.0.0.1 ``ports``; ``extra``: more of its keys (YAML flow
    style, e.g. ``timeouts: {response: 300ms}``)."""
    endpoints = ", ".join(f'"{HOST}:{p}"' for p in ports)
    more = f", {extra}" if extra else ""
    cfg = parse(f"""
listeners: [{{name: l, address: "{HOST}:{free_port()}"}}]
clusters: [{{name: m, endpoints: [{endpoints}]{more}}}]
routes: [{{match: {{path_prefix: /}}, cluster: m}}]
""")
    return cfg.clusters[0]


TICK = 0.05        # the Clock's period (s): deadlines are checked this often


def run(test: Callable[[Cluster], Awaitable[None]], origin: Origin | None, extra: str = "",
        ports: list[int] | None = None) -> None:
    """Runs ``test(cluster)`` on a fresh uvloop loop with the worker's Clock and a Cluster on
    ``origin`` (or on ``ports``), then has the origin close its connections (the pooled ones
    included) and waits until the cluster saw them closed."""
    ports = ports if ports is not None else [origin.port]
    loop = uvloop.new_event_loop()
    try:
        clock = Clock(loop, TICK)
        cluster = make_cluster(cluster_config(ports, extra), clock, loop)
        try:
            loop.run_until_complete(asyncio.wait_for(test(cluster), 30))
        finally:
            if origin is not None:
                origin.stats("/drop")
            loop.run_until_complete(closed(cluster))
            clock.close()
    finally:
        loop.close()


async def closed(cluster: Cluster, timeout: float = 5.0) -> None:
    """Waits until no connection to the cluster is open."""
    deadline = time.monotonic() + timeout
    while any(ep.connections for ep in cluster.endpoints) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def head(target: str, body: bytes | None = None, method: str = "POST") -> bytes:
    """An upstream request head framed for ``body`` (Content-Length, or none)."""
    framing = f"Content-Length: {len(body)}\r\n" if body is not None else ""
    return f"{method} {target} HTTP/1.1\r\nHost: candidate\r\n{framing}\r\n".encode()


class Recorder:
    """on_done: records its calls; ``wait(n)`` until n copies ended."""

    def __init__(self) -> None:
        self.calls: list[Done] = []
        self.event = asyncio.Event()
        self.want = 0

    def __call__(self, context: Any, status: int, seconds: float, error: str | None) -> None:
        self.calls.append((context, status, seconds, error))
        if len(self.calls) >= self.want:
            self.event.set()

    async def wait(self, n: int, timeout: float = 10.0) -> list[Done]:
        self.want = n
        if len(self.calls) < n:
            self.event.clear()
            await asyncio.wait_for(self.event.wait(), timeout)
        return self.calls


# --------------------------------------------------------------------------- tests


def test_every_copy_reaches_the_origin_and_is_reported(origin: Origin) -> None:
    body = b'{"model": "ranker", "input": [1, 2, 3]}'

    async def test(cluster: Cluster) -> None:
        rec = Recorder()
        m = Mirror(cluster, 64, rec)
        for i in range(40):
            assert m.send(head("/v1/predict", body), body, i) is True
        assert m.in_flight == 40 and cluster.in_flight == 40
        calls = await rec.wait(40)
        assert sorted(c[0] for c in calls) == list(range(40))
        assert all(c[1] == 200 and c[3] is None for c in calls)
        assert all(0 < c[2] < 5 for c in calls)          # seconds, from send() to the end
        assert (m.sent, m.completed, m.failed, m.dropped, m.in_flight) == (40, 40, 0, 0, 0)
        assert m.statuses["2xx"] == 40
        assert cluster.in_flight == 0                    # begin/finish paired
        await asyncio.sleep(0.05)

    run(test, origin)
    st = origin.stats()
    assert st["requests"] == 40
    assert st["body_bytes"] == 40 * len(body)


def test_statuses_and_latency(origin: Origin) -> None:
    async def test(cluster: Cluster) -> None:
        rec = Recorder()
        m = Mirror(cluster, 8, rec)
        m.send(head("/status/503"), None, "a")
        m.send(head("/status/404"), None, "b")
        m.send(head("/sleep?s=0.3"), None, "c")
        m.send(head("/status/204", method="GET"), None, "d")
        calls = {c[0]: c for c in await rec.wait(4)}
        assert calls["a"][1:] == (503, calls["a"][2], None)
        assert calls["b"][1] == 404 and calls["b"][3] is None
        assert calls["c"][1] == 200 and 0.3 <= calls["c"][2] < 2.0
        assert calls["d"][1] == 204
        assert m.statuses == {"2xx": 2, "3xx": 0, "4xx": 1, "5xx": 1}
        assert m.completed == 4 and m.failed == 0

    run(test, origin)
    assert origin.stats()["requests"] == 4


def test_max_in_flight_is_never_exceeded(origin: Origin) -> None:
    async def test(cluster: Cluster) -> None:
        rec = Recorder()
        seen: list[int] = []
        m = Mirror(cluster, 3, lambda *a: (seen.append(m.in_flight), rec(*a)))
        results = [m.send(head("/sleep?s=0.4"), None, i) for i in range(10)]
        assert results == [True] * 3 + [False] * 7
        assert m.dropped == 7 and m.sent == 3 and m.in_flight == 3
        await asyncio.sleep(0.2)
        assert origin.stats()["in_flight"] == 3
        assert m.send(head("/sleep?s=0.4"), None, 99) is False     # still full
        await rec.wait(3)
        assert max(seen) <= 3 and m.in_flight == 0
        # room again: sends are accepted
        assert m.send(head("/sleep?s=0.01"), None, 100) is True
        await rec.wait(4)
        assert (m.sent, m.dropped, m.completed) == (4, 8, 4)

    run(test, origin)
    st = origin.stats()
    assert st["requests"] == 4 and st["max_in_flight"] == 3


def test_dead_endpoint_is_connect_failed() -> None:
    async def test(cluster: Cluster) -> None:
        rec = Recorder()
        m = Mirror(cluster, 4, rec)
        assert m.send(head("/x", b"abc"), b"abc", "ctx") is True
        (ctx, status, seconds, error), = await rec.wait(1)
        assert (ctx, status, error) == ("ctx", 0, "connect_failed")
        assert 0 <= seconds < 1.5
        assert (m.failed, m.completed, m.in_flight) == (1, 0, 0)
        assert cluster.in_flight == 0
        # a candidate that is down: copies are dropped for 0.25 s, then one tries again
        assert m.paused_until > 0
        assert m.send(head("/x"), None, "paused") is False and m.dropped == 1
        await asyncio.sleep(0.3)
        assert m.send(head("/x"), None, "probe") is True
        *_, (ctx, _, _, error) = await rec.wait(2)
        assert (ctx, error) == ("probe", "connect_failed")
        assert m.send(head("/x"), None, "paused again") is False     # now for 0.5 s

    run(test, None, ports=[free_port()])


def test_copies_failing_together_pause_the_mirror_once() -> None:
    async def test(cluster: Cluster) -> None:
        rec = Recorder()
        m = Mirror(cluster, 8, rec)
        for i in range(8):
            assert m.send(head("/x"), None, i) is True
        await rec.wait(8)
        # eight copies under way when the candidate was found down count as one failure
        left = (m.paused_until - time.monotonic_ns()) / 1e9
        assert 0.0 < left <= 0.25

    run(test, None, ports=[free_port()])


def test_slow_origin_times_out(origin: Origin) -> None:
    async def test(cluster: Cluster) -> None:
        rec = Recorder()
        m = Mirror(cluster, 4, rec)
        t0 = time.monotonic()
        assert m.send(head("/sleep?s=3"), None, "slow") is True
        assert time.monotonic() - t0 < 0.05                 # send() never waits
        (ctx, status, seconds, error), = await rec.wait(1)
        assert (ctx, status, error) == ("slow", 0, "timeout")
        # the response timeout (300 ms) on the coarse clock: up to a tick either side
        assert 0.3 - TICK <= seconds < 0.3 + 2 * TICK + 0.2
        assert m.failed == 1 and m.statuses["2xx"] == 0

    run(test, origin, "timeouts: {response: 300ms}")
    assert origin.stats()["requests"] == 1


def test_reset_and_bad_response(origin: Origin) -> None:
    async def test(cluster: Cluster) -> None:
        rec = Recorder()
        m = Mirror(cluster, 4, rec)
        assert m.send(head("/close"), None, "close") and m.send(head("/garbage"), None, "bad")
        calls = {c[0]: c for c in await rec.wait(2)}
        assert calls["close"][1] == 0 and calls["close"][3] == "reset"
        assert calls["bad"][1] == 0 and calls["bad"][3] == "bad_response"
        assert (m.failed, m.completed, m.in_flight, cluster.in_flight) == (2, 0, 0, 0)

    run(test, origin)
    assert origin.stats()["requests"] == 2


def test_pooled_connections_are_reused(origin: Origin) -> None:
    async def test(cluster: Cluster) -> None:
        rec = Recorder()
        m = Mirror(cluster, 4, rec)
        for i in range(20):      # one after the other: each finds the last one's connection
            target = ("/bytes?n=300000&chunked=1" if i % 3 == 0 else "/bytes?n=200000"
                      if i % 3 == 1 else "/ok")
            method = "HEAD" if i == 19 else "GET"
            assert m.send(head(target, method=method), None, i)
            await rec.wait(i + 1)
        assert [c[3] for c in rec.calls] == [None] * 20
        assert cluster.endpoints[0].idle_count == 1

    run(test, origin)
    st = origin.stats()
    assert st["requests"] == 20 and st["heads"] == 1
    assert st["connections"] == 1


def test_on_done_exceptions_are_logged(origin: Origin, caplog: pytest.LogCaptureFixture) -> None:
    async def test(cluster: Cluster) -> None:
        calls: list[Any] = []

        def on_done(context: Any, status: int, seconds: float, error: str | None) -> None:
            calls.append(context)
            raise RuntimeError("boom")

        m = Mirror(cluster, 4, on_done)
        assert m.send(head("/ok"), None, 1) and m.send(head("/ok"), None, 2)
        for _ in range(200):
            if len(calls) == 2:
                break
            await asyncio.sleep(0.01)
        assert sorted(calls) == [1, 2] and m.completed == 2 and m.in_flight == 0

    run(test, origin)
    assert caplog.text.count("on_done failed") == 2


def test_circuit_breakers_apply(origin: Origin) -> None:
    # one connection, nobody may wait for it: a second copy is dropped at once
    async def no_pending(cluster: Cluster) -> None:
        rec = Recorder()
        m = Mirror(cluster, 8, rec)
        assert m.send(head("/sleep?s=0.3"), None, 1) is True
        assert m.send(head("/ok"), None, 2) is False
        assert m.dropped == 1 and cluster.overflows == {"max_pending_requests": 1}
        await rec.wait(1)
        assert cluster.in_flight == 0

    run(no_pending, origin,
        "circuit_breakers: {max_connections: 1, max_pending_requests: 0}")

    # one connection, one may wait for at most 200 ms: it ends with "overflow"
    async def pending(cluster: Cluster) -> None:
        rec = Recorder()
        m = Mirror(cluster, 8, rec)
        assert m.send(head("/sleep?s=1"), None, "first") is True
        assert m.send(head("/ok"), None, "queued") is True
        (ctx, status, seconds, error), = await rec.wait(1)
        assert (ctx, status, error) == ("queued", 0, "overflow")
        assert 0.2 - TICK <= seconds < 0.2 + 2 * TICK + 0.2     # pending_timeout
        assert cluster.overflows == {"pending_timeout": 1}
        calls = await rec.wait(2)
        assert calls[1][0] == "first" and calls[1][3] is None
        assert cluster.in_flight == 0

    run(pending, origin, "circuit_breakers: {max_connections: 1, "
        "max_pending_requests: 4, pending_timeout: 200ms}")

    # max_requests counts mirrored copies like client requests
    async def requests(cluster: Cluster) -> None:
        rec = Recorder()
        m = Mirror(cluster, 8, rec)
        assert [m.send(head("/sleep?s=0.2"), None, i) for i in range(4)] == [True] * 2 + [
            False] * 2
        assert cluster.overflows == {"max_requests": 2}
        await rec.wait(2)

    run(requests, origin, "circuit_breakers: {max_requests: 2}")


def test_queued_copy_gets_the_connection_when_it_frees(origin: Origin) -> None:
    async def test(cluster: Cluster) -> None:
        rec = Recorder()
        m = Mirror(cluster, 8, rec)
        for i in range(5):
            assert m.send(head("/sleep?s=0.05"), None, i) is True
        calls = await rec.wait(5)
        assert sorted(c[0] for c in calls) == list(range(5))
        assert all(c[1] == 200 and c[3] is None for c in calls)

    run(test, origin, "circuit_breakers: {max_connections: 1}")
    st = origin.stats()
    assert st["requests"] == 5 and st["connections"] == 1 and st["max_in_flight"] == 1


def test_bad_arguments() -> None:
    loop = uvloop.new_event_loop()
    try:
        clock = Clock(loop, 0.05)
        cluster = make_cluster(cluster_config([free_port()]), clock, loop)
        with pytest.raises(ValueError):
            Mirror(cluster, -1)
        with pytest.raises(TypeError):
            Mirror(cluster, 1, on_done=3)
        m = Mirror(cluster, 0)
        assert m.send(head("/x"), None, None) is False and m.dropped == 1
        assert repr(m).startswith("Mirror('m'")
        clock.close()
    finally:
        loop.close()


@pytest.mark.parametrize("percent, every", [(100.0, 1), (50.0, 2), (10.0, 10), (5.0, 20)])
def test_sample_takes_exactly_the_percent_spread_evenly(percent: float, every: int) -> None:
    async def test(cluster: Cluster) -> None:
        m = Mirror(cluster, 4, None, percent)
        taken = [i for i in range(10_000) if m.sampled()]
        assert len(taken) == 10_000 // every
        assert {b - a for a, b in itertools.pairwise(taken)} == {every}

    run(test, None, ports=[free_port()])


def test_sample_percent_is_checked() -> None:
    async def test(cluster: Cluster) -> None:
        for bad in (0.0, -1.0, 100.5):
            with pytest.raises(ValueError, match="percent"):
                Mirror(cluster, 4, None, bad)
        m = Mirror(cluster, 4, None, 33.3)
        assert abs(sum(m.sampled() for _ in range(1000)) - 333) <= 1

    run(test, None, ports=[free_port()])
