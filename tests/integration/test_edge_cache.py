"""The edge cache (issue 10) in a real gateway in front of a real origin that numbers its
responses per key (origin.py /cacheable: body "KEY #N"), so every assertion on what was
served from the cache is checked against what the origin actually sent."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import (
    Gateway,
    Origin,
    RawConn,
    free_port,
    gateway_config,
    start_gateway,
    start_origin,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)
MiB = 1 << 20


def cache_config(port: int, origin_port: int, dead_port: int, **route_cache) -> dict:
    cfg = gateway_config(port, origin_port, dead_port, routes=[
        {"name": "cached", "match": {"path_prefix": "/cacheable"}, "cluster": "origin",
         "cache": {"lock_timeout": "3s", "key": {"drop_query": ["etag"]}, **route_cache}},
        {"name": "other", "match": {"path_prefix": "/"}, "cluster": "origin"},
    ])
    cfg["cache"] = {"max_bytes": "256MiB", "max_object_bytes": "64MiB"}
    return cfg


@pytest.fixture(scope="module")
def gw(origin: Origin, dead_port: int, tmp_path_factory: pytest.TempPathFactory
       ) -> Iterator[Gateway]:
    g = start_gateway(cache_config(free_port(), origin.port, dead_port),
                      tmp_path_factory.mktemp("cache"))
    yield g
    g.proc.stop()


@pytest.fixture
def client(gw: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        yield c


def key() -> str:
    return uuid.uuid4().hex[:12]


def url(k: str, **opts: str) -> str:
    return "/cacheable?" + "&".join([f"key={k}", *(f"{n}={v}" for n, v in opts.items())])


def serial(r: httpx.Response) -> int:
    return int(r.content.split(b"#")[1].split()[0].split(b".")[0])


def test_fresh_entries_are_hits_with_age_and_head_shares_them(client: httpx.Client) -> None:
    k = key()
    first = client.get(url(k, cc="max-age=60"))
    assert first.status_code == 200 and first.headers["x-cache"] == "MISS" and serial(first) == 1
    second = client.get(url(k, cc="max-age=60"))
    assert second.headers["x-cache"] == "HIT" and serial(second) == 1
    assert int(second.headers["age"]) >= 0 and second.content == first.content
    head = client.head(url(k, cc="max-age=60"))
    assert head.headers["x-cache"] == "HIT" and head.content == b""
    assert head.headers["content-length"] == str(len(first.content))
    # a HEAD miss is not stored (it has no body): the GET after it is still a miss
    k2 = key()
    assert client.head(url(k2, cc="max-age=60")).headers["x-cache"] == "MISS"
    assert serial(client.get(url(k2, cc="max-age=60"))) == 2


@pytest.mark.parametrize("opts,headers,stored", [
    ({"cc": "no-store"}, {}, False),
    ({"cc": "private, max-age=60"}, {}, False),
    ({"cc": "max-age=60", "set_cookie": "1"}, {}, False),
    ({"cc": "max-age=60"}, {"Authorization": "Bearer x"}, False),       # RFC 9111 §3.5
    ({"cc": "public, max-age=60"}, {"Authorization": "Bearer x"}, True),
    ({"cc": "max-age=60"}, {"Cache-Control": "no-store"}, False),
    ({}, {}, False),                                    # no freshness, no validator
    ({"lm": "1000"}, {}, True),                         # heuristic: 10% of 1000 s
    ({"expires": "60"}, {}, True),
    ({"expires": "bad"}, {}, False),                    # invalid Expires: already stale
    ({"cc": "max-age=60", "status": "404"}, {}, True),
    ({"cc": "max-age=60", "status": "500"}, {}, False),
])
def test_what_is_stored(client: httpx.Client, opts: dict, headers: dict, stored: bool) -> None:
    k = key()
    client.get(url(k, **opts), headers=headers)
    again = client.get(url(k, **opts), headers=headers)
    assert (again.headers["x-cache"] == "HIT") is stored, again.headers
    assert serial(again) == (1 if stored else 2)


def test_vary_selects_a_variant_and_star_is_never_served(client: httpx.Client) -> None:
    k = key()
    u = url(k, cc="max-age=60", vary="Accept-Encoding")
    assert client.get(u, headers={"Accept-Encoding": "gzip"}).headers["x-cache"] == "MISS"
    assert serial(client.get(u, headers={"Accept-Encoding": "gzip"})) == 1
    br = client.get(u, headers={"Accept-Encoding": "br"})
    assert br.headers["x-cache"] == "MISS" and serial(br) == 2
    assert serial(client.get(u, headers={"Accept-Encoding": "br"})) == 2
    assert serial(client.get(u, headers={"Accept-Encoding": "gzip"})) == 1
    k = key()
    star = url(k, cc="max-age=60", vary="*")
    client.get(star)
    assert client.get(star).headers["x-cache"] == "MISS"


def test_conditional_requests_get_304_from_a_fresh_entry(client: httpx.Client) -> None:
    k = key()
    u = url(k, cc="max-age=60", etag="v1", lm="100")
    client.get(u)
    r = client.get(u, headers={"If-None-Match": '"v0", "v1"'})
    assert r.status_code == 304 and r.headers["x-cache"] == "HIT" and r.content == b""
    assert r.headers["etag"] == '"v1"' and "content-length" not in r.headers
    ims = client.get(u, headers={"If-Modified-Since": r.headers.get("last-modified", "")})
    assert ims.status_code == 304
    assert client.get(u, headers={"If-None-Match": '"v2"'}).status_code == 200
    assert serial(client.get(u)) == 1


def test_stale_entries_are_revalidated(client: httpx.Client) -> None:
    k = key()
    u = url(k, cc="max-age=1", etag="v1")
    client.get(u)
    r = wait_for(lambda: (r := client.get(u)).headers["x-cache"] != "HIT" and r, timeout=5,
                 what="the entry to go stale")
    assert r.headers["x-cache"] == "REVALIDATED" and serial(r) == 1    # a 304 upstream
    assert client.get(u).headers["x-cache"] == "HIT"
    # a client's no-cache forces a revalidation (client_no_cache: honour, the default)
    forced = client.get(u, headers={"Cache-Control": "no-cache"})
    assert forced.headers["x-cache"] == "REVALIDATED" and serial(forced) == 1
    # a changed representation replaces the entry (etag is not part of the key here)
    changed = url(k, cc="max-age=1", etag="v2")
    assert serial(client.get(changed)) == 1          # the same key: still the v1 entry
    r = wait_for(lambda: (r := client.get(changed)).headers["x-cache"] == "MISS" and r,
                 timeout=5, what="a new representation")
    assert serial(r) == 2 and r.headers["etag"] == '"v2"'
    again = client.get(changed)
    assert again.headers["x-cache"] == "HIT" and serial(again) == 2


def test_stale_while_revalidate_serves_at_once_and_refreshes_once(client: httpx.Client,
                                                                   gw: Gateway) -> None:
    k = key()
    u = url(k, cc="max-age=1, stale-while-revalidate=30", delay="0.3")
    client.get(u)
    wait_for(lambda: client.get(u).headers["x-cache"] == "UPDATING", timeout=5,
             what="a stale answer")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: httpx.get(gw.url + u, timeout=10), range(8)))
    assert all(a.headers["x-cache"] in ("UPDATING", "HIT") for a in answers)
    # exactly one background refresh: the next fresh answer is #2, never #3
    fresh = wait_for(lambda: (r := client.get(u)).headers["x-cache"] == "HIT" and r,
                     timeout=10, what="the refreshed entry")
    assert serial(fresh) == 2


def test_stale_if_error_within_its_window_only(dead_port: int, tmp_path: Path) -> None:
    own = start_origin(tmp_path, "sie-origin")
    g = start_gateway(cache_config(free_port(), own.port, dead_port), tmp_path)
    try:
        u = url(key(), cc="max-age=1, stale-if-error=3")
        with httpx.Client(base_url=g.url, timeout=10) as c:
            assert c.get(u).headers["x-cache"] == "MISS"
            own.proc.stop()
            r = wait_for(lambda: (r := c.get(u)).headers["x-cache"] == "STALE" and r, timeout=5,
                         what="a stale answer while the origin is down")
            assert r.status_code == 200 and serial(r) == 1
            late = wait_for(lambda: (r := c.get(u)).status_code >= 500 and r, timeout=10,
                            what="5xx once the stale-if-error window is over")
            assert late.status_code in (502, 504)
    finally:
        g.proc.stop()
        own.proc.stop()


def test_concurrent_misses_are_coalesced(gw: Gateway) -> None:
    u = url(key(), cc="max-age=60", delay="0.5", size="20000")
    with ThreadPoolExecutor(100) as pool:
        answers = list(pool.map(lambda _: httpx.get(gw.url + u, timeout=30), range(100)))
    assert all(a.status_code == 200 and len(a.content) == 20000 for a in answers)
    assert {serial(a) for a in answers} == {1}          # one request reached the origin
    outcomes = sorted(a.headers["x-cache"] for a in answers)
    assert outcomes.count("MISS") == 1 and outcomes.count("HIT") == 99


def test_uncacheable_concurrent_misses_each_go_upstream(gw: Gateway) -> None:
    u = url(key(), cc="no-store", delay="0.3")
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: httpx.get(gw.url + u, timeout=30), range(5)))
    assert sorted(serial(a) for a in answers) == [1, 2, 3, 4, 5]


def test_large_objects(client: httpx.Client, gw: Gateway) -> None:
    over = url(key(), cc="max-age=60", size=str(65 * MiB))
    assert len(client.get(over).content) == 65 * MiB
    again = client.get(over)
    assert again.headers["x-cache"] == "MISS" and serial(again) == 2    # streamed uncached
    chunked = url(key(), cc="max-age=60", size=str(65 * MiB), chunked="1")
    client.get(chunked)
    assert serial(client.get(chunked)) == 2          # went over the bound while streaming
    segment = url(key(), cc="max-age=60", size=str(50 * MiB))
    assert len(client.get(segment).content) == 50 * MiB
    rss = gw.rss()
    for _ in range(5):
        hit = client.get(segment)
        assert hit.headers["x-cache"] == "HIT" and len(hit.content) == 50 * MiB
        assert serial(hit) == 1
    assert gw.rss() - rss < 20 * MiB, "a hit must not copy the stored body"


def test_unsafe_methods_bypass_and_invalidate(client: httpx.Client) -> None:
    k = key()
    u = url(k, cc="max-age=60")
    client.get(u)
    assert client.get(u).headers["x-cache"] == "HIT"
    post = client.post(u, content=b"x")
    assert post.headers["x-cache"] == "BYPASS"
    assert client.get(u).headers["x-cache"] == "MISS"


def test_gateway_without_cache_adds_no_field(client: httpx.Client) -> None:
    r = client.get("/hello")
    assert "x-cache" not in r.headers


def test_purge_reaches_every_worker_and_only_through_the_admin_listener(
        origin: Origin, dead_port: int, tmp_path: Path) -> None:
    cfg = gateway_config(free_port(), origin.port, dead_port, routes=[
        {"name": "cached", "match": {"path_prefix": "/cacheable"}, "cluster": "origin",
         "cache": {}},
        {"name": "other", "match": {"path_prefix": "/"}, "cluster": "origin"}])
    cfg["workers"] = 2
    cfg["admin"] = {"address": f"127.0.0.1:{free_port()}", "token": "t0k"}
    g = start_gateway(cfg, tmp_path)
    admin = f"http://{cfg['admin']['address']}"
    auth = {"Authorization": "Bearer t0k"}
    host = f"127.0.0.1:{g.port}"
    try:
        k = key()
        u = url(k, cc="max-age=60")

        def fill() -> set[int]:     # new connections: both workers get to cache it
            return {serial(httpx.get(g.url + u, timeout=10)) for _ in range(12)}

        first = fill()
        assert first <= {1, 2}
        # what the cache did is on /metrics (the store's gauges come with the 250 ms sync)
        samples = wait_for(lambda: (m := _metrics(admin)).get(("gwcore_cache_entries", ()))
                           and m, what="the cache gauges synced")
        hits = samples[("gwcore_cache_requests_total", (("outcome", "hit"), ("route", "cached")))]
        misses = samples[("gwcore_cache_requests_total",
                          (("outcome", "miss"), ("route", "cached")))]
        assert (hits, misses) == (12 - len(first), len(first))
        assert samples[("gwcore_cache_bytes", ())] > 0
        # the public listener never purges: PURGE and POST /cache/purge are just requests
        httpx.request("PURGE", g.url + u, timeout=10)
        httpx.post(g.url + f"/cache/purge?url=http://{host}{u}", timeout=10)
        assert fill() == first
        assert httpx.post(admin + "/cache/purge", params={"url": f"http://{host}{u}"},
                          timeout=10).status_code == 401
        r = httpx.post(admin + "/cache/purge", params={"url": f"http://{host}{u}"},
                       headers=auth, timeout=10)
        assert r.status_code == 200 and r.json() == {"purged": len(first), "workers": 2}
        after = fill()
        assert min(after) > max(first)          # every worker went to the origin again
        # PURGE with the URL as its target, on the admin listener
        r = httpx.request("PURGE", admin + u, headers={**auth, "Host": host}, timeout=10)
        assert r.status_code == 200 and r.json()["purged"] >= 1
        assert min(fill()) > max(after)
        # by prefix, from the command line
        others = [url(f"{k}-{i}", cc="max-age=60") for i in range(3)]
        for o in others:
            httpx.get(g.url + o, timeout=10)
        config_path = tmp_path / "gateway.yaml"
        done = subprocess.run([sys.executable, "-m", "gwcore", "purge", "--prefix",
                               f"http://{host}/cacheable?key={k}-", "--config",
                               str(config_path)], capture_output=True, text=True, timeout=30,
                              check=False)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["purged"] >= 3
        for o in others:
            assert httpx.get(g.url + o, timeout=10).headers["x-cache"] == "MISS"
    finally:
        g.proc.stop()


def _metrics(admin: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(admin + "/metrics", timeout=10).text
    return {(x.name, tuple(sorted(x.labels.items()))): x.value
            for fam in text_string_to_metric_families(text) for x in fam.samples}


def test_route_options_client_no_cache_ignore_and_default_ttl(
        origin: Origin, dead_port: int, tmp_path: Path) -> None:
    g = start_gateway(cache_config(free_port(), origin.port, dead_port,
                                   client_no_cache="ignore", default_ttl="60s"), tmp_path)
    try:
        with httpx.Client(base_url=g.url, timeout=10) as c:
            u = url(key(), cc="max-age=60", etag="v1")
            c.get(u)
            r = c.get(u, headers={"Cache-Control": "no-cache"})
            assert r.headers["x-cache"] == "HIT"        # ignored, as NGINX does
            # default_ttl makes a response without freshness storable (the same one is not
            # stored by the shared gateway: test_what_is_stored)
            bare = url(key())
            c.get(bare)
            again = c.get(bare)
            assert again.headers["x-cache"] == "HIT" and serial(again) == 1
            # ...but never overrides a response that forbids storing
            ns = url(key(), cc="no-store")
            c.get(ns)
            assert c.get(ns).headers["x-cache"] == "MISS"
    finally:
        g.proc.stop()


@pytest.fixture(scope="module")
def small(origin: Origin, dead_port: int, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Gateway]:
    """A gateway whose objects are at most 1 MiB, and whose key ignores size, show and
    hints (so one key can get another representation)."""
    cfg = cache_config(free_port(), origin.port, dead_port,
                       key={"drop_query": ["size", "show", "hints", "close", "cc"]})
    cfg["cache"]["max_object_bytes"] = "1MiB"
    g = start_gateway(cfg, tmp_path_factory.mktemp("cache-small"))
    yield g
    g.proc.stop()


def test_the_key_is_what_goes_upstream(gw: Gateway) -> None:
    """An absolute-form target goes upstream with its own authority: it must not fill the
    entry of the Host it came with (cache poisoning); nor a path spelled otherwise."""
    k = key()

    def raw(target: str) -> tuple[str | None, int, bytes]:
        conn = RawConn(gw.port)
        try:
            conn.send(f"GET {target} HTTP/1.1\r\nHost: victim.test\r\n"
                      "Connection: close\r\n\r\n".encode())
            r = conn.read_response()
            return r.header("x-cache"), r.status, r.body.split(b" ")[1]
        finally:
            conn.close()

    query = f"?key={k}&cc=max-age%3D60"
    assert raw(f"http://evil.test/cacheable{query}") == ("MISS", 200, b"#1")
    assert raw(f"/cacheable{query}") == ("MISS", 200, b"#2")
    # the same path once normalised, another request-target upstream (the origin does not
    # decode it: 404): not served the entry of /cacheable
    assert raw(f"/%63acheable{query}")[:2] == ("MISS", 404)
    assert raw(f"/cacheable{query}") == ("HIT", 200, b"#2")


def test_revalidation_sends_what_the_proxy_sends(small: Gateway) -> None:
    u = url(key(), cc="max-age=60", show="1")
    with httpx.Client(base_url=small.url, timeout=10) as c:
        c.get(u)
        forged = {"X-Forwarded-For": "6.6.6.6", "X-Request-Id": "forged id!!",
                  "Proxy-Authorization": "Basic eA==", "Cache-Control": "no-cache"}
        r = c.get(u, headers=forged)
    assert r.headers["x-cache"] == "MISS" and serial(r) == 2       # a new 200 upstream
    assert b"x-forwarded-for=6.6.6.6,_127.0.0.1 " in r.content
    assert b"x-request-id=forged" not in r.content and b"x-request-id=- " not in r.content
    assert b"proxy-authorization=- " in r.content


def test_revalidation_reads_whole_bodies_and_skips_interim_responses(small: Gateway) -> None:
    k = key()
    with httpx.Client(base_url=small.url, timeout=10) as c:
        c.get(url(k, cc="max-age=60", size="100"))
        r = c.get(url(k, cc="max-age=60", size="50000", close="1", hints="1"),
                  headers={"Cache-Control": "no-cache"})
        assert r.status_code == 200 and len(r.content) == 50000 and serial(r) == 2
        hit = c.get(url(k, cc="max-age=60"))
        assert hit.headers["x-cache"] == "HIT" and len(hit.content) == 50000


def test_a_too_large_new_representation_is_proxied_not_an_error(small: Gateway) -> None:
    k = key()
    with httpx.Client(base_url=small.url, timeout=30) as c:
        c.get(url(k, cc="max-age=60", size="1000"))
        big = c.get(url(k, cc="max-age=60", size=str(2 * MiB)),
                    headers={"Cache-Control": "no-cache"})
        assert big.status_code == 200 and len(big.content) == 2 * MiB
        assert big.headers["x-cache"] == "MISS"
        again = c.get(url(k, cc="max-age=60", size="1000"))
        assert again.status_code == 200 and again.headers["x-cache"] == "MISS"


@pytest.mark.parametrize("chunked", ["0", "1"])
def test_coalesced_requests_for_a_too_large_object_each_get_it_whole(small: Gateway,
                                                                     chunked: str) -> None:
    u = url(key(), cc="max-age=60", size=str(3 * MiB), delay="0.3", chunked=chunked)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: httpx.get(small.url + u, timeout=30), range(4)))
    assert [(a.status_code, len(a.content)) for a in answers] == [(200, 3 * MiB)] * 4


def test_concurrent_stale_requests_share_one_revalidation(small: Gateway) -> None:
    """Ten clients that each force a revalidation (no-cache) at once: one request upstream."""
    u = url(key(), cc="max-age=60", delay="0.5")
    httpx.get(small.url + u, timeout=10)
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: httpx.get(
            small.url + u, headers={"Cache-Control": "no-cache"}, timeout=10), range(10)))
    assert {serial(a) for a in answers} == {2}


def test_no_304_for_a_stored_error(small: Gateway) -> None:
    u = url(key(), cc="max-age=60", status="404", etag="e")
    httpx.get(small.url + u, timeout=10)
    r = httpx.get(small.url + u, headers={"If-None-Match": "*"}, timeout=10)
    assert r.status_code == 404 and r.headers["x-cache"] == "HIT"
