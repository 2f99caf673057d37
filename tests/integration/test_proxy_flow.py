"""Flow control and connection lifetimes: back-pressure both ways, peers going away mid-stream,
concurrency, the upstream pool's bounds, hop-by-hop response fields, invalid upstream answers."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import pytest
from conftest import held_connections, wait_for

pytestmark = pytest.mark.timeout(60)

MiB = 1 << 20


def in_flight(origin, tag: str) -> list[str]:
    """The requests whose target contains tag that the origin is answering now."""
    return [t for t in origin.stats()["in_flight"] if tag in t]


@pytest.mark.timeout(90)
def test_slow_client_pauses_the_upstream(gw, rss_sampler) -> None:
    """The client stops reading for 3 s: the gateway must stop reading the origin, not buffer."""
    size = 512 * MiB
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.connect(("127.0.0.1", gw.port))
    buf = memoryview(bytearray(MiB))
    with sock, rss_sampler(gw.pid) as rss:
        sock.sendall(f"GET /big?size={size} HTTP/1.1\r\nHost: gw.test\r\n\r\n".encode())
        sock.settimeout(30)
        time.sleep(3)
        stalled_peak = rss.sampled_peak      # live: sampled while the client stalls
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        head, _, first = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        count = len(first)
        while count < size:
            n = sock.recv_into(buf, min(MiB, size - count))
            assert n, f"EOF after {count} bytes"
            count += n
    assert rss.samples > 10, rss.samples
    assert stalled_peak - rss.baseline < 64 * MiB, (
        f"RSS grew by {(stalled_peak - rss.baseline) / MiB:.1f} MiB while the client stalled")
    assert rss.growth < 64 * MiB, f"RSS grew by {rss.growth / MiB:.1f} MiB"


@pytest.mark.timeout(90)
def test_slow_origin_pauses_the_client(gw, rss_sampler) -> None:
    """The origin reads nothing for 3 s: the gateway must stop reading the client."""
    size = 512 * MiB
    block = memoryview(bytes(MiB))
    sock = socket.create_connection(("127.0.0.1", gw.port))
    sent = [0]

    def upload() -> None:
        sock.sendall(f"POST /discard?pause=3 HTTP/1.1\r\nHost: gw.test\r\n"
                     f"Content-Length: {size}\r\n\r\n".encode())
        for _ in range(size // MiB):
            sock.sendall(block)
            sent[0] += MiB

    with sock, rss_sampler(gw.pid) as rss:
        sender = threading.Thread(target=upload, daemon=True)
        sender.start()
        time.sleep(2)
        sent_while_paused = sent[0]
        stalled_peak = rss.sampled_peak      # live: sampled while the client stalls
        sender.join(60)
        assert not sender.is_alive()
        sock.settimeout(30)
        data = b""
        while not data.endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
    assert data.endswith(b'{"received": %d}' % size), data
    assert sent_while_paused < 128 * MiB, f"{sent_while_paused / MiB:.0f} MiB accepted meanwhile"
    assert stalled_peak - rss.baseline < 64 * MiB
    assert rss.growth < 64 * MiB, f"RSS grew by {rss.growth / MiB:.1f} MiB"


def test_client_gone_mid_download(gw, origin) -> None:
    for i in range(3):
        with socket.create_connection(("127.0.0.1", gw.port)) as sock:
            sock.sendall(f"GET /big?size=1073741824&gone-down={i} HTTP/1.1\r\n"
                         "Host: gw.test\r\n\r\n".encode())
            got = 0
            while got < 2 * MiB:
                got += len(sock.recv(MiB))
            assert in_flight(origin, f"gone-down={i}")      # the origin is streaming it
    # The origin's streams are cut too (their connections closed, not left streaming 1 GiB).
    wait_for(lambda: not in_flight(origin, "gone-down="), what="the origin's streams cut")
    assert httpx.get(gw.url + "/hello", timeout=10).json() == {"hello": "world"}


def test_client_gone_mid_upload(gw, origin) -> None:
    before = origin.stats()["aborted"]
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.sendall(b"POST /discard?gone-up=1 HTTP/1.1\r\nHost: gw.test\r\n"
                     b"Content-Length: 10485760\r\n\r\n")
        sock.sendall(b"u" * MiB)
        wait_for(lambda: in_flight(origin, "gone-up=1"), what="the upload at the origin")
    # The upstream request cannot be completed: the gateway must abort that connection.
    wait_for(lambda: origin.stats()["aborted"] > before, what="the upstream upload aborted")
    assert httpx.get(gw.url + "/hello", timeout=10).json() == {"hello": "world"}


def test_many_concurrent_clients(gw) -> None:
    async def client(i: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        ok = 0
        for j in range(5):
            writer.write(f"GET /headers?c={i}&r={j} HTTP/1.1\r\nHost: gw.test\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            body = await reader.readexactly(length)
            ok += head.startswith(b"HTTP/1.1 200") and f"c={i}&r={j}".encode() in body
        writer.close()
        return ok

    async def run() -> list[int]:
        return await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(200))), 30)

    assert asyncio.run(run()) == [5] * 200


def test_pool_keeps_at_most_max_idle(gateway_factory, origin) -> None:
    gw = gateway_factory(pool={"max_idle": 2, "idle_timeout": "60s"})
    key = f"pool-{time.monotonic_ns()}"

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=gw.url, timeout=20,
                                     limits=httpx.Limits(max_connections=20)) as client:
            # all 12 are held at the origin until all 12 are there: 12 upstream connections
            rs = asyncio.gather(*(client.get(f"/hold?key={key}&i={i}") for i in range(12)))
            held = asyncio.to_thread(wait_for, lambda: len(in_flight(origin, key)) == 12,
                                     20, "12 requests held at the origin")
            await held
            assert held_connections(gw.pid, origin.port) == 12
            origin.release(key)
            return [r.status_code for r in await rs]

    assert asyncio.run(burst()) == [200] * 12
    # 12 connections came back to the pool: all but max_idle are closed
    wait_for(lambda: held_connections(gw.pid, origin.port) <= 2, what="pool trimmed to 2")
    assert held_connections(gw.pid, origin.port) == 2


def test_pool_idle_timeout(gateway_factory, origin) -> None:
    gw = gateway_factory(pool={"max_idle": 64, "idle_timeout": "2s"})
    assert httpx.get(gw.url + "/hello", timeout=10).status_code == 200
    assert held_connections(gw.pid, origin.port) == 1  # pooled, open
    wait_for(lambda: held_connections(gw.pid, origin.port) == 0, timeout=15,
             what="the idle pooled connection closed")


def test_hop_by_hop_response_fields_removed(gw, raw, req) -> None:
    with raw(gw.port) as c:
        for _ in range(2):  # the downstream connection stays usable
            c.send(req("GET", "/hop"))
            r = c.read_response()
            assert r.status == 200 and r.body == b"hop"
            assert r.header("x-hop") is None, r.headers
            assert "x-hop" not in (r.header("connection") or "").lower(), r.headers


@pytest.mark.parametrize("kind", ["garbage", "double-cl"])
def test_invalid_upstream_response_is_502(gw, kind: str) -> None:
    r = httpx.get(f"{gw.url}/bad-response?kind={kind}", timeout=10)
    assert r.status_code == 502, (r.status_code, r.content)


def test_upstream_reset_after_request_is_502_not_retried(gw, origin) -> None:
    before = origin.stats(targets=True)
    r = httpx.post(gw.url + "/reset", content=b"not idempotent", timeout=10)
    after = origin.stats(targets=True)
    assert r.status_code == 502
    # The request reached the origin once; it was not replayed.
    assert after["requests"] - before["requests"] == 1


def test_upstream_connection_close_is_not_reused(gateway_factory, origin, raw, req) -> None:
    gw = gateway_factory()  # an empty pool: each request needs a new upstream connection
    before = origin.stats()["connections"]
    with raw(gw.port) as c:
        for i in range(10):  # POST: a reuse of a closed connection could not be retried
            c.send(req("POST", f"/echo?conn_close=1&i={i}", body=b"body %d" % i))
            r = c.read_response()
            assert r.status == 200 and r.body == b"body %d" % i, (i, r.status, r.body)
            # The origin's Connection: close concerns the upstream hop only.
            assert "close" not in (r.header("connection") or "").lower()
    assert origin.stats()["connections"] - before == 10


def test_early_hints_then_final_response(gw, raw, req) -> None:
    with raw(gw.port) as c:
        c.send(req("GET", "/early-hints") + req("GET", "/hello"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"hints"
        assert r.informational in ([], [103])
        assert c.read_response().json() == {"hello": "world"}


def test_large_response_head_passes(gw) -> None:
    r = httpx.get(gw.url + "/hello?pad=12000", timeout=10)
    assert r.status_code == 200 and r.headers["x-pad"] == "p" * 12000


def test_half_closed_client_still_gets_its_response(gw, raw, req) -> None:
    with raw(gw.port) as c:
        c.send(req("GET", "/slow?delay=0.3"))
        c.sock.shutdown(socket.SHUT_WR)  # like `nc -q` or `curl` piping a request
        data, closed = c.read_until_close(timeout=5)
    assert closed
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"\r\n\r\nslow"), data


def test_early_response_while_the_client_uploads(gw, raw) -> None:
    """The origin answers without reading the body (503); the client, still sending, must get
    that response (a lingering close, not a reset that discards it)."""
    with raw(gw.port) as c:
        c.send(b"POST /status/503 HTTP/1.1\r\nHost: gw.test\r\n"
               b"Content-Length: 104857600\r\n\r\n")
        try:
            c.send(b"e" * MiB)
        except OSError:
            pass  # the gateway may stop reading once answered; the answer must still arrive
        r = c.read_response(timeout=10)
    assert r.status == 503 and r.body == b"status 503"


def test_many_pipelined_requests(gw, raw, req) -> None:
    n = 500
    with raw(gw.port) as c:
        c.send(b"".join(req("GET", f"/headers?i={i}") for i in range(n)))
        for i in range(n):
            r = c.read_response()
            assert r.status == 200 and r.json()["target"] == f"/headers?i={i}", i
