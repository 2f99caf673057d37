"""Valid but unusual requests that a strict gateway must still accept (RFC 9112), and what it
forwards for them."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(30)

HELLO = b"hello"

VALID_BODIES = [
    ("te-capitalised", b"Transfer-Encoding: Chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    ("te-tab-ows", b"Transfer-Encoding:\tchunked \r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    ("cl-ows", b"Content-Length:   5  \r\n", HELLO),
    ("chunk-leading-zeros", b"Transfer-Encoding: chunked\r\n", b"005\r\nhello\r\n000\r\n\r\n"),
    ("chunk-upper-hex", b"Transfer-Encoding: chunked\r\n",
     b"A\r\nhellohello\r\n0\r\n\r\n"),
    ("chunk-ext-bws", b"Transfer-Encoding: chunked\r\n", b"5 ; a = b\r\nhello\r\n0\r\n\r\n"),
    ("chunk-ext-quoted", b"Transfer-Encoding: chunked\r\n",
     b'5;a="x;y\\"z"\r\nhello\r\n0\r\n\r\n'),
    ("zero-length-cl", b"Content-Length: 0\r\n", b""),
]


@pytest.mark.parametrize("name,framing,body", VALID_BODIES, ids=[v[0] for v in VALID_BODIES])
def test_valid_framing_accepted(gw, raw, name: str, framing: bytes, body: bytes) -> None:
    expected = {"chunk-upper-hex": b"hellohello", "zero-length-cl": b""}.get(name, HELLO)
    with raw(gw.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: gw.test\r\n" + framing + b"\r\n" + body
               + b"GET /hello HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, (name, r.status, r.body[:200])
        assert r.body == expected
        # The next pipelined request starts exactly where the body ended.
        assert c.read_response().json() == {"hello": "world"}


def test_absolute_form_is_forwarded_in_origin_form(gw, raw) -> None:
    with raw(gw.port) as c:
        c.send(b"GET http://gw.test/headers?x=1 HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        r = c.read_response()
    assert r.status == 200, r.body
    assert r.json()["target"] == "/headers?x=1"


def test_field_values_forwarded_verbatim(gw, raw) -> None:
    cookie = "c=" + "v" * 12000  # large but within the 16 KiB head limit
    values = {
        "X-Empty": "",
        "X-Inner-Space": "a  b\tc",
        "X-Obs-Text": "caf\xe9",
        "Cookie": cookie,
    }
    head = "".join(f"{k}: {v}\r\n" for k, v in values.items())
    with raw(gw.port) as c:
        c.send(f"GET /headers HTTP/1.1\r\nHost: gw.test\r\n{head}\r\n".encode("latin-1"))
        r = c.read_response()
    assert r.status == 200, r.body[:200]
    got = {k.lower(): v for k, v in r.json()["headers"]}
    for k, v in values.items():
        assert got.get(k.lower()) == v, (k, got.get(k.lower(), "<missing>")[:80])


def test_limits_are_not_too_tight(gw, raw) -> None:
    target = "/headers?fill=" + "f" * 8000  # under max_target_bytes 8KiB
    fields = "".join(f"X-F{i}: v\r\n" for i in range(90))  # under max_headers 100
    with raw(gw.port) as c:
        c.send(f"GET {target} HTTP/1.1\r\nHost: gw.test\r\n{fields}\r\n".encode())
        r = c.read_response()
    assert r.status == 200, r.body[:200]
    assert r.json()["target"] == target


def test_expect_ignored_for_http10(gw, raw) -> None:
    """RFC 9110 §10.1.1: a 100-continue expectation in an HTTP/1.0 request is ignored."""
    with raw(gw.port) as c:
        c.send(b"POST /echo HTTP/1.0\r\nHost: gw.test\r\nExpect: 100-continue\r\n"
               b"Content-Length: 5\r\n\r\nhello")
        data, closed = c.read_until_close(timeout=5)
    assert closed
    assert data.split(b"\r\n")[0].split()[1] == b"200", data[:200]
    assert data.endswith(b"\r\n\r\nhello"), data[-100:]


def test_pipelined_request_before_a_malformed_one_is_answered(gw, raw) -> None:
    with raw(gw.port) as c:
        c.send(b"GET /hello HTTP/1.1\r\nHost: gw.test\r\n\r\n"
               b"GET /hello HTTP/1.1\r\nHost : gw.test\r\n\r\n")
        first = c.read_response()
        assert first.status == 200 and first.json() == {"hello": "world"}
        second = c.read_response()
        assert second.status == 400
        assert c.is_closed()


def test_absolute_form_authority_overrides_host(gw, raw) -> None:
    """RFC 9112 §3.2.2: with an absolute-form target the Host field is ignored for routing."""
    with raw(gw.port) as c:
        c.send(b"GET http://dead.test/hello HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        r = c.read_response()
    assert r.status == 502, (r.status, r.body[:200])  # routed by authority to the dead cluster


def test_http10_without_host_gets_one_upstream(gw, raw) -> None:
    """Host is optional in HTTP/1.0; the upstream request is HTTP/1.1 and needs one."""
    with raw(gw.port) as c:
        c.send(b"GET /headers HTTP/1.0\r\n\r\n")
        r = c.read_response()
    assert r.status == 200, r.body[:200]
    hosts = [v for k, v in r.json()["headers"] if k.lower() == "host"]
    assert len(hosts) == 1 and hosts[0], r.json()["headers"]
