"""Metrics and the admin API on a real 2-worker gateway: counts scraped from /metrics after known
traffic are exact; no counter goes backwards across a reload or a killed worker; OpenMetrics
when asked; the admin paths are never served on the public listener; /readyz follows the
workers, the clusters' health and the drain; POST /reload answers with its outcome."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import (
    HOST,
    Gateway,
    Origin,
    free_port,
    gateway_config,
    start_gateway,
    start_origin,
    tree_pids,
    wait_for,
)
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.timeout(120)


def config(port: int, admin_port: int, origin_port: int, dead_port: int, **admin) -> dict:
    cfg = gateway_config(port, origin_port, dead_port, routes=[
        {"name": "api", "match": {"path_prefix": "/status/"}, "cluster": "origin"},
        {"name": "down", "match": {"path_prefix": "/down/"}, "cluster": "dead"},
    ])
    cfg["workers"] = 2
    cfg["admin"] = {"address": f"{HOST}:{admin_port}", **admin}
    return cfg


@pytest.fixture
def gateway(origin: Origin, dead_port: int, tmp_path: Path) -> Iterator[Gateway]:
    g = start_gateway(config(free_port(), free_port(), origin.port, dead_port), tmp_path)
    yield g
    g.proc.stop()


def admin_url(g: Gateway) -> str:
    return f"http://{g.config['admin']['address']}"


def scrape(g: Gateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: (name, sorted labels) → value."""
    r = httpx.get(admin_url(g) + "/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(r.text) for s in fam.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def send(g: Gateway, method: str, path: str, n: int) -> list[int]:
    with httpx.Client(base_url=g.url, timeout=10) as c:
        return [c.request(method, path).status_code for _ in range(n)]


def traffic(g: Gateway) -> None:
    """20 GET 200, 5 POST 201, 4 HEAD 200, 6 GET 503 on route api; 7 GET 502 on route down
    (its cluster's only endpoint refuses connections); 3 GET 404 that match no route."""
    assert send(g, "GET", "/status/200", 20) == [200] * 20
    assert send(g, "POST", "/status/201", 5) == [201] * 5
    assert send(g, "HEAD", "/status/200", 4) == [200] * 4
    assert send(g, "GET", "/status/503", 6) == [503] * 6
    assert send(g, "GET", "/down/x", 7) == [502] * 7
    assert send(g, "GET", "/nowhere", 3) == [404] * 3


EXPECTED = [
    ({"route": "api", "cluster": "origin", "method": "GET", "code_class": "2xx"}, 20),
    ({"route": "api", "cluster": "origin", "method": "POST", "code_class": "2xx"}, 5),
    ({"route": "api", "cluster": "origin", "method": "HEAD", "code_class": "2xx"}, 4),
    ({"route": "api", "cluster": "origin", "method": "GET", "code_class": "5xx"}, 6),
    ({"route": "down", "cluster": "dead", "method": "GET", "code_class": "5xx"}, 7),
    ({"route": "", "cluster": "", "method": "GET", "code_class": "4xx"}, 3),
]


def check_counts(s: dict, times: int = 1) -> None:
    for labels, n in EXPECTED:
        assert value(s, "gwcore_requests_total", **labels) == n * times, labels
    requests = sum(v for (name, _), v in s.items() if name == "gwcore_requests_total")
    assert requests == sum(n for _, n in EXPECTED) * times
    assert value(s, "gwcore_request_duration_seconds_count", route="api") == 35 * times
    assert value(s, "gwcore_request_duration_seconds_bucket", route="api", le="+Inf") \
        == 35 * times
    assert value(s, "gwcore_request_ends_total", route="api", end="ok") == 35 * times
    assert value(s, "gwcore_request_ends_total", route="down", end="upstream_error") \
        == 7 * times
    assert value(s, "gwcore_request_ends_total", route="", end="local") == 3 * times
    assert value(s, "gwcore_upstream_ttfb_seconds_count", cluster="origin") == 35 * times
    retries = value(s, "gwcore_upstream_retries_total", cluster="dead")
    assert value(s, "gwcore_upstream_errors_total", cluster="dead",
                 kind="connect_failure") == 7 * times + retries
    assert value(s, "gwcore_request_bytes_total", route="api") == 0
    assert value(s, "gwcore_response_bytes_total", route="api") > 35 * times * 50


def test_counts_are_exact_across_two_workers(gateway: Gateway) -> None:
    pids = set(tree_pids(gateway.pid)) - {gateway.pid}
    assert len(pids) == 2
    traffic(gateway)
    check_counts(scrape(gateway))
    # gauges and info
    s = wait_for(lambda: (s := scrape(gateway)) and value(
        s, "gwcore_downstream_connections_accepted_total", listener="public") >= 6 and s,
        what="accepted connections synced")
    assert value(s, "gwcore_workers", state="serving") == 2
    origin_ep = gateway.config["clusters"][0]["endpoints"][0]
    assert value(s, "gwcore_upstream_endpoint_healthy", cluster="origin", endpoint=origin_ep) == 1
    assert value(s, "gwcore_upstream_connections", cluster="origin", endpoint=origin_ep) >= 1
    assert any(name == "gwcore_build_info" for name, _ in s)


def test_counters_never_go_backwards(gateway: Gateway) -> None:
    traffic(gateway)
    before = scrape(gateway)
    # a reload: a new generation takes over, the old one exits
    old = set(tree_pids(gateway.pid)) - {gateway.pid}
    os.kill(gateway.pid, signal.SIGHUP)
    wait_for(lambda: not (old & set(tree_pids(gateway.pid))), timeout=30,
             what="the old generation exited")
    after_reload = scrape(gateway)
    assert value(after_reload, "gwcore_reloads_total", outcome="accepted") == 1
    # a worker killed outright is respawned; what it counted stays
    victim = min(set(tree_pids(gateway.pid)) - {gateway.pid})
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(set(tree_pids(gateway.pid)) - {gateway.pid, victim}) == 2
             and value(scrape(gateway), "gwcore_workers", state="serving") == 2,
             timeout=30, what="the killed worker respawned")
    after_kill = scrape(gateway)
    assert value(after_kill, "gwcore_worker_restarts_total") == 1
    for snapshot in (after_reload, after_kill):
        for key, v in before.items():
            if key[0].endswith(("_total", "_count", "_sum", "_bucket")):
                assert snapshot.get(key, 0.0) >= v, key
    traffic(gateway)
    check_counts(scrape(gateway), times=2)


def test_openmetrics_when_asked(gateway: Gateway) -> None:
    send(gateway, "GET", "/status/200", 3)
    r = httpx.get(admin_url(gateway) + "/metrics", timeout=10,
                  headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    fams = {f.name: f for f in openmetrics_families(r.text)}
    assert fams["gwcore_requests"].type == "counter"
    assert any(s.labels.get("route") == "api" and s.value == 3
               for s in fams["gwcore_requests"].samples if s.name == "gwcore_requests_total")


def test_admin_paths_are_not_on_the_public_listener(gateway: Gateway) -> None:
    for path in ("/metrics", "/healthz", "/readyz", "/config", "/clusters"):
        r = httpx.get(gateway.url + path, timeout=10)
        assert r.status_code == 404 and b"gwcore_" not in r.content, path
        assert httpx.get(admin_url(gateway) + path, timeout=10).status_code == 200, path
    assert httpx.post(gateway.url + "/reload", timeout=10).status_code == 404


def test_admin_address_on_a_public_listener_is_a_config_error(
        origin: Origin, dead_port: int, tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "same.yaml"
    for admin in (f"{HOST}:{port}", f"0.0.0.0:{port}"):
        path.write_text(yaml.safe_dump(config(port, port, origin.port, dead_port)
                                       | {"admin": {"address": admin}}))
        from gwcore import runtime
        from gwcore.config import ConfigError
        with pytest.raises(ConfigError, match=r"admin.address: .* overlaps listeners\[0\]"):
            runtime.load(str(path))


def test_config_and_clusters(origin: Origin, dead_port: int, tmp_path: Path) -> None:
    cfg = config(free_port(), free_port(), origin.port, dead_port, token="s3cret")
    g = start_gateway(cfg, tmp_path)
    try:
        token = {"Authorization": "Bearer s3cret"}
        assert httpx.get(admin_url(g) + "/config", timeout=10).status_code == 401
        assert httpx.get(admin_url(g) + "/clusters", timeout=10).status_code == 401
        assert httpx.get(admin_url(g) + "/readyz", timeout=10).status_code == 200
        shown = httpx.get(admin_url(g) + "/config", timeout=10, headers=token).json()
        assert shown["admin"]["token"] == "REDACTED" and "s3cret" not in str(shown)
        assert [r["name"] for r in shown["routes"]] == ["api", "down"]
        send(g, "GET", "/down/x", 2)
        clusters = wait_for(lambda: (c := httpx.get(admin_url(g) + "/clusters", timeout=10,
                                                    headers=token).json())["origin"]
                            ["endpoints"][0]["connections"] is not None and c,
                            what="/clusters")
        assert clusters["dead"]["errors"]["connect_failure"] >= 2
        assert clusters["origin"]["endpoints"][0]["healthy"] is True
        # the mutating endpoint needs the token
        assert httpx.post(admin_url(g) + "/reload", timeout=10).status_code == 401
        r = httpx.post(admin_url(g) + "/reload", timeout=60,
                       headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200 and "accepted: generation 2 serving" in r.text
        # a bad config is rejected with its reason; the running one stays
        good = g.config_path.read_text()
        bad = yaml.safe_load(good)
        bad["routes"][0]["cluster"] = "nope"
        g.config_path.write_text(yaml.safe_dump(bad))
        r = httpx.post(admin_url(g) + "/reload", timeout=60,
                       headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 400 and "routes[0].cluster: unknown cluster 'nope'" in r.text
        assert httpx.get(g.url + "/status/200", timeout=10).status_code == 200
        s = scrape(g)
        assert value(s, "gwcore_reloads_total", outcome="rejected") == 1
        assert value(s, "gwcore_config_last_reload_successful") == 0
    finally:
        g.proc.stop()


def test_readyz_follows_health_and_drain(dead_port: int, tmp_path: Path) -> None:
    checked, holder = start_origin(tmp_path, "checked"), start_origin(tmp_path, "holder")
    cfg = gateway_config(free_port(), checked.port, dead_port, clusters=[
        {"name": "checked", "endpoints": [f"{HOST}:{checked.port}"],
         "health_check": {"path": "/status/200", "interval": "200ms", "timeout": "500ms",
                          "unhealthy_threshold": 1, "healthy_threshold": 1}},
        {"name": "holder", "endpoints": [f"{HOST}:{holder.port}"]},
    ], routes=[
        {"match": {"path_prefix": "/hold"}, "cluster": "holder"},
        {"match": {"path_prefix": "/"}, "cluster": "checked"},
    ])
    cfg["workers"] = 2
    cfg["drain_timeout"] = "20s"
    cfg["admin"] = {"address": f"{HOST}:{free_port()}"}
    g = start_gateway(cfg, tmp_path)
    pool = ThreadPoolExecutor(1)
    try:
        def readyz() -> httpx.Response:
            return httpx.get(admin_url(g) + "/readyz", timeout=10)

        wait_for(lambda: readyz().status_code == 200, what="ready")
        checked.proc.stop()
        r = wait_for(lambda: (r := readyz()).status_code == 503 and r, timeout=15,
                     what="503 once the only endpoint is down")
        assert "cluster checked: no healthy endpoint" in r.text
        assert httpx.get(admin_url(g) + "/healthz", timeout=10).status_code == 200
        # a drain: /readyz says so at once, while a held request keeps the workers up
        held = pool.submit(httpx.get, g.url + "/hold?key=drain", timeout=30)
        wait_for(lambda: holder.stats()["in_flight"], what="request held")
        os.kill(g.pid, signal.SIGTERM)
        r = wait_for(lambda: (r := readyz()).status_code == 503 and "draining" in r.text and r,
                     what="draining")
        holder.release("drain")
        assert held.result(timeout=20).status_code == 200
        assert g.proc.popen.wait(timeout=30) == 0
    finally:
        pool.shutdown(wait=False)
        g.proc.stop()
        holder.proc.stop()
        checked.proc.stop()


def test_readyz_waits_for_every_worker(origin: Origin, dead_port: int, tmp_path: Path) -> None:
    """Workers whose JWT provider's first key fetch hangs are not ready until its timeout:
    /readyz says 503 and why, then 200; the failed fetches are counted."""
    silent = socket.socket()
    silent.bind((HOST, 0))
    silent.listen(16)               # connects complete, nothing ever answers
    cfg = config(free_port(), free_port(), origin.port, dead_port)
    cfg["jwt_providers"] = {"slow": {
        "algorithms": ["RS256"],
        "jwks": {"url": f"http://{HOST}:{silent.getsockname()[1]}/jwks.json",
                 "timeout": "3s"}}}
    cfg["routes"][0]["jwt"] = "slow"
    g = start_gateway(cfg, tmp_path, ready=False)
    try:
        r = httpx.get(admin_url(g) + "/readyz", timeout=10)
        assert r.status_code == 503 and "of 2 workers of generation 1 serving" in r.text
        wait_for(lambda: httpx.get(admin_url(g) + "/readyz", timeout=10).status_code == 200,
                 timeout=20, what="ready after the fetch timeout")
        s = wait_for(lambda: (s := scrape(g)) and value(
            s, "gwcore_jwks_fetches_total", provider="slow", outcome="error") >= 2 and s,
            what="failed fetches counted")
        assert value(s, "gwcore_jwks_fetches_total", provider="slow", outcome="ok") == 0
    finally:
        g.proc.stop()
        silent.close()


def test_jwt_outcomes_and_access_log_lines_are_counted(origin: Origin, dead_port: int,
                                                       tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": [{"kty": "oct", "kid": "k", "alg": "HS256", '
                    '"k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]}')
    cfg = config(free_port(), free_port(), origin.port, dead_port)
    cfg["jwt_providers"] = {"p": {"algorithms": ["HS256"], "jwks": {"file": str(jwks)}}}
    cfg["routes"][0]["jwt"] = "p"
    cfg["access_log"] = {"path": str(tmp_path / "access.log")}
    g = start_gateway(cfg, tmp_path)
    try:
        assert send(g, "GET", "/status/200", 3) == [401] * 3
        with httpx.Client(base_url=g.url, timeout=10,
                          headers={"Authorization": "Bearer not-a-jwt"}) as c:
            assert [c.get("/status/200").status_code for _ in range(2)] == [401] * 2
        s = scrape(g)
        assert value(s, "gwcore_jwt_requests_total", provider="p", outcome="missing") == 3
        assert value(s, "gwcore_jwt_requests_total", provider="p", outcome="segments") == 2
        assert value(s, "gwcore_requests_total", route="api", cluster="origin", method="GET",
                     code_class="4xx") == 5
        wait_for(lambda: value(scrape(g), "gwcore_access_log_lines_total") == 5,
                 what="5 access-log lines counted")
        assert value(scrape(g), "gwcore_access_log_dropped_lines_total") == 0
    finally:
        g.proc.stop()
