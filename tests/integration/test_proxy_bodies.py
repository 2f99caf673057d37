"""Message bodies: chunked both ways, 100-continue, close-delimited and aborted responses,
bodiless statuses, and 1 GiB streams in bounded memory."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

pytestmark = pytest.mark.timeout(60)

GiB = 1 << 30
MiB = 1 << 20


def read_head(sock: socket.socket, timeout: float = 10.0) -> tuple[bytes, bytes]:
    """Reads up to the end of a response head. Returns (head, bytes already read after it)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a full head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def head_field(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def test_chunked_request_with_extensions(gw, origin, raw) -> None:
    before = origin.stats()["protocol_errors"]
    with raw(gw.port) as c:
        c.send(b"POST /headers HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;name=value\r\nhello\r\n7;a=1;b=\"q s\"\r\n, world\r\n0\r\n\r\n")
        info = c.read_response().json()
        names = [n.lower() for n, _ in info["headers"]]
        # Re-framed, never both framings (RFC 9112 §6.1).
        assert ("content-length" in names) != ("transfer-encoding" in names), info["headers"]
        assert info["body_length"] == 12

        c.send(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;name=value\r\nhello\r\n7;a=1;b=\"q s\"\r\n, world\r\n"
               b"1\r\n!\r\n0\r\nX-Trailer: t\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b"hello, world!"
        # The connection is still usable after a chunked body with trailers.
        c.send(b"GET /hello HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        assert c.read_response().json() == {"hello": "world"}
    assert origin.stats()["protocol_errors"] == before


def test_chunked_request_streamed_slowly(gw, raw, pattern) -> None:
    """Chunks trickle in; the body is streamed, and arrives whole."""
    pieces = [pattern(i * 1000, 1000 + i) for i in range(8)]
    with raw(gw.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        for p in pieces:
            c.send(b"%x\r\n" % len(p) + p + b"\r\n")
            time.sleep(0.05)
        c.send(b"0\r\n\r\n")
        r = c.read_response()
    assert r.status == 200 and r.body == b"".join(pieces)


def test_large_chunked_upload(gw, raw) -> None:
    chunk = b"z" * (256 * 1024)
    total = 64 * MiB
    with raw(gw.port) as c:
        c.send(b"POST /discard HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        for _ in range(total // len(chunk)):
            c.send(frame)
        c.send(b"0\r\n\r\n")
        r = c.read_response(timeout=30)
    assert r.status == 200 and r.json() == {"received": total}


@pytest.mark.parametrize("n,size", [(5, 1000), (300, 65536)])
def test_chunked_response_intact(gw, raw, req, chunk_byte, n: int, size: int) -> None:
    expected = b"".join(chunk_byte(i) * size for i in range(n))
    with raw(gw.port) as c:
        c.send(req("GET", f"/chunked?n={n}&size={size}"))
        r = c.read_response(timeout=30)
        assert r.status == 200 and r.body == expected
        c.send(req("GET", "/hello"))  # framing ended exactly where it should
        assert c.read_response().json() == {"hello": "world"}
    with httpx.stream("GET", f"{gw.url}/chunked?n={n}&size={size}", timeout=30) as resp:
        assert resp.read() == expected


def test_expect_100_continue(gw, raw) -> None:
    body = b"sent only after 100 Continue"
    with raw(gw.port) as c:
        c.send(b"POST /expect HTTP/1.1\r\nHost: gw.test\r\nExpect: 100-continue\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body))
        interim = c.recv(timeout=5)
        assert interim.startswith(b"HTTP/1.1 100"), interim
        assert interim.endswith(b"\r\n\r\n"), interim  # nothing but the interim response
        c.send(body)
        r = c.read_response()
        assert r.status == 200 and r.body == body
        # A request without Expect on the same connection gets no 100.
        c.send(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 3\r\n\r\nabc")
        r = c.read_response()
        assert r.status == 200 and r.body == b"abc" and r.informational == []


def test_close_delimited_response_is_reframed(gw, raw, req, pattern) -> None:
    size = 300_000
    r = httpx.get(f"{gw.url}/close-delimited?size={size}", timeout=10)
    assert r.status_code == 200 and r.content == pattern(0, size)
    with raw(gw.port) as c:
        c.send(req("GET", f"/close-delimited?size={size}"))
        r = c.read_response()
        assert r.body == pattern(0, size)
        framed = r.header("content-length") is not None or r.header("transfer-encoding")
        if framed:  # re-framed: the connection may stay open and must still work
            c.send(req("GET", "/hello"))
            assert c.read_response().json() == {"hello": "world"}
        else:  # delimited by close downstream too
            assert c.is_closed()


@pytest.mark.parametrize("rst", [False, True], ids=["fin", "rst"])
def test_upstream_abort_mid_body_closes_downstream(gw, raw, req, pattern, rst: bool) -> None:
    size, sent = 1_000_000, 300_000
    with raw(gw.port) as c:
        c.send(req("GET", f"/abort?size={size}&sent={sent}{'&rst=1' if rst else ''}"))
        head, body = read_head(c.sock)
        assert head.split(b"\r\n")[0].split()[1] == b"200", head
        rest, closed = c.read_until_close(timeout=5)
        body += rest
    assert closed, "the downstream connection must be closed when the upstream dies"
    te = head_field(head, b"transfer-encoding")
    if te is None:
        assert head_field(head, b"content-length") == str(size).encode(), head
        assert len(body) < size
        assert body == pattern(0, len(body))
    else:  # re-framed as chunked: the terminating 0-size chunk must never be sent
        assert not body.endswith(b"0\r\n\r\n"), body[-20:]
    # The gateway still serves (and did not pool the dead upstream connection).
    assert httpx.get(gw.url + "/hello", timeout=10).json() == {"hello": "world"}


def test_bodiless_statuses(gw, raw, req) -> None:
    with raw(gw.port) as c:
        # 304 carries Content-Length: 5 with no body; a gateway waiting for 5 bytes times out.
        c.send(req("GET", "/status/204") + req("GET", "/status/304") + req("GET", "/hello"))
        r204 = c.read_response(timeout=5)
        assert r204.status == 204 and r204.body == b""
        assert r204.header("transfer-encoding") is None
        r304 = c.read_response(timeout=5)
        assert r304.status == 304 and r304.body == b""
        assert r304.header("etag") == '"v1"'
        assert c.read_response(timeout=5).json() == {"hello": "world"}
        # Nothing left over on the wire after the three responses.
        c.send(req("HEAD", "/chunked?n=3&size=10") + req("GET", "/hello"))
        assert c.read_response(method=b"HEAD").body == b""
        assert c.read_response().json() == {"hello": "world"}


@pytest.mark.timeout(150)
def test_1gib_download_bounded_memory(gw, rss_sampler, pattern) -> None:
    # Warm up: the first requests allocate pools, buffers, code paths.
    for _ in range(3):
        httpx.get(f"{gw.url}/big?size={8 * MiB}", timeout=30).raise_for_status()
    sock = socket.create_connection(("127.0.0.1", gw.port))
    buf = bytearray(MiB)
    view = memoryview(buf)
    with sock, rss_sampler(gw.pid) as rss:
        started = time.monotonic()
        sock.sendall(f"GET /big?size={GiB} HTTP/1.1\r\nHost: gw.test\r\n\r\n".encode())
        head, first = read_head(sock, timeout=30)
        assert head.split(b"\r\n")[0].split()[1] == b"200", head
        assert head_field(head, b"content-length") == str(GiB).encode(), head
        assert first == pattern(0, len(first))
        count = len(first)
        sock.settimeout(30)
        while count < GiB:
            n = sock.recv_into(view, min(MiB, GiB - count))
            assert n, f"EOF after {count} of {GiB} bytes"
            count += n
        elapsed = time.monotonic() - started
        sock.settimeout(0.2)
        try:
            extra = sock.recv(1)
        except TimeoutError:
            extra = b""
    assert count == GiB and extra == b""
    print(f"1 GiB download: {elapsed:.2f}s ({GiB / elapsed / MiB:.0f} MiB/s), {rss.summary()}")
    assert rss.growth < 64 * MiB, f"RSS grew by {rss.growth / MiB:.1f} MiB"


@pytest.mark.timeout(150)
def test_1gib_upload_bounded_memory(gw, rss_sampler) -> None:
    httpx.post(f"{gw.url}/discard", content=b"w" * (8 * MiB), timeout=30).raise_for_status()
    block = memoryview(bytes(MiB))
    sock = socket.create_connection(("127.0.0.1", gw.port))
    with sock, rss_sampler(gw.pid) as rss:
        started = time.monotonic()
        sock.settimeout(30)
        sock.sendall(f"POST /discard HTTP/1.1\r\nHost: gw.test\r\n"
                     f"Content-Length: {GiB}\r\n\r\n".encode())
        for _ in range(GiB // MiB):
            sock.sendall(block)
        head, body = read_head(sock, timeout=30)
        elapsed = time.monotonic() - started
        length = int(head_field(head, b"content-length") or b"0")
        while len(body) < length:
            chunk = sock.recv(65536)
            assert chunk
            body += chunk
    assert head.split(b"\r\n")[0].split()[1] == b"200", head
    assert body == b'{"received": %d}' % GiB
    print(f"1 GiB upload: {elapsed:.2f}s ({GiB / elapsed / MiB:.0f} MiB/s), {rss.summary()}")
    assert rss.growth < 64 * MiB, f"RSS grew by {rss.growth / MiB:.1f} MiB"
