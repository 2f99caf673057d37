"""Differential test: gwcore's parser against httptools (llhttp) on generated valid requests.

Hypothesis builds requests (methods, RFC 3986 targets, 0-30 fields whose values carry HTAB,
obs-text and OWS, Content-Length bodies, Connection options, HTTP/1.0 and 1.1), alone and
pipelined. Both parsers must agree on method, target, version, fields, content length, body
bytes and keep-alive; gwcore must also agree with the generator itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import httptools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gwcore.http import parse_request, set_simd

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# RFC 3986 pchar / query characters (unreserved, sub-delims, ':', '@', '/', '?')
URI = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/?"
HOSTCH = "abcdefghijklmnopqrstuvwxyz0123456789-."
SPECIAL = {b"host", b"content-length", b"transfer-encoding", b"connection", b"upgrade",
           b"expect", b"keep-alive", b"proxy-connection", b"te", b"trailer"}
METHODS = [b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE",
           b"PROPFIND", b"MKCOL", b"PURGE", b"REPORT", b"SEARCH"]
LEVELS = list(range(set_simd(2) + 1))

names = st.text(TCHAR, min_size=1, max_size=20).map(str.encode).filter(
    lambda n: n.lower() not in SPECIAL)
ows = st.sampled_from([b"", b" ", b"\t", b"  ", b" \t "])
value_bytes = st.lists(
    st.one_of(
        st.integers(0x21, 0x7E),
        st.sampled_from([0x20, 0x09]),
        st.integers(0x80, 0xFF),
    ),
    max_size=60,
).map(bytes)


@dataclass
class Gen:
    """One generated request and what it means."""

    raw: bytes
    method: bytes
    target: bytes
    minor: int
    fields: list[tuple[bytes, bytes]]  # values as a recipient sees them (OWS trimmed)
    body: bytes
    keep_alive: bool


@st.composite
def requests(draw: st.DrawFn) -> Gen:
    method = draw(st.sampled_from(METHODS))
    target = b"/" + draw(st.text(URI, max_size=80)).encode()
    minor = draw(st.sampled_from([0, 1]))
    fields = [(draw(names), draw(value_bytes)) for _ in range(draw(st.integers(0, 30)))]
    if minor == 1 or draw(st.booleans()):
        host = draw(st.text(HOSTCH, min_size=1, max_size=30)).encode()
        port = draw(st.sampled_from([b"", b":80", b":8080"]))
        fields.insert(draw(st.integers(0, len(fields))), (b"Host", host + port))
    body = b""
    if draw(st.booleans()):
        body = draw(st.binary(max_size=50))
        fields.insert(draw(st.integers(0, len(fields))), (b"Content-Length", b"%d" % len(body)))
    conn = draw(st.sampled_from([None, b"close", b"keep-alive", b"x-custom", b"Keep-Alive, foo"]))
    if conn is not None:
        fields.insert(draw(st.integers(0, len(fields))), (b"Connection", conn))
    lines = []
    seen = []
    for name, value in fields:
        lines.append(name + b":" + draw(ows) + value + draw(ows) + b"\r\n")
        seen.append((name, value.strip(b" \t")))
    raw = b"%s %s HTTP/1.%d\r\n" % (method, target, minor) + b"".join(lines) + b"\r\n" + body
    opts = conn.lower() if conn else b""
    keep_alive = b"close" not in opts and (minor == 1 or b"keep-alive" in opts)
    return Gen(raw, method, target, minor, seen, body, keep_alive)


class Collector:
    """httptools protocol collecting every message."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.cur: dict = {}
        self.parser = httptools.HttpRequestParser(self)

    def on_message_begin(self) -> None:
        self.cur = {"url": b"", "headers": [], "body": b""}

    def on_url(self, url: bytes) -> None:
        self.cur["url"] += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.cur["headers"].append((name, value))

    def on_headers_complete(self) -> None:
        self.cur["method"] = self.parser.get_method()
        self.cur["version"] = self.parser.get_http_version()
        self.cur["keep_alive"] = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.cur["body"] += body

    def on_message_complete(self) -> None:
        self.messages.append(self.cur)


def llhttp_parse(raw: bytes) -> list[tuple]:
    c = Collector()
    out = []
    c.parser.feed_data(raw)
    for m in c.messages:
        headers = [(n, v.strip(b" \t")) for n, v in m["headers"]]
        out.append((m["method"], m["url"], m["version"], headers, m["body"], m["keep_alive"]))
    return out


def gwcore_parse(raw: bytes) -> list[tuple]:
    out = []
    off = 0
    while off < len(raw):
        r = parse_request(raw, off)
        assert r is not None, f"incomplete at {off}"
        start = off + r.head_length
        n = r.content_length or 0
        body = raw[start : start + n]
        out.append((r.method, r.target, f"1.{r.version_minor}", r.headers, body, r.keep_alive))
        assert r.get(b"host") == next((v for k, v in r.headers if k.lower() == b"host"), None)
        off = start + n
    return out


def expected(g: Gen) -> tuple:
    return (g.method, g.target, f"1.{g.minor}", g.fields, g.body, g.keep_alive)


SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("level", LEVELS)
@SETTINGS
@given(g=requests())
def test_single_request_matches_llhttp(level: int, g: Gen) -> None:
    set_simd(level)
    ours = gwcore_parse(g.raw)
    assert ours == [expected(g)]
    assert llhttp_parse(g.raw) == ours
    r = parse_request(g.raw)
    assert r.content_length == (len(g.body) if any(
        k == b"Content-Length" for k, _ in g.fields) else None)
    for k in range(len(g.raw) - len(g.body)):
        assert parse_request(g.raw[:k]) is None


@settings(SETTINGS, max_examples=100)
@given(gs=st.lists(requests(), min_size=2, max_size=5))
def test_pipelined_requests_match_llhttp(gs: list[Gen]) -> None:
    set_simd(LEVELS[-1])
    # every message but the last must keep the connection open for llhttp to read on
    gs = [g for g in gs[:-1] if g.keep_alive] + gs[-1:]
    raw = b"".join(g.raw for g in gs)
    ours = gwcore_parse(raw)
    assert ours == [expected(g) for g in gs]
    assert llhttp_parse(raw) == ours
