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
    held_connections,
    start_gateway_on_free_port,
    tcp_state,
    wait_for,
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


# --------------------------------------------------------------------------- review findings
# A gateway error on a keep-alive connection must leave it reading; pipelined requests go on
# after it; an exchange always has a deadline; the route timeout starts once the whole request
# is upstream and blames the endpoint only before a response started.

GET_HELLO = b"GET /hello HTTP/1.1\r\nHost: gw.test\r\n\r\n"


def _keeps_alive(r) -> bool:
    return (r.header("connection") or "").lower() != "close"


def _504_then_served(c: RawConn, request: bytes, within: float) -> None:
    """request gets a 504 within ``within`` seconds on a connection kept alive, and the next
    request on it (GET_HELLO) is read and answered 200."""
    started = time.monotonic()
    c.send(request)
    r = c.read_response(timeout=within + 5)
    assert r.status == 504 and time.monotonic() - started < within, (r.status, r.body)
    assert _keeps_alive(r)
    c.send(GET_HELLO)
    r = c.read_response(timeout=3)
    assert r.status == 200, (r.status, r.body)


def test_route_timeout_during_a_retry_after_wait_leaves_the_connection_reading(tmp_path,
                                                                              origin):
    """The origin answers 503 with Retry-After: 3 (waited for: retry_after_max 5s); the
    route's timeouts.request (500 ms) runs out during that wait: 504 on the keep-alive
    connection, and the next request on it is read and answered (reading stayed paused)."""
    gw = _gw(tmp_path, origin.port, "gw-retry-after-timeout",
             cluster={"retries": {"attempts": 2, "on": ["503"], "retry_after_max": "5s"}},
             route={"timeouts": {"request": "500ms"}})
    with RawConn(gw.port) as c:
        _504_then_served(
            c, b"GET /slow?delay=0&status=503&retry_after=3 HTTP/1.1\r\nHost: gw.test\r\n\r\n",
            2.5)
    assert origin.served("/slow?delay=0&status=503&retry_after=3") >= 1


def test_upstream_timeout_after_a_buffered_body_filled_its_buffer_leaves_reading(
        bad_origin, tmp_path, origin):
    """An 8 MiB buffered body (buffer_body_bytes 16MiB) to an origin that never reads: the
    upstream connection's write buffer fills, the response timeout (1 s) answers 504 on the
    keep-alive connection, and the next request on it (another cluster) is answered."""
    noread = bad_origin("noread")
    clusters = [{"name": "noread", "endpoints": [f"{HOST}:{noread}"],
                 "timeouts": {"connect": "1s", "response": "1s"}},
                {"name": "origin", "endpoints": [f"{HOST}:{origin.port}"]}]
    routes = [{"match": {"path_prefix": "/hello"}, "cluster": "origin"},
              {"match": {"path_prefix": "/"}, "cluster": "noread"}]
    gw = start_gateway_on_free_port(
        lambda port: gateway_config(port, origin.port, free_port(), clusters=clusters,
                                    routes=routes, limits={"buffer_body_bytes": "16MiB"}),
        tmp_path, "gw-upstream-full")
    size = 8 << 20
    with RawConn(gw.port) as c:
        _504_then_served(
            c, b"POST /upload HTTP/1.1\r\nHost: gw.test\r\nContent-Length: %d\r\n\r\n" % size
            + b"b" * size, 5)


class _EarlyAnswerOrigin:
    """An origin on a thread of the test: on each connection it takes one recv of the request
    (receive buffer 4 KiB, so the rest backs up into the gateway), waits until ``answer`` is
    set, then answers 200 with a 200 MB body that it writes until the peer goes away; it
    never reads the rest of the request."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # inherited
        self.sock.bind((HOST, 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.answer = threading.Event()
        self.accepted = threading.Event()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(20)
                conn.recv(4096)
                self.accepted.set()
                if not self.answer.wait(20) or self.stop.is_set():
                    return
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 200000000\r\n\r\n")
                block = b"y" * 65536
                while not self.stop.is_set():
                    conn.sendall(block)
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.answer.set()
        for t in self.threads:
            t.join(5)
        self.sock.close()


def test_early_answer_during_an_upload_to_a_client_that_does_not_read_is_timed_out(tmp_path):
    """An upload (streamed) that the upstream stops taking; then the upstream answers early
    with a large body and the client reads none of it. Both sides are stalled; the exchange
    still has a deadline: within idle (2 s) / response (5 s) timeouts the gateway closes the
    client connection and gives up its upstream connection (they were held forever)."""
    up = _EarlyAnswerOrigin()
    try:
        gw = _gw(tmp_path, up.port, "gw-early-answer",
                 cluster={"timeouts": {"connect": "1s", "response": "5s"}},
                 timeouts={"idle": "2s"})
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.connect((HOST, gw.port))
        try:
            client_addr = c.getsockname()
            c.sendall(b"POST /up HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 1000000000"
                      b"\r\n\r\n")
            assert up.accepted.wait(5), "the request never reached the origin"
            # upload until the gateway stops taking it (the origin does not read): the
            # client's sends make no progress for 0.3 s
            c.setblocking(False)
            block = b"x" * 65536
            sent, last_progress, started = 0, time.monotonic(), time.monotonic()
            while time.monotonic() - last_progress < 0.3:
                assert time.monotonic() - started < 10, f"upload never stalled ({sent} sent)"
                try:
                    sent += c.send(block)
                    last_progress = time.monotonic()
                except BlockingIOError:
                    time.sleep(0.01)
            up.answer.set()          # the early answer; the client reads none of it
            assert held_connections(gw.pid, up.port) == 1
            wait_for(lambda: held_connections(gw.pid, up.port) == 0, timeout=8,
                     what="the gateway to give up its upstream connection")
            wait_for(lambda: tcp_state((HOST, gw.port), client_addr) in (None, "FIN_WAIT1",
                                                                          "FIN_WAIT2"),
                     timeout=2, what="the gateway to close the client connection")
        finally:
            c.close()
    finally:
        up.close()


def test_pipelined_request_after_a_route_timeout_is_answered(tmp_path, origin):
    """Two pipelined requests: the first runs out of the route's timeouts.request (504); the
    second, already buffered, is answered at once (it waited for the idle timeout)."""
    gw = _gw(tmp_path, origin.port, "gw-pipelined-route-timeout",
             cluster={"timeouts": {"connect": "1s", "response": "10s"}},
             route={"timeouts": {"request": "500ms"}})
    with RawConn(gw.port) as c:
        started = time.monotonic()
        c.send(b"GET /slow?delay=3 HTTP/1.1\r\nHost: gw.test\r\n\r\n" + GET_HELLO)
        first = c.read_response(timeout=5)
        assert first.status == 504 and _keeps_alive(first), (first.status, first.body)
        second = c.read_response(timeout=3)
        elapsed = time.monotonic() - started
    assert second.status == 200, (second.status, second.body)
    assert elapsed < 2.5, elapsed


def test_slow_upload_is_governed_by_the_idle_timeout_not_the_route_timeout(tmp_path, origin):
    """The route's timeouts.request (300 ms) starts once the whole request is upstream: an
    upload paced over 1.5 s gets 200 with every byte, and an upload that stalls gets 408
    from the listener's idle timeout (2 s); neither ejects the healthy endpoint (one failure
    would: consecutive_failures 1)."""
    gw = _gw(tmp_path, origin.port, "gw-slow-upload",
             cluster={"timeouts": {"connect": "1s", "response": "5s"},
                      "outlier_detection": {"consecutive_failures": 1,
                                            "max_ejection_percent": 100}},
             route={"timeouts": {"request": "300ms"}}, timeouts={"idle": "2s"})
    size, pieces = 1_000_000, 10       # over buffer_body_bytes (64 KiB): streamed
    head = b"POST /discard HTTP/1.1\r\nHost: gw.test\r\nContent-Length: %d\r\n\r\n" % size
    with RawConn(gw.port) as c:
        c.send(head)
        for _ in range(pieces):
            time.sleep(0.15)           # the client's pace, not a synchronisation
            c.send(b"s" * (size // pieces))
        r = c.read_response(method=b"POST", timeout=5)
    assert r.status == 200, (r.status, r.body)
    assert r.json()["received"] == size
    with RawConn(gw.port) as c:
        started = time.monotonic()
        c.send(head + b"s" * (size // 2))
        r = c.read_response(method=b"POST", timeout=5)
        elapsed = time.monotonic() - started
    assert r.status == 408, (r.status, r.body)
    assert 1.5 <= elapsed < 4, elapsed
    assert "ejected" not in gw.proc.log()


def test_route_timeout_after_the_response_began_does_not_eject_the_endpoint(tmp_path,
                                                                            origin):
    """A route timeout once the response head went out cuts the connection but does not
    count against the endpoint (the response began: the endpoint answered); one before a
    response does (consecutive_failures 1 ejects it, logged before the 504 is sent)."""
    gw = _gw(tmp_path, origin.port, "gw-route-timeout-blame",
             cluster={"timeouts": {"connect": "1s", "response": "10s"},
                      "outlier_detection": {"consecutive_failures": 1,
                                            "max_ejection_percent": 100}},
             route={"timeouts": {"request": "500ms"}})
    with RawConn(gw.port) as c:
        c.send(b"GET /slow?delay=3&head=1 HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        data, closed = c.read_until_close(timeout=5)
    assert closed and data.startswith(b"HTTP/1.1 200 ") and not data.endswith(b"slow")
    assert "ejected" not in gw.proc.log()
    with RawConn(gw.port) as c:      # the control: a timeout before any response blames it
        c.send(b"GET /slow?delay=3 HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        assert c.read_response(timeout=5).status == 504
    gw.proc.wait_for_log("ejected", timeout=2)
