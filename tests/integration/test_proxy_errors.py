"""Failures: upstream down/slow/retried, malformed and smuggling-shaped requests, limits,
slowloris. Each malformed request goes on its own raw connection and must get the right status
and then EOF; the origin must never see the request smuggled behind it."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

pytestmark = pytest.mark.timeout(60)

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: gw.test\r\n\r\n"


def test_upstream_down_is_502(gw) -> None:
    started = time.monotonic()
    r = httpx.get(gw.url + "/hello", headers={"Host": "dead.test"}, timeout=10)
    assert r.status_code == 502
    assert r.headers.get("content-type", "").startswith("text/plain")
    assert time.monotonic() - started < 3


def test_connect_failure_is_retried_on_another_endpoint(gw, pattern) -> None:
    """Cluster [dead, live], round robin: every request ends on the live endpoint."""
    with httpx.Client(base_url=gw.url, headers={"Host": "mixed.test"}, timeout=10) as client:
        for i in range(10):
            r = client.get(f"/headers?i={i}")
            assert r.status_code == 200, (i, r.status_code, r.text)
            assert r.json()["target"] == f"/headers?i={i}"
        for i in range(10):  # nothing of the request reached the dead endpoint: POST too
            body = pattern(i, 5000)
            r = client.post("/echo", content=body)
            assert r.status_code == 200 and r.content == body, (i, r.status_code)


def test_slow_upstream_is_504(strict_gw) -> None:
    started = time.monotonic()
    r = httpx.get(strict_gw.url + "/slow?delay=5", timeout=10)
    elapsed = time.monotonic() - started
    assert r.status_code == 504
    assert 0.8 <= elapsed <= 3, f"response timeout is 1s; answered after {elapsed:.2f}s"


def test_upstream_stalling_mid_body_closes_downstream(strict_gw, raw, req) -> None:
    """Head sent, body late: past the response timeout the client sees EOF, no message."""
    with raw(strict_gw.port) as c:
        started = time.monotonic()
        c.send(req("GET", "/slow?delay=5&head=1"))
        data, closed = c.read_until_close(timeout=6)
        elapsed = time.monotonic() - started
    assert closed and elapsed <= 3.5, (closed, elapsed)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split()[1] == b"200", head
    assert body != b"slow" and not body.endswith(b"0\r\n\r\n"), body


def wait_for_stat(origin, key: str, at_least: int, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while origin.stats()[key] < at_least:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _read_error(c, timeout: float = 5.0):
    r = c.read_response(timeout=timeout)
    closed = c.is_closed(timeout=3)
    return r, closed


# name, bytes, accepted statuses, rejected in the head (the origin must see nothing)
MALFORMED = [
    ("cl-te", b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED, {400}, True),
    ("te-cl", b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n"
     b"Content-Length: 44\r\n\r\n0\r\n\r\n" + SMUGGLED, {400}, True),
    ("double-cl-different", b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\n"
     b"Content-Length: 44\r\n\r\nhello" + SMUGGLED, {400}, True),
    ("double-cl-equal", b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\n"
     b"Content-Length: 5\r\n\r\nhello" + SMUGGLED, {400}, True),
    ("cl-list", b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5, 5\r\n\r\n"
     b"hello" + SMUGGLED, {400}, True),
    ("cl-sign", b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: +5\r\n\r\n"
     b"hello" + SMUGGLED, {400}, True),
    ("cl-junk", b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5x\r\n\r\n"
     b"hello" + SMUGGLED, {400}, True),
    ("space-before-colon", b"POST /echo HTTP/1.1\r\nHost: gw.test\r\n"
     b"Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + SMUGGLED,
     {400}, True),
    ("obs-fold", b"GET /hello HTTP/1.1\r\nHost: gw.test\r\nX-Folded: a\r\n b\r\n\r\n"
     + SMUGGLED, {400}, True),
    ("leading-whitespace-line", b"GET /hello HTTP/1.1\r\n Host: gw.test\r\n\r\n" + SMUGGLED,
     {400}, True),
    ("nul-in-value", b"GET /hello HTTP/1.1\r\nHost: gw.test\r\nX-A: a\x00b\r\n\r\n" + SMUGGLED,
     {400}, True),
    ("bare-cr-in-value", b"GET /hello HTTP/1.1\r\nHost: gw.test\r\nX-A: a\rb\r\n\r\n"
     + SMUGGLED, {400}, True),
    ("bare-lf", b"GET /hello HTTP/1.1\nHost: gw.test\nX-A: b\n\n" + SMUGGLED, {400}, True),
    ("bad-field-name", b"GET /hello HTTP/1.1\r\nHost: gw.test\r\nX(A): b\r\n\r\n" + SMUGGLED,
     {400}, True),
    ("bad-method-token", b"G(T /hello HTTP/1.1\r\nHost: gw.test\r\n\r\n" + SMUGGLED,
     {400}, True),
    ("bad-version", b"GET /hello HTTP/1.x\r\nHost: gw.test\r\n\r\n" + SMUGGLED, {400}, True),
    ("not-http", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",
     {400}, True),
    ("ctl-in-target", b"GET /a\x01b HTTP/1.1\r\nHost: gw.test\r\n\r\n" + SMUGGLED, {400}, True),
    ("empty-field-name", b"GET /hello HTTP/1.1\r\nHost: gw.test\r\n: v\r\n\r\n" + SMUGGLED,
     {400}, True),
    ("lowercase-version", b"GET /hello http/1.1\r\nHost: gw.test\r\n\r\n" + SMUGGLED,
     {400}, True),
    ("cl-overflow", b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: "
     + b"9" * 30 + b"\r\n\r\nhello" + SMUGGLED, {400, 413}, True),
    # RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing: reject, or process and
    # close; never read what follows as a next request.
    ("http10-te", b"POST /echo HTTP/1.0\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n" + SMUGGLED, {400, 200}, False),
    ("missing-host", b"GET /hello HTTP/1.1\r\nX-A: b\r\n\r\n" + SMUGGLED, {400}, True),
    ("http-2.0", b"GET /hello HTTP/2.0\r\nHost: gw.test\r\n\r\n" + SMUGGLED, {505}, True),
    ("te-gzip-chunked", b"POST /echo HTTP/1.1\r\nHost: gw.test\r\n"
     b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + SMUGGLED, {501}, True),
    # RFC 9112 §6.3: final coding not chunked in a request -> 400 (some servers say 501).
    ("te-final-not-chunked", b"POST /echo HTTP/1.1\r\nHost: gw.test\r\n"
     b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n" + SMUGGLED, {400, 501}, True),
    ("te-chunked-twice", b"POST /echo HTTP/1.1\r\nHost: gw.test\r\n"
     b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
     {400, 501}, True),
    ("bad-chunk-size", b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked"
     b"\r\n\r\nzz\r\nhello\r\n0\r\n\r\n" + SMUGGLED, {400}, False),
    ("chunk-size-overflow", b"POST /echo HTTP/1.1\r\nHost: gw.test\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n" + b"f" * 20 + b"\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
     {400}, False),
    ("chunk-missing-crlf", b"POST /echo HTTP/1.1\r\nHost: gw.test\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n" + SMUGGLED, {400}, False),
    ("chunk-bad-extension", b"POST /echo HTTP/1.1\r\nHost: gw.test\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n3;\x01\r\nabc\r\n0\r\n\r\n" + SMUGGLED, {400}, False),
    ("target-too-long", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: gw.test\r\n\r\n",
     {414}, True),
    ("head-too-large", b"GET /hello HTTP/1.1\r\nHost: gw.test\r\n"
     + b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 1000) for i in range(20)) + b"\r\n", {431}, True),
    ("too-many-fields", b"GET /hello HTTP/1.1\r\nHost: gw.test\r\n"
     + b"".join(b"X-F%d: v\r\n" % i for i in range(150)) + b"\r\n", {431}, True),
]


@pytest.mark.parametrize("name,wire,statuses,in_head", MALFORMED,
                         ids=[m[0] for m in MALFORMED])
def test_malformed_request_rejected_and_closed(strict_gw, origin, raw, name: str, wire: bytes,
                                               statuses: set[int], in_head: bool) -> None:
    before = origin.stats()
    with raw(strict_gw.port) as c:
        c.send(wire)
        r, closed = _read_error(c)
    assert r.status in statuses, (name, r.status, r.body[:200])
    if r.status >= 400:  # generated by the gateway
        assert (r.header("content-type") or "").startswith("text/plain"), r.headers
    assert closed, "the connection must be closed after the error response"
    after = origin.stats(targets=True)
    assert "/smuggled" not in after["targets"]
    assert after["protocol_errors"] == before["protocol_errors"]
    if in_head:
        assert after["requests"] == before["requests"], "a rejected request reached the origin"


def test_body_over_limit_is_413_without_reading_it(strict_gw, origin, raw) -> None:
    before = origin.stats()["requests"]
    with raw(strict_gw.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5000\r\n\r\n")
        r, closed = _read_error(c)  # answered before any body byte is sent
    assert r.status == 413 and closed
    assert origin.stats()["requests"] == before


def test_chunked_body_over_limit_is_413(strict_gw, raw) -> None:
    with raw(strict_gw.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):
            c.send(b"200\r\n" + b"x" * 0x200 + b"\r\n")
        c.send(b"0\r\n\r\n")
        r, closed = _read_error(c)
    assert r.status == 413 and closed


def test_expect_with_body_over_limit_gets_413_not_100(strict_gw, raw) -> None:
    with raw(strict_gw.port) as c:
        c.send(b"POST /expect HTTP/1.1\r\nHost: gw.test\r\nExpect: 100-continue\r\n"
               b"Content-Length: 5000\r\n\r\n")
        r, closed = _read_error(c)
    assert r.status == 413 and r.informational == [] and closed


def test_slow_upload_is_not_a_response_timeout(strict_gw, raw) -> None:
    """The body trickles for 3 s (never idle for 2 s): the 1 s response timeout only starts
    once the request is sent (as Envoy's route timeout), so the echo comes back."""
    pieces = [b"%02d" % i * 50 for i in range(7)]
    with raw(strict_gw.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: %d\r\n\r\n"
               % sum(map(len, pieces)))
        for p in pieces:
            c.send(p)
            time.sleep(0.5)
        r = c.read_response()
    assert r.status == 200, (r.status, r.body[:200])
    assert r.body == b"".join(pieces)


def test_stalled_request_body_times_out(strict_gw, origin, raw) -> None:
    """No body byte for the idle timeout (2 s): 408 (or a bare close), not a 504. The body
    is within buffer_body_bytes, so the origin never saw any of the request."""
    before = origin.stats()
    with raw(strict_gw.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 100\r\n\r\n0123456789")
        started = time.monotonic()
        data, closed = c.read_until_close(timeout=8)
        elapsed = time.monotonic() - started
    assert closed and 1.5 <= elapsed <= 4.5, (closed, elapsed)
    assert data == b"" or data.split(b"\r\n")[0].split()[1] == b"408", data[:200]
    after = origin.stats()
    assert (after["requests"], after["aborted"]) == (before["requests"], before["aborted"])


def test_stalled_streamed_body_times_out(gateway_factory, origin, raw) -> None:
    """A body over buffer_body_bytes streams: stalled for the idle timeout → 408, and the
    half-sent upstream request is abandoned, not left open."""
    gw = gateway_factory(limits={"buffer_body_bytes": "1KiB"}, timeouts={"idle": "2s"})
    before = origin.stats()["aborted"]
    with raw(gw.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 100000\r\n\r\n"
               + b"x" * 5000)
        started = time.monotonic()
        data, closed = c.read_until_close(timeout=8)
        elapsed = time.monotonic() - started
    assert closed and 1.5 <= elapsed <= 4.5, (closed, elapsed)
    assert data == b"" or data.split(b"\r\n")[0].split()[1] == b"408", data[:200]
    assert wait_for_stat(origin, "aborted", before + 1)


def test_body_at_limit_passes(strict_gw) -> None:
    body = b"k" * 1024
    r = httpx.post(strict_gw.url + "/echo", content=body, timeout=10)
    assert r.status_code == 200 and r.content == body


@pytest.mark.timeout(20)
def test_slowloris_gets_408(strict_gw, raw) -> None:
    head = b"GET /hello HTTP/1.1\r\nHost: gw.test\r\nX-Slow: " + b"s" * 100
    answered = threading.Event()

    def trickle(c) -> None:
        for byte in head:
            if answered.wait(0.2):
                return
            try:
                c.send(bytes([byte]))
            except OSError:
                return

    with raw(strict_gw.port) as c:
        started = time.monotonic()
        sender = threading.Thread(target=trickle, args=(c,), daemon=True)
        sender.start()
        try:
            first = c.recv(timeout=8)
        finally:
            answered.set()
            sender.join()
        elapsed = time.monotonic() - started
        rest, closed = c.read_until_close(timeout=3)
    assert first, "connection closed (or reset) without a 408 response"
    data = first + rest
    assert data.split(b"\r\n")[0].split()[1] == b"408", data[:200]
    assert closed
    assert 0.8 <= elapsed <= 3.5, f"header timeout is 1s; answered after {elapsed:.2f}s"


def test_silent_connection_is_closed(strict_gw, raw) -> None:
    with raw(strict_gw.port) as c:
        started = time.monotonic()
        data, closed = c.read_until_close(timeout=6)
        elapsed = time.monotonic() - started
    assert closed and elapsed <= 4, (closed, elapsed)
    assert data == b"" or data.split(b"\r\n")[0].split()[1] == b"408", data[:200]


def test_gateway_still_serves_after_errors(strict_gw) -> None:
    r = httpx.get(strict_gw.url + "/hello", timeout=10)
    assert r.status_code == 200 and r.json() == {"hello": "world"}
