"""Filters from config in a real gateway: the examples of examples/filters.py and probe filters
(gw_filter_probes.py) loaded by import path — global ones first, then the route's — the
example response field, the 403 of DenyClients, on_log once per request however it ended,
and ``gwcore check`` naming the key path of a filter that cannot be loaded.

The gateway finds the modules the way a user's gateway would: on its PYTHONPATH (here
examples/ and this directory, set in the environment the gateway process inherits)."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
import yaml
from conftest import (
    HERE,
    PYTHON,
    REPO,
    RawConn,
    gateway_config,
    start_gateway_on_free_port,
    wait_for,
)

PYTHONPATH = os.pathsep.join(
    [str(REPO / "examples"), str(HERE)]
    + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))


def filters_config(port: int, origin_port: int, dead_port: int, log: Path) -> dict:
    cfg = gateway_config(port, origin_port, dead_port, routes=[
        {"name": "denied", "match": {"host": "denied.test", "path_prefix": "/"},
         "cluster": "origin",
         "filters": [{"use": "filters:DenyClients", "config": {"deny": ["192.0.2.1", "127.0.0.1"]}}]},
        {"name": "dead", "match": {"host": "dead.test"}, "cluster": "dead"},
        {"name": "slow", "match": {"host": "timeout.test"}, "cluster": "origin",
         "timeouts": {"request": "500ms"}},
        {"match": {"path_prefix": "/"}, "cluster": "origin",             # route-3
         "filters": [{"use": "gw_filter_probes:Mark", "config": {"name": "r"}},
                     {"use": "filters:AddResponseField",
                      "config": {"name": "X-Region", "value": "eu-west-1"}}]},
    ])
    cfg["filters"] = [
        {"use": "filters:DenyClients", "config": {"deny": ["192.0.2.0/24", "2001:db8::/32"]}},
        {"use": "gw_filter_probes:Mark", "config": {"name": "g"}},
        {"use": "gw_filter_probes:LogLines", "config": {"path": str(log)}},
    ]
    return cfg


@pytest.fixture(scope="module")
def gw_filters(origin, dead_port, tmp_path_factory) -> Iterator[tuple[object, Path]]:
    tmp = tmp_path_factory.mktemp("filters")
    log = tmp / "on_log.jsonl"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", PYTHONPATH)     # the gateway process inherits it
        gw = start_gateway_on_free_port(
            lambda port: filters_config(port, origin.port, dead_port, log), tmp, "gw-filters")
    yield gw, log
    gw.proc.stop()


def get(conn: RawConn, target: str, host: str = "gw.test", extra: str = ""):
    conn.send(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nX-Test: t-{target}\r\n{extra}\r\n"
              .encode())
    return conn.read_response()


def log_records(log: Path) -> list[dict]:
    try:
        lines = log.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines]


def by_id(log: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for rec in log_records(log):
        out.setdefault(dict(parse_qsl(rec["query"] or "")).get("id", ""), []).append(rec)
    return out


def test_the_example_field_arrives_and_global_filters_run_before_the_routes(gw_filters):
    gw, _ = gw_filters
    with RawConn(gw.port) as c:
        r = get(c, "/headers?id=field")
    assert r.status == 200, r.body
    assert r.header("x-region") == "eu-west-1"                   # AddResponseField
    assert r.header("x-request-order") == "g,r"                  # on_request: global, route
    assert r.header("x-head-order") == "g,r"                     # on_response_head: the same
    sent = [v for k, v in r.json()["headers"] if k.lower() == "x-mark"]
    assert sent == ["g", "r"]                                    # add_upstream_header, in order


def test_deny_clients_answers_403_to_a_listed_client_and_lets_others_through(gw_filters):
    gw, log = gw_filters
    with RawConn(gw.port) as c:
        denied = get(c, "/hello?id=deny", host="denied.test")
        allowed = get(c, "/hello?id=allow")
    assert denied.status == 403
    assert denied.body == b"403 Forbidden: client address denied\n"
    assert denied.header("content-type") == "text/plain"
    assert denied.header("x-head-order") is None    # a local answer skips on_response_head
    assert allowed.status == 200 and allowed.header("x-region") == "eu-west-1"
    records = by_id(log)
    # the global Mark ran before the route's DenyClients answered
    assert [rec["order"] for rec in records["deny"]] == [["g"]]
    assert [rec["order"] for rec in records["allow"]] == [["g", "r"]]


def test_on_log_runs_once_per_request_however_it_ended(gw_filters, origin):
    gw, log = gw_filters
    with RawConn(gw.port) as c:                 # keep-alive: three exchanges, one connection
        assert [get(c, f"/hello?id=ok{i}").status for i in range(3)] == [200, 200, 200]
        assert get(c, "/hello?id=local", host="denied.test").status == 403
    with RawConn(gw.port) as c:
        assert get(c, "/hello?id=err", host="dead.test").status == 502
    with RawConn(gw.port) as c:
        assert get(c, "/slow?delay=5&id=late", host="timeout.test").status == 504
    with RawConn(gw.port) as c:                 # refused before routing: the global on_log
        assert get(c, "/bad%zz?id=unrouted").status == 400
    key = f"filters-{os.getpid()}"
    c = RawConn(gw.port)
    try:
        c.send(f"GET /hold?key={key}&id=abort HTTP/1.1\r\nHost: gw.test\r\n\r\n".encode())
        wait_for(lambda: any(key in t for t in origin.stats()["in_flight"]),
                 what="the held request at the origin")
    finally:
        # the client resets the connection before any response (a plain close would be a
        # half-close, and the gateway would still answer the request in flight)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    try:
        wait_for(lambda: "abort" in by_id(log), what="the aborted exchange's on_log")
    finally:
        origin.release(key)
    with RawConn(gw.port) as c:                 # a last one: anything logged twice is by now
        assert get(c, "/hello?id=last").status == 200
    wait_for(lambda: "last" in by_id(log), what="the last exchange's on_log")

    records = by_id(log)
    ids = ["ok0", "ok1", "ok2", "local", "err", "late", "unrouted", "abort", "last"]
    assert {i: len(records.get(i, [])) for i in ids} == dict.fromkeys(ids, 1)
    one = {i: records[i][0] for i in ids}
    expect = {"ok0": (200, "ok", "route-3"), "ok1": (200, "ok", "route-3"),
              "ok2": (200, "ok", "route-3"), "local": (403, "local", "denied"),
              "err": (502, "upstream_error", "dead"), "late": (504, "timeout", "slow"),
              "unrouted": (400, "local", None),
              "abort": (0, "client_abort", "route-3"), "last": (200, "ok", "route-3")}
    assert {i: (r["status"], r["end"], r["route"]) for i, r in one.items()} == expect
    for i, rec in one.items():
        assert rec["client"] == "127.0.0.1" and rec["method"] == "GET", rec
        assert rec["duration"] >= 0, rec
        assert (rec["bytes_sent"] > 0) == (i != "abort"), rec
        if i == "unrouted":                     # no route, no on_request: no request view
            assert rec["request_query"] is None and rec["x_test"] is None, rec
            assert rec["order"] is None, rec
            continue
        assert rec["request_query"] == rec["query"], rec
        assert rec["x_test"] == ("" if i == "abort" else f"t-{rec['path']}?{rec['query']}"), rec
    assert one["late"]["duration"] >= 0.45
    assert one["ok0"]["path"] == "/hello" and one["ok0"]["query"] == "id=ok0"


# --------------------------------------------------------------------------- gwcore check


GOOD = {
    "listeners": [{"name": "public", "address": "127.0.0.1:8080"}],
    "clusters": [{"name": "origin", "endpoints": ["127.0.0.1:9001"]}],
    "filters": [{"use": "filters:DenyClients", "config": {"deny": ["192.0.2.0/24"]}}],
    "routes": [
        {"match": {"path_prefix": "/v1/"}, "cluster": "origin",
         "filters": [{"use": "filters:AddResponseField",
                      "config": {"name": "X-Region", "value": "eu-west-1"}}]},
        {"name": "rest", "cluster": "origin",
         "filters": [{"use": "gw_filter_probes:Mark", "config": {"name": "m"}}]},
    ],
}


def gwcore(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "gwcore", *args], capture_output=True, text=True,
                          timeout=60, check=False, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=PYTHONPATH))


def variant(change) -> dict:
    cfg = json.loads(json.dumps(GOOD))
    change(cfg)
    return cfg


@pytest.mark.parametrize("change, problem", [
    (lambda c: c["filters"][0].update(use="gw_no_such_pkg.edge:AddRegion"),
     "filters[0].use: no module named 'gw_no_such_pkg'"),
    (lambda c: c["routes"][1]["filters"][0].update(use="gw_filter_probes:Marc"),
     "routes[1].filters[0].use: module 'gw_filter_probes' has no 'Marc'"),
    (lambda c: c["routes"][0]["filters"][0]["config"].pop("value"),
     "routes[0].filters[0].config: name and value are required strings"),
    (lambda c: c["filters"][0]["config"].update(deny=["10.0.0.0/8", "not-an-ip"]),
     "filters[0].config: deny[1]: 'not-an-ip' does not appear to be an IPv4 or IPv6 network"),
    (lambda c: c["routes"][1]["filters"][0].update(config={}),
     "routes[1].filters[0].config: missing key 'name'"),
    (lambda c: c["routes"][1]["filters"].append({"use": "jwt", "config": {"provider": "x"}}),
     "routes[1].filters[1].config.provider: unknown jwt provider 'x'"),
    (lambda c: c["routes"][1].update(name="route-0"),
     "routes[1].name: duplicate name 'route-0': also routes[0] (its default name)"),
])
def test_check_reports_a_filter_that_cannot_be_loaded_with_its_key_path(tmp_path, change,
                                                                        problem):
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(GOOD, sort_keys=False))
    ok = gwcore("check", str(path))
    assert ok.returncode == 0 and ok.stdout.strip() == f"{path}: ok", ok.stderr
    path.write_text(yaml.safe_dump(variant(change), sort_keys=False))
    bad = gwcore("check", str(path))
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.strip() == f"{path}: {problem}"


def test_serve_refuses_a_filter_that_cannot_be_loaded(tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(variant(
        lambda c: c["filters"][0].update(use="filters:NoSuchFilter")), sort_keys=False))
    out = gwcore("serve", "--config", str(path))
    assert out.returncode == 1
    assert out.stderr.strip().endswith(
        f"gwcore: {path}: filters[0].use: module 'filters' has no 'NoSuchFilter'"), out.stderr


def test_the_example_config_checks():
    out = gwcore("check", "examples/filters.yaml")
    assert out.returncode == 0 and out.stdout.strip() == "examples/filters.yaml: ok", out.stderr
