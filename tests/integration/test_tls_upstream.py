"""TLS to upstreams (``clusters[].tls``): origins served by Python's ssl with a test CA.
Verification is on by default (the name from ``server_name`` or the endpoint's host); pooled
TLS connections are reused; a certificate the CA did not sign, or for another name, is a 502
with the reason logged, counted as a connect failure; client certificates for an origin that
requires them."""

from __future__ import annotations

import json
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import (
    HOST,
    Gateway,
    Origin,
    free_port,
    gateway_config,
    start_gateway,
    start_origin,
    wait_for,
)
from tls_certs import issue, make_ca

pytestmark = pytest.mark.timeout(90)


@dataclass
class Setup:
    gw: Gateway
    admin: int
    origin: Origin          # TLS origin, certificate for origin.test and 127.0.0.1
    ca: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("tls-upstream")
    ca, other_ca, client_ca = make_ca(), make_ca("other CA"), make_ca("client CA")
    ca.write(d, "ca")
    other_ca.write(d, "other-ca")
    client_ca.write(d, "client-ca")
    issue(ca, "origin", dns=("origin.test",), ips=("127.0.0.1",)).write(d, "origin")
    issue(client_ca, "gateway", client=True).write(d, "gw-client")
    tls_args = ["--tls-cert", str(d / "origin.pem"), "--tls-key", str(d / "origin.key")]
    origin = start_origin(d, "tls-origin", args=tls_args)
    mtls_origin = start_origin(d, "mtls-origin",
                               args=[*tls_args, "--tls-client-ca", str(d / "client-ca.pem")])
    live, mtls = f"{HOST}:{origin.port}", f"{HOST}:{mtls_origin.port}"
    clusters = [
        {"name": "secure", "endpoints": [live],
         "tls": {"ca": "ca.pem", "server_name": "origin.test"}},
        {"name": "by-ip", "endpoints": [live], "tls": {"ca": "ca.pem"}},
        {"name": "wrong-ca", "endpoints": [live],
         "tls": {"ca": "other-ca.pem", "server_name": "origin.test"}},
        {"name": "wrong-name", "endpoints": [live],
         "tls": {"ca": "ca.pem", "server_name": "elsewhere.test"}},
        {"name": "no-verify", "endpoints": [live],
         "tls": {"verify": False, "ca": "other-ca.pem"}},
        {"name": "mtls", "endpoints": [mtls], "tls": {
            "ca": "ca.pem", "server_name": "origin.test",
            "client_cert": {"cert": "gw-client.pem", "key": "gw-client.key"}}},
        {"name": "mtls-no-cert", "endpoints": [mtls],
         "tls": {"ca": "ca.pem", "server_name": "origin.test"}},
    ]
    routes = [{"match": {"host": f"{c['name']}.test"}, "cluster": c["name"]} for c in clusters]
    port, admin = free_port(), free_port()
    cfg = gateway_config(port, 1, 1, clusters=clusters, routes=routes,
                         cluster_timeouts={"connect": "3s"})
    for c in cfg["clusters"]:
        c["retries"] = {"attempts": 1}
    cfg["admin"] = {"address": f"{HOST}:{admin}"}
    gw = start_gateway(cfg, d, "tls-upstream-gw")
    try:
        yield Setup(gw, admin, origin, d / "ca.pem")
    finally:
        gw.proc.stop()
        origin.proc.stop()
        mtls_origin.proc.stop()


def get(s: Setup, cluster: str, target: str = "/headers", client: httpx.Client | None = None
        ) -> httpx.Response:
    c = client or httpx
    return c.get(f"{s.gw.url}{target}", headers={"Host": f"{cluster}.test"}, timeout=10)


def origin_connections(s: Setup) -> int:
    """The TLS origin's accepted connections (its /stats, asked over TLS directly)."""
    ctx = ssl.create_default_context(cafile=str(s.ca))
    with socket.create_connection((HOST, s.origin.port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="origin.test") as t:
        t.sendall(b"GET /stats HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := t.recv(65536):
            data += chunk
    return json.loads(data.partition(b"\r\n\r\n")[2])["connections"]


def connect_failures(s: Setup, cluster: str) -> int:
    r = httpx.get(f"http://{HOST}:{s.admin}/clusters", timeout=10)
    return r.json()[cluster]["errors"]["connect_failure"]


@pytest.mark.parametrize("cluster", ["secure", "by-ip", "no-verify", "mtls"])
def test_verified_upstream(setup: Setup, cluster: str) -> None:
    r = get(setup, cluster)
    assert r.status_code == 200, r.text
    names = {k.lower() for k, _ in r.json()["headers"]}
    assert "x-forwarded-proto" in names


def test_pooled_tls_connections_are_reused(setup: Setup) -> None:
    assert get(setup, "secure").status_code == 200         # the pool has one now
    before = origin_connections(setup)
    with httpx.Client() as client:
        for _ in range(20):
            assert get(setup, "secure", "/hello", client).status_code == 200
    assert origin_connections(setup) - before <= 2         # 1 for /stats, the rest reused


@pytest.mark.parametrize(("cluster", "reason"), [
    ("wrong-ca", "CERTIFICATE_VERIFY_FAILED"),
    ("wrong-name", "Hostname mismatch"),
])
def test_verification_failure_is_a_502_and_a_connect_failure(setup: Setup, cluster: str,
                                                             reason: str) -> None:
    before = connect_failures(setup, cluster)
    assert get(setup, cluster).status_code == 502
    wait_for(lambda: connect_failures(setup, cluster) > before, 10, "the failure counted")
    log = setup.gw.proc.wait_for_log(f"cluster {cluster}: TLS to")
    assert reason in log, log


def test_origin_requiring_a_client_certificate(setup: Setup) -> None:
    assert get(setup, "mtls").status_code == 200
    assert get(setup, "mtls-no-cert").status_code == 502
