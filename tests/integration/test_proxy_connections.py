"""Connection management: upstream keep-alive pool, pipelining, HTTP/1.0, Connection: close,
idle timeout, and pooled connections the origin closed."""

from __future__ import annotations

import time

import httpx
import pytest
from conftest import HOST, tcp_state, wait_for

pytestmark = pytest.mark.timeout(60)


def test_upstream_connections_are_reused_one_client(gw, origin) -> None:
    before = origin.stats()
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        for i in range(50):
            r = client.get(f"/headers?i={i}")
            assert r.status_code == 200 and r.json()["target"] == f"/headers?i={i}"
    after = origin.stats()
    assert after["requests"] - before["requests"] == 50
    assert after["connections"] - before["connections"] <= 2, (before, after)


def test_upstream_connections_are_reused_across_clients(gw, origin, raw, req) -> None:
    before = origin.stats()
    for _ in range(50):
        with raw(gw.port) as c:
            c.send(req("GET", "/hello", {"Connection": "close"}))
            assert c.read_response().status == 200
            assert c.is_closed()
    after = origin.stats()
    assert after["requests"] - before["requests"] == 50
    assert after["connections"] - before["connections"] <= 2, (before, after)


def test_pipelined_requests_answered_in_order(gw, raw, req, pattern, chunk_byte) -> None:
    # The slow one comes first, so a gateway answering in completion order would fail.
    plan = [
        ("GET", "/slow?delay=0.3", b"", lambda r: r.body == b"slow"),
        ("GET", "/headers?i=1", b"", lambda r: r.json()["target"] == "/headers?i=1"),
        ("POST", "/echo", b"first body", lambda r: r.body == b"first body"),
        ("GET", "/chunked?n=3&size=5", b"",
         lambda r: r.body == b"".join(chunk_byte(i) * 5 for i in range(3))),
        ("GET", "/big?size=70000", b"", lambda r: r.body == pattern(0, 70000)),
        ("GET", "/hello", b"", lambda r: r.json() == {"hello": "world"}),
        ("POST", "/echo", b"second", lambda r: r.body == b"second"),
        ("GET", "/status/503", b"", lambda r: r.status == 503 and r.body == b"status 503"),
        ("GET", "/headers?i=8", b"", lambda r: r.json()["target"] == "/headers?i=8"),
        ("GET", "/close-delimited?size=1000", b"", lambda r: r.body == pattern(0, 1000)),
    ]
    wire = b"".join(req(m, t, body=b) for m, t, b, _ in plan)
    with raw(gw.port) as c:
        c.send(wire)  # all ten in one send
        for method, target, _, check in plan:
            r = c.read_response()
            assert r.status in (200, 503), (target, r.status, r.body[:200])
            assert check(r), (method, target, r.body[:200])


def test_http10_without_keepalive_is_closed(gw, raw) -> None:
    with raw(gw.port) as c:
        c.send(b"GET /hello HTTP/1.0\r\nHost: gw.test\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.json() == {"hello": "world"}
        assert c.is_closed()


def test_http10_keepalive_stays_open(gw, raw) -> None:
    with raw(gw.port) as c:
        for i in range(3):
            c.send(f"GET /headers?i={i} HTTP/1.0\r\nHost: gw.test\r\n"
                   "Connection: keep-alive\r\n\r\n".encode())
            r = c.read_response()
            assert r.status == 200 and r.json()["target"] == f"/headers?i={i}"
            assert r.header("content-length") is not None
            assert "keep-alive" in (r.header("connection") or "").lower()


def test_http10_client_never_gets_chunked(gw, raw, chunk_byte) -> None:
    with raw(gw.port) as c:
        c.send(b"GET /chunked?n=4&size=100 HTTP/1.0\r\nHost: gw.test\r\n\r\n")
        data, closed = c.read_until_close(timeout=5)
    assert closed
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split()[1] == b"200", head
    assert b"transfer-encoding" not in head.lower(), head
    assert body == b"".join(chunk_byte(i) * 100 for i in range(4))


def test_http11_connection_close(gw, raw, req) -> None:
    with raw(gw.port) as c:
        c.send(req("GET", "/hello", {"Connection": "close"}))
        r = c.read_response()
        assert r.status == 200
        assert "close" in (r.header("connection") or "").lower()
        assert c.is_closed()


def test_idle_keepalive_connection_is_closed(strict_gw, raw, req) -> None:
    with raw(strict_gw.port) as c:
        for _ in range(2):  # kept alive between requests sent without pause
            c.send(req("GET", "/hello"))
            assert c.read_response().status == 200
        idle_since = time.monotonic()
        data, closed = c.read_until_close(timeout=15)
        waited = time.monotonic() - idle_since
    assert closed and data == b"", data
    # not before the 2 s timeout; the upper bound only tells it from "never" or the 60 s default
    assert 1.5 <= waited <= 12, f"idle timeout is 2s, closed after {waited:.2f}s"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_pooled_connection_closed_by_origin_is_not_used(gateway_factory, origin, raw, req,
                                                        method: str) -> None:
    gw = gateway_factory()          # its own pool: every request below needs a new connection
    connections = origin.stats()["connections"]
    with raw(gw.port) as c:
        for i in range(5):
            # The origin closes its side 0.1 s after answering; the next request comes once
            # the gateway has closed its end too (it saw the close: a POST on a connection
            # closing at that very moment could not be retried, that race is not this test's)
            closed = origin.stats()["idle_closed"]
            body = b"payload %d" % i if method == "POST" else b""
            c.send(req(method, f"/echo?close_idle=0.1&i={i}", body=body))
            r = c.read_response()
            assert r.status == 200, (i, r.status, r.body)
            assert r.body == body
            stats = wait_for(lambda n=closed: (st := origin.stats())["idle_closed"] > n and st,
                             what="the origin closing the idle connection")
            gateway_end = tuple(stats["idle_closed_peers"][-1])
            wait_for(lambda e=gateway_end: tcp_state(e, (HOST, origin.port))
                     not in ("ESTABLISHED", "CLOSE_WAIT"), what="the gateway closing its end")
    assert origin.stats()["connections"] - connections == 5     # none was reused
