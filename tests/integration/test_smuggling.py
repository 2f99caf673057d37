"""Request smuggling and framing, request side and response side, over raw sockets.

Request side: a Connection option never removes a field that frames or routes the message
(RFC 9110 §7.6.1), and no byte of a request whose body framing is bad reaches the origin when
the body fits in ``buffer_body_bytes`` (it is received and validated whole first). Response
side: the same Connection rule (→ 502) and bad framing never passed on as a whole response.
"""

from __future__ import annotations

import h11
import pytest

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: gw.test\r\n\r\n"


def _chunked(*chunks: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


# (name, request bytes, expected status)
REQUEST_CASES = [
    ("connection-content-length",
     b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nConnection: Content-Length\r\n"
     b"Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED, 400),
    ("connection-list-content-length-mixed-case",
     b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nConnection: keep-alive ,  cOnTeNt-LeNgTh\r\n"
     b"Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED, 400),
    ("second-connection-field-transfer-encoding",
     b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nConnection: keep-alive\r\n"
     b"Connection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n"
     + _chunked(SMUGGLED), 400),
    ("connection-host",
     b"GET /hello HTTP/1.1\r\nHost: gw.test\r\nConnection: Host\r\n\r\n", 400),
    ("connection-x-forwarded-for",
     (b"GET /hello HTTP/1.1\r\nHost: gw.test\r\nConnection: X-Forwarded-For\r\n"
     b"X-Forwarded-For: 10.0.0.1\r\n\r\n"), 400),
    ("connection-x-request-id",
     b"GET /hello HTTP/1.1\r\nHost: gw.test\r\nConnection: x-request-id\r\n\r\n", 400),
    ("chunk-size-0x-prefix",
     (b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0x5\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-size-over-64-bits",
     (b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"10000000000000005\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-size-not-hex",
     (b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"zz\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-data-longer-than-size",
     b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"5\r\nhello" + SMUGGLED + b"\r\n0\r\n\r\n", 400),
    ("bad-chunk-after-good-chunks",
     b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
     + b"400\r\n" + b"a" * 1024 + b"\r\n" + b"400\r\n" + b"b" * 1024 + b"\r\n"
     + b"-1\r\nx\r\n0\r\n\r\n", 400),
    ("content-length-with-chunked",
     b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n" + _chunked(SMUGGLED), 400),
    ("two-content-lengths",
     (b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
     b"hello!"), 400),
    ("chunked-not-last",
     b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n"
     + _chunked(SMUGGLED), 400),
]


@pytest.mark.parametrize("name,data,status", REQUEST_CASES, ids=[c[0] for c in REQUEST_CASES])
def test_request_framing_table(gw, origin, raw, name, data, status) -> None:
    before = origin.stats(targets=True)
    with raw(gw.port) as c:
        c.send(data)
        r = c.read_response()
        assert r.status == status, (name, r.status, r.body[:200])
        assert c.is_closed(), f"{name}: the connection stays open after {status}"
    after = origin.stats(targets=True)
    assert after["requests"] == before["requests"], f"{name}: the origin saw a request"
    assert "/smuggled" not in after["targets"]


def test_harmless_connection_option_is_dropped(gw, raw) -> None:
    """A Connection option naming an end-to-end field the gateway does not set still
    removes that field (RFC 9110 §7.6.1) and the request goes through."""
    with raw(gw.port) as c:
        c.send(b"GET /headers HTTP/1.1\r\nHost: gw.test\r\nConnection: X-Secret\r\n"
               b"X-Secret: 1\r\n\r\n")
        r = c.read_response()
    assert r.status == 200
    names = {n.lower() for n, _ in r.json()["headers"]}
    assert "x-secret" not in names and "connection" not in names


def test_small_chunked_body_goes_upstream_with_content_length(gw, raw) -> None:
    """A buffered chunked body is forwarded with its length known (RFC 9112 §7.1.3)."""
    body = b"x" * 3000
    with raw(gw.port) as c:
        c.send(b"POST /headers HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
               + _chunked(body[:1000], body[1000:]))
        r = c.read_response()
    assert r.status == 200
    info = r.json()
    names = {n.lower(): v for n, v in info["headers"]}
    assert names.get("content-length") == "3000" and "transfer-encoding" not in names
    assert info["body_length"] == 3000


def test_large_chunked_body_streams(gw, raw) -> None:
    """Over buffer_body_bytes (64 KiB by default) a chunked body streams, re-chunked."""
    parts = [bytes([65 + i]) * 20000 for i in range(6)]
    with raw(gw.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
               + _chunked(*parts))
        r = c.read_response()
    assert r.status == 200 and r.body == b"".join(parts)


# (kind of bad response, what the client gets)
RESPONSE_CASES = ["conn-cl", "conn-te", "cl-te", "double-cl", "garbage"]


@pytest.mark.parametrize("kind", RESPONSE_CASES)
def test_response_framing_table(gw, raw, kind) -> None:
    """The response twins: a response whose framing is in doubt is never passed on: 502."""
    with raw(gw.port) as c:
        c.send(b"GET /bad-response?kind=%s HTTP/1.1\r\nHost: gw.test\r\n\r\n" % kind.encode())
        r = c.read_response()
    assert r.status == 502, (kind, r.status, r.body[:200])


def test_bad_chunk_in_response_never_looks_complete(gw, raw) -> None:
    """The head already went out when the bad chunk size arrives: the client connection is
    cut, so the message can never be taken as whole."""
    with raw(gw.port) as c:
        c.send(b"GET /bad-response?kind=bad-chunk HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        data, closed = c.read_until_close(timeout=5)
    assert closed
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "gw.test")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    conn.receive_data(b"")
    events = []
    try:
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA or type(ev) is h11.ConnectionClosed:
                break
            events.append(ev)
    except h11.RemoteProtocolError:
        pass
    assert not any(type(ev) is h11.EndOfMessage for ev in events), events
