"""Edge cases of the proxy found in review: path normalization, methods a gateway refuses,
timeouts around request bodies and slow clients, retries that land on pooled connections,
pipelining with a half-closed client, and errors after a response has started."""

from __future__ import annotations

import socket
import time

import pytest
from conftest import wait_for

pytestmark = pytest.mark.timeout(60)

MiB = 1 << 20


# Dot segments are resolved before routing, no longer refused: test_path_normalization.py.


def test_dotted_names_are_not_dot_segments(gw, raw) -> None:
    with raw(gw.port) as c:
        c.send(b"GET /hello/...x/.well-known/a..b HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        assert c.read_response().status == 404            # the origin's answer


@pytest.mark.parametrize("line, status", [
    (b"CONNECT gw.test:443 HTTP/1.1", 501),
    (b"TRACE / HTTP/1.1", 405),
    (b"GET http:///headers HTTP/1.1", 400),            # absolute-form without a host
    (b"GET http://user@gw.test/headers HTTP/1.1", 400),
])
def test_methods_and_targets_a_gateway_refuses(gw, raw, line, status) -> None:
    with raw(gw.port) as c:
        c.send(line + b"\r\nHost: gw.test\r\n\r\n")
        assert c.read_response().status == status


def test_a_body_that_never_comes_times_out(strict_gw, raw) -> None:
    """Content-Length promised, no byte sent: 408 after the idle timeout (2 s), not a hang."""
    with raw(strict_gw.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 10\r\n\r\n")
        started = time.monotonic()
        data, closed = c.read_until_close(timeout=10)
    assert closed and 1.5 <= time.monotonic() - started <= 8
    assert data.startswith(b"HTTP/1.1 408"), data[:100]


def test_connect_failure_retry_on_a_pooled_connection_sends_the_body(gateway_factory,
                                                                    raw) -> None:
    gw = gateway_factory()
    with raw(gw.port) as c:
        for _ in range(4):      # warm the live endpoint's pool through the mixed cluster
            c.send(b"GET /hello HTTP/1.1\r\nHost: mixed.test\r\n\r\n")
            assert c.read_response().status == 200
        c.send(b"POST /echo HTTP/1.1\r\nHost: mixed.test\r\nContent-Length: 5\r\n\r\nhello")
        r = c.read_response(timeout=10)
    assert r.status == 200 and r.body == b"hello"


def test_delayed_retry_leaves_the_connection_readable(gateway_factory, origin, raw) -> None:
    live = f"127.0.0.1:{origin.port}"
    gw = gateway_factory(clusters=[{"name": "origin", "endpoints": [live],
                                    "retries": {"attempts": 2, "on": ["503"]}}],
                         routes=[{"match": {"path_prefix": "/"}, "cluster": "origin"}])
    with raw(gw.port) as c, raw(gw.port) as other:
        # two requests at once leave two pooled connections: the retry will reuse one
        for conn in (c, other):
            conn.send(b"GET /slow?delay=0.3 HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        assert c.read_response().status == 200 and other.read_response().status == 200
        c.send(b"GET /slow?delay=0&status=503&retry_after=1 HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        assert c.read_response(timeout=10).status == 503       # retried once after 1 s
        c.send(b"GET /hello HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        assert c.read_response(timeout=5).status == 200        # still reading requests


def test_pipelined_requests_are_answered_after_a_half_close(gw, raw) -> None:
    """Two requests and the half-close in one go: both are answered, in order, then the
    gateway closes. Whether the second response already says "Connection: close" depends on
    whether the gateway read the FIN before that response's head went out (both are correct;
    the next test pins the case where it certainly had)."""
    with raw(gw.port) as c:
        c.send(b"GET /headers?a HTTP/1.1\r\nHost: gw.test\r\n\r\n"
               b"GET /headers?b HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        first = c.read_response()
        second = c.read_response()
        assert (first.status, second.status) == (200, 200)
        assert (first.json()["target"], second.json()["target"]) == ("/headers?a", "/headers?b")
        assert first.header("connection") is None      # a request was still to be answered
        assert second.header("connection") in (None, "close")
        assert c.is_closed()


def test_the_response_after_a_half_close_says_close(gw, raw, origin) -> None:
    """The second response is held at the origin until the client has half-closed (and the
    gateway has forwarded it, so the FIN is queued before that response): it says close."""
    key = f"half-close-{time.monotonic_ns()}"
    with raw(gw.port) as c:
        c.send(f"GET /hello?a HTTP/1.1\r\nHost: gw.test\r\n\r\n"
               f"GET /hold?key={key} HTTP/1.1\r\nHost: gw.test\r\n\r\n".encode())
        c.sock.shutdown(socket.SHUT_WR)
        first = c.read_response()
        wait_for(lambda: origin.served(f"/hold?key={key}"), what="the 2nd request at the origin")
        origin.release(key)
        second = c.read_response()
        assert (first.status, second.status) == (200, 200)
        assert second.body == f"released {key}".encode()
        assert first.header("connection") is None
        assert second.header("connection") == "close"
        assert c.is_closed()


def test_via_names_the_received_protocol(gw, raw) -> None:
    with raw(gw.port) as c:
        c.send(b"GET /headers HTTP/1.0\r\nHost: gw.test\r\n\r\n")
        r = c.read_response()
    seen = {k.lower(): v for k, v in r.json()["headers"]}
    assert seen["via"] == "1.0 gwcore"
    assert r.header("via") == "1.1 gwcore"     # the origin answered in HTTP/1.1


def test_a_slow_client_is_not_an_upstream_timeout(strict_gw, raw) -> None:
    """Response timeout 1 s: a client that stops reading for 1.5 s (within the 2 s idle
    timeout) still gets every byte."""
    size = 64 * MiB
    with raw(strict_gw.port, timeout=20) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.send(f"GET /big?size={size} HTTP/1.1\r\nHost: gw.test\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += c.sock.recv(65536)
        got = len(head.partition(b"\r\n\r\n")[2])
        time.sleep(1.5)
        buf = bytearray(MiB)
        while got < size:
            n = c.sock.recv_into(buf)
            assert n, f"closed after {got} of {size} bytes"
            got += n
    assert got == size


def test_a_bad_chunk_after_the_response_started_resets_instead_of_a_second_response(
        gw, raw) -> None:
    with raw(gw.port) as c:
        # a first chunk larger than the body the gateway buffers before it picks an upstream
        # (buffer_body_bytes, 64 KiB): the request is streamed, so the origin answers mid-body
        c.send(b"POST /slow?delay=10&head=1 HTTP/1.1\r\nHost: gw.test\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n40000\r\n" + b"h" * 0x40000 + b"\r\n")
        data = b""
        while b"\r\n\r\n" not in data:                # the origin's head is out
            chunk = c.recv()
            assert chunk, f"closed before the response head: {data!r}"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ") and b"content-length: 4" in head.lower(), head
        c.send(b"zz\r\n")                               # not a chunk size
        rest, closed = c.read_until_close(timeout=10)
    assert closed, "the connection stays open after the bad chunk"
    assert b"HTTP/1.1 " not in rest, rest[:300]          # no second response inside the first
    assert len(body + rest) < 4, body + rest             # cut short (the body comes after 10 s)
def test_a_client_that_stops_reading_is_dropped(strict_gw, raw, origin) -> None:
    """A client that never reads a 256 MiB response: closed after the idle timeout (2 s), and
    the upstream connection of that exchange is closed too (nothing held forever)."""
    tag = f"stall={time.monotonic_ns()}"

    def streaming() -> bool:
        return any(tag in t for t in origin.stats()["in_flight"])

    with raw(strict_gw.port, timeout=20) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.send(f"GET /big?size={256 * MiB}&{tag} HTTP/1.1\r\nHost: gw.test\r\n\r\n".encode())
        wait_for(streaming, what="the origin streaming the response")
        # never read meanwhile: the gateway drops the client and closes that upstream exchange
        wait_for(lambda: not streaming(), timeout=20, what="the upstream exchange closed")
        got, closed = 0, False
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                n = len(c.sock.recv(MiB))
            except ConnectionResetError:
                closed = True
                break
            if n == 0:
                closed = True
                break
            got += n
    assert closed and got < 256 * MiB, got


def test_an_early_answer_reaches_a_client_still_uploading(strict_gw, raw) -> None:
    """413 while the client is still sending a 32 MiB body: the gateway half-closes and
    discards the rest for a moment instead of closing with unread data (which sends RST and
    can destroy the response in the client's buffers), like NGINX's lingering close."""
    with raw(strict_gw.port, timeout=10) as c:
        c.send(f"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: {32 * MiB}\r\n\r\n"
               .encode())
        chunk = b"x" * MiB
        sent, error = 0, None
        for _ in range(32):
            try:
                c.sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError) as e:
                error = e
                break
            sent += len(chunk)
        r = c.read_response(timeout=10)
    assert r.status == 413
    assert error is None and sent == 32 * MiB, (error, sent)   # no reset while uploading
