"""TLS listeners (gwcore/tls.py) with real clients: Python's ssl, ``openssl s_client`` and
curl. SNI picks the certificate (RSA and ECDSA for the same names), versions below TLS 1.2
are refused, ALPN, X-Forwarded-Proto https, mTLS (optional and required) with the verified
client certificate forwarded, and session resumption across the workers of a 2-worker
gateway (the master builds the contexts, hence the ticket keys, before it forks)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import HOST, Gateway, free_port, gateway_config, start_gateway, tree_pids, wait_for
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from tls_certs import issue, make_ca

pytestmark = pytest.mark.timeout(120)
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="no curl")


@dataclass
class Pki:
    dir: Path
    ca: Path
    client_ca: Path
    client: tuple[Path, Path]           # alice's certificate and key
    stranger: tuple[Path, Path]         # signed by another CA


@dataclass
class TlsGateway:
    gw: Gateway
    pki: Pki
    port: int           # TLS, client certificates optional
    mtls_port: int      # TLS, client certificates required


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("tls") / "pki"
    d.mkdir()
    ca, client_ca, other_ca = make_ca(), make_ca("client CA"), make_ca("stranger CA")
    ca.write(d, "ca")
    client_ca.write(d, "client-ca")
    issue(ca, "example-ec", dns=("example.test", "www.example.test")).write(d, "example-ec")
    issue(ca, "example-rsa", dns=("example.test", "www.example.test"),
          kind="rsa").write(d, "example-rsa")
    issue(ca, "other", dns=("other.test", "*.other.test")).write(d, "other")
    client = issue(client_ca, "alice", dns=("alice.test",), emails=("alice@example.test",),
                   client=True).write(d, "alice")
    stranger = issue(other_ca, "mallory", client=True).write(d, "mallory")
    return Pki(d, d / "ca.pem", d / "client-ca.pem", client, stranger)


def tls_listener(name: str, port: int, required: bool) -> dict:
    return {
        "name": name, "address": f"{HOST}:{port}",
        "tls": {
            "certificates": [
                {"cert": "pki/example-ec.pem", "key": "pki/example-ec.key"},
                {"cert": "pki/example-rsa.pem", "key": "pki/example-rsa.key"},
                {"cert": "pki/other.pem", "key": "pki/other.key",
                 "server_names": ["*.other.test"]},
            ],
            "min_version": "TLSv1.2",
            "alpn": ["http/1.1"],
            "client_auth": {"ca": "pki/client-ca.pem", "required": required},
        },
    }


@pytest.fixture(scope="module")
def tls_gw(pki: Pki, origin, tmp_path_factory: pytest.TempPathFactory):
    d = pki.dir.parent
    port, mtls_port = free_port(), free_port()
    cfg = gateway_config(port, origin.port, free_port())
    cfg["workers"] = 2
    cfg["listeners"] = [tls_listener("public-tls", port, False),
                        tls_listener("mtls", mtls_port, True)]
    gw = start_gateway(cfg, d, "tls-gateway")
    try:
        yield TlsGateway(gw, pki, port, mtls_port)
    finally:
        gw.proc.stop()


def client_ctx(pki: Pki, cert: tuple[Path, Path] | None = None, **kw) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    for k, v in kw.items():
        setattr(ctx, k, v)
    if cert is not None:
        ctx.load_cert_chain(*map(str, cert))
    return ctx


def connect(port: int, ctx: ssl.SSLContext, sni: str | None = "example.test",
            session: ssl.SSLSession | None = None) -> ssl.SSLSocket:
    raw = socket.create_connection((HOST, port), timeout=10)
    try:
        return ctx.wrap_socket(raw, server_hostname=sni, session=session)
    except BaseException:
        raw.close()
        raise


def get(s: ssl.SSLSocket, target: str = "/headers", headers: dict[str, str] | None = None,
        host: str = "example.test") -> tuple[int, bytes]:
    """One keep-alive request on s; (status, body)."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    s.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        body += s.recv(65536)
    return int(head.split()[1]), body


def fields(body: bytes) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in json.loads(body)["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


def peer(s: ssl.SSLSocket) -> x509.Certificate:
    return x509.load_der_x509_certificate(s.getpeercert(binary_form=True))


def cn(cert: x509.Certificate) -> str:
    return cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value


# -- certificates by SNI --------------------------------------------------------------------

@pytest.mark.parametrize(("sni", "want"), [
    ("example.test", "example-ec"), ("WWW.Example.Test", "example-ec"),
    ("a.other.test", "other"), ("unknown.test", "example-ec"), (None, "example-ec"),
], ids=["exact", "case", "wildcard", "unknown-default", "no-sni-default"])
def test_sni_selects_the_certificate(tls_gw: TlsGateway, sni: str | None, want: str) -> None:
    ctx = client_ctx(tls_gw.pki, check_hostname=False)
    with connect(tls_gw.port, ctx, sni) as s:
        assert cn(peer(s)) == want
        assert get(s, "/hello")[0] == 200


def test_wildcard_covers_one_label_only(tls_gw: TlsGateway) -> None:
    ctx = client_ctx(tls_gw.pki, check_hostname=False)
    with connect(tls_gw.port, ctx, "a.b.other.test") as s:
        assert cn(peer(s)) == "example-ec"


@pytest.mark.parametrize(("cipher", "key_type"), [
    ("ECDHE-ECDSA-AES128-GCM-SHA256", ec.EllipticCurvePublicKey),
    ("ECDHE-RSA-AES128-GCM-SHA256", rsa.RSAPublicKey),
], ids=["ecdsa", "rsa"])
def test_rsa_and_ecdsa_for_the_same_names(tls_gw: TlsGateway, cipher: str, key_type) -> None:
    ctx = client_ctx(tls_gw.pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers(cipher)
    with connect(tls_gw.port, ctx) as s:
        assert isinstance(peer(s).public_key(), key_type)
        assert s.version() == "TLSv1.2"
        assert get(s, "/hello")[0] == 200


# -- versions, ALPN, renegotiation ----------------------------------------------------------

@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_old_versions_refused(tls_gw: TlsGateway, version: ssl.TLSVersion) -> None:
    ctx = client_ctx(tls_gw.pki)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ctx.maximum_version = version
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        connect(tls_gw.port, ctx).close()


@needs_openssl
@pytest.mark.parametrize(("flag", "ok"), [("-tls1_1", False), ("-tls1_2", True),
                                          ("-tls1_3", True)])
def test_openssl_versions(tls_gw: TlsGateway, flag: str, ok: bool) -> None:
    out = s_client(tls_gw, [flag, "-cipher", "DEFAULT:@SECLEVEL=0"])
    want = f"New, TLSv1.{flag[-1]}, Cipher is "
    assert (want in out and "Verify return code: 0 (ok)" in out) == ok, out


def s_client(tls_gw: TlsGateway, args: list[str], sni: str = "example.test",
             data: bytes = b"", port: int | None = None) -> str:
    argv = ["openssl", "s_client", "-connect", f"{HOST}:{port or tls_gw.port}",
            "-servername", sni, "-CAfile", str(tls_gw.pki.ca), *args]
    p = subprocess.run(argv, input=data, capture_output=True, timeout=20, check=False)
    return p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")


@needs_openssl
def test_openssl_sni_and_alpn(tls_gw: TlsGateway) -> None:
    out = s_client(tls_gw, ["-alpn", "h2,http/1.1"], sni="x.other.test")
    assert "ALPN protocol: http/1.1" in out, out
    assert "CN = other" in out, out
    out = s_client(tls_gw, ["-alpn", "h2"])
    assert "No ALPN negotiated" in out, out


def test_python_alpn(tls_gw: TlsGateway) -> None:
    ctx = client_ctx(tls_gw.pki)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with connect(tls_gw.port, ctx) as s:
        assert s.selected_alpn_protocol() == "http/1.1"
        assert s.version() == "TLSv1.3"
        assert s.compression() is None


@needs_openssl
def test_openssl_resumption_sess_out_sess_in(tls_gw: TlsGateway, tmp_path: Path) -> None:
    sess = tmp_path / "sess.pem"
    req = b"GET /hello HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n"
    first = s_client(tls_gw, ["-ign_eof", "-sess_out", str(sess)], data=req)
    assert "HTTP/1.1 200" in first, first
    reused = 0
    for _ in range(6):
        out = s_client(tls_gw, ["-ign_eof", "-sess_in", str(sess)], data=req)
        assert "HTTP/1.1 200" in out, out
        reused += "Reused, TLSv1.3" in out
    assert reused == 6


# -- what goes upstream ---------------------------------------------------------------------

def test_forwarded_proto_https_and_spoofed_cert_fields_removed(tls_gw: TlsGateway) -> None:
    with connect(tls_gw.port, client_ctx(tls_gw.pki)) as s:
        status, body = get(s, headers={"X-Forwarded-Proto": "http",
                                       "X-Client-Cert-Subject": "CN=admin",
                                       "x-client-cert-san": "DNS:admin.test"})
    assert status == 200
    f = fields(body)
    assert f["x-forwarded-proto"] == ["https"]
    assert "x-client-cert-subject" not in f and "x-client-cert-san" not in f, f


def test_client_certificate_forwarded(tls_gw: TlsGateway) -> None:
    with connect(tls_gw.port, client_ctx(tls_gw.pki, tls_gw.pki.client)) as s:
        status, body = get(s, headers={"X-Client-Cert-Subject": "CN=admin"})
    assert status == 200
    f = fields(body)
    assert f["x-client-cert-subject"] == ["CN=alice,O=gwcore tests"]
    assert f["x-client-cert-san"] == ["DNS:alice.test, email:alice@example.test"]


def test_mtls_optional_rejects_a_certificate_of_another_ca(tls_gw: TlsGateway) -> None:
    with (pytest.raises((ssl.SSLError, ConnectionError)),
          connect(tls_gw.port, client_ctx(tls_gw.pki, tls_gw.pki.stranger)) as s):
        get(s, "/hello")


def test_mtls_required(tls_gw: TlsGateway) -> None:
    with connect(tls_gw.mtls_port, client_ctx(tls_gw.pki, tls_gw.pki.client)) as s:
        status, body = get(s)
        assert status == 200
        assert fields(body)["x-client-cert-subject"] == ["CN=alice,O=gwcore tests"]
    # without a certificate: refused (in TLS 1.3 the alert comes after the client's Finished)
    with (pytest.raises((ssl.SSLError, ConnectionError)),
          connect(tls_gw.mtls_port, client_ctx(tls_gw.pki)) as s):
        get(s, "/hello")


@needs_curl
@pytest.mark.parametrize(("name", "want"), [("example.test", "example-ec"),
                                            ("www.other.test", "other")])
def test_curl_resolve_both_names(tls_gw: TlsGateway, name: str, want: str) -> None:
    p = subprocess.run(
        ["curl", "-sS", "-v", "--max-time", "10", "--cacert", str(tls_gw.pki.ca),
         "--resolve", f"{name}:{tls_gw.port}:{HOST}", f"https://{name}:{tls_gw.port}/headers"],
        capture_output=True, timeout=20, check=False)
    assert p.returncode == 0, p.stderr.decode()
    assert f"CN={want}" in p.stderr.decode().replace(" = ", "=").replace("CN = ", "CN="), \
        p.stderr.decode()
    assert fields(p.stdout)["x-forwarded-proto"] == ["https"]


# -- session resumption across workers ------------------------------------------------------

def resumed_count(tls_gw: TlsGateway, n: int, ctx: ssl.SSLContext,
                  session: ssl.SSLSession) -> int:
    count = 0
    for _ in range(n):
        with connect(tls_gw.port, ctx, session=session) as s:
            assert get(s, "/hello")[0] == 200
            count += s.session_reused
    return count


def first_session(tls_gw: TlsGateway, ctx: ssl.SSLContext) -> ssl.SSLSession:
    with connect(tls_gw.port, ctx) as s:
        assert get(s, "/hello")[0] == 200      # TLS 1.3 tickets come after the handshake
        assert not s.session_reused
        return s.session


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_resumption_across_two_workers(tls_gw: TlsGateway, version: ssl.TLSVersion) -> None:
    assert len(tree_pids(tls_gw.gw.pid)) >= 3       # the master and its 2 workers
    ctx = client_ctx(tls_gw.pki, maximum_version=version)
    session = first_session(tls_gw, ctx)
    n = 200
    reused = resumed_count(tls_gw, n, ctx, session)
    assert reused >= 0.99 * n, f"{reused} of {n} handshakes resumed"


def test_reload_rotates_ticket_keys(pki: Pki, origin, tmp_path: Path) -> None:
    """A new generation has new ticket keys: a ticket of the old one gets a full handshake
    (never an error) and a new ticket, which resumes."""
    (tmp_path / "pki").symlink_to(pki.dir)
    port = free_port()
    cfg = gateway_config(port, origin.port, free_port())
    cfg["listeners"] = [tls_listener("public-tls", port, False)]
    gw = start_gateway(cfg, tmp_path, "tls-rotate")
    try:
        t = TlsGateway(gw, pki, port, 0)
        ctx = client_ctx(pki)
        old = first_session(t, ctx)
        assert resumed_count(t, 3, ctx, old) == 3
        first_pids = set(tree_pids(gw.pid)) - {gw.pid}
        os.kill(gw.pid, signal.SIGHUP)
        wait_for(lambda: not first_pids & set(tree_pids(gw.pid)), 30,
                 "the old generation to exit")
        assert resumed_count(t, 3, ctx, old) == 0
        new = first_session(t, ctx)
        assert resumed_count(t, 3, ctx, new) == 3
    finally:
        gw.proc.stop()


# -- handshake timeout ----------------------------------------------------------------------

@pytest.mark.parametrize("send", [b"", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"],
                         ids=["silent", "partial-client-hello"])
def test_handshake_timeout_closes(pki: Pki, origin, tmp_path: Path, send: bytes) -> None:
    (tmp_path / "pki").symlink_to(pki.dir)
    port = free_port()
    cfg = gateway_config(port, origin.port, free_port(), timeouts={"tls_handshake": "1s"})
    cfg["listeners"][0].update(tls_listener("public-tls", port, False))
    gw = start_gateway(cfg, tmp_path, "tls-handshake-timeout")
    try:
        with socket.create_connection((HOST, port), timeout=10) as raw:
            start = time.monotonic()
            raw.sendall(send)
            assert raw.recv(1024) == b""        # closed by the gateway, nothing answered
            elapsed = time.monotonic() - start
        assert 0.9 <= elapsed < 5, elapsed
        # a complete handshake in time still works
        with connect(port, client_ctx(pki)) as s:
            assert get(s, "/hello")[0] == 200
    finally:
        gw.proc.stop()


# -- a bound on concurrent handshakes; ticket key rotation ---------------------------------

def test_max_handshakes_bound(pki: Pki, origin, tmp_path: Path) -> None:
    """With tls.max_handshakes: 2, two clients whose handshakes stall hold both slots: a third
    connection is closed at once; once they time out (tls_handshake), handshakes work again."""
    (tmp_path / "pki").symlink_to(pki.dir)
    port = free_port()
    cfg = gateway_config(port, origin.port, free_port(), timeouts={"tls_handshake": "2s"})
    cfg["listeners"][0].update(tls_listener("public-tls", port, False))
    cfg["listeners"][0]["tls"]["max_handshakes"] = 2
    gw = start_gateway(cfg, tmp_path, "tls-max-handshakes")
    try:
        ctx = client_ctx(pki)
        with connect(port, ctx) as s:       # under the bound: served, client cert fields too
            status, body = get(s)
            assert status == 200 and fields(body)["x-forwarded-proto"] == ["https"]
        silent = [socket.create_connection((HOST, port), timeout=10) for _ in range(2)]
        for s in silent:        # a handshake starts, then stalls: a partial ClientHello
            s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        try:
            def third_refused() -> bool:
                try:
                    connect(port, ctx).close()
                except (ssl.SSLError, ConnectionError):
                    return True
                return False

            wait_for(third_refused, 5, "a connection over the bound to be closed")
            for s in silent:
                assert s.recv(1024) == b""      # closed by the handshake timeout
        finally:
            for s in silent:
                s.close()

        def served() -> bool:
            try:
                with connect(port, ctx) as s:
                    return get(s, "/hello")[0] == 200
            except (ssl.SSLError, ConnectionError):
                return False

        wait_for(served, 5, "a handshake once the silent clients are gone")
    finally:
        gw.proc.stop()


def test_ticket_key_rotation_starts_a_generation(pki: Pki, origin, tmp_path: Path) -> None:
    (tmp_path / "pki").symlink_to(pki.dir)
    port = free_port()
    cfg = gateway_config(port, origin.port, free_port())
    cfg["listeners"] = [tls_listener("public-tls", port, False)]
    cfg["listeners"][0]["tls"]["ticket_key_rotation"] = "5s"
    gw = start_gateway(cfg, tmp_path, "tls-rotation")
    try:
        t = TlsGateway(gw, pki, port, 0)
        ctx = client_ctx(pki)
        old = first_session(t, ctx)
        assert resumed_count(t, 2, ctx, old) == 2
        gw.proc.wait_for_log("generation 2 serving", timeout=20)
        wait_for(lambda: len(tree_pids(gw.pid)) == 2, 20, "the old generation to exit")
        assert resumed_count(t, 2, ctx, old) == 0      # a full handshake, no error
        assert "ticket_key_rotation: new generation" in gw.proc.log()
    finally:
        gw.proc.stop()


# -- redirect_http ---------------------------------------------------------------------------

def test_redirect_http_to_https(origin, tmp_path: Path, raw) -> None:
    port = free_port()
    cfg = gateway_config(port, origin.port, free_port())
    cfg["listeners"][0]["redirect_http"] = True
    gw = start_gateway(cfg, tmp_path, "redirect-http")
    try:
        with raw(port) as c:
            for host, target, want in [
                ("example.test:8080", "/a/b?c=1&d=%20", "https://example.test/a/b?c=1&d=%20"),
                ("[2001:db8::1]:80", "/", "https://[2001:db8::1]/"),
                ("example.test", "http://www.example.test:80/x", "https://www.example.test/x"),
            ]:
                c.send(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                r = c.read_response()
                assert r.status == 308 and r.header("location") == want, (r.status, r.headers)
            c.send(b"GET / HTTP/1.1\r\n\r\n")       # no Host: nowhere to redirect to
            assert c.read_response().status == 400
        assert origin.served("/a/b") == 0
    finally:
        gw.proc.stop()


# -- a large body over TLS ------------------------------------------------------------------

@pytest.mark.timeout(180)
def test_1gib_download_over_tls_in_bounded_memory(tls_gw: TlsGateway, rss_sampler,
                                                  pattern) -> None:
    """1 GiB from the origin through a TLS listener: every byte arrives, and the gateway's
    memory grows by less than 64 MiB (reading the origin pauses while the client is behind)."""
    mib, gib = 1 << 20, 1 << 30
    ctx = client_ctx(tls_gw.pki)
    for _ in range(3):      # warm-up: pools, buffers, code paths
        with connect(tls_gw.port, ctx) as s:
            assert get(s, f"/big?size={8 * mib}")[0] == 200
    buf = bytearray(mib)
    view = memoryview(buf)
    with connect(tls_gw.port, ctx) as s, rss_sampler(tls_gw.gw.pid) as rss:
        s.sendall(f"GET /big?size={gib} HTTP/1.1\r\nHost: example.test\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            assert chunk, f"closed after {data!r}"
            data += chunk
        head, _, first = data.partition(b"\r\n\r\n")
        assert head.split()[1] == b"200" and f"content-length: {gib}".encode() in head.lower()
        assert first == pattern(0, len(first))
        count = len(first)
        s.settimeout(30)
        while count < gib:
            n = s.recv_into(view, min(mib, gib - count))
            assert n, f"EOF after {count} of {gib} bytes"
            count += n
    assert count == gib
    assert rss.growth < 64 * mib, f"RSS grew by {rss.growth / mib:.1f} MiB ({rss.summary()})"
