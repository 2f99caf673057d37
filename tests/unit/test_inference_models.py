"""gwcore.inference.models without a gateway: the choice a model route makes for an exchange
(model, version, pin, sticky keys, queue places) and its fallbacks (order, places given back,
nothing recorded before a fallback is taken). Clusters are stand-ins: the session alone uses
them."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import yaml
from gwcore.proxy._exchange import Exchange

from gwcore.config import parse
from gwcore.filters.base import Response
from gwcore.http import parse_request
from gwcore.inference.models import ModelRoute, ModelRuntime, Version

CONFIG = {
    "listeners": [{"name": "public", "address": "127.0.0.1:8080"}],
    "clusters": [{"name": n, "endpoints": ["127.0.0.1:9001"]} for n in ("a", "b", "eu", "c")],
    "jwt_providers": {"p": {"issuer": "i", "audiences": ["x"], "algorithms": ["HS256"],
                            "jwks": {"file": "/dev/null"}}},
    "models": {
        "m": {"versions": [{"name": "v1", "cluster": "a", "weight": 3},
                           {"name": "v2", "cluster": "b", "weight": 1}],
              "fallback": ["v2", "eu"], "max_in_flight": 1, "queue": 0},
        "by-ip": {"versions": [{"name": "x", "cluster": "a"}, {"name": "y", "cluster": "b"}],
                  "sticky_on": "source_ip"},
        "by-claim": {"versions": [{"name": "x", "cluster": "a"}, {"name": "y", "cluster": "b"}],
                     "sticky_on": {"jwt_claim": "sub"}},
    },
    "routes": [{"match": {"path_prefix": "/"}, "model_from": {"json_field": "model"},
                "version_header": "X-Model-Version", "jwt": "p"}],
}


@pytest.fixture
def route() -> ModelRoute:
    cfg = parse(yaml.safe_dump(CONFIG))
    clusters = {c.name: SimpleNamespace(name=c.name) for c in cfg.clusters}
    models = {n: ModelRuntime(n, m, clusters, None) for n, m in cfg.models.items()}
    return ModelRoute(cfg.routes[0], models)


def exchange(headers: dict[str, str] | None = None, client: str = "192.0.2.1") -> Exchange:
    lines = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    req = parse_request(f"POST /v1/x HTTP/1.1\r\nHost: h\r\n{lines}\r\n".encode())
    return Exchange(req, None, client)


def body(model: str) -> bytes:
    return json.dumps({"model": model, "input": "x"}).encode()


def test_split_pin_and_exchange_fields(route: ModelRoute) -> None:
    picks = []
    for _ in range(8):
        ex = exchange()
        v = route.choose(ex, body("m"))
        assert isinstance(v, Version)
        picks.append(v.label)
        assert (ex.model, ex.model_version) == ("m", v.label)
        route.on_log(ex)                        # gives the place back
    assert picks.count("v1") == 6 and picks.count("v2") == 2
    ex = exchange({"X-Model-Version": "v2"})
    assert route.choose(ex, body("m")).label == "v2"
    bad = route.choose(exchange({"X-Model-Version": "v9"}), body("m"))
    assert isinstance(bad, Response) and bad.status == 404
    assert json.loads(bad.body)["error"]["code"] == "version_not_found"


def test_sticky_keys(route: ModelRoute) -> None:
    by_ip = {route.choose(exchange(client="198.51.100.7"), body("by-ip")).label
             for _ in range(20)}
    assert len(by_ip) == 1
    labels = set()
    for sub in ("alice", "bob", "carol", "dave", "erin", "frank"):
        seen = set()
        for _ in range(10):
            ex = exchange()
            ex.state["jwt_claims"] = {"sub": sub}
            seen.add(route.choose(ex, body("by-claim")).label)
        assert len(seen) == 1                   # one user, one version
        labels |= seen
    assert labels == {"x", "y"}


def test_a_full_version_refuses_at_once(route: ModelRoute) -> None:
    first = exchange({"X-Model-Version": "v1"})
    assert route.choose(first, body("m")).label == "v1"
    refused = route.choose(exchange({"X-Model-Version": "v1"}), body("m"))
    assert isinstance(refused, Response) and refused.status == 503
    assert refused.headers.get(b"retry-after") == b"1"
    route.on_log(first)
    assert route.choose(exchange({"X-Model-Version": "v1"}), body("m")).label == "v1"


def test_fallbacks_in_order_give_places_back_and_skip_full_versions(route: ModelRoute) -> None:
    model = route.models["m"]
    v1, v2 = model.versions
    ex = exchange({"X-Model-Version": "v1"})
    route.choose(ex, body("m"))
    assert v1.limiter.in_flight == 1
    got = route.next_fallback(ex, 30.0)
    assert got is not None and got[1] is v2
    assert ex.model_version == "v1" and model.fallbacks_taken == 0     # nothing taken yet
    assert v1.backoff_until > 0                                         # Retry-After kept
    taken = route.take_fallback(ex, *got)
    assert taken is v2 and ex.model_version == "v2"
    assert (v1.limiter.in_flight, v2.limiter.in_flight) == (0, 1)      # the place moved
    i, eu = route.next_fallback(ex, None)
    assert eu.label == "eu"
    route.take_fallback(ex, i, eu)
    assert v2.limiter.in_flight == 0 and ex.model_version == "eu"
    assert route.next_fallback(ex, None) is None
    route.on_log(ex)
    # a version whose place is taken is passed over: straight to the cluster fallback
    holder = exchange({"X-Model-Version": "v2"})
    route.choose(holder, body("m"))
    other = exchange()
    other.model, other.model_version = "m", "v1"
    assert route.next_fallback(other, None)[1].label == "eu"


def test_a_backed_off_version_is_not_picked(route: ModelRoute) -> None:
    v1, _v2 = route.models["m"].versions
    v1.backoff_until = 1e18
    for _ in range(8):
        ex = exchange()
        assert route.choose(ex, body("m")).label == "v2"
        route.on_log(ex)
