"""HTTP/1.1 request-head parsing: gwcore vs httptools (llhttp, callbacks) vs h11.

Input: a realistic 400-byte GET with 10 fields. Each contender produces what a server needs:
method, target and the fields reachable from Python.

- gwcore, lazy: ``parse_request`` then ``method``, ``target`` and ``get(b"host")``; the other
  fields stay offsets until asked for (the gateway's own use).
- gwcore, all fields: the same plus ``headers``, i.e. every name and value as ``bytes``.
- httptools: one ``HttpRequestParser`` reused across requests (a keep-alive connection) with
  ``on_url``/``on_header``/``on_headers_complete`` callbacks collecting the URL and every field;
  and, for a single request, the same with a new parser per request (a new connection).
- gwcore's cffi binding (``gwcore.http.cffi``, the same C through cffi's API mode, for PyPy):
  ``Parser().parse_request``, which builds method, target and every field as it returns (the
  pycohttpparser API); pipelined requests with its ``offset`` argument. On PyPy, the same
  calls: bench/micro/pypy_parse.py (not a pytest-benchmark: pypy3 runs it).
- h11: ``Connection.receive_data`` + ``next_event`` until the ``Request`` and its
  ``EndOfMessage``; a new ``Connection`` per request, because h11 parses the next request on a
  connection only after the response to the previous one was sent. For 16 pipelined requests it
  does send a minimal response between requests, which h11 requires.

    /work/venv/bin/python -m pytest bench/micro/test_parser_bench.py \
        --benchmark-columns=min,median,ops --benchmark-group-by=group --benchmark-min-time=0.0002
"""

from __future__ import annotations

import h11
import httptools
import pytest
from parser_input import GET, PIPELINED, TARGET

from gwcore.http import cffi as gwcffi
from gwcore.http import parse_request

SINGLE = "parse 400-byte GET, 10 fields"
PIPE = "parse 16 pipelined 400-byte GETs"


def test_input_shape() -> None:
    assert 390 <= len(GET) <= 410
    assert GET.count(b"\r\n") - 2 == 10


# ---- gwcore -------------------------------------------------------------------------------------


def gw_lazy_one(data: bytes) -> list[tuple]:
    r = parse_request(data)
    return [(r.method, r.target, r.get(b"host"))]


def gw_all_one(data: bytes) -> list[tuple]:
    r = parse_request(data)
    return [(r.method, r.target, r.headers)]


def gw_lazy(data: bytes) -> list[tuple]:
    out = []
    off = 0
    while off < len(data):
        r = parse_request(data, off)
        out.append((r.method, r.target, r.get(b"host")))
        off += r.head_length
    return out


def gw_all(data: bytes) -> list[tuple]:
    out = []
    off = 0
    while off < len(data):
        r = parse_request(data, off)
        out.append((r.method, r.target, r.headers))
        off += r.head_length
    return out


# ---- gwcore, cffi binding ------------------------------------------------------------------------

CFFI = gwcffi.Parser()


def cffi_one(data: bytes) -> list[tuple]:
    r = CFFI.parse_request(data)
    return [(r.method, r.path, r.headers)]


def cffi_pipelined(data: bytes) -> list[tuple]:
    out = []
    off = 0
    while off < len(data):
        r = CFFI.parse_request(data, off)
        out.append((r.method, r.path, r.headers))
        off += r.consumed
    return out


# ---- httptools ---------------------------------------------------------------------------------


class HttptoolsServer:
    """The callbacks a server written on httptools registers."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.out: list[tuple] = []
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.out.append((self.parser.get_method(), self.url, self.headers))
        self.url = b""
        self.headers = []

    def feed(self, data: bytes) -> list[tuple]:
        self.out = []
        self.parser.feed_data(data)
        return self.out


# ---- h11 -----------------------------------------------------------------------------------------

RESPONSE = h11.Response(status_code=200, headers=[(b"content-length", b"0")])


def h11_parse(data: bytes) -> list[tuple]:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    out = []
    while True:
        ev = conn.next_event()
        if isinstance(ev, h11.Request):
            out.append((ev.method, ev.target, ev.headers))
        elif isinstance(ev, h11.EndOfMessage):
            if len(out) * len(GET) == len(data):
                return out
            conn.send(RESPONSE)
            conn.send(h11.EndOfMessage())
            conn.start_next_cycle()
        else:
            raise TypeError(f"unexpected h11 event {ev!r}")


# ---- benchmarks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("group", "data"), [(SINGLE, GET), (PIPE, PIPELINED)], ids=["1", "16"])
def test_gwcore_lazy(benchmark, group: str, data: bytes) -> None:
    benchmark.group = group
    out = benchmark(gw_lazy_one if data is GET else gw_lazy, data)
    assert out == [(b"GET", TARGET, b"media.example.com")] * (len(data) // len(GET))


@pytest.mark.parametrize(("group", "data"), [(SINGLE, GET), (PIPE, PIPELINED)], ids=["1", "16"])
def test_gwcore_all_fields(benchmark, group: str, data: bytes) -> None:
    benchmark.group = group
    out = benchmark(gw_all_one if data is GET else gw_all, data)
    assert len(out) == len(data) // len(GET)
    assert out[-1][2][0] == (b"Host", b"media.example.com") and len(out[-1][2]) == 10


@pytest.mark.parametrize(("group", "data"), [(SINGLE, GET), (PIPE, PIPELINED)], ids=["1", "16"])
def test_gwcore_cffi(benchmark, group: str, data: bytes) -> None:
    benchmark.group = group
    out = benchmark(cffi_one if data is GET else cffi_pipelined, data)
    assert len(out) == len(data) // len(GET)
    assert out[-1][1] == TARGET and len(out[-1][2]) == 10


@pytest.mark.parametrize(("group", "data"), [(SINGLE, GET), (PIPE, PIPELINED)], ids=["1", "16"])
def test_httptools_callbacks(benchmark, group: str, data: bytes) -> None:
    benchmark.group = group
    server = HttptoolsServer()
    out = benchmark(server.feed, data)
    assert len(out) == len(data) // len(GET)
    assert out[-1][:2] == (b"GET", TARGET) and len(out[-1][2]) == 10


def test_httptools_callbacks_new_parser(benchmark) -> None:
    benchmark.group = SINGLE
    out = benchmark(lambda data: HttptoolsServer().feed(data), GET)
    assert out[0][:2] == (b"GET", TARGET) and len(out[0][2]) == 10


@pytest.mark.parametrize(("group", "data"), [(SINGLE, GET), (PIPE, PIPELINED)], ids=["1", "16"])
def test_h11(benchmark, group: str, data: bytes) -> None:
    benchmark.group = group
    out = benchmark(h11_parse, data)
    assert len(out) == len(data) // len(GET)
    assert out[-1][:2] == (b"GET", TARGET) and len(out[-1][2]) == 10
