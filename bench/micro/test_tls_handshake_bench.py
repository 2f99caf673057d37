"""The cost of one full TLS 1.3 handshake (ECDSA P-256) split between OpenSSL and gwcore's own
code (TLS issue, item 8). All figures are per handshake or per connection, in seconds as
pytest-benchmark prints them (µs in bench/RESULTS.md).

OpenSSL (group ``handshake``): a server ``ssl.SSLObject`` made from the listener context exactly
as gwcore builds it (``gwcore.tls.listener_contexts`` from a parsed config: TLS 1.3 minimum,
no renegotiation/compression, server cipher preference, ALPN http/1.1, session tickets on)
and a client ``SSLObject`` (no verification, like wrk; a new session each time, so every
handshake is a full one), joined by ``ssl.MemoryBIO`` pairs and driven to the end in-process:
no sockets, no event loop. The server finishes by sending its session tickets, which the
client then reads, as wrk does. Each call of either side is timed with ``perf_counter_ns``
and added to that side's clock; ``*_server_side`` and ``*_client_side`` give pytest-benchmark
that side's clock as its timer, so they report the time spent in the server's (resp. the
client's) calls only, from the same kind of handshake as ``both_sides``. The server side is
what a gateway pays per new connection; it includes the ``_ssl`` module's Python-level
wrapping (a uvloop transport goes through the same ``SSLObject`` calls).
Variants: a listener with two certificate groups (so gwcore installs its SNI callback) with
an SNI name of the second group (the callback switches context) and of the default; mTLS
(``client_auth`` required; the client presents a certificate the server verifies).

gwcore's code per connection (group ``per connection``), beyond OpenSSL:
- ``sni_*``: ``ListenerContexts.select`` and the SNI callback ``_sni`` (only installed with
  two or more certificate groups; with one certificate no Python runs during the handshake);
- ``downstream_*``: the listener protocol's life on a TLS connection without a request: the
  factory, ``Downstream.connection_made`` (with mTLS: ``getpeercert`` and the subject/SAN field
  values) and ``connection_lost``, on a stand-in transport;
- ``proxy_*``: the PROXY protocol header parse (``_proxyproto.parse``, v1 and v2, with a
  ClientHello after the header) and ``ProxyAccept`` up to the hand-off (trusted-network check,
  header timer, parse, the listener protocol made);
- ``handshake_task``: the ``max_handshakes`` accounting path runs each handshake in an asyncio
  Task of its own (``ProxyAccept._tls`` around ``loop.start_tls``); the Task's cost on uvloop,
  with the counter, is measured with a coroutine of the same shape (``start_tls`` itself is
  uvloop's and not included).

On an established connection (group ``1 KiB response over TLS``): a response head and a 1 KiB
body written as two ``SSLObject.write`` calls (two records: what uvloop's SSL transport does
with ``writelines``) against one write of the joined bytes (one record).

    .venv/bin/python -m pytest bench/micro/test_tls_handshake_bench.py \\
        --benchmark-columns=min,median,ops --benchmark-group-by=group

As plain tests (``--benchmark-disable``) every function runs once and its result is checked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gwcore import tls
from gwcore.config import parse
from gwcore.http._wire import Clock
from gwcore.process.worker import build_runtime
from gwcore.proxy import _proxyproto

GROUP_OPENSSL = "handshake"
GROUP_OURS = "per connection"


# -- certificates (made per run, never committed) -------------------------------------------

def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bench")])


def _issue(subject: str, key: ec.EllipticCurvePrivateKey, ca_key: ec.EllipticCurvePrivateKey,
           issuer: str, san: list[x509.GeneralName] | None, ca: bool = False
           ) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(days=1))
         .not_valid_after(now + dt.timedelta(days=7))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return b.sign(ca_key, hashes.SHA256())


def _write(d: Path, stem: str, cert: x509.Certificate,
           key: ec.EllipticCurvePrivateKey) -> tuple[str, str]:
    c, k = d / f"{stem}.pem", d / f"{stem}.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return str(c), str(k)


@dataclass
class Pki:
    """File paths of a test CA, two ECDSA P-256 server certificates (``bench.test`` and
    ``*.other.test``) and a client certificate, all issued by the CA."""

    ca: str
    server: tuple[str, str]
    other: tuple[str, str]
    client: tuple[str, str]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Certificates for this module's handshakes (P-256 keys, made at run time)."""
    d = tmp_path_factory.mktemp("tls-pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("Bench CA", ca_key, ca_key, "Bench CA", None, ca=True)
    ca_path = d / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out = []
    for stem, cn, san in (("server", "bench.test", [x509.DNSName("bench.test")]),
                          ("other", "other.test", [x509.DNSName("*.other.test")]),
                          ("client", "alice", [x509.DNSName("alice.clients.test"),
                                               x509.RFC822Name("alice@clients.test")])):
        key = ec.generate_private_key(ec.SECP256R1())
        out.append(_write(d, stem, _issue(cn, key, ca_key, "Bench CA", san), key))
    return Pki(str(ca_path), *out)


CONFIG = """
listeners:
  - name: one
    address: 127.0.0.1:18443
    tls: {{certificates: [{{cert: "{sc}", key: "{sk}"}}], min_version: TLSv1.3}}
  - name: sni
    address: 127.0.0.1:18444
    tls:
      certificates: [{{cert: "{sc}", key: "{sk}"}}, {{cert: "{oc}", key: "{ok}"}}]
      min_version: TLSv1.3
  - name: mtls
    address: 127.0.0.1:18445
    tls:
      certificates: [{{cert: "{sc}", key: "{sk}"}}]
      min_version: TLSv1.3
      client_auth: {{ca: "{ca}", required: true}}
clusters: [{{name: origin, endpoints: ["127.0.0.1:9"]}}]
routes: [{{match: {{path_prefix: /}}, cluster: origin}}]
"""


@dataclass
class Setup:
    """The parsed config, each listener's contexts as gwcore builds them, and clients."""

    cfg: Any
    contexts: dict[str, tls.ListenerContexts]
    client: ssl.SSLContext          # no verification, no certificate (wrk's)
    client_mtls: ssl.SSLContext     # presents the client certificate


@pytest.fixture(scope="module")
def setup(pki: Pki) -> Setup:
    """gwcore's listener contexts for three listeners (one certificate; two certificate
    groups, so an SNI callback; one certificate with required client certificates)."""
    cfg = parse(CONFIG.format(sc=pki.server[0], sk=pki.server[1], oc=pki.other[0],
                              ok=pki.other[1], ca=pki.ca))
    contexts = tls.build_listeners(cfg)
    assert contexts["one"].default.sni_callback is None
    assert contexts["sni"].default.sni_callback is not None

    def client_ctx() -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    mtls = client_ctx()
    mtls.load_cert_chain(*pki.client)
    return Setup(cfg, contexts, client_ctx(), mtls)


# -- driving a handshake in-process ---------------------------------------------------------

class SideClock:
    """Seconds spent so far in one side's calls, as a pytest-benchmark timer. Each read also
    adds 1 ns, so that the timer always advances (pytest-benchmark probes its precision by
    reading it until it changes); that is 2 ns per measured round, negligible here."""

    def __init__(self) -> None:
        self.ns = 0         # nanoseconds in this side's calls
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return (self.ns + self.reads) * 1e-9


SERVER_CLOCK = SideClock()
CLIENT_CLOCK = SideClock()


def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext,
              server_name: str = "bench.test") -> ssl.SSLObject:
    """One full TLS handshake between a new server and a new client SSLObject over memory
    BIOs, the client finally reading the server's session tickets. The time of each side's
    calls is added to SERVER_CLOCK and CLIENT_CLOCK; returns the server's SSLObject."""
    pc = time.perf_counter_ns
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    t0 = pc()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_name)
    t1 = pc()
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    t2 = pc()
    c_ns, s_ns = t1 - t0, t2 - t1
    c_done = s_done = False
    for _ in range(8):
        t0 = pc()
        if not c_done:
            try:
                client.do_handshake()
                c_done = True
            except ssl.SSLWantReadError:
                pass
        data = c_out.read()
        t1 = pc()
        s_in.write(data)
        if not s_done:
            try:
                server.do_handshake()
                s_done = True
            except ssl.SSLWantReadError:
                pass
        data = s_out.read()
        t2 = pc()
        c_in.write(data)
        t3 = pc()
        c_ns += (t1 - t0) + (t3 - t2)
        s_ns += t2 - t1
        if c_done and s_done:
            break
    else:
        raise AssertionError("handshake did not complete")
    t0 = pc()
    try:                            # the session tickets (NewSessionTicket messages)
        client.read(1)
    except ssl.SSLWantReadError:
        pass
    c_ns += pc() - t0
    CLIENT_CLOCK.ns += c_ns
    SERVER_CLOCK.ns += s_ns
    return server


def _checked(server: ssl.SSLObject) -> None:
    assert server.version() == "TLSv1.3"
    assert server.selected_alpn_protocol() == "http/1.1"
    assert server.cipher() is not None


# -- OpenSSL: the handshake ------------------------------------------------------------------

@pytest.mark.benchmark(group=GROUP_OPENSSL)
def test_handshake_both_sides(benchmark: Any, setup: Setup) -> None:
    """Wall time of one whole in-process handshake (server and client), one certificate."""
    _checked(benchmark(handshake, setup.contexts["one"].default, setup.client))


@pytest.mark.benchmark(group=GROUP_OPENSSL, timer=SERVER_CLOCK)
def test_handshake_server_side(benchmark: Any, setup: Setup) -> None:
    """The server's calls only (the gateway's OpenSSL cost per new connection)."""
    _checked(benchmark(handshake, setup.contexts["one"].default, setup.client))


@pytest.mark.benchmark(group=GROUP_OPENSSL, timer=CLIENT_CLOCK)
def test_handshake_client_side(benchmark: Any, setup: Setup) -> None:
    """The client's calls only (what the load generator pays)."""
    _checked(benchmark(handshake, setup.contexts["one"].default, setup.client))


@pytest.mark.benchmark(group=GROUP_OPENSSL, timer=SERVER_CLOCK)
def test_handshake_server_side_sni_switch(benchmark: Any, setup: Setup) -> None:
    """Server side, two certificate groups, SNI of the second: gwcore's callback runs and
    switches the connection to the other context."""
    server = benchmark(handshake, setup.contexts["sni"].default, setup.client, "x.other.test")
    _checked(server)
    assert server.context is setup.contexts["sni"].wildcard[".other.test"]
    assert server.context is not setup.contexts["sni"].default


@pytest.mark.benchmark(group=GROUP_OPENSSL, timer=SERVER_CLOCK)
def test_handshake_server_side_sni_default(benchmark: Any, setup: Setup) -> None:
    """Server side, two certificate groups, SNI of the default: the callback runs, no
    switch."""
    server = benchmark(handshake, setup.contexts["sni"].default, setup.client, "bench.test")
    _checked(server)
    assert server.context is setup.contexts["sni"].default


@pytest.mark.benchmark(group=GROUP_OPENSSL, timer=SERVER_CLOCK)
def test_handshake_server_side_mtls(benchmark: Any, setup: Setup) -> None:
    """Server side with a required client certificate (verified against the CA)."""
    server = benchmark(handshake, setup.contexts["mtls"].default, setup.client_mtls)
    _checked(server)
    assert server.getpeercert()["subject"]


# -- gwcore's code per connection -----------------------------------------------------------

@pytest.mark.benchmark(group=GROUP_OURS)
def test_sni_select_exact(benchmark: Any, setup: Setup) -> None:
    """ListenerContexts.select for an exact name (the SNI callback's lookup)."""
    ctxs = setup.contexts["sni"]
    assert benchmark(ctxs.select, "bench.test") is ctxs.default


@pytest.mark.benchmark(group=GROUP_OURS)
def test_sni_select_wildcard(benchmark: Any, setup: Setup) -> None:
    """ListenerContexts.select for a name only a wildcard matches."""
    ctxs = setup.contexts["sni"]
    assert benchmark(ctxs.select, "x.other.test") is not ctxs.default


@pytest.mark.benchmark(group=GROUP_OURS)
def test_sni_callback_switch(benchmark: Any, setup: Setup) -> None:
    """The SNI callback switching an SSLObject's context (lookup + SSL_set_SSL_CTX), per
    call: each benchmarked call switches there and back, so half of it is one switch."""
    ctxs = setup.contexts["sni"]
    sslobj = ctxs.default.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)

    def there_and_back() -> ssl.SSLContext:
        ctxs._sni(sslobj, "x.other.test", ctxs.default)
        other = sslobj.context
        ctxs._sni(sslobj, "bench.test", ctxs.default)
        return other

    assert benchmark(there_and_back) is not ctxs.default
    assert sslobj.context is ctxs.default


class StandIn:
    """A transport for a protocol under test: peer address, the TLS object, writes dropped."""

    def __init__(self, sslobj: ssl.SSLObject | None = None) -> None:
        self.extra = {"peername": ("192.0.2.7", 40000), "ssl_object": sslobj}
        self.protocol: Any = None
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A uvloop loop, as a worker has (run only where a test needs it)."""
    lp = uvloop.new_event_loop()
    yield lp
    lp.close()


@pytest.fixture(scope="module")
def runtimes(setup: Setup, loop: asyncio.AbstractEventLoop) -> Iterator[dict[str, Any]]:
    """Each listener's ListenerRuntime, built as a worker builds it."""
    clock = Clock(loop)
    _rt, listeners = build_runtime(setup.cfg, loop, clock)
    yield {lst.name: lr for lst, lr in listeners}
    clock.close()


def _connection(factory: Callable[[], Any], transport: StandIn) -> Any:
    proto = factory()
    proto.connection_made(transport)
    proto.connection_lost(None)
    return proto


@pytest.mark.benchmark(group=GROUP_OURS)
@pytest.mark.parametrize("listener", ["one", "mtls"])
def test_downstream_connection(benchmark: Any, setup: Setup, runtimes: dict[str, Any],
                               listener: str) -> None:
    """Downstream made, connection_made and connection_lost on a TLS listener (``one``: no
    mTLS; ``mtls``: also getpeercert() and the subject/SAN field values)."""
    client = setup.client_mtls if listener == "mtls" else setup.client
    server = handshake(setup.contexts[listener].default, client)
    lr = runtimes[listener]
    benchmark(_connection, lr.protocol, StandIn(server))
    assert lr.accepted >= 1


@pytest.mark.benchmark(group=GROUP_OURS)
def test_client_cert_fields(benchmark: Any, setup: Setup) -> None:
    """getpeercert() and gwcore.tls.client_cert_fields alone (part of the mTLS line)."""
    server = handshake(setup.contexts["mtls"].default, setup.client_mtls)
    subject, san = benchmark(lambda: tls.client_cert_fields(server.getpeercert()))
    assert subject == b"CN=alice,O=Bench"
    assert san == b"DNS:alice.clients.test, email:alice@clients.test"


def _client_hello(setup: Setup) -> bytes:
    out = ssl.MemoryBIO()
    client = setup.client.wrap_bio(ssl.MemoryBIO(), out, server_hostname="bench.test")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return out.read()


V1 = b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 443\r\n"
V2 = (b"\r\n\r\n\x00\r\nQUIT\n" + b"\x21\x11\x00\x0c"
      + bytes([198, 51, 100, 7, 192, 0, 2, 1]) + (40000).to_bytes(2, "big")
      + (443).to_bytes(2, "big"))


@pytest.mark.benchmark(group=GROUP_OURS)
@pytest.mark.parametrize("header", [V1, V2], ids=["v1", "v2"])
def test_proxy_parse(benchmark: Any, setup: Setup, header: bytes) -> None:
    """_proxyproto.parse of a PROXY header followed by a ClientHello (as one segment)."""
    data = header + _client_hello(setup)
    assert benchmark(_proxyproto.parse, data) == (len(header), ("198.51.100.7", 40000))


class Stub:
    """The listener protocol ProxyAccept hands a connection to (does nothing)."""

    def connection_made(self, transport: Any) -> None:
        pass

    def set_client(self, ip: str) -> None:
        self.ip = ip

    def data_received(self, data: bytes) -> None:
        pass


@pytest.mark.benchmark(group=GROUP_OURS)
def test_proxy_accept(benchmark: Any, setup: Setup, loop: asyncio.AbstractEventLoop
                      ) -> None:
    """ProxyAccept from accept to hand-off on a plain listener: trusted-network check,
    header timer set and cancelled, the v2 header parsed, the listener protocol made and
    given the client address and the bytes after the header (here a ClientHello). On a TLS
    listener the hand-off is the start_tls Task instead (``test_handshake_task``)."""
    settings = _proxyproto.ProxySettings(Stub, loop, ["198.51.100.0/24", "192.0.2.0/24"],
                                         5.0)
    data = V2 + _client_hello(setup)

    def one() -> Any:
        t = StandIn()
        p = settings.protocol()
        p.connection_made(t)
        p.data_received(data)
        return t

    t = benchmark(one)
    assert not t.closed and t.protocol.ip == "198.51.100.7"
    assert settings.rejected == 0


class Counter:
    """The handshakes-under-way counter the max_handshakes path keeps."""

    handshaking = 0


async def _tls_shaped(c: Counter, done: asyncio.Future[None]) -> None:
    """ProxyAccept._tls without start_tls: count in, await a result, count out."""
    c.handshaking += 1
    try:
        await done
    finally:
        c.handshaking -= 1


BATCH = 100


@pytest.mark.benchmark(group=GROUP_OURS)
def test_handshake_task(benchmark: Any, loop: asyncio.AbstractEventLoop) -> None:
    """The max_handshakes path's Task per handshake on uvloop (created, run to its await,
    resumed and finished), for BATCH connections per benchmarked call: divide by BATCH."""
    c = Counter()

    async def batch() -> None:
        futures = [loop.create_future() for _ in range(BATCH)]
        tasks = [loop.create_task(_tls_shaped(c, f)) for f in futures]
        await asyncio.sleep(0)
        for f in futures:
            f.set_result(None)
        await asyncio.gather(*tasks)

    benchmark(lambda: loop.run_until_complete(batch()))
    assert c.handshaking == 0


@pytest.mark.benchmark(group=GROUP_OURS)
def test_handshake_task_floor(benchmark: Any, loop: asyncio.AbstractEventLoop) -> None:
    """test_handshake_task's frame without the Tasks (run_until_complete, BATCH futures
    made and resolved, one loop turn): subtract it before dividing by BATCH."""
    async def batch() -> None:
        futures = [loop.create_future() for _ in range(BATCH)]
        await asyncio.sleep(0)
        for f in futures:
            f.set_result(None)

    benchmark(lambda: loop.run_until_complete(batch()))


# -- on an established connection: one 1 KiB response as one or two TLS records ------------

GROUP_RECORDS = "1 KiB response over TLS"
HEAD = (b"HTTP/1.1 200 OK\r\nServer: origin\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 1024\r\nVia: 1.1 gwcore\r\n\r\n")
BODY = b"x" * 1024


@pytest.fixture(scope="module")
def established(setup: Setup) -> tuple[ssl.SSLObject, ssl.MemoryBIO]:
    """A server SSLObject after a full handshake and the BIO its records go out to (the
    client is not needed: the records are encrypted and dropped)."""
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    client = setup.client.wrap_bio(c_in, c_out, server_hostname="bench.test")
    server = setup.contexts["one"].default.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(8):
        for side, src, dst in ((client, c_out, s_in), (server, s_out, c_in)):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
            dst.write(src.read())
    assert server.version() == "TLSv1.3"
    s_out.read()
    return server, s_out


@pytest.mark.benchmark(group=GROUP_RECORDS)
def test_response_two_records(benchmark: Any, established: tuple[ssl.SSLObject, ssl.MemoryBIO]
                              ) -> None:
    """Head and body written separately, as uvloop's SSL transport does for writelines
    (one ``SSLObject.write`` per item: two records), then read out of the BIO once."""
    server, out = established

    def two() -> bytes:
        server.write(HEAD)
        server.write(BODY)
        return out.read()

    assert len(benchmark(two)) == len(HEAD) + len(BODY) + 2 * 22


@pytest.mark.benchmark(group=GROUP_RECORDS)
def test_response_one_record(benchmark: Any, established: tuple[ssl.SSLObject, ssl.MemoryBIO]
                             ) -> None:
    """The same bytes joined first and written once: one record."""
    server, out = established

    def one() -> bytes:
        server.write(HEAD + BODY)
        return out.read()

    assert len(benchmark(one)) == len(HEAD) + len(BODY) + 22
