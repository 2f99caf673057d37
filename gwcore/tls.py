"""Listener and upstream SSL contexts (Python's ``ssl``, i.e. OpenSSL), built by the master
before it forks (DESIGN.md §4).

A TLS listener gets one ``ssl.SSLContext`` per group of certificates serving the same names
(an RSA and an ECDSA certificate for the same names share one context: OpenSSL picks the one
the client's signature algorithms allow). The first certificate's context is the listener's
default: it is the one the server socket is given, and its ``sni_callback`` switches a
connection to the context whose names match the client's SNI (exact names before ``*.``
wildcards; no SNI or an unknown name keeps the default).

Session tickets: OpenSSL creates the ticket keys with the ``SSL_CTX`` and encrypts every
ticket with the keys of the context the connection started on (the default one). The master
builds the contexts, then forks: every worker of a generation holds the same keys, so a client
resumes whichever worker it reaches. A new generation (a reload, or ``ticket_key_rotation``)
builds new contexts, hence new keys: a client presenting a ticket of an older generation gets
a full handshake (and a new ticket), never an error.

OCSP stapling (``ocsp_staple``, a DER OCSPResponse per certificate): Python's ssl has no
server-side API for it, so gwcore._ocsp (src_c/ocsp.c) installs OpenSSL's status callback on
the context's ``SSL_CTX``; the staple is read and checked (a successful response for that
certificate, within its validity, not revoked) whenever the contexts are built: by ``gwcore
check``, at start and on every reload.

Every listener context: TLS 1.2 or 1.3 at least (1.0/1.1 never), no renegotiation, no
compression, the server's cipher preference.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gwcore import _ocsp
from gwcore.config import Certificate, Config, ConfigError, ListenerTls, UpstreamTls

__all__ = ["ListenerContexts", "build_listeners", "certificate_names", "check",
           "client_cert_fields", "client_context", "listener_contexts", "ticket_rotation"]

_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def _decode_cert(path: str) -> dict[str, Any]:
    """The first certificate of a PEM file as ``SSLSocket.getpeercert()`` shows one. The
    standard library has no public API for a certificate file; ``_test_decode_cert`` is
    the one its own tests use."""
    return ssl._ssl._test_decode_cert(path)     # type: ignore[attr-defined]


def _load_ca(ctx: ssl.SSLContext, path: str, where: str) -> None:
    """Trust the CA certificates of the PEM file at path; ConfigError naming ``where``."""
    _readable(path, where)
    try:
        ctx.load_verify_locations(cafile=path)
    except ssl.SSLError as e:
        raise ConfigError(f"{where}: {path}: no usable CA certificate "
                          f"({e.reason or e})") from None


def _readable(path: str, where: str) -> None:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        raise ConfigError(f"{where}: cannot read {path}: {e.strerror}") from None


def _staple(ctx: ssl.SSLContext, path: str, where: str) -> None:
    """Staple the DER OCSP response in ``path`` for the certificate ctx loaded last
    (ConfigError naming the key path and the file)."""
    try:
        with open(path, "rb") as f:
            der = f.read(_OCSP_MAX + 1)
    except OSError as e:
        raise ConfigError(f"{where}: cannot read {path}: {e.strerror}") from None
    if len(der) > _OCSP_MAX:
        raise ConfigError(f"{where}: {path} is larger than {_OCSP_MAX} bytes")
    try:
        _ocsp.staple(ctx, der)
    except _ocsp.OcspError as e:
        raise ConfigError(f"{where}: {path}: {e}") from None


_OCSP_MAX = 1 << 20     # src_c/ocsp.h GW_OCSP_MAX_DER


def certificate_names(c: Certificate, where: str, now: float | None = None) -> list[str]:
    """Check one certificate entry and return the names it serves (lower case):
    ``server_names`` if given, else the DNS names of its subjectAltName. ConfigError naming
    the key and the file: unreadable, not a certificate, not yet valid or expired, a key
    that cannot be read or does not match the certificate."""
    _readable(c.cert, f"{where}.cert")
    _readable(c.key, f"{where}.key")
    try:
        info = _decode_cert(c.cert)
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(f"{where}.cert: {c.cert} is not a PEM certificate "
                          f"({getattr(e, 'reason', None) or e})") from None
    now = time.time() if now is None else now
    not_after = ssl.cert_time_to_seconds(info["notAfter"])
    not_before = ssl.cert_time_to_seconds(info["notBefore"])
    if not_after < now:
        raise ConfigError(f"{where}.cert: {c.cert} expired on {info['notAfter']}")
    if not_before > now:
        raise ConfigError(f"{where}.cert: {c.cert} is not valid before {info['notBefore']}")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(c.cert, c.key)
    except ssl.SSLError as e:
        if "KEY_VALUES_MISMATCH" in str(e) or e.reason == "KEY_VALUES_MISMATCH":
            raise ConfigError(f"{where}.key: {c.key} does not match the certificate "
                              f"{c.cert}") from None
        raise ConfigError(f"{where}.key: cannot load {c.key} with {c.cert}: "
                          f"{e.reason or e}") from None
    if c.server_names is not None:
        return [n.lower() for n in c.server_names]
    return [v.lower() for k, v in info.get("subjectAltName", ()) if k == "DNS"]


@dataclass
class ListenerContexts:
    """A TLS listener's contexts: ``default`` (given to the server socket; its
    sni_callback picks among the others), and the maps SNI uses."""

    default: ssl.SSLContext
    exact: dict[str, ssl.SSLContext] = field(default_factory=dict)
    wildcard: dict[str, ssl.SSLContext] = field(default_factory=dict)   # ".suffix" → ctx

    def select(self, server_name: str | None) -> ssl.SSLContext:
        """The context for an SNI name (exact, then one-label wildcard, then the default)."""
        if not server_name:
            return self.default
        name = server_name.lower().rstrip(".")
        ctx = self.exact.get(name)
        if ctx is None:
            _, dot, rest = name.partition(".")
            ctx = self.wildcard.get(dot + rest) if dot else None
        return ctx or self.default

    def _sni(self, sslobj: ssl.SSLObject, server_name: str | None,
             _ctx: ssl.SSLContext) -> None:
        ctx = self.select(server_name)
        if ctx is not sslobj.context:
            sslobj.context = ctx


def _server_context(tls: ListenerTls, where: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[tls.min_version]
    ctx.options |= (ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
                    | ssl.OP_CIPHER_SERVER_PREFERENCE)
    if tls.ciphers is not None:
        try:
            ctx.set_ciphers(tls.ciphers)
        except ssl.SSLError:
            raise ConfigError(f"{where}.ciphers: no cipher matches {tls.ciphers!r}") from None
    ctx.set_alpn_protocols(list(tls.alpn))
    if not tls.session_tickets:
        ctx.options |= ssl.OP_NO_TICKET
        ctx.num_tickets = 0
    ca = tls.client_auth
    if ca is not None:
        _load_ca(ctx, ca.ca, f"{where}.client_auth.ca")
        ctx.verify_mode = ssl.CERT_REQUIRED if ca.required else ssl.CERT_OPTIONAL
    return ctx


def listener_contexts(tls: ListenerTls, where: str = "tls") -> ListenerContexts:
    """Check the listener's certificates and build its contexts (ConfigError naming the
    key path and the file)."""
    groups: dict[tuple[str, ...], ssl.SSLContext] = {}
    out: ListenerContexts | None = None
    for i, c in enumerate(tls.certificates):
        w = f"{where}.certificates[{i}]"
        names = certificate_names(c, w)
        key = tuple(sorted(set(names))) or (f"#{i}",)
        ctx = groups.get(key)
        if ctx is None:
            ctx = groups[key] = _server_context(tls, where)
        ctx.load_cert_chain(c.cert, c.key)
        if c.ocsp_staple is not None:
            _staple(ctx, c.ocsp_staple, f"{w}.ocsp_staple")
        elif i == 0 and tls.ocsp_staple is not None:
            _staple(ctx, tls.ocsp_staple, f"{where}.ocsp_staple")
        if out is None:
            out = ListenerContexts(ctx)
        for name in names:
            if name.startswith("*."):
                out.wildcard.setdefault(name[1:], ctx)
            else:
                out.exact.setdefault(name, ctx)
    assert out is not None
    if len(groups) > 1:     # one context: nothing to choose, no Python call per handshake
        out.default.sni_callback = out._sni
    return out


def build_listeners(cfg: Config) -> dict[str, ListenerContexts]:
    """Each TLS listener's contexts by listener name (ConfigError for the first problem)."""
    return {lst.name: listener_contexts(lst.tls, f"listeners[{i}].tls")
            for i, lst in enumerate(cfg.listeners) if lst.tls is not None}


def client_context(t: UpstreamTls, where: str = "tls") -> ssl.SSLContext:
    """The context of a cluster's upstream connections (ConfigError naming the file)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    if t.verify:
        if t.ca == "system":
            ctx.load_default_certs()
        else:
            _load_ca(ctx, t.ca, f"{where}.ca")
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if t.client_cert is not None:
        certificate_names(Certificate(cert=t.client_cert.cert, key=t.client_cert.key),
                          f"{where}.client_cert")
        ctx.load_cert_chain(t.client_cert.cert, t.client_cert.key)
    ctx.set_alpn_protocols(list(t.alpn))
    return ctx


def check(cfg: Config) -> None:
    """Build every context cfg names and discard them (``gwcore check``)."""
    build_listeners(cfg)
    for i, c in enumerate(cfg.clusters):
        if c.tls is not None:
            client_context(c.tls, f"clusters[{i}].tls")


def ticket_rotation(cfg: Config) -> float | None:
    """The shortest ``ticket_key_rotation`` of cfg's listeners (seconds), or None."""
    periods = [lst.tls.ticket_key_rotation for lst in cfg.listeners
               if lst.tls is not None and lst.tls.ticket_key_rotation is not None]
    return min(periods) if periods else None


# -- a verified client certificate, forwarded upstream -------------------------------------

_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
          "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST",
          "domainComponent": "DC", "emailAddress": "emailAddress", "serialNumber": "serialNumber",
          "userId": "UID"}
_SAN_KIND = {"DNS": "DNS", "IP Address": "IP", "email": "email", "URI": "URI",
             "DirName": "DirName", "othername": "othername", "Registered ID": "RID"}


def _safe(text: str, special: str = "") -> str:
    """Printable ASCII only (a field value): others, and ``special``, as \\XX hex escapes."""
    out = []
    for ch in text:
        if ch in special or ch == "\\":
            out.append("\\" + ch)
        elif 0x20 <= ord(ch) < 0x7f:
            out.append(ch)
        else:
            out.extend(f"\\{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


_DN_SPECIAL = ',+"<>;=#'


def _rdns(rdns: Iterable[Any]) -> str:
    return ",".join("+".join(f"{_SHORT.get(k, k)}={_safe(str(v), _DN_SPECIAL)}"
                             for k, v in rdn) for rdn in rdns)


def client_cert_fields(peercert: dict[str, Any] | None) -> tuple[bytes, bytes] | None:
    """(subject, subjectAltName) of a verified client certificate as field values
    (``CN=alice,O=Example``; ``DNS:a.test, email:a@b.test``), printable ASCII; None when
    the client sent none."""
    if not peercert:
        return None
    subject = _rdns(peercert.get("subject", ()))
    san = ", ".join(f"{_SAN_KIND.get(k, _safe(k))}:{_safe(str(v), ',')}"
                    for k, v in peercert.get("subjectAltName", ()))
    return subject.encode("ascii"), san.encode("ascii")
