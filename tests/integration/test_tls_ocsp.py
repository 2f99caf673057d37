"""OCSP stapling on TLS listeners (``ocsp_staple``; gwcore/_ocsp.pyx over src_c/ocsp.c) seen
by ``openssl s_client -status``: the staple of the certificate the handshake chose (ECDSA or
RSA for the same names, each its own), nothing stapled for a certificate or listener without
one, nothing changed for a client that does not ask, a reload serving the new file, and
``gwcore check`` naming the key path and file of a bad staple. Responses are made with
``cryptography`` (x509.ocsp.OCSPResponseBuilder, signed by the test CA)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import HOST, PYTHON, free_port, gateway_config, start_gateway, tree_pids, wait_for
from tls_certs import Pem, issue, make_ca, ocsp_response

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")]
REQ = b"GET /hello HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n"


@dataclass
class Pki:
    dir: Path
    ca: Pem
    ec: Pem
    rsa: Pem
    other: Pem


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("ocsp")
    ca = make_ca()
    ca.write(d, "ca")
    ec = issue(ca, "example-ec", dns=("example.test",))
    rsa = issue(ca, "example-rsa", dns=("example.test",), kind="rsa")
    other = issue(ca, "other", dns=("other.test",))
    for name, pem in (("example-ec", ec), ("example-rsa", rsa), ("other", other)):
        pem.write(d, name)
    return Pki(d, ca, ec, rsa, other)


def listeners(pki: Pki, port: int, plain_port: int) -> list[dict]:
    d = pki.dir
    return [
        {"name": "stapled", "address": f"{HOST}:{port}", "tls": {
            "certificates": [       # the default has none: example.test's come through SNI
                {"cert": str(d / "other.pem"), "key": str(d / "other.key")},
                {"cert": str(d / "example-ec.pem"), "key": str(d / "example-ec.key"),
                 "ocsp_staple": str(d / "example-ec.ocsp.der")},
                {"cert": str(d / "example-rsa.pem"), "key": str(d / "example-rsa.key"),
                 "ocsp_staple": str(d / "example-rsa.ocsp.der")},
            ]}},
        {"name": "unstapled", "address": f"{HOST}:{plain_port}", "tls": {
            "certificates": [{"cert": str(d / "example-ec.pem"),
                              "key": str(d / "example-ec.key")}]}},
    ]


def s_client(port: int, args: list[str], pki: Pki, sni: str | None = "example.test") -> str:
    name = ["-servername", sni] if sni else ["-noservername"]
    argv = ["openssl", "s_client", "-connect", f"{HOST}:{port}", *name,
            "-CAfile", str(pki.dir / "ca.pem"), "-ign_eof", *args]
    p = subprocess.run(argv, input=REQ, capture_output=True, timeout=20, check=False)
    return p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")


def serial(pem: Pem) -> str:
    """The certificate's serial number as s_client prints it in the OCSP response."""
    h = f"{pem.cert.serial_number:X}"
    return h.rjust(len(h) + len(h) % 2, "0")


@pytest.fixture
def gw(pki: Pki, origin, tmp_path: Path):
    (pki.dir / "example-ec.ocsp.der").write_bytes(ocsp_response(pki.ca, pki.ec))
    (pki.dir / "example-rsa.ocsp.der").write_bytes(ocsp_response(pki.ca, pki.rsa))
    port, plain_port = free_port(), free_port()
    cfg = gateway_config(port, origin.port, free_port())
    cfg["listeners"] = listeners(pki, port, plain_port)
    g = start_gateway(cfg, tmp_path, "tls-ocsp")
    try:
        yield g, plain_port
    finally:
        g.proc.stop()


def test_status_request_gets_the_chosen_certificates_staple(gw, pki: Pki) -> None:
    g, _ = gw
    out = s_client(g.port, ["-status"], pki)
    assert "OCSP Response Status: successful" in out, out
    assert "Cert Status: good" in out, out
    assert f"Serial Number: {serial(pki.ec)}" in out, out
    assert "Verify return code: 0 (ok)" in out and "HTTP/1.1 200" in out, out
    # RSA (TLS 1.2, an RSA key exchange suite): the RSA certificate and its own staple
    out = s_client(g.port, ["-status", "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"],
                   pki)
    assert "CN = example-rsa" in out and "Cert Status: good" in out, out
    assert f"Serial Number: {serial(pki.rsa)}" in out, out
    out = s_client(g.port, ["-status", "-tls1_2"], pki)     # TLS 1.2, ECDSA
    assert f"Serial Number: {serial(pki.ec)}" in out and "HTTP/1.1 200" in out, out


def test_one_libssl_and_libcrypto_in_the_gateway(gw) -> None:
    """gwcore._ocsp links the OpenSSL that Python's ssl uses: one of each is mapped."""
    g, _ = gw
    for pid in tree_pids(g.pid):
        maps = Path(f"/proc/{pid}/maps").read_text()
        libs = {line.split()[-1] for line in maps.splitlines()
                if "/libssl." in line or "/libcrypto." in line}
        assert len(libs) == 2 and len({Path(x).name.split(".")[0] for x in libs}) == 2, libs


def test_without_status_request_nothing_changes(gw, pki: Pki) -> None:
    g, _ = gw
    for flag in ("-tls1_3", "-tls1_2"):
        out = s_client(g.port, [flag], pki)
        assert "OCSP" not in out, out
        assert "Verify return code: 0 (ok)" in out and "HTTP/1.1 200" in out, out


def test_no_staple_no_response(gw, pki: Pki) -> None:
    g, plain_port = gw
    out = s_client(g.port, ["-status"], pki, sni="other.test")    # a certificate without one
    assert "CN = other" in out and "OCSP response: no response sent" in out, out
    out = s_client(g.port, ["-status"], pki, sni=None)            # no SNI: the default
    assert "CN = other" in out and "OCSP response: no response sent" in out, out
    assert "HTTP/1.1 200" in out, out
    out = s_client(plain_port, ["-status"], pki)                  # a listener without one
    assert "OCSP response: no response sent" in out and "HTTP/1.1 200" in out, out


def test_reload_serves_the_new_staple(gw, pki: Pki) -> None:
    g, _ = gw
    assert "Cert Status: good" in s_client(g.port, ["-status"], pki)
    (pki.dir / "example-ec.ocsp.der").write_bytes(ocsp_response(pki.ca, pki.ec, "unknown"))
    first = set(tree_pids(g.pid)) - {g.pid}
    os.kill(g.pid, signal.SIGHUP)
    wait_for(lambda: not first & set(tree_pids(g.pid)), 30,
             "the old generation to exit")
    out = s_client(g.port, ["-status"], pki)
    assert "Cert Status: unknown" in out and "HTTP/1.1 200" in out, out


def gwcore_check(cfg: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "check.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return subprocess.run([PYTHON, "-m", "gwcore", "check", str(path)], capture_output=True,
                          text=True, timeout=30, check=False)


@pytest.mark.parametrize(("content", "problem"), [
    (lambda p: b"not DER", "not a DER OCSP response"),
    (lambda p: ocsp_response(p.ca, p.other), "no response for this certificate"),
    (lambda p: ocsp_response(p.ca, p.ec, "revoked"), "revoked"),
    (lambda p: ocsp_response(p.ca, p.ec, valid=(-7200, -3600)), "validity"),
    (None, "cannot read"),
])
@pytest.mark.parametrize("level", ["certificate", "tls"])
def test_bad_staple_is_a_check_error(pki: Pki, origin, tmp_path: Path, content, problem: str,
                                     level: str) -> None:
    staple = tmp_path / "bad.ocsp.der"
    if content is not None:
        staple.write_bytes(content(pki))
    port = free_port()
    cfg = gateway_config(port, origin.port, free_port())
    cfg["listeners"] = listeners(pki, port, free_port())[1:]
    tls = cfg["listeners"][0]["tls"]
    if level == "tls":
        tls["ocsp_staple"] = str(staple)
        where = "listeners[0].tls.ocsp_staple"
    else:
        tls["certificates"][0]["ocsp_staple"] = str(staple)
        where = "listeners[0].tls.certificates[0].ocsp_staple"
    out = gwcore_check(cfg, tmp_path)
    assert out.returncode == 1, out
    assert f"{where}: " in out.stderr and str(staple) in out.stderr, out.stderr
    assert problem in out.stderr, out.stderr
    staple.write_bytes(ocsp_response(pki.ca, pki.ec))
    out = gwcore_check(cfg, tmp_path)
    assert out.returncode == 0, out.stderr


def test_staple_checked_by_serve(pki: Pki, origin, tmp_path: Path) -> None:
    """``serve`` refuses to start with a bad staple (the error names the key path)."""
    staple = tmp_path / "bad.ocsp.der"
    staple.write_bytes(ocsp_response(pki.ca, pki.rsa))
    port = free_port()
    cfg = gateway_config(port, origin.port, free_port())
    cfg["listeners"] = listeners(pki, port, free_port())[1:]
    cfg["listeners"][0]["tls"]["ocsp_staple"] = str(staple)
    with pytest.raises(RuntimeError) as e:
        start_gateway(cfg, tmp_path, "tls-ocsp-bad")
    assert "listeners[0].tls.ocsp_staple" in str(e.value), e.value
