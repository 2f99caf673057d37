"""Concurrency limits in a real gateway: a route's places, its queue (full → 503 at once,
too long → 503 after queue_timeout), a queued request served once a place frees, and a
cluster's limit across routes where a higher-priority route's request sheds a queued
lower-priority one."""

from __future__ import annotations

import time

import httpx
import pytest
from conftest import (
    RawConn,
    free_port,
    gateway_config,
    start_gateway,
    start_gateway_on_free_port,
    wait_for,
)


@pytest.fixture(scope="module")
def gw_cc(origin, dead_port, tmp_path_factory):
    def config(port: int) -> dict:
        live = f"127.0.0.1:{origin.port}"
        return gateway_config(port, origin.port, dead_port, clusters=[
            {"name": "origin", "endpoints": [live]},
            {"name": "shared", "endpoints": [live],
             "concurrency": {"max": 1, "queue": 1, "queue_timeout": "3s"}},
        ], routes=[
            {"name": "low", "match": {"host": "low.test"}, "cluster": "shared",
             "priority": 10},
            {"name": "high", "match": {"host": "high.test"}, "cluster": "shared",
             "priority": 0},
            {"name": "limited", "match": {"path_prefix": "/hold"}, "cluster": "origin",
             "concurrency": {"max": 2, "queue": 1, "queue_timeout": "300ms"}},
        ])
    gw = start_gateway_on_free_port(config, tmp_path_factory.mktemp("concurrency"), "gw-cc")
    yield gw
    gw.proc.stop()


def send(port: int, target: str, host: str = "gw.test") -> RawConn:
    c = RawConn(port)
    c.send(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return c


def queue_full(port: int, host: str):
    """A request that is refused at once because the queue is full (its response), else
    None (it was queued or served: then it is abandoned)."""
    c = send(port, "/hold?key=probe", host)
    try:
        r = c.read_response(timeout=0.2)
    except TimeoutError:
        return None
    finally:
        c.close()
    return r if r.status == 503 and b"too many requests under way" in r.body else None


def test_route_places_queue_and_timeout(gw_cc, origin) -> None:
    held = [send(gw_cc.port, "/hold?key=cc1") for _ in range(2)]
    wait_for(lambda: origin.served("/hold?key=cc1") >= 2, what="2 requests held upstream")
    start = time.monotonic()
    queued = send(gw_cc.port, "/hold?key=cc1")
    # once the third waits, the queue (1) is full: a fourth is refused at once
    full = wait_for(lambda: queue_full(gw_cc.port, "gw.test"), what="the third queued")
    assert full.header("retry-after") == "1"
    r = queued.read_response()
    assert r.status == 503 and b"queued too long" in r.body
    # queue_timeout is 300 ms; loop timers have a 1 ms grain (uvloop), so allow a little
    # early, and a loaded machine late
    assert 0.25 <= time.monotonic() - start <= 3.0
    waiting = send(gw_cc.port, "/hold?key=cc1")          # queued again
    origin.release("cc1")
    assert [c.read_response().status for c in held] == [200, 200]
    assert waiting.read_response().status == 200          # served once a place freed
    for c in (*held, queued, waiting):
        c.close()


def test_cluster_limit_sheds_lower_priority(gw_cc, origin) -> None:
    first = send(gw_cc.port, "/hold?key=cc2", "low.test")
    wait_for(lambda: origin.served("/hold?key=cc2") >= 1, what="the first request upstream")
    low = send(gw_cc.port, "/hold?key=cc2", "low.test")
    wait_for(lambda: queue_full(gw_cc.port, "low.test"), what="the low one queued")
    high = send(gw_cc.port, "/hold?key=cc2", "high.test")
    shed = low.read_response()
    assert shed.status == 503 and b"higher priority" in shed.body
    origin.release("cc2")
    assert first.read_response().status == 200
    assert high.read_response().status == 200
    for c in (first, low, high):
        c.close()


def test_load_shedding_drops_the_least_important_route_first_and_recovers(
        origin, dead_port, tmp_path) -> None:

    live = f"127.0.0.1:{origin.port}"
    cfg = gateway_config(0, origin.port, dead_port, clusters=[
        {"name": "shed", "endpoints": [live],
         "shedding": {"p99": "100ms", "step": "200ms", "samples": 10, "resume": 0.5}},
    ], routes=[
        {"name": "vip", "match": {"path_prefix": "/status/"}, "cluster": "shed",
         "priority": 0},
        {"name": "batch", "match": {"path_prefix": "/slow"}, "cluster": "shed",
         "priority": 2},
    ])
    port = free_port()
    cfg["listeners"][0]["address"] = f"127.0.0.1:{port}"
    g = start_gateway(cfg, tmp_path)
    try:
        with httpx.Client(base_url=g.url, timeout=10) as c:
            # slow answers push the cluster's p99 over 100 ms: the batch route is shed
            shed = wait_for(lambda: (r := c.get("/slow?delay=0.2")).status_code == 503 and r,
                            timeout=20, what="the batch route shed")
            assert b"overloaded" in shed.content and shed.headers["retry-after"] == "1"
            assert c.get("/status/200").status_code == 200       # priority 0: never shed
            # fast answers bring the p99 back under resume × bound: it is served again
            def recovered() -> bool:
                for _ in range(5):
                    c.get("/status/200")
                return c.get("/slow?delay=0").status_code == 200

            wait_for(recovered, timeout=20, what="shedding to stop")
    finally:
        g.proc.stop()
