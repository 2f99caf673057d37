"""The C HTTP/1.1 head parser (src_c/http1.c) through cffi, for code that cannot load the Cython
binding, PyPy above all, with the API of pycohttpparser (the cffi wrapper of picohttpparser)::

    from gwcore.http.cffi import Parser, ParseError
    p = Parser()
    r = p.parse_request(data)        # None while the head is incomplete
    r.method, r.path, r.minor_version, r.headers, r.consumed

``gwcore.http._cffi_http1`` is compiled in cffi's API mode when the package is built (setup.py
``cffi_modules``, from gwcore/http/_cffi_build.py) from the same C file as the Cython binding,
so both accept and reject exactly the same bytes, with the same ``ParseError`` code, status and
offset (the differential test, tests/conformance/test_cffi_parser.py, holds them to that). It
is a second copy of the C code, with its own SIMD level (``set_simd`` below); the gateway
never imports it.

Differences from pycohttpparser: the parser is gwcore's (strict RFC 9112: malformed or
smuggling-prone heads raise ``gwcore.http.ParseError``, a ``ValueError`` with ``code``,
``status`` and ``offset``, where pycohttpparser raises its own ``ParseError("Invalid
message")``); the buffer is not copied (pycohttpparser copies it into a C array per call);
an optional ``offset`` parses a head further into the buffer (pipelining, as
``gwcore.http.parse_request``'s); results also carry the framing the parser checked
(``content_length``, ``chunked``, ``keep_alive``). As in pycohttpparser, ``method``, ``path``, header names and values are slices
of the buffer passed, so of its type (``bytes`` for ``bytes``, ``memoryview`` for a
``memoryview``: then valid only while the buffer is unchanged), and ``path`` is the whole
request-target. A ``Parser`` reuses its C arrays: one per thread.

Importable by Python 3.9 (Debian 12's PyPy): keep the syntax old.
"""

from __future__ import annotations

import sys

from gwcore.http._cffi_http1 import ffi, lib
from gwcore.http._errors import ParseError

__all__ = ["ParseError", "Parser", "Request", "Response", "set_simd", "simd_level"]


def _error_tables() -> tuple[tuple[str, ...], tuple[int, ...]]:
    names, statuses = [], []
    while True:
        name = ffi.string(lib.gw_http_error_name(len(names))).decode("ascii")
        if name == "unknown":
            return tuple(names), tuple(statuses)
        statuses.append(lib.gw_http_error_status(len(names)))
        names.append(name)


_NAMES, _STATUSES = _error_tables()
_FIXED = 9  # numbers gw_cffi_unpack writes before the field spans
_PYPY = sys.implementation.name == "pypy"


def _headers(buffer, o, n: int) -> list:
    return [(buffer[o[i]:o[i + 1]], buffer[o[i + 2]:o[i + 3]]) for i in range(_FIXED, n, 4)]


class Request:
    """A parsed request head (pycohttpparser's ``Request`` fields, then the framing)."""

    __slots__ = (
        "chunked",
        "consumed",
        "content_length",
        "expect_continue",
        "headers",
        "keep_alive",
        "method",
        "minor_version",
        "path",
    )

    def __init__(self, method, path, minor_version, headers, consumed, content_length, chunked,
                 keep_alive, expect_continue) -> None:
        self.method = method                    # the method token, case preserved
        self.path = path                        # the whole request-target, as received
        self.minor_version = minor_version      # 0 or 1 (HTTP/1.0, HTTP/1.1)
        self.headers = headers                  # [(name, value)], OWS trimmed, in order
        self.consumed = consumed                # head bytes, through the empty line
        self.content_length = content_length    # int, or None when absent
        self.chunked = chunked                  # Transfer-Encoding: chunked
        self.keep_alive = keep_alive            # the connection persists (RFC 9112 9.3)
        self.expect_continue = expect_continue  # Expect: 100-continue

    def __repr__(self) -> str:
        return (f"<Request {bytes(self.method)!r} {bytes(self.path)!r} "
                f"HTTP/1.{self.minor_version} fields={len(self.headers)}>")


class Response:
    """A parsed response head (pycohttpparser's ``Response`` fields, then the framing)."""

    __slots__ = (
        "chunked",
        "consumed",
        "content_length",
        "headers",
        "keep_alive",
        "minor_version",
        "msg",
        "status",
    )

    def __init__(self, status, msg, minor_version, headers, consumed, content_length, chunked,
                 keep_alive) -> None:
        self.status = status                    # 100..599
        self.msg = msg                          # the reason-phrase (may be empty)
        self.minor_version = minor_version
        self.headers = headers
        self.consumed = consumed
        self.content_length = content_length
        self.chunked = chunked
        self.keep_alive = keep_alive

    def __repr__(self) -> str:
        return (f"<Response HTTP/1.{self.minor_version} {self.status} "
                f"fields={len(self.headers)}>")


class Parser:
    """Parses request and response heads; stateless between calls apart from its scratch arrays.

    Limits, as ``gwcore.http.parse_request``'s: ``max_head_bytes`` (whole head; over it: 431
    ``head_too_large``), ``max_fields`` (field lines; 431 ``too_many_fields``) and
    ``max_target_len`` (request-target bytes; 414 ``target_too_long``).
    """

    def __init__(self, *, max_head_bytes: int = 16384, max_fields: int = 100,
                 max_target_len: int = 8192) -> None:
        self._req_limits = ffi.new("gw_limits *", (max_head_bytes, max_fields, max_target_len))
        self._resp_limits = ffi.new("gw_limits *", (max_head_bytes, max_fields, 0))
        self._head = ffi.new("gw_head *")
        self._fields = ffi.new("gw_field[]", max(max_fields, 1))
        self._out = ffi.new("int64_t[]", _FIXED + 4 * max_fields)
        # CPython: read back as a list through a memoryview (.tolist() builds the ints faster
        # than ffi.unpack, and far faster than indexing the cdata); PyPy's JIT indexes the cdata
        # directly, where the memoryview costs microseconds
        self._view = None if _PYPY else memoryview(ffi.buffer(self._out)).cast("q")

    def parse_request(self, buffer, offset: int = 0) -> Request | None:
        """The request head at ``buffer[offset:]`` (bytes, bytearray, memoryview...): a Request
        whose ``consumed`` (counted from ``offset``) says where the body or the next request
        starts; None while the head is incomplete (call again with more bytes, from the same
        start); ParseError when it is malformed, whatever follows (``offset`` of the error:
        in ``buffer``). ``offset`` (not in pycohttpparser, as gwcore.http.parse_request's)
        parses pipelined requests without slicing the buffer; ValueError outside it."""
        data = ffi.from_buffer(buffer)
        size = len(data)
        if not 0 <= offset <= size:
            raise ValueError(f"offset {offset} outside the data (length {size})")
        h = self._head
        r = lib.gw_parse_request(data + offset, size - offset, self._req_limits, h, self._fields)
        if r < 0:
            if r == -2:
                return None
            raise ParseError(_NAMES[h.error], _STATUSES[h.error], offset + h.error_off)
        n = lib.gw_cffi_unpack(1, offset, h, self._fields, self._out)
        o = self._out if self._view is None else self._view[:n].tolist()
        return Request(buffer[o[5]:o[6]], buffer[o[7]:o[8]], o[0], _headers(buffer, o, n), r,
                       None if o[1] < 0 else o[1], o[2] == 1, o[3] == 1, o[4] == 1)

    def parse_response(self, buffer, offset: int = 0) -> Response | None:
        """The response head (status-line and fields) at ``buffer[offset:]``; the same
        conventions as parse_request. Whether a body follows (1xx, 204, 304, a response to
        HEAD) is the caller's decision."""
        data = ffi.from_buffer(buffer)
        size = len(data)
        if not 0 <= offset <= size:
            raise ValueError(f"offset {offset} outside the data (length {size})")
        h = self._head
        r = lib.gw_parse_response(data + offset, size - offset, self._resp_limits, h,
                                  self._fields)
        if r < 0:
            if r == -2:
                return None
            raise ParseError(_NAMES[h.error], _STATUSES[h.error], offset + h.error_off)
        n = lib.gw_cffi_unpack(0, offset, h, self._fields, self._out)
        o = self._out if self._view is None else self._view[:n].tolist()
        return Response(o[4], buffer[o[5]:o[6]], o[0], _headers(buffer, o, n), r,
                        None if o[1] < 0 else o[1], o[2] == 1, o[3] == 1)


def simd_level() -> int:
    """This copy's scanning level: 0 scalar, 1 SSE4.2, 2 AVX2 (detected at first use)."""
    return lib.gw_http1_simd_level()


def set_simd(level: int) -> int:
    """Forces this copy's scanning level (clamped to what the CPU supports) and returns it.
    Independent of ``gwcore.http.set_simd``, which governs the Cython binding's copy."""
    return lib.gw_http1_set_simd(level)
