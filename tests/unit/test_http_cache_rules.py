"""gwcore.cache.http_cache: RFC 9111 storing, freshness and age, conditional requests, Vary."""

from __future__ import annotations

import pytest

from gwcore.cache import http_cache as hc

NOW = 1_800_000_000.0


def fields(d: dict[bytes, list[bytes]]):
    return lambda name: d.get(name, [])


def test_cache_control_parsing() -> None:
    cc = hc.parse_cache_control([b'max-age=60, s-maxage="120", No-Cache', b"max-age=5, private"])
    assert cc == {"max-age": "60", "s-maxage": "120", "no-cache": None, "private": None}
    assert hc.parse_cache_control([b'no-cache="Set-Cookie, X-A", ,public'])["no-cache"] == \
        "Set-Cookie, X-A"
    assert hc.delta_seconds("99999999999") == hc.DELTA_MAX
    assert hc.delta_seconds("-1") is None and hc.delta_seconds("1.5") is None


@pytest.mark.parametrize("value", [b"Sun, 06 Nov 1994 08:49:37 GMT",
                                   b"Sunday, 06-Nov-94 08:49:37 GMT",
                                   b"Sun Nov  6 08:49:37 1994"])
def test_the_three_http_date_forms(value: bytes) -> None:
    assert hc.http_date(value) == 784111777.0


def test_invalid_dates() -> None:
    assert hc.http_date(b"0") is None and hc.http_date(None) is None
    assert hc.http_date(hc.format_http_date(NOW)) == NOW


def storable(status: int = 200, req: dict | None = None, resp: dict | None = None,
             **kw) -> str | None:
    args = {"authorization": False, "set_cookie": False, "store_set_cookie": False,
            "expires": False, "last_modified": False} | kw
    return hc.storable(b"GET", status, req or {}, resp or {}, **args)


def test_storable_rules() -> None:
    assert storable(resp={"max-age": "60"}) is None
    assert storable(resp={"no-store": None}) == "no-store"
    assert storable(req={"no-store": None}, resp={"max-age": "60"}) == "no-store"
    assert storable(resp={"private": None, "max-age": "60"}) == "private"
    assert storable(resp={"max-age": "60"}, authorization=True) == "authorization"
    for allowed in ("public", "must-revalidate", "s-maxage"):       # §3.5
        assert storable(resp={"max-age": "60", allowed: "1"}, authorization=True) is None
    assert storable(resp={"max-age": "60"}, set_cookie=True) == "set-cookie"
    assert storable(resp={"max-age": "60"}, set_cookie=True, store_set_cookie=True) is None
    assert storable() == "no-freshness"
    assert storable(last_modified=True) is None             # heuristic allowed for 200
    assert storable(302, last_modified=True) == "no-freshness"     # not cacheable by default
    assert storable(302, resp={"max-age": "60"}) is None
    assert storable(206, resp={"max-age": "60"}) == "status"
    assert hc.storable(b"POST", 200, {}, {"max-age": "60"}, authorization=False,
                       set_cookie=False, store_set_cookie=False, expires=False,
                       last_modified=False) == "method"


def lifetime(cc: dict, status: int = 200, **kw) -> float:
    args = {"date": NOW, "expires": None, "last_modified": None, "response_time": NOW,
            "heuristic_max": 86400.0} | kw
    return hc.freshness_lifetime(status, cc, **args)


def test_freshness_lifetime_order() -> None:
    assert lifetime({"s-maxage": "30", "max-age": "60"}) == 30      # shared cache: s-maxage
    assert lifetime({"max-age": "60"}, expires=hc.format_http_date(NOW + 600)) == 60
    assert lifetime({}, expires=hc.format_http_date(NOW + 600)) == 600
    assert lifetime({}, expires=b"0") == 0                           # invalid: expired
    assert lifetime({}, last_modified=NOW - 1000) == 100             # 10% heuristic
    assert lifetime({}, last_modified=NOW - 10**7) == 86400          # capped
    assert lifetime({}, status=302, last_modified=NOW - 1000) == 0   # no heuristic for 302
    assert lifetime({"max-age": "x"}) == 0


def test_age_and_staleness() -> None:
    s = hc.stored(200, fields({b"cache-control": [b"max-age=100, stale-while-revalidate=30"],
                               b"date": [hc.format_http_date(NOW - 10)],
                               b"age": [b"5"], b"etag": [b'"v1"']}),
                  request_time=NOW - 1, response_time=NOW, heuristic_max=86400)
    # apparent age 10 s beats the corrected Age (5 + 1 s in transit)
    assert s.current_age(NOW) == pytest.approx(10)
    assert s.fresh(NOW + 89) and not s.fresh(NOW + 91)
    assert s.staleness(NOW + 100) == pytest.approx(10)
    assert s.stale_while_revalidate == 30 and s.stale_if_error == 0
    assert not s.must_revalidate and s.etag == b'"v1"'
    nc = hc.stored(200, fields({b"cache-control": [b"no-cache, max-age=100"]}),
                   request_time=NOW, response_time=NOW, heuristic_max=0)
    assert nc.no_cache and not nc.fresh(NOW)        # stored, never served without validation


def test_conditional_requests() -> None:
    s = hc.stored(200, fields({b"etag": [b'W/"abc"'],
                               b"last-modified": [hc.format_http_date(NOW - 100)]}),
                  request_time=NOW, response_time=NOW, heuristic_max=60)
    assert hc.not_modified(b'"x", "abc"', None, s)                  # weak comparison
    assert hc.not_modified(b"*", None, s)
    assert not hc.not_modified(b'"x"', hc.format_http_date(NOW), s)  # If-None-Match decides
    assert hc.not_modified(None, hc.format_http_date(NOW - 50), s)
    assert not hc.not_modified(None, hc.format_http_date(NOW - 200), s)
    assert not hc.not_modified(None, b"garbage", s)
    assert not hc.not_modified(None, None, s)


def test_vary() -> None:
    assert hc.vary_names([b"Accept-Encoding, accept-language", b"X-A"]) == (
        b"accept-encoding", b"accept-language", b"x-a")
    assert hc.vary_names([b"accept, *"]) is None
    req = {b"accept-encoding": [b"gzip,br"], b"x-a": [b"1", b"2"]}
    assert hc.vary_key((b"accept-encoding", b"x-a"), fields(req)) == (b"gzip, br", b"1, 2")
    assert hc.vary_key((b"accept-encoding",), fields({b"accept-encoding": [b" gzip , br"]})) \
        == (b"gzip, br",)
    assert hc.vary_key((b"accept-language",), fields(req)) == (b"",)
