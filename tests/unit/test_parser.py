"""Behaviour of the Python parser API (gwcore.http): objects, lookups, offsets, limits, decoder."""

from __future__ import annotations

import gc

import pytest

from gwcore import http
from gwcore.http import (
    ChunkedDecoder,
    ParseError,
    Request,
    Response,
    parse_request,
    parse_response,
    set_simd,
    simd_level,
)

GET = (
    b"GET /search?q=gw HTTP/1.1\r\n"
    b"Host: example.com\r\n"
    b"User-Agent: test/1.0\r\n"
    b"Accept: */*\r\n"
    b"X-Dup: one\r\n"
    b"x-dup: two\r\n"
    b"\r\n"
)


def test_request_attributes() -> None:
    r = parse_request(GET)
    assert isinstance(r, Request)
    assert r.method == b"GET"
    assert r.target == b"/search?q=gw"
    assert r.version_minor == 1
    assert r.head_length == len(GET)
    assert r.content_length is None
    assert r.chunked is False
    assert r.keep_alive is True
    assert r.expect_continue is False
    assert len(r) == 5
    assert "GET" in repr(r)


def test_get_is_case_insensitive_first_match() -> None:
    r = parse_request(GET)
    assert r.get(b"host") == b"example.com"
    assert r.get(b"HOST") == b"example.com"
    assert r.get(b"user-AGENT") == b"test/1.0"
    assert r.get(b"X-DUP") == b"one"
    assert r.get(b"missing") is None
    assert r.get(b"missing", b"dflt") == b"dflt"
    assert r.get(b"Hos") is None
    with pytest.raises(TypeError):
        r.get("host")  # type: ignore[arg-type]


def test_headers_are_built_once_in_order() -> None:
    r = parse_request(GET)
    h = r.headers
    assert h == [
        (b"Host", b"example.com"),
        (b"User-Agent", b"test/1.0"),
        (b"Accept", b"*/*"),
        (b"X-Dup", b"one"),
        (b"x-dup", b"two"),
    ]
    assert r.headers is h


def test_other_methods_and_version() -> None:
    r = parse_request(b"PROPFIND /d HTTP/1.0\r\n\r\n")
    assert (r.method, r.target, r.version_minor, r.keep_alive) == (b"PROPFIND", b"/d", 0, False)
    for m in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE"):
        assert parse_request(m + b" / HTTP/1.1\r\nHost: a\r\n\r\n").method == m


def test_incomplete_returns_none() -> None:
    assert parse_request(b"") is None
    assert parse_request(GET[:-1]) is None
    assert parse_response(b"HTTP/1.1 200 OK\r\n") is None


def test_offset_and_pipelining_loop() -> None:
    stream = (
        b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
        b"\r\nGET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        b"GET /d HTTP/1.1\r\nHo"
    )
    seen = []
    off = 0
    while True:
        r = parse_request(stream, off)
        if r is None:
            break
        seen.append((r.method, r.target, r.keep_alive))
        off += r.head_length + (r.content_length or 0)
    assert seen == [(b"POST", b"/a", True), (b"GET", b"/b", True), (b"GET", b"/c", False)]
    assert stream[off:] == b"GET /d HTTP/1.1\r\nHo"


def test_offset_bounds_and_error_offsets() -> None:
    data = b"junk" + GET
    assert parse_request(data, 4).target == b"/search?q=gw"
    assert parse_request(data, len(data)) is None
    with pytest.raises(ValueError):
        parse_request(data, len(data) + 1)
    with pytest.raises(ValueError):
        parse_request(data, -1)
    with pytest.raises(ParseError) as e:
        parse_request(b"0123GET / HTTP/1.1\r\nHost : a\r\n\r\n", 4)
    assert e.value.offset == 4 + 20  # index in the data passed, not in the head


def test_parse_error_attributes() -> None:
    with pytest.raises(ParseError) as e:
        parse_request(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n")
    err = e.value
    assert isinstance(err, ValueError)
    assert (err.code, err.status, err.offset) == ("obs_fold", 400, 31)
    assert "obs_fold" in str(err)
    for data, code, status in [
        (b"GET / HTTP/2.0\r\n\r\n", "version_unsupported", 505),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
         "te_unsupported", 501),
    ]:
        with pytest.raises(ParseError) as e:
            parse_request(data)
        assert (e.value.code, e.value.status) == (code, status)


def test_buffer_inputs_are_copied() -> None:
    buf = bytearray(GET)
    r = parse_request(buf)
    buf[:] = b"X" * len(buf)  # the caller reuses its buffer
    del buf[10:]
    assert r.target == b"/search?q=gw"
    assert r.get(b"host") == b"example.com"
    mv = memoryview(bytearray(b"HTTP/1.1 200 OK\r\nServer: s\r\n\r\n"))
    resp = parse_response(mv)
    mv[9:12] = b"500"
    assert (resp.status, resp.get(b"server")) == (200, b"s")


def test_request_keeps_its_bytes_alive() -> None:
    data = bytes(GET)
    r = parse_request(data)
    del data
    gc.collect()
    assert r.headers[1] == (b"User-Agent", b"test/1.0")


def test_limits_parameters() -> None:
    many = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(150))
    many += b"\r\n"
    with pytest.raises(ParseError) as e:
        parse_request(many)
    assert (e.value.code, e.value.status) == ("too_many_fields", 431)
    r = parse_request(many, max_fields=151, max_head_bytes=1 << 20)
    assert len(r) == 151 and r.get(b"x-149") == b"v"
    assert r.headers[150] == (b"X-149", b"v")
    with pytest.raises(ParseError) as e:
        parse_request(many, max_fields=151, max_head_bytes=100)
    assert (e.value.code, e.value.status, e.value.offset) == ("head_too_large", 431, 100)
    assert parse_request(many[:100], max_fields=151, max_head_bytes=100) is None
    with pytest.raises(ParseError) as e:
        parse_request(b"GET /" + b"a" * 20, max_target_len=10)
    assert (e.value.code, e.value.status) == ("target_too_long", 414)
    assert parse_request(b"GET /" + b"a" * 9 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
                         max_target_len=10).target == b"/" + b"a" * 9
    with pytest.raises(OverflowError):
        parse_request(GET, max_fields=-1)


def test_framing_attributes() -> None:
    r = parse_request(b"PUT /u HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                      b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    assert (r.chunked, r.content_length, r.expect_continue, r.keep_alive) == (
        True, None, True, False)
    r = parse_request(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert r.keep_alive is True


def test_response_attributes() -> None:
    data = b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found"
    r = parse_response(data)
    assert isinstance(r, Response)
    assert (r.status, r.reason, r.version_minor) == (404, b"Not Found", 1)
    assert (r.content_length, r.chunked, r.keep_alive) == (9, False, False)
    assert r.head_length == len(data) - 9
    assert r.get(b"content-length") == b"9"
    assert r.headers == [(b"Content-Length", b"9"), (b"Connection", b"close")]
    assert len(r) == 2 and "404" in repr(r)
    assert not hasattr(r, "method")
    r = parse_response(b"HTTP/1.0 200\r\n\r\n")
    assert (r.status, r.reason, r.keep_alive) == (200, b"", False)
    with pytest.raises(ParseError) as e:
        parse_response(b"HTTP/1.1 20 OK\r\n\r\n")
    assert e.value.code == "status"


def test_chunked_decoder_stream() -> None:
    d = ChunkedDecoder()
    assert d.feed(b"5\r\nhel") == [b"hel"]
    assert d.feed(b"lo\r\n3;x=y\r\nabc\r\n") == [b"lo", b"abc"]
    assert not d.done and d.unused == b""
    assert d.feed(bytearray(b"0\r\nTrailer: t\r\n\r\nNEXT")) == []
    assert d.done and d.unused == b"NEXT"
    assert d.feed(memoryview(b" MORE")) == []
    assert d.unused == b"NEXT MORE"


def test_chunked_decoder_errors_are_sticky_with_offsets() -> None:
    d = ChunkedDecoder()
    assert d.feed(b"3\r\nabc\r\n") == [b"abc"]
    with pytest.raises(ParseError) as e:
        d.feed(b"4\r\nabcdX")
    assert (e.value.code, e.value.status, e.value.offset) == ("chunk_data_crlf", 400, 8 + 7)
    with pytest.raises(ParseError):
        d.feed(b"\r\n0\r\n\r\n")
    assert not d.done
    with pytest.raises(ParseError) as e:
        ChunkedDecoder().feed(b"fffffffffffffffff\r\n")
    assert (e.value.code, e.value.offset) == ("chunk_size_overflow", 15)


def test_simd_levels() -> None:
    top = set_simd(2)
    assert simd_level() == top and 0 <= top <= 2
    try:
        assert set_simd(0) == 0 and simd_level() == 0
        assert parse_request(GET).get(b"accept") == b"*/*"
        assert set_simd(-5) == 0
        assert set_simd(99) == top
    finally:
        set_simd(top)


def test_package_exports() -> None:
    assert set(http.__all__) >= {
        "ChunkedDecoder", "ParseError", "Request", "Response", "parse_request",
        "parse_response", "set_simd", "simd_level",
    }
    with pytest.raises(TypeError):
        Request()  # only the parser creates them


def test_header_names_keep_their_spelling() -> None:
    r = parse_request(
        b"GET / HTTP/1.1\r\nHost: a\r\nhost2: b\r\nUSER-AGENT: c\r\nuser-agent: d\r\n"
        b"User-agent: e\r\nX-A-Very-Long-Field-Name-Over-32-Bytes: f\r\n\r\n"
    )
    assert [n for n, _ in r.headers] == [
        b"Host", b"host2", b"USER-AGENT", b"user-agent", b"User-agent",
        b"X-A-Very-Long-Field-Name-Over-32-Bytes",
    ]


def test_request_path_is_the_target_path_until_the_gateway_sets_it() -> None:
    r = parse_request(b"GET /a/../%62?x=/.. HTTP/1.1\r\nHost: h\r\n\r\n")
    assert r.path == b"/a/../%62" and r.target == b"/a/../%62?x=/.."
    r.path = b"/b"
    assert r.path == b"/b" and r.target == b"/a/../%62?x=/.."
