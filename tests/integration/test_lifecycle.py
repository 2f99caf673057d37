"""The request lifecycle in a real gateway: a filter's Response whose body streams (a generator,
an async generator; 50 MiB through bounded memory), on_response_head changing or replacing
the upstream's response, on_response_body taps, and on_log once per request for the ways of
ending not covered by test_filters_gateway.py (overflow, a client gone mid-response, a
drain that ran out of time). The probe filters are lifecycle_probes.py, loaded by import
path from the gateway's PYTHONPATH."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h11
import pytest
from conftest import (
    HERE,
    HOST,
    RawConn,
    gateway_config,
    start_gateway_on_free_port,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)

PYTHONPATH = os.pathsep.join(
    [str(HERE)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
MiB = 1 << 20


def lifecycle_config(port: int, origin_port: int, dead_port: int, log: Path,
                     **extra) -> dict:
    cfg = gateway_config(port, origin_port, dead_port, clusters=[
        {"name": "origin", "endpoints": [f"{HOST}:{origin_port}"]},
        {"name": "tight", "endpoints": [f"{HOST}:{origin_port}"],
         "circuit_breakers": {"max_requests": 1}},
    ], routes=[
        {"name": "tight", "match": {"host": "overflow.test"}, "cluster": "tight"},
        {"name": "main", "match": {"path_prefix": "/"}, "cluster": "origin"},
    ])
    cfg["filters"] = [
        {"use": "lifecycle_probes:Stream"},
        {"use": "lifecycle_probes:Rewrite"},
        {"use": "lifecycle_probes:Tap"},
        {"use": "lifecycle_probes:Log", "config": {"path": str(log)}},
    ]
    cfg.update(extra)
    return cfg


def _start(origin, dead_port, tmp: Path, name: str, **extra):
    log = tmp / f"{name}.jsonl"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", PYTHONPATH)     # the gateway process inherits it
        gw = start_gateway_on_free_port(
            lambda port: lifecycle_config(port, origin.port, dead_port, log, **extra), tmp,
            name)
    return gw, log


@pytest.fixture(scope="module")
def gw_life(origin, dead_port, tmp_path_factory) -> Iterator[tuple[object, Path]]:
    gw, log = _start(origin, dead_port, tmp_path_factory.mktemp("lifecycle"), "gw-life")
    yield gw, log
    gw.proc.stop()


def logged(log: Path, id_: str, timeout: float = 10.0) -> dict:
    """The one on_log record of request ``id_`` (fails if there are two)."""
    def find():
        try:
            recs = [json.loads(x) for x in log.read_text().splitlines()]
        except FileNotFoundError:
            return None
        mine = [r for r in recs if r["id"] == id_]
        assert len(mine) <= 1, mine
        return mine[0] if mine else None
    return wait_for(find, timeout, f"the on_log record of {id_}")


def fetch_until_close(port: int, request: bytes) -> tuple[h11.Response | None, bytes, bool]:
    """Sends request on a new connection, reads until the gateway closes it (fails if it
    does not) and parses what came (h11_read)."""
    with RawConn(port) as c:
        c.send(request)
        data, closed = c.read_until_close(timeout=10)
    assert closed, data[:200]
    return h11_read(data)


def h11_read(data: bytes, method: str = "GET") -> tuple[h11.Response | None, bytes, bool]:
    """(response head, body, complete) of one response in data, by an independent parser."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "gw.test")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    conn.receive_data(b"")
    head, body, complete = None, b"", False
    try:
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA or type(ev) is h11.ConnectionClosed:
                break
            if type(ev) is h11.Response:
                head = ev
            elif type(ev) is h11.Data:
                body += ev.data
            elif type(ev) is h11.EndOfMessage:
                complete = True
                break
    except h11.RemoteProtocolError:
        pass
    return head, body, complete


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_filter_response_body_streams_chunked(gw_life, kind) -> None:
    gw, log = gw_life
    with RawConn(gw.port) as c:
        for i in range(2):          # keep-alive: the connection serves on after a stream
            c.send(f"GET /stream/{kind}?n=5&size=1000&id={kind}{i} HTTP/1.1\r\n"
                   f"Host: gw.test\r\n\r\n".encode())
            r = c.read_response()
            assert r.status == 200 and r.header("transfer-encoding") == "chunked"
            assert r.body == b"".join(bytes([97 + k]) * 1000 for k in range(5))
    rec = logged(log, f"{kind}1")
    assert rec["end"] == "local" and rec["status"] == 200 and rec["bytes_sent"] > 5000


def test_a_streamed_body_to_http10_is_close_delimited_and_head_gets_no_body(gw_life) -> None:
    gw, _ = gw_life
    head, body, complete = fetch_until_close(
        gw.port, b"GET /stream/sync?n=3&size=100 HTTP/1.0\r\nHost: gw.test\r\n\r\n")
    assert head.status_code == 200 and complete
    assert body == b"a" * 100 + b"b" * 100 + b"c" * 100
    with RawConn(gw.port) as c:
        c.send(b"HEAD /stream/sync?n=3&size=100 HTTP/1.1\r\nHost: gw.test\r\n\r\n"
               b"GET /hello HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        assert c.read_response(method=b"HEAD").status == 200
        assert c.read_response().status == 200     # nothing of a body came between


def test_a_big_streamed_body_goes_through_bounded_memory(gw_life, rss_sampler) -> None:
    """50 MiB from a generator: written as the client drains it (back-pressure), so the
    gateway's memory does not grow by the body size."""
    gw, log = gw_life
    total = 0
    with rss_sampler(gw.pid) as rss, socket.create_connection((HOST, gw.port)) as s:
        s.sendall(b"GET /stream/big?mib=50&id=big HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ") and b"Content-Length: 52428800" in head
        total = len(rest)
        while total < 50 * MiB:
            piece = s.recv(1 << 18)
            assert piece, f"closed after {total} bytes"
            total += len(piece)
            if total < 8 * MiB:
                time.sleep(0.002)       # a slow start: the gateway must wait for us
    print(f"50 MiB streamed local body: {rss.summary()}")
    assert total == 50 * MiB
    assert rss.growth < 24 * MiB, rss.summary()
    assert logged(log, "big")["end"] == "local"


def test_a_failing_body_source_cuts_the_connection(gw_life) -> None:
    gw, _ = gw_life
    head, body, complete = fetch_until_close(
        gw.port, b"GET /stream/fail HTTP/1.1\r\nHost: gw.test\r\n\r\n")
    assert head is not None and not complete and body == b"first"


def test_on_response_head_replaces_or_changes_the_response(gw_life) -> None:
    gw, log = gw_life
    with RawConn(gw.port) as c:
        c.send(b"GET /teapot?id=tea HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        r = c.read_response()
        assert (r.status, r.body, r.header("x-teapot")) == (418, b"short and stout", "1")
        c.send(b"GET /restatus?id=re HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        data = c.recv(65536)
        while b"origin: no such endpoint" not in data:
            data += c.recv(65536)
    head, body, complete = h11_read(data)        # h11 refuses two Content-Lengths
    assert head.status_code == 299 and complete and body == b"origin: no such endpoint"
    names = [n for n, _ in head.headers]
    assert names.count(b"content-length") == 1 and (b"x-rewritten", b"1") in head.headers
    assert (logged(log, "tea")["status"], logged(log, "tea")["end"]) == (418, "local")
    assert (logged(log, "re")["status"], logged(log, "re")["end"]) == (299, "ok")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("size", [1000, 200000], ids=["buffered", "streamed"])
def test_bytes_received_counts_the_request_body(gw_life, size, chunked) -> None:
    gw, log = gw_life
    body = b"q" * size
    id_ = f"up{size}{'c' if chunked else ''}"
    with RawConn(gw.port) as c:
        if chunked:
            c.send(f"POST /echo?id={id_} HTTP/1.1\r\nHost: gw.test\r\n"
                   f"Transfer-Encoding: chunked\r\n\r\n{size:x}\r\n".encode() + body
                   + b"\r\n0\r\n\r\n")
        else:
            c.send(f"POST /echo?id={id_} HTTP/1.1\r\nHost: gw.test\r\n"
                   f"Content-Length: {size}\r\n\r\n".encode() + body)
        r = c.read_response()
    assert r.status == 200 and r.body == body
    assert logged(log, id_)["bytes_received"] == size


@pytest.mark.parametrize("target,size", [("/big?size=300000", 300000),
                                         ("/chunked?n=4&size=1000", 4000)])
def test_on_response_body_taps_see_the_whole_body_once(gw_life, target, size) -> None:
    gw, log = gw_life
    id_ = f"tap{size}"
    with RawConn(gw.port) as c:
        c.send(f"GET {target}&id={id_} HTTP/1.1\r\nHost: gw.test\r\n\r\n".encode())
        r = c.read_response()
    assert r.status == 200 and len(r.body) == size
    rec = logged(log, id_)
    assert (rec["tapped"], rec["ends"], rec["end"]) == (size, 1, "ok")


def test_on_log_overflow_and_client_gone_mid_response(gw_life, origin) -> None:
    gw, log = gw_life
    key = f"life-{os.getpid()}"
    with ThreadPoolExecutor(1) as pool:
        def held():
            with RawConn(gw.port) as c:
                c.send(f"GET /hold?key={key}&id=held HTTP/1.1\r\nHost: overflow.test\r\n\r\n"
                       .encode())
                return c.read_response().status
        first = pool.submit(held)
        wait_for(lambda: any(key in t for t in origin.stats()["in_flight"]),
                 what="the held request at the origin")
        with RawConn(gw.port) as c:
            c.send(b"GET /hello?id=over HTTP/1.1\r\nHost: overflow.test\r\n\r\n")
            r = c.read_response()
        assert r.status == 503 and r.header("retry-after") == "1"
        origin.release(key)
        assert first.result(timeout=10) == 200
    assert (logged(log, "over")["end"], logged(log, "over")["status"]) == ("overflow", 503)
    # a client that resets the connection while a 20 MiB response is streaming to it
    s = socket.create_connection((HOST, gw.port))
    try:
        s.sendall(b"GET /big?size=20971520&id=gone HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        got = 0
        while got < 256 * 1024:
            got += len(s.recv(65536))
    finally:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    rec = logged(log, "gone")
    assert (rec["end"], rec["status"]) == ("client_abort", 200)
    assert 0 < rec["bytes_sent"] < 20 * MiB


def test_answers_after_an_error_or_a_replaced_response_keep_the_pipeline_going(gw_life) -> None:
    """A gateway error to HEAD has no body; a pipelined request behind an answer that
    on_response_head replaced, or behind a filter's wrong return type (500), is answered
    at once (not after the idle timeout)."""
    gw, _ = gw_life
    with RawConn(gw.port) as c:
        c.send(b"HEAD /bad%zz HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        data, closed = c.read_until_close(timeout=5)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert closed and head.startswith(b"HTTP/1.1 400 ") and rest == b"", data
    with RawConn(gw.port) as c:
        started = time.monotonic()
        c.send(b"GET /teapot HTTP/1.1\r\nHost: gw.test\r\n\r\n"
               b"GET /hello HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        r = c.read_response()
        assert (r.status, r.body) == (418, b"short and stout")
        assert c.read_response().status == 200
        assert time.monotonic() - started < 2
    with RawConn(gw.port) as c:
        c.send(b"GET /bad-async HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        r = c.read_response(timeout=5)
        assert r.status == 500 and b"filter error" in r.body


def test_a_drain_closes_a_keep_alive_connection_after_its_response(origin, dead_port,
                                                                   tmp_path) -> None:
    """The response's head went out before the drain began (so it said keep-alive): the
    connection is closed once the response is complete, and the worker exits then, not
    at drain_timeout."""
    gw, _ = _start(origin, dead_port, tmp_path, "gw-drain-ka", drain_timeout="30s")
    try:
        with RawConn(gw.port) as c:
            c.send(b"GET /slow?delay=1&head=1 HTTP/1.1\r\nHost: gw.test\r\n\r\n")
            wait_for(lambda: any("delay=1&head=1" in t for t in origin.stats()["in_flight"]),
                     what="the slow request at the origin")
            started = time.monotonic()
            os.kill(gw.pid, signal.SIGTERM)
            r = c.read_response(timeout=10)
            assert r.status == 200 and r.body == b"slow"
            assert c.is_closed(timeout=5)
        gw.proc.popen.wait(20)
        assert time.monotonic() - started < 10, "the drain waited for drain_timeout"
    finally:
        gw.proc.stop()


def test_on_log_when_the_drain_runs_out_of_time(origin, dead_port, tmp_path) -> None:
    gw, log = _start(origin, dead_port, tmp_path, "gw-drain", drain_timeout="1s")
    try:
        c = RawConn(gw.port)
        c.send(b"GET /slow?delay=20&id=drained HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        wait_for(lambda: any("id=drained" in t for t in origin.stats()["in_flight"]),
                 what="the slow request at the origin")
        started = time.monotonic()
        os.kill(gw.pid, signal.SIGTERM)
        rec = logged(log, "drained")
        assert rec["end"] == "draining" and time.monotonic() - started < 8
        gw.proc.popen.wait(20)
        c.close()
    finally:
        gw.proc.stop()
