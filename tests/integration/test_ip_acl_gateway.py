"""The ip_acl filter in a real gateway: a route denying loopback answers 403 before any
upstream is chosen, a route allowing it proxies, a global ip_acl guards every route."""

from __future__ import annotations

import pytest
from conftest import RawConn, gateway_config, start_gateway_on_free_port


@pytest.fixture(scope="module")
def gw_acl(origin, dead_port, tmp_path_factory):
    def config(port: int) -> dict:
        cfg = gateway_config(port, origin.port, dead_port, routes=[
            {"match": {"path_prefix": "/denied/"}, "cluster": "origin",
             "filters": [{"use": "ip_acl", "config": {"deny": ["127.0.0.0/8", "::1"]}}]},
            {"match": {"path_prefix": "/"}, "cluster": "origin",
             "filters": [{"use": "ip_acl", "config": {"allow": ["127.0.0.1/32"]}}]},
        ])
        cfg["filters"] = [{"use": "ip_acl", "config": {"deny": ["192.0.2.0/24"]}}]
        return cfg
    gw = start_gateway_on_free_port(config, tmp_path_factory.mktemp("ip-acl"), "gw-ip-acl")
    yield gw
    gw.proc.stop()


def get(port: int, target: str):
    with RawConn(port) as c:
        c.send(f"GET {target} HTTP/1.1\r\nHost: gw.test\r\n\r\n".encode())
        return c.read_response()


def test_ip_acl_routes(gw_acl, origin) -> None:
    before = origin.served("/denied/")
    r = get(gw_acl.port, "/denied/x")
    assert r.status == 403 and r.body == b"403 Forbidden: client address not allowed\n"
    assert origin.served("/denied/") == before                     # never went upstream
    assert get(gw_acl.port, "/hello").status == 200
