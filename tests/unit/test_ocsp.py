"""gwcore._ocsp (src_c/ocsp.c): the SSL_CTX read from a Python ssl.SSLContext, staple checks
(status, certificate, validity, revocation), staples kept per certificate of a context; a
single libssl and libcrypto in the process. Serving a staple: tests/c/test_ocsp.c (memory
BIOs) and tests/integration/test_tls_ocsp.py (openssl s_client -status). Responses are made with ``cryptography`` (a test
dependency only: gwcore checks them in C)."""

from __future__ import annotations

import ssl
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from tls_certs import issue, make_ca, ocsp_response, ocsp_unsuccessful

from gwcore import _ocsp


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("ocsp")
    ca = make_ca()
    leaf = issue(ca, "leaf", dns=("example.test",))
    other = issue(ca, "other", dns=("other.test",))
    rsa = issue(ca, "leaf-rsa", dns=("example.test",), kind="rsa")
    ca.write(d, "ca")
    return {"ca": ca, "leaf": leaf, "other": other, "rsa": rsa, "dir": d,
            "leaf_files": leaf.write(d, "leaf"), "other_files": other.write(d, "other"),
            "rsa_files": rsa.write(d, "rsa")}


def server(*chains: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for cert, key in chains:
        ctx.load_cert_chain(cert, key)
    return ctx


def test_check_good_and_unknown(pki) -> None:
    ctx = server(pki["leaf_files"])
    assert _ocsp.check(ctx, ocsp_response(pki["ca"], pki["leaf"])) == "good"
    assert _ocsp.check(ctx, ocsp_response(pki["ca"], pki["leaf"], "unknown")) == "unknown"
    assert _ocsp.certificate_count(ctx) == 0


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: b"", "not a DER OCSP response"),
    (lambda p: b"\x30\x03\x0a\x01\x00", "not a basic OCSP response"),   # no responseBytes
    (lambda p: ocsp_response(p["ca"], p["leaf"])[:-1], "not a DER OCSP response"),
    (lambda p: ocsp_response(p["ca"], p["leaf"]) + b"\0", "not a DER OCSP response"),
    (lambda p: ocsp_unsuccessful(), r"not successful \(tryLater\)"),
    (lambda p: ocsp_response(p["ca"], p["other"]), "no response for this certificate"),
    (lambda p: ocsp_response(p["ca"], p["leaf"], "revoked"), "revoked"),
    (lambda p: ocsp_response(p["ca"], p["leaf"], valid=(-86400, -3600)), "validity"),
    (lambda p: ocsp_response(p["ca"], p["leaf"], valid=(3600, 86400)), "validity"),
])
def test_check_rejects(pki, make, message: str) -> None:
    ctx = server(pki["leaf_files"])
    with pytest.raises(_ocsp.OcspError, match=message):
        _ocsp.staple(ctx, make(pki))
    assert _ocsp.certificate_count(ctx) == 0


def test_guards() -> None:
    with pytest.raises(TypeError, match="ssl.SSLContext"):
        _ocsp.check(object(), b"x")             # type: ignore[arg-type]
    with pytest.raises(TypeError, match="server context"):
        _ocsp.check(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), b"x")
    with pytest.raises(ValueError, match="no certificate"):
        _ocsp.check(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), b"x")


def test_staple_installs_per_certificate(pki) -> None:
    ctx = server(pki["leaf_files"])
    der = ocsp_response(pki["ca"], pki["leaf"])
    assert _ocsp.staple(ctx, der) == "good"
    assert _ocsp.certificate_count(ctx) == 1
    assert _ocsp.staple(ctx, ocsp_response(pki["ca"], pki["leaf"])) == "good"  # replaces
    assert _ocsp.certificate_count(ctx) == 1
    ctx.load_cert_chain(*pki["rsa_files"])     # an RSA certificate beside the ECDSA one
    with pytest.raises(_ocsp.OcspError, match="no response for this certificate"):
        _ocsp.staple(ctx, der)                 # checked against the one loaded last
    assert _ocsp.staple(ctx, ocsp_response(pki["ca"], pki["rsa"])) == "good"
    assert _ocsp.certificate_count(ctx) == 2
    del ctx                                    # the staples go with the SSL_CTX


def test_one_libssl_and_libcrypto() -> None:
    maps = Path("/proc/self/maps").read_text()
    libs = {line.split()[-1] for line in maps.splitlines()
            if "/libssl" in line or "/libcrypto" in line}
    names = {Path(p).name for p in libs}
    assert len([n for n in names if n.startswith("libssl")]) == 1, libs
    assert len([n for n in names if n.startswith("libcrypto")]) == 1, libs
    assert len(libs) == 2, libs
