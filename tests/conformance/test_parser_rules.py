"""Every parser rule of RFC 9112 / RFC 9110 that gwcore enforces, through the Python API.

Each case is fed whole (bytes, bytearray and memoryview), split in two at every byte (a
bytearray that grows, as a server's receive buffer does), and one byte at a time, under every
SIMD level the CPU has. Incomplete input must give None, and then the same outcome as the
whole input: the same error (code, status, offset) or the same parsed values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from gwcore.http import ChunkedDecoder, ParseError, parse_request, parse_response, set_simd

LEVELS = list(range(set_simd(2) + 1))


@pytest.fixture(params=LEVELS, ids=[f"simd{lv}" for lv in LEVELS], autouse=True)
def simd(request: pytest.FixtureRequest) -> Iterator[int]:
    set_simd(request.param)
    yield request.param
    set_simd(LEVELS[-1])


@dataclass
class Ok:
    """Expected values of a parsed head (None: not checked)."""

    headers: list[tuple[bytes, bytes]]
    method: bytes | None = None
    target: bytes | None = None
    status: int | None = None
    reason: bytes | None = None
    version_minor: int = 1
    content_length: int | None = None
    chunked: bool = False
    keep_alive: bool = True
    expect_continue: bool = False
    head_length: int | None = None  # default: through the first CRLFCRLF


@dataclass
class Err:
    code: str
    status: int = 400
    offset: int | None = None


@dataclass
class Case:
    id: str
    data: bytes
    want: Ok | Err
    limits: dict[str, int] = field(default_factory=dict)


def R(id: str, data: bytes, want: Ok | Err, **limits: int) -> Case:
    return Case(id, data, want, limits)


H = b"Host: a\r\n"

REQUEST_CASES = [
    # ---- valid ----------------------------------------------------------------------------
    R("simple", b"GET /x?y=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
      Ok([(b"Host", b"example.com")], b"GET", b"/x?y=1")),
    R("body not consumed", b"POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
      Ok([(b"Host", b"h"), (b"Content-Length", b"5")], b"POST", b"/u", content_length=5)),
    R("leading empty lines skipped (RFC 9112 2.2)", b"\r\n\r\nGET / HTTP/1.1\r\n" + H + b"\r\n",
      Ok([(b"Host", b"a")], b"GET", b"/", head_length=31)),
    R("OWS trimmed, HTAB and obs-text kept",
      b"GET / HTTP/1.1\r\n" + H + b"X-A: \t a\tb\x80\xff c \t\r\nX-Empty:\r\nX-Blank:  \t \r\n\r\n",
      Ok([(b"Host", b"a"), (b"X-A", b"a\tb\x80\xff c"), (b"X-Empty", b""), (b"X-Blank", b"")],
         b"GET", b"/")),
    R("colons in a value", b"GET / HTTP/1.1\r\n" + H + b"X:a:b: c\r\n\r\n",
      Ok([(b"Host", b"a"), (b"X", b"a:b: c")], b"GET", b"/")),
    R("every tchar and VCHAR",
      b"M-S.E_A~R!C#H$ /!\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~ HTTP/1.1\r\n"
      b"!#$%&'*+-.^_`|~09AZaz: v\r\n" + H + b"\r\n",
      Ok([(b"!#$%&'*+-.^_`|~09AZaz", b"v"), (b"Host", b"a")], b"M-S.E_A~R!C#H$",
         b"/!\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~")),
    R("HTTP/1.0 without Host closes", b"GET / HTTP/1.0\r\n\r\n",
      Ok([], b"GET", b"/", version_minor=0, keep_alive=False)),
    R("HTTP/1.0 keep-alive", b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
      Ok([(b"Connection", b"Keep-Alive")], b"GET", b"/", version_minor=0, keep_alive=True)),
    R("HTTP/1.1 close", b"GET / HTTP/1.1\r\n" + H + b"Connection: upgrade, CLOSE\r\n\r\n",
      Ok([(b"Host", b"a"), (b"Connection", b"upgrade, CLOSE")], b"GET", b"/", keep_alive=False)),
    R("close wins over keep-alive", b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n"
      b"Connection: close\r\n\r\n",
      Ok([(b"Connection", b"keep-alive"), (b"Connection", b"close")], b"GET", b"/",
         version_minor=0, keep_alive=False)),
    R("expect 100-continue", b"PUT /x HTTP/1.1\r\n" + H + b"Expect: 100-Continue\r\n"
      b"Content-Length: 10\r\n\r\n",
      Ok([(b"Host", b"a"), (b"Expect", b"100-Continue"), (b"Content-Length", b"10")], b"PUT",
         b"/x", content_length=10, expect_continue=True)),
    R("other expectation", b"PUT /x HTTP/1.1\r\n" + H + b"Expect: 100-continues\r\n\r\n",
      Ok([(b"Host", b"a"), (b"Expect", b"100-continues")], b"PUT", b"/x")),
    R("chunked", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: , Chunked\r\n\r\n",
      Ok([(b"Host", b"a"), (b"Transfer-Encoding", b", Chunked")], b"POST", b"/", chunked=True)),
    R("content-length leading zeros", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 007\r\n\r\n",
      Ok([(b"Host", b"a"), (b"Content-Length", b"007")], b"POST", b"/", content_length=7)),
    R("content-length max", b"POST / HTTP/1.1\r\n" + H
      + b"Content-Length: 9223372036854775807\r\n\r\n",
      Ok([(b"Host", b"a"), (b"Content-Length", b"9223372036854775807")], b"POST", b"/",
         content_length=2**63 - 1)),
    R("empty host", b"GET / HTTP/1.1\r\nHost:\r\n\r\n", Ok([(b"Host", b"")], b"GET", b"/")),
    R("ipv6 host", b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
      Ok([(b"Host", b"[::1]:8080")], b"GET", b"/")),
    R("asterisk form", b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n",
      Ok([(b"Host", b"a")], b"OPTIONS", b"*")),
    R("authority form", b"CONNECT a.b:443 HTTP/1.1\r\nHost: a.b:443\r\n\r\n",
      Ok([(b"Host", b"a.b:443")], b"CONNECT", b"a.b:443")),
    R("absolute form", b"GET http://a.b/c?d HTTP/1.1\r\nHost: a.b\r\n\r\n",
      Ok([(b"Host", b"a.b")], b"GET", b"http://a.b/c?d")),
    R("lower-case method is another method", b"get / HTTP/1.1\r\n" + H + b"\r\n",
      Ok([(b"Host", b"a")], b"get", b"/")),
    R("long target and value (SIMD blocks)",
      b"GET /" + b"t" * 100 + b" HTTP/1.1\r\n" + H + b"X: " + b"v\t\xe9" * 40 + b"\r\n\r\n",
      Ok([(b"Host", b"a"), (b"X", b"v\t\xe9" * 40)], b"GET", b"/" + b"t" * 100)),
    R("limits met exactly", b"GET /1234567 HTTP/1.1\r\n" + H + b"A: b\r\n\r\n",
      Ok([(b"Host", b"a"), (b"A", b"b")], b"GET", b"/1234567"),
      max_head_bytes=40, max_fields=2, max_target_len=8),
    # ---- method -------------------------------------------------------------------------
    R("method char", b"G@T / HTTP/1.1\r\n" + H + b"\r\n", Err("method", offset=1)),
    R("method empty", b" / HTTP/1.1\r\n" + H + b"\r\n", Err("method", offset=0)),
    R("method tab", b"GET\t/ HTTP/1.1\r\n" + H + b"\r\n", Err("method", offset=3)),
    R("tls client hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", Err("method", offset=0)),
    # ---- request-target ---------------------------------------------------------------------
    R("target empty", b"GET  HTTP/1.1\r\n" + H + b"\r\n", Err("target", offset=4)),
    R("target NUL", b"GET /a\x00b HTTP/1.1\r\n" + H + b"\r\n", Err("target", offset=6)),
    R("target DEL", b"GET /a\x7f HTTP/1.1\r\n" + H + b"\r\n", Err("target", offset=6)),
    R("target obs-text", b"GET /\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n", Err("target", offset=5)),
    R("target HTAB", b"GET /\tx HTTP/1.1\r\n" + H + b"\r\n", Err("target", offset=5)),
    R("target bare CR", b"GET /a\rb HTTP/1.1\r\n" + H + b"\r\n", Err("target", offset=6)),
    R("target bare LF", b"GET /a\nb HTTP/1.1\r\n" + H + b"\r\n", Err("target", offset=6)),
    R("no HTTP-version", b"GET /\r\n\r\n", Err("target", offset=5)),
    R("target too long", b"GET /12345678 HTTP/1.1\r\n" + H + b"\r\n",
      Err("target_too_long", 414, 12), max_target_len=8),
    R("target too long before it ends", b"GET /12345678", Err("target_too_long", 414, 12),
      max_target_len=8),
    # ---- HTTP-version -------------------------------------------------------------------------
    R("version junk after", b"GET / HTTP/1.1x\r\n" + H + b"\r\n", Err("version", offset=14)),
    R("version lower-case", b"GET / http/1.1\r\n" + H + b"\r\n", Err("version", offset=6)),
    R("version trailing SP", b"GET / HTTP/1.1 \r\n" + H + b"\r\n", Err("version", offset=14)),
    R("version two digits", b"GET / HTTP/11\r\n" + H + b"\r\n", Err("version", offset=12)),
    R("version SP SP", b"GET /  HTTP/1.1\r\n" + H + b"\r\n", Err("version", offset=6)),
    R("HTTP/2.0", b"GET / HTTP/2.0\r\n" + H + b"\r\n", Err("version_unsupported", 505, 6)),
    R("HTTP/1.2", b"GET / HTTP/1.2\r\n" + H + b"\r\n", Err("version_unsupported", 505, 6)),
    R("HTTP/0.9", b"GET / HTTP/0.9\r\n\r\n", Err("version_unsupported", 505, 6)),
    # ---- bare CR / LF ------------------------------------------------------------------------
    R("request-line bare LF", b"GET / HTTP/1.1\n" + H + b"\r\n", Err("bare_lf", offset=14)),
    R("request-line bare CR", b"GET / HTTP/1.1\r" + H + b"\r\n", Err("bare_cr", offset=14)),
    R("leading bare LF", b"\nGET / HTTP/1.1\r\n" + H + b"\r\n", Err("bare_lf", offset=0)),
    R("value bare CR", b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", Err("bare_cr", offset=23)),
    R("value bare LF", b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", Err("bare_lf", offset=23)),
    R("empty line bare LF", b"GET / HTTP/1.1\r\n" + H + b"\n", Err("bare_lf", offset=25)),
    R("empty line bare CR", b"GET / HTTP/1.1\r\n" + H + b"\rX", Err("bare_cr", offset=25)),
    # ---- field names ------------------------------------------------------------------------
    R("name empty", b"GET / HTTP/1.1\r\n" + H + b": b\r\n\r\n", Err("field_name", offset=25)),
    R("name char", b"GET / HTTP/1.1\r\n" + H + b"X@Y: b\r\n\r\n", Err("field_name", offset=26)),
    R("name NUL", b"GET / HTTP/1.1\r\n" + H + b"X\x00: b\r\n\r\n", Err("field_name", offset=26)),
    R("name obs-text", b"GET / HTTP/1.1\r\n" + H + b"\xc3\xa9: b\r\n\r\n",
      Err("field_name", offset=25)),
    R("line without colon", b"GET / HTTP/1.1\r\n" + H + b"XYZ\r\n\r\n",
      Err("field_name", offset=28)),
    R("SP inside name", b"GET / HTTP/1.1\r\n" + H + b"X Y: b\r\n\r\n", Err("field_name", offset=27)),
    R("SP before colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", Err("space_before_colon", offset=20)),
    R("HTAB before colon", b"GET / HTTP/1.1\r\n" + H + b"Content-Length\t: 5\r\n\r\n",
      Err("space_before_colon", offset=39)),
    # ---- field values -------------------------------------------------------------------------
    R("value NUL", b"GET / HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n", Err("field_value", offset=29)),
    R("value DEL", b"GET / HTTP/1.1\r\n" + H + b"X: a\x7f\r\n\r\n", Err("field_value", offset=29)),
    R("value ESC", b"GET / HTTP/1.1\r\n" + H + b"X: \x1b[0m\r\n\r\n", Err("field_value", offset=28)),
    R("obs-fold SP", b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n b\r\n\r\n", Err("obs_fold", offset=31)),
    R("obs-fold HTAB", b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n\tb\r\n\r\n",
      Err("obs_fold", offset=31)),
    R("whitespace before first field", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
      Err("obs_fold", offset=16)),
    # ---- limits ------------------------------------------------------------------------------
    R("too many fields", b"GET / HTTP/1.1\r\n" + H + b"A: 1\r\nB: 2\r\n\r\n",
      Err("too_many_fields", 431, 31), max_fields=2),
    R("head too large", b"GET / HTTP/1.1\r\n" + H + b"X: 0123456789\r\n\r\n",
      Err("head_too_large", 431, 32), max_head_bytes=32),
    R("head too large before it ends", b"GET / HTTP/1.1\r\nHost: abcdefghijklmn",
      Err("head_too_large", 431, 32), max_head_bytes=32),
    R("error inside the size limit wins", b"GET / HTTP/1.1\r\nX : abcdefghijklmnopqrstuvwxyz",
      Err("space_before_colon", 400, 17), max_head_bytes=32),
    # ---- Content-Length (RFC 9110 8.6, RFC 9112 6.3) ---------------------------------------------
    R("CL alpha", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\n",
      Err("content_length", offset=42)),
    R("CL empty", b"POST / HTTP/1.1\r\n" + H + b"Content-Length:\r\n\r\n",
      Err("content_length", offset=41)),
    R("CL negative", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n",
      Err("content_length", offset=42)),
    R("CL plus", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +1\r\n\r\n",
      Err("content_length", offset=42)),
    R("CL hex", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x10\r\n\r\n",
      Err("content_length", offset=43)),
    R("CL inner space", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1 2\r\n\r\n",
      Err("content_length", offset=43)),
    R("CL int64 overflow", b"POST / HTTP/1.1\r\n" + H
      + b"Content-Length: 9223372036854775808\r\n\r\n", Err("content_length", offset=60)),
    R("CL trailing comma", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5,\r\n\r\n",
      Err("content_length", offset=43)),
    R("CL list same", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\n",
      Err("content_length_repeated", offset=43)),
    R("CL list differ", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5,6\r\n\r\n",
      Err("content_length_repeated", offset=43)),
    R("CL two lines", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\n",
      Err("content_length_repeated", offset=45)),
    R("CL two lines differ", b"POST / HTTP/1.1\r\n" + H
      + b"content-length: 5\r\nCONTENT-LENGTH: 50\r\n\r\n", Err("content_length_repeated", offset=45)),
    # ---- Transfer-Encoding (RFC 9112 6.1) ----------------------------------------------------
    R("TE gzip", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n",
      Err("te_not_chunked", offset=45)),
    R("TE chunked, gzip", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n",
      Err("te_not_chunked", offset=54)),
    R("TE chunked twice", b"POST / HTTP/1.1\r\n" + H
      + b"Transfer-Encoding: chunked, chunked\r\n\r\n", Err("te_not_chunked", offset=54)),
    R("TE chunked on two lines", b"POST / HTTP/1.1\r\n" + H
      + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
      Err("te_not_chunked", offset=73)),
    R("TE empty", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding:\r\n\r\n",
      Err("te_not_chunked", offset=44)),
    R("TE chunked with parameter", b"POST / HTTP/1.1\r\n" + H
      + b"Transfer-Encoding: chunked;x=1\r\n\r\n", Err("te_not_chunked", offset=45)),
    R("TE gzip, chunked", b"POST / HTTP/1.1\r\n" + H
      + b"Transfer-Encoding: gzip, chunked\r\n\r\n", Err("te_unsupported", 501, 45)),
    R("TE gzip then chunked lines", b"POST / HTTP/1.1\r\n" + H
      + b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
      Err("te_unsupported", 501, 45)),
    R("TE with CL", b"POST / HTTP/1.1\r\n" + H
      + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", Err("te_with_cl", offset=45)),
    R("CL after TE", b"POST / HTTP/1.1\r\n" + H
      + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", Err("te_with_cl", offset=26)),
    R("TE in HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
      Err("te_http10", offset=17)),
    # ---- Host (RFC 9112 3.2) ----------------------------------------------------------------------
    R("no Host in 1.1", b"GET / HTTP/1.1\r\nX: a\r\n\r\n", Err("host", offset=22)),
    R("two Host", b"GET / HTTP/1.1\r\n" + H + b"host: a\r\n\r\n", Err("host", offset=25)),
    R("two Host in 1.0", b"GET / HTTP/1.0\r\n" + H + b"Host: b\r\n\r\n", Err("host", offset=25)),
    R("Host with SP", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", Err("host", offset=23)),
    R("Host with slash", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", Err("host", offset=23)),
    R("Host with userinfo", b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", Err("host", offset=23)),
]

RESPONSE_CASES = [
    R("200", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello",
      Ok([(b"Content-Length", b"5"), (b"Server", b"x")], status=200, reason=b"OK",
         content_length=5)),
    R("404 HTTP/1.0 keep-alive", b"HTTP/1.0 404 Not \tFound \x80\r\nConnection: keep-alive\r\n\r\n",
      Ok([(b"Connection", b"keep-alive")], status=404, reason=b"Not \tFound \x80",
         version_minor=0)),
    R("HTTP/1.0 closes", b"HTTP/1.0 200 OK\r\n\r\n",
      Ok([], status=200, reason=b"OK", version_minor=0, keep_alive=False)),
    R("empty reason", b"HTTP/1.1 204 \r\n\r\n", Ok([], status=204, reason=b"")),
    R("no SP before empty reason", b"HTTP/1.1 304\r\nETag: \"x\"\r\n\r\n",
      Ok([(b"ETag", b'"x"')], status=304, reason=b"")),
    R("chunked response", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
      Ok([(b"Transfer-Encoding", b"chunked")], status=200, reason=b"OK", chunked=True)),
    R("100 Continue", b"HTTP/1.1 100 Continue\r\n\r\n", Ok([], status=100, reason=b"Continue")),
    R("no SP after version", b"HTTP/1.1200 OK\r\n\r\n", Err("version", offset=8)),
    R("bad HTTP-name", b"HTTX/1.1 200 OK\r\n\r\n", Err("version", offset=3)),
    R("leading CRLF", b"\r\nHTTP/1.1 200 OK\r\n\r\n", Err("version", offset=0)),
    R("HTTP/2.0 response", b"HTTP/2.0 200 OK\r\n\r\n", Err("version_unsupported", 505, 0)),
    R("status two digits", b"HTTP/1.1 20 OK\r\n\r\n", Err("status", offset=11)),
    R("status four digits", b"HTTP/1.1 2000 OK\r\n\r\n", Err("status", offset=12)),
    R("status 099", b"HTTP/1.1 099 x\r\n\r\n", Err("status", offset=9)),
    R("status 600", b"HTTP/1.1 600 x\r\n\r\n", Err("status", offset=9)),
    R("reason CTL", b"HTTP/1.1 200 O\x01K\r\n\r\n", Err("status", offset=14)),
    R("reason bare LF", b"HTTP/1.1 200 OK\n\r\n", Err("bare_lf", offset=15)),
    R("response obs-fold", b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", Err("obs_fold", offset=23)),
    R("response TE with CL", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
      b"Transfer-Encoding: chunked\r\n\r\n", Err("te_with_cl", offset=36)),
    R("response TE gzip", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
      Err("te_not_chunked", offset=36)),
    R("response TE in HTTP/1.0", b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
      Err("te_http10", offset=17)),
    R("response CL repeated", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
      Err("content_length_repeated", offset=36)),
    R("response head too large", b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n",
      Err("head_too_large", 431, 20), max_head_bytes=20),
]


def outcome(
    parse: Callable[..., object], data: object, limits: dict[str, int], offset: int = 0
) -> object:
    """The comparable result of one parse: None, ("error", ...) or a tuple of every value.
    Error offsets are made relative to the parse offset."""
    try:
        m = parse(data, offset, **limits)
    except ParseError as e:
        return ("error", e.code, e.status, e.offset - offset)
    if m is None:
        return None
    common = (m.version_minor, m.head_length, m.content_length, m.chunked, m.keep_alive,
              m.headers, len(m), [m.get(n) for n, _ in m.headers])
    if hasattr(m, "method"):
        return ("request", m.method, m.target, m.expect_continue, *common)
    return ("response", m.status, m.reason, *common)


def check_case(parse: Callable[..., object], case: Case) -> None:
    data, limits = case.data, case.limits
    whole = outcome(parse, data, limits)
    want = case.want
    if isinstance(want, Err):
        assert whole is not None and whole[0] == "error", whole
        assert whole[1:3] == (want.code, want.status)
        if want.offset is not None:
            assert whole[3] == want.offset
    else:
        assert whole is not None and whole[0] != "error", whole
        m = parse(data, **limits)
        head_length = want.head_length or data.index(b"\r\n\r\n") + 4
        assert m.head_length == head_length
        assert m.headers == want.headers
        assert len(m) == len(want.headers)
        for name, value in want.headers:
            first = next(v for n, v in want.headers if n.lower() == name.lower())
            assert m.get(name) == first
            assert m.get(name.upper()) == first
            assert m.get(name.lower()) == first
        assert m.get(b"X-Not-There") is None
        assert m.version_minor == want.version_minor
        assert m.content_length == want.content_length
        assert m.chunked is want.chunked
        assert m.keep_alive is want.keep_alive
        if want.method is not None:
            assert (m.method, m.target) == (want.method, want.target)
            assert m.expect_continue is want.expect_continue
        if want.status is not None:
            assert (m.status, m.reason) == (want.status, want.reason)
    # the same outcome from bytearray and memoryview input
    assert outcome(parse, bytearray(data), limits) == whole
    assert outcome(parse, memoryview(data), limits) == whole
    # one byte at a time: every proper prefix is incomplete or already the same outcome
    for k in range(len(data)):
        got = outcome(parse, data[:k], limits)
        assert got is None or got == whole, (k, got, whole)
    # split in two at every byte, into a growing receive buffer at an offset
    for k in range(len(data) + 1):
        buf = bytearray(b"XYZ")
        buf += data[:k]
        first = outcome(parse, buf, limits, 3)
        buf += data[k:]
        second = outcome(parse, buf, limits, 3)
        assert first is None or first == second
        assert second == whole


@pytest.mark.parametrize("case", REQUEST_CASES, ids=[c.id for c in REQUEST_CASES])
def test_request_rule(case: Case) -> None:
    check_case(parse_request, case)


@pytest.mark.parametrize("case", RESPONSE_CASES, ids=[c.id for c in RESPONSE_CASES])
def test_response_rule(case: Case) -> None:
    check_case(parse_response, case)


# ---- chunked transfer coding (RFC 9112 7.1) -------------------------------------------------------

CHUNKED_OK = [
    ("simple", b"5\r\nhello\r\n0\r\n\r\n", b"hello", b""),
    ("two chunks", b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world", b""),
    ("hex sizes", b"a\r\n0123456789\r\nB\r\nabcdefghijk\r\n0\r\n\r\n", b"0123456789abcdefghijk",
     b""),
    ("leading zeros", b"0005\r\nhello\r\n000\r\n\r\n", b"hello", b""),
    ("CRLF inside data", b"4\r\n\r\n\r\n\r\n0\r\n\r\n", b"\r\n\r\n", b""),
    ("extensions", b"5;a=b;c\r\nhello\r\n0;last=1\r\n\r\n", b"hello", b""),
    ("extension BWS", b"5 ;\ta = b ; c\r\nhello\r\n0\r\n\r\n", b"hello", b""),
    ("quoted extension", b'5;a="x;y=\\"z\\\\" ;b=""\r\nhello\r\n0\r\n\r\n', b"hello", b""),
    ("trailers", b"5\r\nhello\r\n0\r\nX-Sum: abc\r\nY:\r\n\r\n", b"hello", b""),
    ("bytes after the body", b"1\r\nA\r\n0\r\n\r\nGET / HTTP/1.1\r\n", b"A", b"GET / HTTP/1.1\r\n"),
    ("empty body", b"0\r\n\r\n", b"", b""),
]

CHUNKED_ERR = [
    ("no size", b"\r\nhello\r\n", "chunk_size"),
    ("junk size", b"x\r\n", "chunk_size"),
    ("negative size", b"-5\r\n", "chunk_size"),
    ("junk after size", b"5x\r\nhello\r\n", "chunk_size"),
    ("0x prefix", b"0x5\r\nhello\r\n", "chunk_size"),
    ("leading SP", b" 5\r\nhello\r\n", "chunk_size"),
    ("size overflow", b"8000000000000000\r\n", "chunk_size_overflow"),
    ("size overflow, 17 digits", b"10000000000000000\r\n", "chunk_size_overflow"),
    ("size bare LF", b"5\nhello\r\n", "bare_lf"),
    ("size bare CR", b"5\rhello\r\n", "bare_cr"),
    ("ext empty name", b"5;\r\nhello\r\n", "chunk_ext"),
    ("ext no name", b"5;=b\r\nhello\r\n", "chunk_ext"),
    ("ext empty value", b"5;a=\r\nhello\r\n", "chunk_ext"),
    ("SP after size", b"5 \r\nhello\r\n", "chunk_ext"),
    ("ext SP in value", b"5;a=b c\r\nhello\r\n", "chunk_ext"),
    ("ext bad name", b"5;a@b\r\nhello\r\n", "chunk_ext"),
    ("ext open quote", b'5;a="x\r\nhello\r\n', "chunk_ext"),
    ("ext quoted CTL", b'5;a="\x01"\r\nhello\r\n', "chunk_ext"),
    ("ext too long", b"5;" + b"a" * 5000 + b"\r\nhello\r\n", "chunk_ext"),
    ("data without CRLF", b"5\r\nhelloX\r\n0\r\n\r\n", "chunk_data_crlf"),
    ("data CR only", b"5\r\nhello\rX0\r\n\r\n", "chunk_data_crlf"),
    ("data LF only", b"5\r\nhello\n0\r\n\r\n", "chunk_data_crlf"),
    ("trailer without colon", b"0\r\nX\r\n\r\n", "trailer"),
    ("trailer obs-fold", b"0\r\nX: a\r\n b\r\n\r\n", "trailer"),
    ("trailer SP before colon", b"0\r\nX : a\r\n\r\n", "trailer"),
    ("trailer NUL", b"0\r\nX: a\x00\r\n\r\n", "trailer"),
    ("trailer bare LF", b"0\r\nX: a\n\r\n", "trailer"),
    ("final bare CR", b"0\r\n\rX", "trailer"),
    ("trailers too large", b"0\r\n" + b"X-Trailer: 0123456789\r\n" * 800 + b"\r\n", "trailer"),
]


def decode(pieces: list[bytes]) -> tuple[bytes, bool, bytes, str | None]:
    d = ChunkedDecoder()
    out = b""
    for piece in pieces:
        try:
            out += b"".join(d.feed(piece))
        except ParseError as e:
            assert e.status == 400
            return out, d.done, d.unused, e.code
    return out, d.done, d.unused, None


def all_feeds(data: bytes) -> Iterator[list[bytes]]:
    yield [data]
    yield [data[k : k + 1] for k in range(len(data))]
    step = max(1, len(data) // 300)  # every byte for the short cases
    for k in range(0, len(data) + 1, step):
        yield [data[:k], data[k:]]


@pytest.mark.parametrize(("name", "data", "body", "unused"), CHUNKED_OK,
                         ids=[c[0] for c in CHUNKED_OK])
def test_chunked_ok(name: str, data: bytes, body: bytes, unused: bytes) -> None:
    for pieces in all_feeds(data):
        assert decode(pieces) == (body, True, unused, None)


@pytest.mark.parametrize(("name", "data", "code"), CHUNKED_ERR, ids=[c[0] for c in CHUNKED_ERR])
def test_chunked_error(name: str, data: bytes, code: str) -> None:
    for pieces in all_feeds(data):
        _, done, _, got = decode(pieces)
        assert (done, got) == (False, code)
