"""Circuit breakers per worker and cluster (Envoy's names): upstream connections are bounded,
requests over the bound wait for a slot (bounded too), and overflow answers 503 with
Retry-After at once. Connections are counted at the origin."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import (
    HOST,
    RawConn,
    free_port,
    gateway_config,
    start_gateway_on_free_port,
    start_origin,
    wait_for,
)


@pytest.fixture
def own_origin(tmp_path):
    o = start_origin(tmp_path, "cb-origin")
    yield o
    o.proc.stop()


@pytest.fixture
def breaker_gateway(own_origin, tmp_path):
    started = []

    def make(breakers: dict, retries: dict | None = None, endpoints: list[str] | None = None,
             route: dict | None = None):
        cluster = {"name": "origin", "endpoints": endpoints or [f"{HOST}:{own_origin.port}"],
                   "circuit_breakers": breakers}
        if retries is not None:
            cluster["retries"] = retries
        g = start_gateway_on_free_port(
            lambda port: gateway_config(port, own_origin.port, free_port(), clusters=[cluster],
                                        routes=[{"match": {"path_prefix": "/"},
                                                 "cluster": "origin", **(route or {})}]),
            tmp_path, f"gw-cb-{len(started) + 1}")
        started.append(g)
        return g

    yield make
    for g in started:
        g.proc.stop()


def _get(port: int, target: str, timeout: float = 30.0):
    with RawConn(port, timeout=timeout) as c:
        c.send(f"GET {target} HTTP/1.1\r\nHost: gw.test\r\n\r\n".encode())
        return c.read_response(timeout=timeout)


def test_connections_are_bounded_and_waiters_served(breaker_gateway, own_origin) -> None:
    """50 concurrent slow requests through max_connections 4: the origin never sees more
    than 4 connections, and every request is answered 200 (the others waited for a slot)."""
    gw = breaker_gateway({"max_connections": 4, "max_pending_requests": 100,
                          "pending_timeout": "30s"})
    with ThreadPoolExecutor(50) as pool:
        futures = [pool.submit(_get, gw.port, "/slow?delay=0.2") for _ in range(50)]
        statuses = [f.result().status for f in futures]
    assert statuses == [200] * 50
    assert own_origin.stats()["connections"] <= 4


def test_pending_queue_overflow_is_503_with_retry_after(breaker_gateway, own_origin) -> None:
    """2 connections busy, 2 requests waiting: the rest get 503 + Retry-After at once,
    and the waiting ones are served once the held ones finish."""
    gw = breaker_gateway({"max_connections": 2, "max_pending_requests": 2,
                          "pending_timeout": "30s"})
    with ThreadPoolExecutor(12) as pool:
        held = [pool.submit(_get, gw.port, "/hold?key=cb1") for _ in range(2)]
        wait_for(lambda: own_origin.stats()["open"] == 2, what="2 held requests at the origin")
        waiting = [pool.submit(_get, gw.port, "/hello") for _ in range(2)]
        # the two are queued in the gateway: no new origin connection, no answer yet
        time.sleep(0.3)
        assert not any(f.done() for f in waiting)
        over = [pool.submit(_get, gw.port, "/hello") for _ in range(6)]
        over_resp = [f.result(timeout=10) for f in over]
        assert [r.status for r in over_resp] == [503] * 6
        assert all(r.header("retry-after") == "1" for r in over_resp)
        assert not any(f.done() for f in waiting)
        own_origin.release("cb1")
        assert [f.result(timeout=10).status for f in held + waiting] == [200] * 4
    assert own_origin.stats()["connections"] <= 2
    assert "overflow" in gw.proc.log()


def test_pending_timeout(breaker_gateway, own_origin) -> None:
    gw = breaker_gateway({"max_connections": 1, "max_pending_requests": 5,
                          "pending_timeout": "500ms"})
    with ThreadPoolExecutor(2) as pool:
        held = pool.submit(_get, gw.port, "/hold?key=cb2")
        wait_for(lambda: own_origin.stats()["open"] == 1, what="the held request")
        started = time.monotonic()
        r = _get(gw.port, "/hello")
        elapsed = time.monotonic() - started
        assert r.status == 503 and r.header("retry-after") == "1"
        assert 0.4 <= elapsed <= 2.0, elapsed
        own_origin.release("cb2")
        assert held.result(timeout=10).status == 200


def test_max_requests(breaker_gateway, own_origin) -> None:
    gw = breaker_gateway({"max_requests": 3})
    with ThreadPoolExecutor(4) as pool:
        held = [pool.submit(_get, gw.port, "/hold?key=cb3") for _ in range(3)]
        wait_for(lambda: own_origin.stats()["open"] == 3, what="3 held requests")
        r = _get(gw.port, "/hello")
        assert r.status == 503 and r.header("retry-after") == "1"
        own_origin.release("cb3")
        assert [f.result(timeout=10).status for f in held] == [200] * 3
    assert _get(gw.port, "/hello").status == 200


@pytest.mark.parametrize("max_retries,status", [(0, 502), (3, 200)])
def test_max_retries(breaker_gateway, own_origin, max_retries, status) -> None:
    """The first endpoint refuses connections: its retry goes to the origin only while
    max_retries allows one."""
    dead = f"{HOST}:{free_port()}"
    gw = breaker_gateway({"max_retries": max_retries},
                         retries={"attempts": 2, "on": ["connect_failure"]},
                         endpoints=[dead, f"{HOST}:{own_origin.port}"])
    # round robin: of two requests, one tries the dead endpoint first
    statuses = sorted(_get(gw.port, "/hello").status for _ in range(2))
    assert statuses == sorted([200, status])


def test_pipelined_requests_go_on_after_a_pending_timeout(breaker_gateway, own_origin) -> None:
    """The only connection is held; two pipelined requests on one keep-alive connection each
    wait for a slot and get the pending_timeout 503 in turn: the second, already buffered,
    is not left until the idle timeout (60 s)."""
    gw = breaker_gateway({"max_connections": 1, "max_pending_requests": 5,
                          "pending_timeout": "500ms"})
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(_get, gw.port, "/hold?key=cb-pipe")
        try:
            wait_for(lambda: own_origin.stats()["open"] == 1, what="the held request")
            with RawConn(gw.port) as c:
                started = time.monotonic()
                c.send(b"GET /hello?n=1 HTTP/1.1\r\nHost: gw.test\r\n\r\n"
                       b"GET /hello?n=2 HTTP/1.1\r\nHost: gw.test\r\n\r\n")
                first = c.read_response(timeout=5)
                second = c.read_response(timeout=3)
                elapsed = time.monotonic() - started
        finally:
            own_origin.release("cb-pipe")
        assert held.result(timeout=10).status == 200
    for r in (first, second):
        assert r.status == 503 and r.header("retry-after") == "1", (r.status, r.body)
    assert 0.8 <= elapsed <= 2.5, elapsed
    assert own_origin.served("/hello?n=") == 0


def test_route_timeout_while_a_retry_waits_for_a_slot_leaves_the_connection_reading(
        breaker_gateway, own_origin) -> None:
    """max_connections 1. Request B's first try is answered 503 after 1 s and retried; by then
    request A is queued for the slot, gets it and is held, so B's retry waits for a slot; the
    route's timeouts.request (2 s) runs out there: 504 on B's keep-alive connection. Once A
    is released, the next request on B's connection is read and answered."""
    gw = breaker_gateway({"max_connections": 1, "max_pending_requests": 5,
                          "pending_timeout": "30s"},
                         retries={"attempts": 2, "on": ["503"]},
                         route={"timeouts": {"request": "2s"}})
    first_try = "/slow?delay=1&status=503&cb=slot"
    with ThreadPoolExecutor(1) as pool, RawConn(gw.port) as b:
        started = time.monotonic()
        b.send(f"GET {first_try} HTTP/1.1\r\nHost: gw.test\r\n\r\n".encode())
        wait_for(lambda: first_try in own_origin.stats()["in_flight"], what="B's first try")
        held = pool.submit(_get, gw.port, "/hold?key=cb-slot")    # queued for the slot
        try:
            r = b.read_response(timeout=5)
            elapsed = time.monotonic() - started
            assert r.status == 504 and (r.header("connection") or "") != "close", (
                r.status, r.body)
            assert 1.8 <= elapsed < 3.5, elapsed
            # B's retry never reached the origin: it was waiting for the slot A holds
            assert own_origin.served(first_try) == 1
            assert not held.done()
        finally:
            own_origin.release("cb-slot")
        assert held.result(timeout=10).status == 200
        b.send(b"GET /hello HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        r = b.read_response(timeout=3)
        assert r.status == 200, (r.status, r.body)
