"""SIGHUP with new certificate and key files under a steady load of new TLS handshakes: the new
certificate is served once the new generation is, and no handshake (nor its request) fails."""

from __future__ import annotations

import collections
import os
import signal
import socket
import ssl
import threading
from pathlib import Path
from typing import Self

import pytest
from conftest import HOST, free_port, gateway_config, start_gateway, tree_pids, wait_for
from cryptography import x509
from tls_certs import issue, make_ca

pytestmark = pytest.mark.timeout(120)


class HandshakeLoad:
    """Threads making new TLS connections (full handshakes: no session reuse), each one GET
    /hello; counts the certificate each saw and every failure."""

    def __init__(self, port: int, ca: Path, threads: int = 6) -> None:
        self.port = port
        self.ctx = ssl.create_default_context(cafile=str(ca))
        self.seen: collections.Counter[str] = collections.Counter()
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True)
                         for _ in range(threads)]

    def one(self) -> str:
        with socket.create_connection((HOST, self.port), timeout=10) as raw, \
                self.ctx.wrap_socket(raw, server_hostname="site.test") as s:
            cert = x509.load_der_x509_certificate(s.getpeercert(binary_form=True))
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n")
            data = b""
            try:
                while chunk := s.recv(65536):
                    data += chunk
            except ssl.SSLZeroReturnError:
                pass
            if not data.startswith(b"HTTP/1.1 200"):
                raise ConnectionError(f"bad response {data[:80]!r}")
        return cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                cn = self.one()
                with self._lock:
                    self.seen[cn] += 1
            except (OSError, ssl.SSLError) as e:
                with self._lock:
                    self.errors.append(f"{type(e).__name__}: {e}")

    def __enter__(self) -> Self:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=20)


def test_certificate_swap_under_handshake_load(tmp_path: Path, origin) -> None:
    ca = make_ca()
    ca.write(tmp_path, "ca")
    issue(ca, "first", dns=("site.test",)).write(tmp_path, "live")
    issue(ca, "second", dns=("site.test",), kind="rsa").write(tmp_path, "next")
    port = free_port()
    cfg = gateway_config(port, origin.port, free_port())
    cfg["workers"] = 2
    cfg["listeners"][0]["tls"] = {"certificates": [{"cert": "live.pem", "key": "live.key"}]}
    gw = start_gateway(cfg, tmp_path, "tls-swap")
    try:
        with HandshakeLoad(port, tmp_path / "ca.pem") as load:
            wait_for(lambda: load.seen["first"] >= 100, 30, "handshakes with the first cert")
            old = set(tree_pids(gw.pid)) - {gw.pid}
            for ext in ("pem", "key"):      # each file replaced atomically
                os.replace(tmp_path / f"next.{ext}", tmp_path / f"live.{ext}")
            os.kill(gw.pid, signal.SIGHUP)
            wait_for(lambda: not old & set(tree_pids(gw.pid)), 40, "the old generation to exit")
            after = load.seen["second"]
            wait_for(lambda: load.seen["second"] >= after + 100, 30, "handshakes after it")
        total = sum(load.seen.values())
        assert load.errors == [], f"{len(load.errors)} of {total + len(load.errors)} failed: " \
            f"{load.errors[:5]}"
        assert load.seen["first"] >= 100 and load.seen["second"] >= 100, load.seen
        print(f"handshakes: {dict(load.seen)}, failed: {len(load.errors)}")
    finally:
        gw.proc.stop()
