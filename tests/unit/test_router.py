"""Router: first match in config order by host (exact, *.suffix), path (exact, prefix), method."""

import msgspec

from gwcore.config import Route as RouteConfig
from gwcore.proxy._router import Router


def router(*routes):
    cfgs = [msgspec.convert({"cluster": c, "match": m}, RouteConfig) for m, c in routes]
    return Router(cfgs, {c: f"cluster-{c}" for _, c in routes})


def test_order_host_path_method():
    r = router(
        ({"host": "api.example.com", "path": "/exact"}, "a"),
        ({"host": "*.example.com", "path_prefix": "/v1/", "methods": ["GET"]}, "b"),
        ({"path_prefix": "/"}, "c"),
    )
    pick = lambda h, t, m=b"GET": r.match(h, t, m).cluster
    assert pick(b"api.example.com", b"/exact") == "cluster-a"
    assert pick(b"API.Example.com:8443", b"/exact?x=1") == "cluster-a"
    assert pick(b"api.example.com", b"/exact/more") == "cluster-c"
    assert pick(b"x.y.example.com", b"/v1/items") == "cluster-b"
    assert pick(b"x.y.example.com", b"/v1/items", b"POST") == "cluster-c"
    assert pick(b"example.com", b"/v1/items") == "cluster-c"   # *.suffix needs a label
    assert pick(b"evil-example.com", b"/v1/") == "cluster-c"


def test_no_match_and_absolute_form():
    r = router(({"host": "a.test", "path_prefix": "/p"}, "a"))
    assert r.match(b"b.test", b"/p", b"GET") is None
    assert r.match(b"", b"/p", b"GET") is None
    # absolute-form: the authority in the target wins over Host (RFC 9112 §3.2.2)
    assert r.match(b"b.test", b"http://a.test/p/x", b"GET").cluster == "cluster-a"
    assert r.match(b"[::1]:80", b"/p", b"GET") is None


def test_split_absolute_ends_the_authority_at_path_query_or_fragment():
    from gwcore.proxy._router import split_absolute
    assert split_absolute(b"http://h?x=1", b"o") == (b"/?x=1", b"h")
    assert split_absolute(b"http://h:8080/p?q#frag", b"o") == (b"/p?q", b"h:8080")
    assert split_absolute(b"http://h", b"o") == (b"/", b"h")
    assert split_absolute(b"*", b"o") == (b"*", b"o")
