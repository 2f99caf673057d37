"""gwcore.observability.metrics without processes: column layout across configs, rows handed
out and folded back, and the exposition parsed by prometheus_client."""

from __future__ import annotations

import pytest
from gwcore.observability._metrics import Region, Row
from prometheus_client.parser import text_string_to_metric_families

from gwcore.config import parse
from gwcore.observability import metrics as m

BASE = """
listeners: [{name: public, address: 127.0.0.1:8080}]
clusters:
  - {name: a, endpoints: [127.0.0.1:9001, 127.0.0.1:9002]}
  - {name: b, endpoints: [127.0.0.1:9003]}
routes:
  - {name: one, match: {path_prefix: /one}, cluster: a}
  - {match: {path_prefix: /}, cluster: b}
admin: {address: 127.0.0.1:9901}
"""


def samples(hub: m.Hub) -> dict:
    body, ctype = hub.render(None)
    assert ctype.startswith("text/plain; version=0.0.4")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(body.decode()) for s in fam.samples}


def test_a_series_keeps_its_column_across_configs() -> None:
    reg = m.Registry()
    first = reg.layout(parse(BASE))
    changed = reg.layout(parse(BASE.replace("{name: one, match", "{name: two, match")))
    assert changed.routes["route-1"] == first.routes["route-1"]
    assert changed.clusters == first.clusters and changed.endpoints == first.endpoints
    assert changed.routes["two"] not in first.routes.values()
    # a route that moves to another cluster is another series (its labels changed)
    moved = reg.layout(parse(BASE.replace("cluster: b}", "cluster: a}")))
    assert moved.routes["route-1"] != first.routes["route-1"]


def test_the_registry_refuses_to_overflow_its_region() -> None:
    reg = m.Registry(columns=m.ROUTE_WIDTH * 2)
    with pytest.raises(ValueError, match="columns are not enough"):
        reg.layout(parse(BASE))


def test_counts_survive_a_worker_and_gauges_do_not() -> None:
    hub = m.Hub(workers=2)
    lay = hub.set_config(parse(BASE))
    r1, row1 = hub.acquire()
    _, row2 = hub.acquire()
    base = lay.routes["one"] + m.R_REQUESTS + m.METHODS.index("GET") * len(m.CODE_CLASSES) + 2
    row1.inc(base, 3)
    row2.inc(base, 4)
    ep = lay.endpoints[("a", "127.0.0.1:9001")]
    row1.set(ep + m.E_CONNECTIONS, 2)
    row2.set(ep + m.E_CONNECTIONS, 5)
    s = samples(hub)
    key = ("gwcore_requests_total", (("cluster", "a"), ("code_class", "2xx"), ("method", "GET"),
                                     ("route", "one")))
    assert s[key] == 7
    conns = ("gwcore_upstream_connections", (("cluster", "a"), ("endpoint", "127.0.0.1:9001")))
    assert s[conns] == 7
    hub.release(r1)                     # worker 1 exited
    s = samples(hub)
    assert s[key] == 7 and s[conns] == 5
    r3, row3 = hub.acquire()
    assert r3 == r1                     # the row is reused, zeroed
    row3.inc(base)
    assert samples(hub)[key] == 8


def test_histogram_buckets_are_cumulative_and_in_seconds() -> None:
    hub = m.Hub(workers=1)
    lay = hub.set_config(parse(BASE))
    _, row = hub.acquire()
    h = lay.routes["one"] + m.R_DURATION
    for ns in (50_000, 100_000, 2_000_000, 90_000_000_000):
        row.observe(h, ns)
    s = samples(hub)

    def bucket(le: str) -> float:
        return s[("gwcore_request_duration_seconds_bucket", (("le", le), ("route", "one")))]

    assert bucket("0.0001") == 2 and bucket("0.0025") == 3 and bucket("60.0") == 3
    assert bucket("+Inf") == 4
    assert s[("gwcore_request_duration_seconds_count", (("route", "one"),))] == 4
    assert s[("gwcore_request_duration_seconds_sum", (("route", "one"),))] == pytest.approx(
        90.00215)


def test_region_checks_its_arguments() -> None:
    region = Region(3, 8)
    with pytest.raises(IndexError):
        region.row(0)                   # the master's row is never handed out
    with pytest.raises(ValueError):
        region.sum(b"\0", 8)            # one byte per row
    assert not Row().enabled            # metrics off: records nothing
    Row().inc(5)


def test_config_redaction() -> None:
    from gwcore.observability.admin import redact

    shown = redact({"admin": {"token": "t", "address": "a"},
                    "filters": [{"use": "m:F", "config": {"signing_key": "k", "n": 1}}],
                    "jwt_providers": {"p": {"jwks": {"url": "https://u:pw@idp/j?access_token=x"}}},
                    "tracing": {"otlp": {"headers": {"x-api-key": "k"}, "endpoint": "http://c"}}})
    assert shown["admin"] == {"token": "REDACTED", "address": "a"}
    assert shown["filters"][0] == {"use": "m:F", "config": "REDACTED"}
    assert shown["jwt_providers"]["p"]["jwks"]["url"] == "https://REDACTED@idp/j?REDACTED"
    assert shown["tracing"]["otlp"] == {"headers": "REDACTED", "endpoint": "http://c"}
