"""PROXY protocol v1 and v2 (``listeners[].proxy_protocol``) with hand-built headers over plain
and TLS listeners: the address a header carries is what X-Forwarded-For and the access log
see (LOCAL / UNKNOWN keep the connection's own); a malformed header, or a connection from
outside ``trusted``, is closed; on a TLS listener the header comes before the handshake."""

from __future__ import annotations

import json
import socket
import ssl
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import HOST, Gateway, free_port, gateway_config, start_gateway, wait_for
from tls_certs import issue, make_ca

pytestmark = pytest.mark.timeout(90)

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(family: str, src: str = "", dst: str = "", sport: int = 0, dport: int = 0) -> bytes:
    if family == "UNKNOWN":
        return b"PROXY UNKNOWN\r\n"
    return f"PROXY {family} {src} {dst} {sport} {dport}\r\n".encode()


def v2(family: str, src: str = "", dst: str = "", sport: int = 0, dport: int = 0,
       tlv: bytes = b"") -> bytes:
    if family == "LOCAL":
        return V2_SIG + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    af, fam = (socket.AF_INET, 0x11) if family == "TCP4" else (socket.AF_INET6, 0x21)
    body = (socket.inet_pton(af, src) + socket.inet_pton(af, dst)
            + struct.pack("!HH", sport, dport) + tlv)
    return V2_SIG + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


@dataclass
class Setup:
    gw: Gateway
    plain: int
    tls: int
    untrusted: int
    ca: Path
    access_log: Path


@pytest.fixture(scope="module")
def setup(origin, tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("proxy-protocol")
    ca = make_ca()
    ca.write(d, "ca")
    issue(ca, "gw", dns=("gw.test",)).write(d, "gw")
    plain, tls, untrusted = free_port(), free_port(), free_port()
    cfg = gateway_config(plain, origin.port, free_port(), timeouts={"header": "2s"})
    base = cfg["listeners"][0]
    trusted = {"trusted": ["127.0.0.0/8", "::1/128"]}
    cfg["listeners"] = [
        {**base, "proxy_protocol": trusted},
        {**base, "name": "tls-pp", "address": f"{HOST}:{tls}", "proxy_protocol": trusted,
         "tls": {"certificates": [{"cert": "gw.pem", "key": "gw.key"}]}},
        {**base, "name": "untrusted", "address": f"{HOST}:{untrusted}",
         "proxy_protocol": {"trusted": ["10.0.0.0/8"]}},
    ]
    cfg["access_log"] = {"path": "access.log", "format": "json"}
    gw = start_gateway(cfg, d, "pp-gateway")
    try:
        yield Setup(gw, plain, tls, untrusted, d / "ca.pem", d / "access.log")
    finally:
        gw.proc.stop()


def request(target: str = "/headers") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n".encode()


def read_all(s: socket.socket) -> bytes:
    """Everything until the gateway closes (a reset counts as a close)."""
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def forwarded_for(response: bytes) -> list[str]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), response[:300]
    return [v for k, v in json.loads(body)["headers"] if k.lower() == "x-forwarded-for"]


def plain_exchange(port: int, header: bytes, split: bool = False) -> bytes:
    with socket.create_connection((HOST, port), timeout=10) as s:
        if split:       # header and request in separate segments, the header byte by byte
            for b in header:
                s.sendall(bytes([b]))
            s.sendall(request())
        else:
            s.sendall(header + request())
        return read_all(s)


CASES = [
    ("v1-tcp4", v1("TCP4", "203.0.113.7", "192.0.2.1", 40000, 443), "203.0.113.7"),
    ("v1-tcp6", v1("TCP6", "2001:db8::7", "2001:db8::1", 40000, 443), "2001:db8::7"),
    ("v1-unknown", v1("UNKNOWN"), "127.0.0.1"),
    ("v2-tcp4", v2("TCP4", "198.51.100.9", "192.0.2.1", 5555, 443), "198.51.100.9"),
    ("v2-tcp4-tlv", v2("TCP4", "198.51.100.10", "192.0.2.1", 5555, 443,
                       tlv=b"\x04\x00\x02ab"), "198.51.100.10"),
    ("v2-tcp6", v2("TCP6", "2001:db8::99", "2001:db8::1", 5555, 443), "2001:db8::99"),
    ("v2-local", v2("LOCAL"), "127.0.0.1"),
]


@pytest.mark.parametrize(("header", "client"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
@pytest.mark.parametrize("split", [False, True], ids=["whole", "split"])
def test_plain_listener(setup: Setup, header: bytes, client: str, split: bool) -> None:
    assert forwarded_for(plain_exchange(setup.plain, header, split)) == [client]


def tls_exchange(setup: Setup, header: bytes) -> bytes:
    ctx = ssl.create_default_context(cafile=str(setup.ca))
    with socket.create_connection((HOST, setup.tls), timeout=10) as raw:
        raw.sendall(header)         # before the ClientHello, as a load balancer sends it
        with ctx.wrap_socket(raw, server_hostname="gw.test") as s:
            s.sendall(request())
            data = b""
            try:
                while chunk := s.recv(65536):
                    data += chunk
            except ssl.SSLZeroReturnError:
                pass
            return data


@pytest.mark.parametrize(("header", "client"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_tls_listener(setup: Setup, header: bytes, client: str) -> None:
    response = tls_exchange(setup, header)
    assert forwarded_for(response) == [client]
    assert b'"x-forwarded-proto", "https"' in response.lower().replace(b"\\", b"") or \
        [v for k, v in json.loads(response.partition(b"\r\n\r\n")[2])["headers"]
         if k.lower() == "x-forwarded-proto"] == ["https"]


def test_header_and_client_hello_in_one_segment(setup: Setup) -> None:
    """The ClientHello read together with the header is handed to the TLS layer."""
    header = v1("TCP4", "203.0.113.50", "192.0.2.1", 1, 443)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    ctx = ssl.create_default_context(cafile=str(setup.ca))
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="gw.test")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    with socket.create_connection((HOST, setup.tls), timeout=10) as s:
        s.sendall(header + outgoing.read())        # one write: header + ClientHello
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                if out := outgoing.read():
                    s.sendall(out)
                data = s.recv(65536)
                assert data, "closed during the handshake"
                incoming.write(data)
        s.sendall(outgoing.read())
        obj.write(request())
        s.sendall(outgoing.read())
        response = b""
        while True:
            try:
                chunk = obj.read(65536)
            except ssl.SSLWantReadError:
                chunk = None
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
            if chunk == b"":            # the server's close_notify
                break
            if chunk:
                response += chunk
                continue
            data = s.recv(65536)
            if not data:
                break
            incoming.write(data)
    assert forwarded_for(response) == ["203.0.113.50"]


@pytest.mark.parametrize("bad", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PROXY TCP4 1.2.3.999 1.2.3.4 1 2\r\n",
    b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n",
    V2_SIG + b"\x21\x12\x00\x0c" + bytes(12),        # UDP
    V2_SIG + b"\x21\x11\x00\x04" + bytes(4),         # too short for TCP4
], ids=["no-header", "bad-address", "bare-lf", "v2-udp", "v2-short"])
def test_malformed_header_closes(setup: Setup, bad: bytes) -> None:
    for port in (setup.plain, setup.tls):
        with socket.create_connection((HOST, port), timeout=10) as s:
            s.sendall(bad + request())
            assert read_all(s) == b""


def test_untrusted_source_is_closed(setup: Setup) -> None:
    with socket.create_connection((HOST, setup.untrusted), timeout=10) as s:
        s.sendall(v1("TCP4", "203.0.113.7", "192.0.2.1", 1, 2) + request())
        assert read_all(s) == b""


def test_header_timeout(setup: Setup) -> None:
    with socket.create_connection((HOST, setup.plain), timeout=10) as s:
        s.sendall(b"PROXY TCP4 ")
        assert read_all(s) == b""       # closed after timeouts.header (2s)


def test_access_log_sees_the_carried_address(setup: Setup) -> None:
    plain_exchange(setup.plain, v1("TCP4", "203.0.113.77", "192.0.2.1", 1, 2))

    def logged() -> bool:
        if not setup.access_log.exists():
            return False
        return any(json.loads(line).get("client") == "203.0.113.77"
                   for line in setup.access_log.read_text().splitlines() if line)

    wait_for(logged, 10, "the access log line with the carried address")
