"""PROXY protocol v1/v2 on a listener (``listeners[].proxy_protocol``): ``ProxyAccept`` is the
protocol of a new connection until its PROXY header has been read (src_c/proxyproto.h), and
until its TLS handshake is done where the handshakes under way are bounded
(``tls.max_handshakes``, with or without a PROXY header).

A connection from outside ``trusted`` is closed at once, as is one whose header is malformed
or does not arrive within the listener's header timeout. Then the listener's own protocol
(``Downstream``) takes the connection, with the client address the header carries (a LOCAL
or UNKNOWN header keeps the connection's own) — the address logs, X-Forwarded-For, hash keys
and filters see. On a TLS listener the header comes before the TLS handshake: the plain
connection is upgraded with ``loop.start_tls`` once it has been read, and the bytes that came
after the header (the ClientHello, often in the same segment) are handed to the TLS layer.
"""

import ipaddress
import logging
import socket

from libc.stdint cimport uint16_t

cdef extern from "proxyproto.h" nogil:
    ctypedef struct gw_proxy_hdr:
        int version
        int local
        int family
        unsigned char src[16]
        unsigned char dst[16]
        uint16_t src_port
        uint16_t dst_port

    int gw_proxy_parse(const char *buf, size_t len, gw_proxy_hdr *out)

log = logging.getLogger("gwcore")

cdef Py_ssize_t V2_MAX = 16 + 65535


def parse(bytes data):
    """(consumed, client): consumed is the header's length (> 0), -2 (incomplete) or -1
    (invalid); client is (ip, port) from a header that carries one, else None."""
    cdef gw_proxy_hdr h
    cdef int n = gw_proxy_parse(data, len(data), &h)
    if n <= 0:
        return n, None
    if h.local:
        return n, None
    if h.family == 4:
        ip = socket.inet_ntop(socket.AF_INET, (<char *>h.src)[:4])
    else:
        ip = socket.inet_ntop(socket.AF_INET6, (<char *>h.src)[:16])
    return n, (ip, h.src_port)


cdef class ProxySettings:
    """One listener's: its protocol factory (``ListenerRuntime.protocol``), the trusted
    networks, the header timeout, and its TLS context (None: plain). ``expect_header``
    False: no PROXY header, the TLS handshake starts at once (a TLS listener with a bound
    on concurrent handshakes). ``max_handshakes``: handshakes under way at once in this
    worker (0: no bound); a connection over it is closed at once."""

    cdef object factory, loop, networks, ssl_context
    cdef double header_timeout, handshake_timeout
    cdef bint expect_header
    cdef int max_handshakes
    cdef readonly int handshaking               # TLS handshakes under way
    cdef readonly unsigned long rejected       # untrusted, malformed or late headers
    cdef readonly unsigned long over_limit     # closed: max_handshakes under way

    def __cinit__(self, factory, loop, trusted, double header_timeout, ssl_context=None,
                  double handshake_timeout=10.0, bint expect_header=True,
                  int max_handshakes=0):
        self.factory = factory
        self.loop = loop
        self.networks = [ipaddress.ip_network(c, strict=False) for c in trusted]
        self.header_timeout = header_timeout
        self.ssl_context = ssl_context
        self.handshake_timeout = handshake_timeout
        self.expect_header = expect_header
        self.max_handshakes = max_handshakes

    cdef bint trusted(self, str ip):
        try:
            addr = ipaddress.ip_address(ip.partition("%")[0])
        except ValueError:
            return False
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        for net in self.networks:
            if addr.version == net.version and addr in net:
                return True
        return False

    def protocol(self):
        """Protocol factory for loop.create_server."""
        return ProxyAccept(self)


cdef class ProxyAccept:
    """A connection until its PROXY header is read (module docstring)."""

    cdef ProxySettings s
    cdef object transport, timer
    cdef bytes buf
    cdef bint done

    def __cinit__(self, ProxySettings s):
        self.s = s
        self.buf = b""

    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if self.s.expect_header and (not peer or not self.s.trusted(peer[0])):
            self._reject("from an untrusted address %s", peer[0] if peer else "?")
            return
        self.timer = self.s.loop.call_later(self.s.header_timeout, self._late)

    def _late(self):
        self.timer = None
        if not self.done:
            self._reject("nothing received within %gs", self.s.header_timeout)

    cdef void _reject(self, str why, object arg):
        self.done = True
        self.s.rejected += 1
        log.debug("proxy_protocol: closing a connection: " + why, arg)
        self.transport.abort()

    def data_received(self, bytes data):
        if self.done:
            return
        self.buf += data
        if self.s.expect_header:
            n, client = parse(self.buf)
        else:           # no header: the first bytes (the ClientHello) go to the TLS layer
            n, client = 0, None
        if n == -2:
            if len(self.buf) > V2_MAX:
                self._reject("header too long%s", "")
            return
        if n == -1:
            self._reject("malformed header%s", "")
            return
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        rest = self.buf[n:]
        self.buf = None
        ip = client[0] if client is not None else None
        proto = self.s.factory()
        if self.s.ssl_context is None:
            self.transport.set_protocol(proto)
            proto.connection_made(self.transport)
            if ip is not None:
                proto.set_client(ip)
            if rest:
                proto.data_received(rest)
        else:
            self._upgrade(proto, ip, rest)

    cdef void _upgrade(self, proto, ip, bytes rest):
        if self.s.max_handshakes and self.s.handshaking >= self.s.max_handshakes:
            self.s.over_limit += 1
            self.transport.abort()
            return
        self.s.handshaking += 1
        self.transport.pause_reading()
        self.s.loop.create_task(self._tls(proto, ip))
        # start_tls swaps in its TLS protocol in its first step (scheduled before this
        # call): then the bytes after the header go to it, once its connection_made ran
        if rest:
            self.s.loop.call_soon(self._after_first_step, rest)

    def _after_first_step(self, bytes rest):
        tls = self.transport.get_protocol()
        if tls is not self and not self.transport.is_closing():
            self.s.loop.call_soon(_feed, tls, rest)

    async def _tls(self, proto, ip):
        # bytes decrypted before this coroutine resumes wait in ``held``
        cdef _Held held = _Held()
        try:
            tls_transport = await self.s.loop.start_tls(
                self.transport, held, self.s.ssl_context, server_side=True,
                ssl_handshake_timeout=self.s.handshake_timeout)
        except Exception as e:      # noqa: BLE001 (a failed or late handshake)
            log.debug("TLS handshake failed: %s", e)
            self.transport.abort()
            return
        finally:
            self.s.handshaking -= 1
        if tls_transport.is_closing():      # a timed-out handshake ends without an error
            self.transport.abort()
            return
        tls_transport.set_protocol(proto)
        proto.connection_made(tls_transport)
        if ip is not None:
            proto.set_client(ip)
        if held.data:
            proto.data_received(b"".join(held.data))
        if held.lost:
            proto.connection_lost(held.exc)
        elif held.eof:
            proto.eof_received()

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


cdef class _Held:
    """The TLS connection's protocol until the handshake's waiter has been seen."""

    cdef list data
    cdef bint eof, lost
    cdef object exc

    def __cinit__(self):
        self.data = []

    def connection_made(self, transport):
        pass

    def data_received(self, bytes data):
        self.data.append(data)

    def eof_received(self):
        self.eof = True
        return False

    def connection_lost(self, exc):
        self.lost = True
        self.exc = exc

    def pause_writing(self):
        pass

    def resume_writing(self):
        pass


def _feed(tls, bytes rest):
    """Hands bytes already read to a TLS protocol (asyncio's buffered-protocol interface)."""
    cdef Py_ssize_t off = 0, n
    while off < len(rest):
        buf = memoryview(tls.get_buffer(len(rest) - off))
        n = min(len(buf), len(rest) - off)
        buf[:n] = rest[off:off + n]
        tls.buffer_updated(n)
        off += n
