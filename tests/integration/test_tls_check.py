"""TLS files checked by ``gwcore check`` (and so by ``serve`` and every reload): a certificate
that cannot be read, is not a certificate, has expired or is not yet valid, a key that does not
match: each an error naming the key path and the file. A reload with such a file keeps the
running certificates; a reload with a good new pair serves it."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import HOST, PYTHON, free_port, gateway_config, start_gateway, wait_for
from cryptography import x509
from tls_certs import issue, make_ca

pytestmark = pytest.mark.timeout(60)


def gwcore_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "gwcore", "check", str(path)], capture_output=True,
                          text=True, timeout=30, check=False)


def write_config(tmp_path: Path, tls: dict, port: int = 8443, clusters: list | None = None
                 ) -> Path:
    cfg = {"listeners": [{"name": "public-tls", "address": f"127.0.0.1:{port}", "tls": tls}],
           "clusters": clusters or [{"name": "c", "endpoints": ["127.0.0.1:9001"]}],
           "routes": [{"cluster": "c"}]}
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    ca = make_ca()
    ca.write(tmp_path, "ca")
    issue(ca, "good", dns=("good.test",)).write(tmp_path, "good")
    issue(ca, "other", dns=("other.test",)).write(tmp_path, "other")
    issue(ca, "old", dns=("old.test",), valid_days=(-30, -1)).write(tmp_path, "expired")
    issue(ca, "later", dns=("later.test",), valid_days=(2, 30)).write(tmp_path, "future")
    (tmp_path / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n"
                                          "-----END CERTIFICATE-----\n")
    return tmp_path


def one(cert: str, key: str) -> dict:
    return {"certificates": [{"cert": cert, "key": key}]}


def test_good_pair_is_ok(certs: Path) -> None:
    out = gwcore_check(write_config(certs, one("good.pem", "good.key")))
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(("cert", "key", "where", "problem"), [
    ("missing.pem", "good.key", "cert", "cannot read {d}/missing.pem: No such file"),
    ("good.pem", "missing.key", "key", "cannot read {d}/missing.key: No such file"),
    ("good.pem", "other.key", "key", ("{d}/other.key does not match the certificate "
                                      "{d}/good.pem")),
    ("expired.pem", "expired.key", "cert", "{d}/expired.pem expired on "),
    ("future.pem", "future.key", "cert", "{d}/future.pem is not valid before "),
    ("garbage.pem", "good.key", "cert", "{d}/garbage.pem is not a PEM certificate"),
], ids=["cert-missing", "key-missing", "key-mismatch", "expired", "not-yet-valid", "garbage"])
def test_check_names_the_file(certs: Path, cert: str, key: str, where: str,
                              problem: str) -> None:
    path = write_config(certs, one(cert, key))
    out = gwcore_check(path)
    assert out.returncode == 1
    want = f"{path}: listeners[0].tls.certificates[0].{where}: {problem.format(d=certs)}"
    assert out.stderr.strip().startswith(want), out.stderr


def test_unreadable_certificate(certs: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    (certs / "good.key").chmod(0)
    out = gwcore_check(write_config(certs, one("good.pem", "good.key")))
    assert out.returncode == 1
    assert f"certificates[0].key: cannot read {certs}/good.key: Permission denied" in out.stderr


def test_client_auth_ca_and_upstream_ca_checked(certs: Path) -> None:
    tls = {**one("good.pem", "good.key"), "client_auth": {"ca": "nope.pem"}}
    out = gwcore_check(write_config(certs, tls))
    assert f"listeners[0].tls.client_auth.ca: cannot read {certs}/nope.pem" in out.stderr
    clusters = [{"name": "c", "endpoints": ["127.0.0.1:9001"], "tls": {"ca": "garbage.pem"}}]
    out = gwcore_check(write_config(certs, one("good.pem", "good.key"), clusters=clusters))
    assert out.returncode == 1
    assert f"clusters[0].tls.ca: {certs}/garbage.pem: no usable CA certificate" in out.stderr


def served_cn(port: int, ca: Path) -> str:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False
    with socket.create_connection((HOST, port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="good.test") as s:
        cert = x509.load_der_x509_certificate(s.getpeercert(binary_form=True))
    return cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value


def test_reload_with_a_bad_pair_keeps_the_running_certificate(certs: Path, origin) -> None:
    port = free_port()
    cfg = gateway_config(port, origin.port, free_port())
    cfg["listeners"][0]["tls"] = one(str(certs / "live.pem"), str(certs / "live.key"))
    for ext in ("pem", "key"):
        (certs / f"live.{ext}").write_bytes((certs / f"good.{ext}").read_bytes())
    gw = start_gateway(cfg, certs, "tls-reload")
    try:
        assert served_cn(port, certs / "ca.pem") == "good"
        # a certificate that does not match its key: rejected, the old pair keeps serving
        (certs / "live.pem").write_bytes((certs / "other.pem").read_bytes())
        os.kill(gw.pid, signal.SIGHUP)
        gw.proc.wait_for_log("reload rejected")
        assert "live.key does not match the certificate" in gw.proc.log()
        assert served_cn(port, certs / "ca.pem") == "good"
        # the matching key too: the new generation serves the new certificate
        (certs / "live.key").write_bytes((certs / "other.key").read_bytes())
        os.kill(gw.pid, signal.SIGHUP)
        gw.proc.wait_for_log("generation 2 serving")
        wait_for(lambda: served_cn(port, certs / "ca.pem") == "other", 20,
                 "the new certificate")
    finally:
        gw.proc.stop()
