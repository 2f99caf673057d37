"""What a route's filters cost per request in the gateway's own code, without the network
(issue 9: the per-phase cost behind bench/macro/routes.py's ratios).

Everything is built the way a worker builds it: the route config is parsed by gwcore.config,
the filters are built as a worker builds them (the user filters of bench/macro/bench_filters.py,
whose phases do nothing and return None, as ``Class(config)``; the JWT filter as
``JwtAuth(Provider)``, HS256 with a JWKS file and ``forward_claims: {sub: x-user-id}``), the
routes are gwcore.proxy Route objects with their per-phase tuples, and the request is a gwcore.http.parse_request of test_parser_bench.py's GET plus an
``Authorization: Bearer`` field with an HS256 token (677 bytes, 11 fields).

What each group covers (each figure is per request):

- ``exchange``: ``Exchange(request, route)``, the Python constructor (the gateway makes its
  exchange in C with ``new_exchange``: the same free-list allocation and field sets without
  the Python call and the getattr of the request's fields, so this is an upper bound), and
  ``Exchange.__new__`` alone (the allocation: a lower bound).
- ``filter entry``: what ``Downstream._filter`` does on a route with an on_request phase before
  any filter runs: the head copied to ``bytes``, parsed a second time by ``parse_request`` and
  the normalised path set on it. Every route with an on_request phase (the JWT filter
  included) pays it; a route without filters never does.
- ``on_request``: ``run_request_filters(exchange, route.on_request)`` with 0 (the gateway skips
  the call then: loop floor), 1 and 3 trivial phases; and the JWT filter's on_request with a
  token it has seen (HS256, one forwarded claim: token lookup, cache hit, claims into
  ``exchange.state``, ``set_upstream_field``), including a new Exchange per call because the
  filter adds to it (subtract ``exchange / Exchange(request, route)``).
- ``on_response_head``: ``Downstream._filtered_head`` in Python: the upstream's fields without
  hop-by-hop and framing ones as ``bytes`` pairs, ``Response(status, items, None)``, the
  route's phases (one trivial phase; or none: the path's own cost, though the gateway takes
  it only for a route with a phase), the head encoded again (status line with
  ``reason()``, the fields, ``Content-Length``, the gateway's extra lines). The gateway runs
  the same Python-object operations from Cython, so this is close to, and at most a little
  above, its cost; a route without on_response_head phases writes the head from the parsed
  offsets in C instead. ``Response(...)`` and ``reason()`` are also measured alone.
- ``on_log``: the ``Downstream._finish`` loop over ``route.on_log`` with one trivial phase.
- ``fields``: ``Fields.set`` / ``Fields.get`` on a response's 8 fields (what a filter that
  edits a response pays).

    .venv/bin/python -m pytest bench/micro/test_filters_bench.py \\
        --benchmark-columns=min,median,ops --benchmark-group-by=group
"""

from __future__ import annotations

import base64
import importlib
import json
import sys
import time
from pathlib import Path

import jwt as pyjwt
import pytest
from test_parser_bench import GET  # bench/micro is on sys.path under pytest (no __init__.py)

from gwcore import config
from gwcore.filters.base import Exchange, Fields, Response, reason, run_request_filters
from gwcore.filters.jwt_auth import JwtAuth, Provider
from gwcore.http import parse_request, parse_response
from gwcore.proxy._router import Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "macro"))   # bench_filters

SECRET = b"gwcore-bench-hs256-secret-32-byt"
ISSUER = "https://bench.gwcore.invalid/"

# test_parser_bench's GET (10 fields) with an 11th, the token
HEAD = GET.replace(b"\r\n\r\n", b"\r\nAuthorization: Bearer @TOKEN@\r\n\r\n")
RESPONSE_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Server: nginx/1.22.1\r\n"
    b"Date: Mon, 07 Dec 2026 03:51:25 GMT\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Length: 1024\r\n"
    b"Connection: keep-alive\r\n"
    b"Cache-Control: max-age=60\r\n"
    b"ETag: \"5f3e-400\"\r\n"
    b"Accept-Ranges: bytes\r\n"
    b"\r\n"
)
HOP = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
                 b"transfer-encoding", b"upgrade", b"content-length"))
EXTRA = [b"Via: 1.1 gwcore\r\n"]

def token() -> bytes:
    now = int(time.time())
    return pyjwt.encode({"iss": ISSUER, "aud": "gateway", "sub": "bench-user", "iat": now,
                         "exp": now + 86400}, SECRET, algorithm="HS256",
                        headers={"kid": "bench"}).encode()


@pytest.fixture(scope="module")
def routes(tmp_path_factory) -> dict[str, Route]:
    """Routes with 0 to 3 filters, their config parsed by gwcore.config, the filters built as a
    worker builds them (user filters as Class(config), the JWT filter from its Provider)."""
    d = tmp_path_factory.mktemp("filters-bench")
    k = base64.urlsafe_b64encode(SECRET).rstrip(b"=").decode()
    (d / "jwks.json").write_text(json.dumps({"keys": [{"kty": "oct", "kid": "bench", "k": k}]}))
    cfg = config.parse(
        "listeners: [{name: l, address: 127.0.0.1:8080}]\n"
        "clusters: [{name: origin, endpoints: [127.0.0.1:9000]}]\n"
        f"jwt_providers:\n  bench: {{algorithms: [HS256], issuer: {json.dumps(ISSUER)}, "
        "audiences: [gateway], jwks: {file: jwks.json}, forward_claims: {sub: x-user-id}}\n"
        "routes: [{match: {path_prefix: /}, cluster: origin}]\n", "bench", base_dir=d)
    jwt_filter = JwtAuth(Provider("bench", cfg.jwt_providers["bench"]))
    trivial = importlib.import_module("bench_filters")
    filters = {"plain": (), "jwt": (jwt_filter,), "one": (trivial.OnRequest({}),),
               "three": tuple(trivial.OnRequest({}) for _ in range(3)),
               "three_phases": (trivial.ThreePhases({}),)}
    return {name: Route(cfg.routes[0], None, fs, name) for name, fs in filters.items()}


@pytest.fixture(scope="module")
def head() -> bytes:
    return HEAD.replace(b"@TOKEN@", token())


@pytest.fixture(scope="module")
def request_(head):
    req = parse_request(head)
    req.path = req.target.partition(b"?")[0]
    return req


def test_route_phases(routes):
    """The routes are what the benchmarks below claim (not timed)."""
    assert [len(r.on_request) for r in routes.values()] == [0, 1, 1, 3, 1]
    assert len(routes["three_phases"].on_response_head) == 1
    assert len(routes["three_phases"].on_log) == 1
    assert not routes["plain"].on_log and not routes["one"].on_response_head


# -- exchange ---------------------------------------------------------------------------------


def test_exchange_init(benchmark, request_, routes):
    benchmark.group = "exchange"
    route = routes["one"]
    ex = benchmark(Exchange, request_, route, "127.0.0.1")
    assert ex.route_name == "one"


def test_exchange_new(benchmark):
    benchmark.group = "exchange"
    benchmark(Exchange.__new__, Exchange)


# -- filter entry -----------------------------------------------------------------------------


# -- on_request -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["plain", "one", "three"],
                         ids=["0 phases", "1 phase", "3 phases"])
def test_run_request_filters(benchmark, request_, routes, name):
    benchmark.group = "on_request: run_request_filters, trivial phases"
    route = routes[name]
    ex = Exchange(request_, route, "127.0.0.1")
    assert benchmark(run_request_filters, ex, route.on_request) is None


def test_jwt_cached(benchmark, request_, routes):
    """JWT filter, token seen before; a new Exchange per call (the filter writes to it)."""
    benchmark.group = "on_request: JWT, HS256 cached, 1 forwarded claim (+ Exchange)"
    route = routes["jwt"]
    phases = route.on_request

    def check():
        ex = Exchange(request_, route, "127.0.0.1")
        return run_request_filters(ex, phases), ex

    check()                        # the first sighting verifies and caches
    result, ex = benchmark(check)
    assert result is None and ex.upstream_fields == [(b"x-user-id", b"bench-user")]


# -- on_response_head -------------------------------------------------------------------------


def filtered_head(upstream, ex, phases):
    """Downstream._filtered_head's Python-object work (it runs it from Cython)."""
    items = [(n, v) for n, v in upstream.headers if n.lower() not in HOP]
    response = Response.received(upstream.status, items)
    for phase in phases:
        if phase(ex, response) is not None:
            raise AssertionError("a trivial phase replaced the response")
    lines = [b"HTTP/1.1 %d %s\r\n" % (response.status, reason(response.status).encode())]
    for name, value in response.headers:
        lines += [name, b": ", value, b"\r\n"]
    lines.append(b"Content-Length: %d\r\n" % upstream.content_length)
    lines += EXTRA
    lines.append(b"\r\n")
    return b"".join(lines)


@pytest.mark.parametrize("name", ["plain", "three_phases"], ids=["0 phases", "1 phase"])
def test_filtered_head(benchmark, request_, routes, name):
    benchmark.group = "on_response_head: head rebuilt through Response"
    route = routes[name]
    ex = Exchange(request_, route, "127.0.0.1")
    upstream = parse_response(RESPONSE_HEAD)
    upstream.headers        # noqa: B018 (built once here; the gateway reads the parser's offsets)
    out = benchmark(filtered_head, upstream, ex, route.on_response_head)
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 1024" in out


def test_response_init(benchmark):
    benchmark.group = "on_response_head: pieces"
    items = [(n, v) for n, v in parse_response(RESPONSE_HEAD).headers if n.lower() not in HOP]
    assert len(benchmark(Response, 200, items, None).headers) == 6


def test_reason(benchmark):
    benchmark.group = "on_response_head: pieces"
    assert benchmark(reason, 200) == "OK"


# -- on_log -----------------------------------------------------------------------------------


def test_on_log(benchmark, request_, routes):
    benchmark.group = "on_log"
    route = routes["three_phases"]
    ex = Exchange(request_, route, "127.0.0.1")

    def finish():
        for phase in route.on_log:
            try:
                phase(ex)
            except Exception:  # noqa: BLE001 (Downstream._finish logs it)
                raise AssertionError("on_log failed") from None

    benchmark(finish)


# -- fields -----------------------------------------------------------------------------------


def test_fields_set(benchmark):
    benchmark.group = "fields (8 fields)"
    fields = Fields(parse_response(RESPONSE_HEAD).headers)
    benchmark(fields.set, b"Cache-Control", b"no-store")
    assert fields.get(b"cache-control") == b"no-store" and len(fields) == 8


def test_fields_get(benchmark):
    benchmark.group = "fields (8 fields)"
    fields = Fields(parse_response(RESPONSE_HEAD).headers)
    assert benchmark(fields.get, b"etag") == b'"5f3e-400"'
