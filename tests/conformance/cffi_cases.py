"""Inputs, outcomes and API checks of the cffi binding (gwcore.http.cffi), shared by
test_cffi_parser.py (CPython: the cffi binding against the Cython binding) and
test_cffi_pypy.py, which runs this file under PyPy::

    PYTHONPATH=BUILD pypy3 tests/conformance/cffi_cases.py SEED COUNT

runs the API checks, then prints one JSON line per message of the seeded corpus (and per prefix
of the first messages): its outcome through the cffi binding, for comparison with the Cython
binding's. Python 3.9 syntax (Debian 12's PyPy), no third-party imports.

Messages come from ``message(rnd)``: request or response heads assembled from valid and invalid
pieces (methods, targets, versions, field names and values for the framing fields, separators,
line endings, obs-fold, empty lines), sometimes mutated (a byte inserted, replaced or dropped),
sometimes with a body or a second message after the head, sometimes with small limits. Hypothesis
drives ``rnd`` in the CPython test (``st.randoms()``); ``random.Random(seed)`` here.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from typing import Any

from gwcore.http import ParseError

Message = tuple[str, bytes, dict[str, int]]  # kind ("request" / "response"), data, limits

# (valid, doubtful) spellings of each piece; a clean message takes only valid ones
METHODS = ([b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"PROPFIND",
            b"M-SEARCH", b"get", b"!#$%&'*+-.^_`|~"],
           [b"", b"G\x00T", b"G(T", b"GE\xc3\x89T", b"G T"])
TARGETS = ([b"/", b"/a/b?c=d&e", b"*", b"http://h.example/x", b"h.example:443", b"/%2F..%2f",
            b"/" + b"x" * 120, b"/~!$&'()*+,;=:@?/"],
           [b"/a b", b"/\x7f", b"/\x80", b"/\t", b"", b"/\x00"])
VERSIONS = ([b"HTTP/1.1", b"HTTP/1.0"],
            [b"HTTP/2.0", b"HTTP/1.2", b"http/1.1", b"HTTP/1", b"HTTP/1.10", b"HTTP/11", b""])
STATUS_LINES = ([b"HTTP/1.1 200 OK", b"HTTP/1.1 204 No Content", b"HTTP/1.1 304 ",
                 b"HTTP/1.1 404", b"HTTP/1.0 500 Internal Server Error",
                 b"HTTP/1.1 101 Switching", b"HTTP/1.1 200 \xc3\x9cber", b"HTTP/1.1 599 x\ty"],
                [b"HTTP/1.1 20 OK", b"HTTP/1.1 600 Weird", b"HTTP/1.1 099 x", b"HTTP/1.1 2O0 OK",
                 b"HTTP/1.1 200 O\x01K", b"HTTP/2 200 OK", b"HTTP/1.1  200 OK",
                 b"HTTP/1.1 200\tOK", b"HTTP/1.2 200 OK"])
FRAMING = {  # at most one of these per clean message
    b"Content-Length": ([b"0", b"5", b"05", b"9223372036854775807"],
                        [b"-1", b"5,5", b"5, 6", b"1 2", b"", b"99999999999999999999", b"0x10"]),
    b"Transfer-Encoding": ([b"chunked", b"Chunked"],
                           [b"gzip, chunked", b"chunked, gzip", b"identity", b"chunked;x=1",
                            b"chunked, chunked", b",chunked", b""]),
}
OPTIONS = {
    b"Connection": ([b"close", b"keep-alive", b"Upgrade, x-a", b"Keep-Alive", b"close, foo"],
                    [b"", b"close,,keep-alive"]),
    b"Expect": ([b"100-continue", b"100-Continue", b"x"], []),
}
HOSTS = ([b"h.example", b"example.com:8080", b"[::1]:80", b""], [b"a b", b"a@b", b"h\x7f"])
NAMES = ([b"X-A", b"x_b", b"Accept", b"User-Agent", b"Keep-Alive", b"TE", b"Upgrade", b"Via",
          b"!#$%&'*+-.^_`|~"],
         [b"", b"Bad Name", b"Bad\x00", b"N\xc3\xa4me", b"(x)"])
VALUE_BYTES = (b"abcxyz019 -_.,;=/\"'()[]{}<>?\t\x80\xe9\xff", b"\x00\x01\x1f\x7f\r")
SEPARATORS = ([b":", b": ", b": ", b":\t", b":  \t "], [b" :", b"\t:"])
EOLS = ([b"\r\n"], [b"\n", b"\r", b"\r\r\n"])
MUTATION_BYTES = b"\r\n \t:\x00\x7f\x80,;Aa0"


def message(rnd: random.Random) -> Message:
    """One generated message (see the module docstring): half of them clean (every piece valid,
    well framed), the others with doubtful pieces and byte mutations."""
    clean = rnd.random() < 0.5
    p_bad = 0.0 if clean else 0.12

    def pick(pieces: tuple[list[bytes], list[bytes]], p: float | None = None) -> bytes:
        good, bad = pieces
        return rnd.choice(bad if bad and rnd.random() < (p_bad if p is None else p) else good)

    def value() -> bytes:
        alphabet = VALUE_BYTES[0] + (VALUE_BYTES[1] if rnd.random() < p_bad else b"")
        return bytes(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 24))).strip(b" \t")

    kind = "request" if rnd.random() < 0.65 else "response"
    if kind == "request":
        lead = b"\r\n" * rnd.randrange(1, 3) if rnd.random() < 0.1 else b""
        lines = [lead + b" ".join([pick(METHODS), pick(TARGETS), pick(VERSIONS)])]
    else:
        lines = [pick(STATUS_LINES)]
    fields = [(pick(NAMES), value()) for _ in range(rnd.randrange(0, 7))]
    for name, pieces in OPTIONS.items():
        if rnd.random() < 0.3:
            fields.append((name, pick(pieces)))
    framing = list(FRAMING) if not clean else [rnd.choice(list(FRAMING))]
    for name in framing:
        if rnd.random() < (0.4 if clean else 0.3):
            fields.append((name, pick(FRAMING[name], 0.0 if clean else 0.5)))
    if kind == "request" and (clean or rnd.random() < 0.9):
        fields.append((b"Host", pick(HOSTS)))
        if not clean and rnd.random() < 0.05:
            fields.append((b"Host", pick(HOSTS)))
    rnd.shuffle(fields)
    for name, val in fields:
        if rnd.random() < 0.2:
            name = name.lower() if rnd.random() < 0.5 else name.upper()
        ows = rnd.choice([b"", b"", b" ", b"\t "])
        lines.append(name + pick(SEPARATORS) + val + ows)
        if rnd.random() < p_bad / 4:
            lines.append(rnd.choice([b" folded", b"\tfolded"]))  # obs-fold
    data = b"".join(ln + pick(EOLS) for ln in lines) + pick(EOLS)
    if not clean and rnd.random() < 0.5:
        pos = rnd.randrange(0, len(data) + 1)
        op = rnd.randrange(3)
        byte = bytes([rnd.choice(MUTATION_BYTES)])
        if op == 0:
            data = data[:pos] + byte + data[pos:]
        elif op == 1:
            data = data[:pos] + byte + data[pos + 1:]
        else:
            data = data[:pos] + data[pos + 1:]
    if rnd.random() < 0.08:
        data = data[:rnd.randrange(0, len(data))]           # incomplete
    elif rnd.random() < 0.2:
        data += rnd.choice([b"hello", b"0\r\n\r\n", b"GET / HTTP/1.1\r\nHost: b\r\n\r\n"])
    limits: dict[str, int] = {}
    if rnd.random() < 0.15:
        limits = {"max_head_bytes": rnd.randrange(8, 200), "max_fields": rnd.randrange(0, 6)}
        if kind == "request":
            limits["max_target_len"] = rnd.randrange(1, 40)
    return kind, data, limits


def corpus(seed: int, count: int) -> list[Message]:
    rnd = random.Random(seed)
    return [message(rnd) for _ in range(count)]


def cffi_outcome(parser: Any, kind: str, data: Any, offset: int = 0) -> list | None:
    """What the cffi binding makes of data[offset:]: None (incomplete), ["error", code, status,
    offset], or the parsed head's fields in the order of cython_outcome's."""
    try:
        r = (parser.parse_request(data, offset) if kind == "request"
             else parser.parse_response(data, offset))
    except ParseError as exc:
        return ["error", exc.code, exc.status, exc.offset]
    if r is None:
        return None
    headers = [[bytes(n), bytes(v)] for n, v in r.headers]
    if kind == "request":
        return ["request", bytes(r.method), bytes(r.path), r.minor_version, headers, r.consumed,
                r.content_length, r.chunked, r.keep_alive, r.expect_continue]
    return ["response", r.status, bytes(r.msg), r.minor_version, headers, r.consumed,
            r.content_length, r.chunked, r.keep_alive]


def cython_outcome(kind: str, data: Any, limits: dict[str, int],
                   offset: int = 0) -> list | None:
    """The same through the Cython binding (CPython only)."""
    from gwcore.http import parse_request, parse_response

    try:
        r = (parse_request(data, offset, **limits) if kind == "request"
             else parse_response(data, offset, **limits))
    except ParseError as exc:
        return ["error", exc.code, exc.status, exc.offset]
    if r is None:
        return None
    headers = [[n, v] for n, v in r.headers]
    if kind == "request":
        return ["request", r.method, r.target, r.version_minor, headers, r.head_length,
                r.content_length, r.chunked, r.keep_alive, r.expect_continue]
    return ["response", r.status, r.reason, r.version_minor, headers, r.head_length,
            r.content_length, r.chunked, r.keep_alive]


def prefixes(data: bytes, limit: int = 400) -> list[bytes]:
    """Every proper prefix of data (the first ``limit`` of them)."""
    return [data[:k] for k in range(min(len(data), limit))]


def to_json(value: Any) -> Any:
    """Outcomes with bytes as latin-1 strings (JSON has no bytes)."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value


# ---- API checks (plain asserts: they run under PyPy without pytest) ----------------------------

GET = b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-Empty:\r\nX-Pad: \t v \t\r\n\r\nBODY"


def _raises(fn: Callable[[], Any], exc_type: type) -> BaseException:
    try:
        fn()
    except exc_type as exc:
        return exc
    raise AssertionError(f"{fn} did not raise {exc_type.__name__}")


def check_request_fields() -> None:
    from gwcore.http.cffi import Parser, Request

    r = Parser().parse_request(GET)
    assert isinstance(r, Request)
    assert (r.method, r.path, r.minor_version, r.consumed) == (b"GET", b"/a?b=1", 1, len(GET) - 4)
    assert r.headers == [(b"Host", b"example.com"), (b"X-Empty", b""), (b"X-Pad", b"v")]
    assert (r.content_length, r.chunked, r.keep_alive, r.expect_continue) == (None, False, True,
                                                                             False)
    assert repr(r) == "<Request b'GET' b'/a?b=1' HTTP/1.1 fields=3>"


def check_response_fields() -> None:
    from gwcore.http.cffi import Parser, Response

    data = b"HTTP/1.0 404 Not Found\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc"
    r = Parser().parse_response(data)
    assert isinstance(r, Response)
    assert (r.status, r.msg, r.minor_version, r.consumed) == (404, b"Not Found", 0, len(data) - 3)
    assert r.headers == [(b"Content-Length", b"3"), (b"Connection", b"keep-alive")]
    assert (r.content_length, r.chunked, r.keep_alive) == (3, False, True)
    chunked = Parser().parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert (chunked.msg, chunked.content_length, chunked.chunked) == (b"OK", None, True)


def check_incomplete_is_none() -> None:
    from gwcore.http.cffi import Parser

    p = Parser()
    for k in range(len(GET) - 4):
        assert p.parse_request(GET[:k]) is None, k
    assert p.parse_response(b"HTTP/1.1 200 OK\r\n") is None


def check_slices_of_the_buffer_type() -> None:
    # as pycohttpparser: fields are slices of what was passed (memoryview: no copies)
    from gwcore.http.cffi import Parser

    p = Parser()
    mv = p.parse_request(memoryview(GET))
    assert isinstance(mv.method, memoryview) and isinstance(mv.headers[0][1], memoryview)
    assert mv.method == b"GET" and mv.headers[0][1].tobytes() == b"example.com"
    ba = p.parse_request(bytearray(GET))
    assert isinstance(ba.path, bytearray) and ba.path == b"/a?b=1"
    two = GET[:-4] + GET  # pipelined: the second from a view at the first's end
    first = p.parse_request(two)
    second = p.parse_request(memoryview(two)[first.consumed:])
    assert bytes(second.path) == b"/a?b=1" and second.consumed == first.consumed
    _raises(lambda: p.parse_request("GET / HTTP/1.1\r\n\r\n"), TypeError)


def check_offset() -> None:
    # or at an offset (gwcore.http.parse_request's argument): slices of the bytes, no view
    from gwcore.http.cffi import ParseError as CffiParseError
    from gwcore.http.cffi import Parser

    p = Parser()
    two = GET[:-4] + GET
    second = p.parse_request(two, len(GET) - 4)
    assert (second.path, second.consumed) == (b"/a?b=1", len(GET) - 4)
    assert second.headers[0] == (b"Host", b"example.com") and type(second.method) is bytes
    assert p.parse_request(two, len(two) - 1) is None and p.parse_request(two, len(two)) is None
    resp = b"xxHTTP/1.1 204 \r\nA: b\r\n\r\n"
    r = p.parse_response(resp, 2)
    assert (r.status, r.msg, r.headers, r.consumed) == (204, b"", [(b"A", b"b")], len(resp) - 2)
    e = _raises(lambda: p.parse_request(b"junkGET / HTTP/1.1\r\nHost: a\r\n f\r\n\r\n", 4),
                CffiParseError)
    assert (e.code, e.offset) == ("obs_fold", 29)        # in the buffer, not from the offset
    _raises(lambda: p.parse_request(GET, len(GET) + 1), ValueError)
    _raises(lambda: p.parse_request(GET, -1), ValueError)


def check_errors() -> None:
    import gwcore.http
    from gwcore.http.cffi import ParseError as CffiParseError
    from gwcore.http.cffi import Parser

    assert CffiParseError is gwcore.http.ParseError and issubclass(CffiParseError, ValueError)
    p = Parser()
    e = _raises(lambda: p.parse_request(b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"),
                CffiParseError)
    assert (e.code, e.status, e.offset) == ("obs_fold", 400, 25)
    e = _raises(lambda: p.parse_request(b"GET / HTTP/1.1\r\n\r\n"), CffiParseError)
    assert (e.code, e.status) == ("host", 400)
    e = _raises(lambda: p.parse_request(b"GET / HTTP/2.0\r\n\r\n"), CffiParseError)
    assert (e.code, e.status) == ("version_unsupported", 505)
    e = _raises(lambda: p.parse_request(b"POST / HTTP/1.1\r\nHost: a\r\n"
                                        b"Transfer-Encoding: gzip, chunked\r\n\r\n"),
                CffiParseError)
    assert (e.code, e.status) == ("te_unsupported", 501)
    e = _raises(lambda: p.parse_response(b"HTTP/1.1 2000 OK\r\n\r\n"), CffiParseError)
    assert (e.code, e.status) == ("status", 400)
    # an error is reported as soon as its byte arrives, whatever follows
    e = _raises(lambda: p.parse_request(b"GET /\x00"), CffiParseError)
    assert (e.code, e.offset) == ("target", 5)


def check_limits() -> None:
    from gwcore.http.cffi import ParseError as CffiParseError
    from gwcore.http.cffi import Parser

    e = _raises(lambda: Parser(max_fields=2).parse_request(GET), CffiParseError)
    assert (e.code, e.status) == ("too_many_fields", 431)
    e = _raises(lambda: Parser(max_head_bytes=30).parse_request(GET), CffiParseError)
    assert (e.code, e.status) == ("head_too_large", 431)
    e = _raises(lambda: Parser(max_target_len=3).parse_request(GET), CffiParseError)
    assert (e.code, e.status) == ("target_too_long", 414)
    assert Parser(max_fields=3, max_head_bytes=len(GET), max_target_len=6).parse_request(GET)
    _raises(lambda: Parser(max_fields=-1), OverflowError)


def check_simd_levels() -> None:
    from gwcore.http.cffi import Parser, set_simd, simd_level

    top = set_simd(2)
    assert top in (0, 1, 2) and simd_level() == top
    for level in range(top + 1):
        assert set_simd(level) == level
        assert Parser().parse_request(GET).headers[2] == (b"X-Pad", b"v")
    assert set_simd(-5) == 0 and set_simd(99) == top


API_CHECKS = [check_request_fields, check_response_fields, check_incomplete_is_none,
              check_slices_of_the_buffer_type, check_offset, check_errors, check_limits,
              check_simd_levels]


def main(argv: list[str]) -> None:
    """Run the API checks, then print the outcomes of corpus(SEED, COUNT) (see the top)."""
    from gwcore.http.cffi import Parser

    seed, count = int(argv[1]), int(argv[2])
    for check in API_CHECKS:
        check()
        print(json.dumps({"check": check.__name__}))
    for i, (kind, data, limits) in enumerate(corpus(seed, count)):
        parser = Parser(**limits)
        row = {"i": i, "whole": to_json(cffi_outcome(parser, kind, data))}
        if i < 100:
            row["prefixes"] = [to_json(cffi_outcome(parser, kind, d)) for d in prefixes(data)]
        print(json.dumps(row))
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv)
