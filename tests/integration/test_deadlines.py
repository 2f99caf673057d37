"""Every wait has a deadline: origins that close or reset on accept, origins that never read,
uploads on cold and warm pools, and the route's request timeout. Each client counts the
requests not answered within the configured timeouts plus 1 s: zero."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import (
    HOST,
    PYTHON,
    Proc,
    RawConn,
    free_port,
    gateway_config,
    start_gateway_on_free_port,
)

HERE = Path(__file__).parent


@pytest.fixture
def bad_origin(tmp_path):
    started = []

    def make(mode: str) -> int:
        port = free_port()
        p = Proc(f"bad-origin-{mode}", [PYTHON, str(HERE / "bad_origin.py"), "--port",
                                         str(port), "--mode", mode],
                 tmp_path / f"bad-origin-{mode}.log")
        started.append(p)
        p.wait_for_log(f"listening {port}")
        return port

    yield make
    for p in started:
        p.stop()


def _gw(tmp_path, origin_port: int, name: str, *, cluster: dict | None = None,
        route: dict | None = None, timeouts: dict | None = None, limits: dict | None = None):
    c = {"name": "origin", "endpoints": [f"{HOST}:{origin_port}"],
         "timeouts": {"connect": "1s", "response": "1s"}, **(cluster or {})}
    r = {"match": {"path_prefix": "/"}, "cluster": "origin", **(route or {})}
    return start_gateway_on_free_port(
        lambda port: gateway_config(port, origin_port, free_port(), clusters=[c], routes=[r],
                                    timeouts=timeouts, limits=limits),
        tmp_path, name)


def _client_loop(port: int, until: float, bound: float) -> tuple[int, int, list[int]]:
    """Requests on one keep-alive connection (a new one after a close) until ``until``;
    returns (answered, unanswered within ``bound`` seconds, statuses seen)."""
    answered = unanswered = 0
    statuses: set[int] = set()
    conn = None
    while time.monotonic() < until:
        if conn is None:
            conn = RawConn(port, timeout=bound)
        try:
            conn.send(b"GET /hello HTTP/1.1\r\nHost: gw.test\r\n\r\n")
            r = conn.read_response(timeout=bound)
        except (OSError, AssertionError, ValueError):
            unanswered += 1
            conn.close()
            conn = None
            continue
        answered += 1
        statuses.add(r.status)
        if (r.header("connection") or "").lower() == "close":
            conn.close()
            conn = None
    if conn is not None:
        conn.close()
    return answered, unanswered, sorted(statuses)


@pytest.mark.parametrize("mode", ["close", "reset"])
def test_origin_that_closes_on_accept_gets_every_client_an_answer(bad_origin, tmp_path, mode):
    """50 clients for 5 s against an origin that closes (or resets) every connection at once:
    every request is answered 502 within connect timeout + 1 s, and a drain afterwards ends
    at once (no request parked)."""
    port = bad_origin(mode)
    gw = _gw(tmp_path, port, f"gw-{mode}",
             cluster={"outlier_detection": {"consecutive_failures": 1000000}})
    until = time.monotonic() + 5
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda _: _client_loop(gw.port, until, 2.0), range(50)))
    answered = sum(r[0] for r in results)
    unanswered = sum(r[1] for r in results)
    statuses = sorted({s for r in results for s in r[2]})
    print(f"{mode}: {answered} answered, {unanswered} unanswered, statuses {statuses}")
    assert unanswered == 0 and answered > 50
    assert statuses == [502]
    started = time.monotonic()
    os.kill(gw.pid, signal.SIGTERM)
    gw.proc.popen.wait(20)
    assert time.monotonic() - started < 5, "the drain waited for parked requests"
    assert "unable to perform operation" not in gw.proc.log()


def test_origin_that_never_reads_a_streamed_upload_is_504(bad_origin, tmp_path):
    """A 4 MiB upload (streamed: over buffer_body_bytes) to an origin that never reads: 504
    within the response timeout (1 s) + 1 s once the origin stops taking bytes, counted as
    an outlier failure, never a 408 blamed on the client."""
    port = bad_origin("noread")
    gw = _gw(tmp_path, port, "gw-noread",
             cluster={"outlier_detection": {"consecutive_failures": 1,
                                           "max_ejection_percent": 100}})
    body = b"u" * (4 << 20)
    with socket.create_connection((HOST, gw.port), timeout=10) as s:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: gw.test\r\nContent-Length: %d\r\n\r\n"
                  % len(body))
        sender = threading.Thread(target=_send_quietly, args=(s, body), daemon=True)
        sender.start()
        started = time.monotonic()
        data = _read_head(s, 10)
        elapsed = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 504 "), data[:200]
    assert elapsed < 5, elapsed
    gw.proc.wait_for_log("ejected")


def test_origin_that_never_answers_a_buffered_upload_is_504(bad_origin, tmp_path):
    port = bad_origin("silent")
    gw = _gw(tmp_path, port, "gw-silent")
    with RawConn(gw.port) as c:
        started = time.monotonic()
        c.send(b"POST /x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 1000\r\n\r\n" + b"a" * 1000)
        r = c.read_response(timeout=5)
    assert r.status == 504 and time.monotonic() - started < 3


def _send_quietly(s: socket.socket, data: bytes) -> None:
    try:
        s.sendall(data)
    except OSError:
        pass


def _read_head(s: socket.socket, timeout: float) -> bytes:
    s.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        piece = s.recv(65536)
        if not piece:
            break
        data += piece
    return data


SIZES = [1 << 20, 5 << 20, 50 << 20]


def _upload(port: int, size: int, chunked: bool, conn: RawConn) -> int:
    block = b"z" * (1 << 20)
    if chunked:
        conn.send(b"POST /discard HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked"
                  b"\r\n\r\n")
    else:
        conn.send(b"POST /discard HTTP/1.1\r\nHost: gw.test\r\nContent-Length: %d\r\n\r\n"
                  % size)
    sent = 0
    while sent < size:
        piece = block[:min(len(block), size - sent)]
        conn.send(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        sent += len(piece)
    if chunked:
        conn.send(b"0\r\n\r\n")
    r = conn.read_response(timeout=30)
    assert r.status == 200, (size, chunked, r.status, r.body[:200])
    return r.json()["received"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("size", SIZES, ids=["1MiB", "5MiB", "50MiB"])
def test_uploads_on_cold_and_warm_pools(gateway_factory, origin, size, chunked):
    """The first upload through a fresh gateway opens its upstream connection while the
    body arrives (cold pool); the second reuses it (warm). Both arrive whole."""
    gw = gateway_factory()
    with RawConn(gw.port, timeout=30) as c:
        assert _upload(gw.port, size, chunked, c) == size       # cold
        assert _upload(gw.port, size, chunked, c) == size       # warm


def test_route_request_timeout(tmp_path, origin):
    """timeouts.request on a route: 504 before a response started, a cut connection after
    (never a short response passed as whole); routes without it wait as long as needed."""
    gw = _gw(tmp_path, origin.port, "gw-request-timeout",
             cluster={"timeouts": {"connect": "1s", "response": "10s"}},
             route={"timeouts": {"request": "1s"}})
    with RawConn(gw.port) as c:
        started = time.monotonic()
        c.send(b"GET /slow?delay=3 HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        r = c.read_response(timeout=5)
        assert r.status == 504 and 0.9 <= time.monotonic() - started < 2.5
    with RawConn(gw.port) as c:
        c.send(b"GET /slow?delay=3&head=1 HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        data, closed = c.read_until_close(timeout=5)
    assert closed and data.startswith(b"HTTP/1.1 200 ") and not data.endswith(b"slow")


def test_no_request_timeout_by_default(gw):
    with RawConn(gw.port) as c:
        c.send(b"GET /slow?delay=2 HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        r = c.read_response(timeout=10)
    assert r.status == 200 and r.body == b"slow"
