"""Local rate limits in a real gateway: two workers of one master share one limit (requests
offered through both for 5 s, accepted within ±2% of burst + rate × time), the 429 on the
wire (Retry-After, the draft-ietf-httpapi-ratelimit-headers-12 fields, on admitted responses
too with ``headers: always``), and counters that survive a reload and a worker's death (the
master's shared table)."""

from __future__ import annotations

import http.client
import os
import signal

import pytest
from conftest import (
    HOST,
    free_port,
    gateway_config,
    get_as,
    held_connections,
    offer_load,
    start_gateway_on_free_port,
    tree_pids,
    wait_for,
)

RATE, BURST, SECONDS = 200, 20, 5.0


def rl_config(port: int, origin_port: int, dead_port: int) -> dict:
    cfg = gateway_config(port, origin_port, dead_port, routes=[
        {"name": "shared", "match": {"path_prefix": "/hello"}, "cluster": "origin",
         "rate_limit": ["per_ip"]},
        {"name": "slow", "match": {"path_prefix": "/slow-limit/"}, "cluster": "origin",
         "rate_limit": ["hourly"], "forward_normalized_path": False},
        {"name": "shown", "match": {"path_prefix": "/shown/"}, "cluster": "origin",
         "rate_limit": ["shown"]},
        {"match": {"path_prefix": "/"}, "cluster": "origin"},
    ])
    cfg["workers"] = 2
    cfg["admin"] = {"address": f"{HOST}:{free_port()}"}
    cfg["rate_limits"] = {
        "per_ip": {"key": "source_ip", "rate": f"{RATE}/s", "burst": BURST},
        "hourly": {"key": [{"header": "X-Client"}, "route"], "rate": "2/h"},
        "shown": {"key": {"header": "X-Client"}, "rate": "10/s", "headers": "always"},
    }
    return cfg


@pytest.fixture(scope="module")
def gw_rl(origin, dead_port, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ratelimit-local")
    gw = start_gateway_on_free_port(lambda port: rl_config(port, origin.port, dead_port), tmp,
                                    "gw-ratelimit")
    yield gw
    gw.proc.stop()


def workers(gw) -> list[int]:
    return [p for p in tree_pids(gw.pid) if p != gw.pid]


def test_two_workers_share_one_limit(gw_rl, origin) -> None:
    pids = workers(gw_rl)
    assert len(pids) == 2
    statuses, elapsed = offer_load([gw_rl.port], "/hello", SECONDS, conns=16)
    # both workers forwarded: each keeps its connections to the origin in its idle pool
    wait_for(lambda: all(held_connections(p, origin.port) for p in pids), timeout=10,
             what="both workers holding origin connections")
    expected = BURST + RATE * elapsed
    offered = sum(statuses.values())
    print(f"offered {offered} requests in {elapsed:.2f} s ({offered / elapsed:.0f}/s) through "
          f"2 workers: {statuses[200]} accepted, {statuses[429]} refused; expected "
          f"{expected:.0f} ({statuses[200] / expected - 1:+.2%})")
    assert set(statuses) == {200, 429}
    assert offered > 2 * expected                      # the limit was what held it
    assert abs(statuses[200] - expected) <= 0.02 * expected


def test_429_on_the_wire(gw_rl) -> None:
    h = {"X-Client": "wire"}
    assert [get_as(gw_rl.port, "/slow-limit/a", h).status for _ in range(2)] == [404, 404]
    r = get_as(gw_rl.port, "/slow-limit/a", h)
    assert r.status == 429
    assert 1790 <= int(r.header("retry-after")) <= 1800        # 2/h: one every 30 min
    assert r.header("ratelimit-policy") == '"hourly";q=2;w=3600;gwcore-burst=2'
    assert r.header("ratelimit") == f'"hourly";r=0;t={r.header("retry-after")}'
    assert r.body == b"429 Too Many Requests: rate limit exceeded\n"
    assert get_as(gw_rl.port, "/slow-limit/a", {"X-Client": "other"}).status == 404
    assert get_as(gw_rl.port, "/slow-limit/a").status == 404          # no X-Client: no limit


def metric(gw, line_start: str) -> float | None:
    conn = http.client.HTTPConnection(gw.config["admin"]["address"].rsplit(":", 1)[0],
                                      int(gw.config["admin"]["address"].rsplit(":", 1)[1]),
                                      timeout=5)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_refusals_are_counted(gw_rl) -> None:
    h = {"X-Client": "counted"}
    assert [get_as(gw_rl.port, "/slow-limit/c", h).status for _ in range(4)] == [404, 404, 429,
                                                                           429]
    wait_for(lambda: (metric(gw_rl, 'gwcore_rate_limit_refused_total{limit="hourly"}') or 0)
             >= 2, what="the refusals in /metrics")
    assert metric(gw_rl, 'gwcore_rate_limit_store_errors_total{limit="hourly"}') == 0


def test_fields_on_admitted_responses(gw_rl) -> None:
    r = get_as(gw_rl.port, "/shown/x", {"X-Client": "shown"})
    assert r.status == 404                                          # the origin's answer
    assert r.header("ratelimit-policy") == '"shown";q=10;w=1;gwcore-burst=10'
    assert r.header("ratelimit") == '"shown";r=9;t=1'


def test_counters_survive_reload_and_worker_death(gw_rl) -> None:
    h = {"X-Client": "survivor"}
    assert [get_as(gw_rl.port, "/slow-limit/b", h).status for _ in range(3)] == [404, 404, 429]
    before = set(workers(gw_rl))
    os.kill(gw_rl.pid, signal.SIGHUP)
    gw_rl.proc.wait_for_log("generation 2 serving", timeout=20)
    wait_for(lambda: not (set(workers(gw_rl)) & before), timeout=20, what="old workers gone")
    assert get_as(gw_rl.port, "/slow-limit/b", h).status == 429        # a new generation
    victim = workers(gw_rl)[0]
    os.kill(victim, signal.SIGKILL)
    gw_rl.proc.wait_for_log("respawning", timeout=20)
    wait_for(lambda: len(workers(gw_rl)) == 2 and victim not in workers(gw_rl), timeout=20,
             what="worker respawned")
    gw_rl.proc.wait_for_log("serving", count=5, timeout=20)
    for _ in range(4):                                             # whichever worker answers
        assert get_as(gw_rl.port, "/slow-limit/b", h).status == 429
