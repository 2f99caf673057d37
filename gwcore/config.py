"""Configuration: one YAML file parsed into typed, validated objects (DESIGN.md §5).

Every problem is reported as ``ConfigError("<file>: <key path>: <what is wrong>")``, e.g.
``gateway.yaml: routes[2].cluster: unknown cluster 'vidoe'``. Durations are written ``250ms``,
``10s``, ``5m``, ``1h`` (or a number of seconds) and held as ``float`` seconds; sizes are written
``16KiB``, ``10MiB``, ``1GiB`` (binary units, ×1024), ``16kB``, ``10MB``, ``1GB`` (SI units,
×1000: ``10MB`` is 10,000,000 bytes) or a number of bytes, and held as ``int`` bytes. A mapping
that repeats a key is an error (YAML loaders otherwise keep the last one silently).
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Any, Literal

import msgspec
import yaml

# No gwcore.jwt/http/proxy or other compiled gwcore module here: reading key files into key
# sets is the runtime's job (gwcore.runtime), so `gwcore check` and `version` stay light.

__all__ = [
    "Certificate",
    "ClientAuth",
    "ClientCert",
    "Cluster",
    "ClusterTimeouts",
    "Concurrency",
    "Config",
    "ConfigError",
    "Duration",
    "FilterSpec",
    "IpAcl",
    "Limits",
    "Listener",
    "ListenerTimeouts",
    "ListenerTls",
    "Match",
    "Pool",
    "ProxyProtocol",
    "RateLimit",
    "RateLimitKey",
    "RateLimitTable",
    "Redis",
    "Route",
    "Size",
    "UpstreamTls",
    "load",
    "parse",
]


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file, the key path and the problem."""


class Duration(float):
    """Seconds (float), written in YAML as ``250ms``, ``10s``, ``5m``, ``1h`` or a number."""


class Size(int):
    """Bytes (int), written in YAML as ``512``, ``512B``, ``16KiB``, ``10MiB``, ``1GiB``
    (×1024) or ``16kB``/``16KB``, ``10MB``, ``1GB`` (SI, ×1000)."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"^\s*(\d+)\s*([A-Za-z]+)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30,
               "kB": 1000, "KB": 1000, "MB": 1000**2, "GB": 1000**3}
_SIZE_HELP = ("a whole number of bytes, optionally with a unit: B, KiB, MiB, GiB (×1024) "
              "or kB/KB, MB, GB (×1000), e.g. 16KiB")


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. YAML 1.1 also reads on/off/yes/no as booleans,
    which would turn ``retries: {on: [...]}`` into a True key."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


def _dec_hook(typ: type, obj: Any) -> Any:
    if typ is Duration:
        if isinstance(obj, (int, float)) and not isinstance(obj, bool) and obj >= 0:
            return Duration(obj)
        m = _DURATION.match(obj) if isinstance(obj, str) else None
        if not m:
            raise ValueError(f"expected a duration like 250ms, 10s, 5m, got {obj!r}")
        return Duration(float(m.group(1)) * _DURATION_UNITS[m.group(2)])
    if typ is Size:
        if isinstance(obj, int) and not isinstance(obj, bool) and obj >= 0:
            return Size(obj)
        m = _SIZE.match(obj) if isinstance(obj, str) else None
        if not m or m.group(2) not in _SIZE_UNITS:
            unknown = f" (unknown unit {m.group(2)!r})" if m else ""
            raise ValueError(f"expected a size: {_SIZE_HELP}; got {obj!r}{unknown}")
        return Size(int(m.group(1)) * _SIZE_UNITS[m.group(2)])
    raise NotImplementedError(typ)


def _split_address(address: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` / ``"[::1]:8080"`` / ``"name:80"`` → (host, port); ValueError."""
    if address.startswith("["):
        host, sep, port = address[1:].partition("]:")
        ipaddress.IPv6Address(host)
    else:
        host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {address!r}")
    return host, int(port)


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    def _positive(self, *names: str) -> None:
        """ValueError naming the first of these durations that is not above zero."""
        for name in names:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be more than 0s")


class _Addressed(_Section):
    """A section with a ``host:port`` ``address`` (validated by the subclass)."""

    address: str

    @property
    def host(self) -> str:
        return _split_address(self.address)[0]

    @property
    def port(self) -> int:
        return _split_address(self.address)[1]


class _IpAddressed(_Addressed):
    """An address this process binds: host:port with an IP host."""

    def __post_init__(self) -> None:
        try:
            host, _ = _split_address(self.address)
        except ValueError as e:
            raise ValueError(f"address: {e}") from None
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"address: host must be an IP address, got {host!r}") from None


class Limits(_Section):
    """Per-listener request limits (bytes / counts). ``max_connections``,
    ``max_connections_per_client``: open client connections a worker process keeps on this
    listener, in all and per client address (as NGINX's worker_connections: per worker);
    a connection beyond them gets a 503 with Retry-After and is closed. None: no limit."""

    max_head_bytes: Size = Size(16 << 10)
    max_headers: int = 100
    max_target_bytes: Size = Size(8 << 10)
    max_body_bytes: Size = Size(10 << 20)
    buffer_body_bytes: Size = Size(64 << 10)
    max_connections: int | None = None
    max_connections_per_client: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_connections_per_client"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1")
        if self.buffer_body_bytes > 64 << 20:
            raise ValueError("buffer_body_bytes: must be at most 64 MiB")
        if not 64 <= self.max_head_bytes <= 1 << 20:
            raise ValueError("max_head_bytes: must be between 64 B and 1 MiB")
        if not 1 <= self.max_headers <= 1000:
            raise ValueError("max_headers: must be between 1 and 1000")
        if not 1 <= self.max_target_bytes <= self.max_head_bytes:
            raise ValueError("max_target_bytes: must be between 1 and max_head_bytes")


class ListenerTimeouts(_Section):
    """``header``: time to receive a whole request head (slowloris guard, 408).
    ``idle``: how long a keep-alive connection may wait for its next request.
    ``filter``: longest wait for a request filter that awaits (a key fetch...) → 504.
    ``tls_handshake``: longest TLS handshake (TLS listeners; the connection is closed).
    Seconds."""

    header: Duration = Duration(10.0)
    idle: Duration = Duration(60.0)
    filter: Duration = Duration(5.0)
    tls_handshake: Duration = Duration(10.0)

    def __post_init__(self) -> None:
        self._positive("header", "idle", "filter", "tls_handshake")


class PathNormalization(_Section):
    """How the path that routes match is normalised (RFC 3986 §6.2.2; dot segments are
    always removed). ``merge_slashes``: ``//`` → ``/``. ``escaped_slashes``: ``decode``
    (%2F and %5C decoded before matching), ``keep`` (left encoded: an origin that decodes
    them sees a path no route matched, CVE-2021-29492's class), ``reject`` (400)."""

    merge_slashes: bool = True
    escaped_slashes: Literal["decode", "keep", "reject"] = "decode"


_FIELD_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_SERVER_NAME = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*"
                          r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class Certificate(_Section):
    """A certificate chain (PEM, leaf first) and its private key (PEM), files relative to
    the config file's directory. ``server_names``: the SNI names it serves (exact, or
    ``*.suffix`` for one label); None: the DNS names of the certificate's SANs.
    ``ocsp_staple``: a DER OCSP response for this certificate, stapled when a client asks
    (status_request); read again on every reload."""

    cert: str
    key: str
    server_names: list[str] | None = None
    ocsp_staple: str | None = None

    def __post_init__(self) -> None:
        if self.server_names is not None:
            if not self.server_names:
                raise ValueError("server_names: give at least one name, or leave it out")
            for i, name in enumerate(self.server_names):
                if not _SERVER_NAME.match(name.lower()):
                    raise ValueError(f"server_names[{i}]: {name!r} is not a host name "
                                     f"or *.suffix")


class ClientAuth(_Section):
    """Client certificates (mTLS): verified against ``ca`` (PEM file); ``required``: a
    client without a valid one fails the handshake, else it may connect without one. The
    verified certificate's subject and subjectAltName go upstream in ``subject_field`` and
    ``san_field`` (a client's own fields of these names are always removed)."""

    ca: str
    required: bool = True
    subject_field: str = "X-Client-Cert-Subject"
    san_field: str = "X-Client-Cert-SAN"

    def __post_init__(self) -> None:
        for name in ("subject_field", "san_field"):
            if not _FIELD_NAME.match(getattr(self, name)):
                raise ValueError(f"{name}: {getattr(self, name)!r} is not a field name")


class ListenerTls(_Section):
    """TLS on a listener (gwcore/tls.py): ``certificates`` chosen by SNI, the first the
    default; ``min_version`` TLSv1.2 or TLSv1.3 (1.0 and 1.1 are never offered);
    ``ciphers`` an OpenSSL cipher string for TLS 1.2 (None: Python's modern default);
    ``alpn`` protocols offered (http/1.1 only until HTTP/2 exists); ``session_tickets``
    (keys shared by all workers of a generation); ``ticket_key_rotation``: start a new
    generation (new ticket keys) this often (None: only on reload); ``client_auth``: mTLS;
    ``max_handshakes``: TLS handshakes under way at once per worker (None: no bound; over it
    a new connection is closed at once); ``ocsp_staple``: the first (default) certificate's
    OCSP staple, as ``certificates[0].ocsp_staple`` (give one or the other)."""

    certificates: list[Certificate]
    min_version: Literal["TLSv1.2", "TLSv1.3"] = "TLSv1.2"
    ciphers: str | None = None
    alpn: list[str] = msgspec.field(default_factory=lambda: ["http/1.1"])
    session_tickets: bool = True
    ticket_key_rotation: Duration | None = None
    client_auth: ClientAuth | None = None
    max_handshakes: int | None = None
    ocsp_staple: str | None = None

    def __post_init__(self) -> None:
        if self.max_handshakes is not None and not 1 <= self.max_handshakes <= 1 << 20:
            raise ValueError("max_handshakes: must be between 1 and 1048576")
        if not self.certificates:
            raise ValueError("certificates: at least one certificate is needed")
        if self.ocsp_staple is not None and self.certificates[0].ocsp_staple is not None:
            raise ValueError("ocsp_staple: also given as certificates[0].ocsp_staple; "
                             "give one")
        for i, proto in enumerate(self.alpn):
            if proto != "http/1.1":
                raise ValueError(f"alpn[{i}]: {proto!r} is not supported (only http/1.1)")
        if self.ticket_key_rotation is not None and self.ticket_key_rotation < 5:
            raise ValueError("ticket_key_rotation: must be at least 5s")
        if self.ciphers is not None and not self.ciphers.strip():
            raise ValueError("ciphers: empty; leave it out for the default")


class ProxyProtocol(_Section):
    """PROXY protocol v1/v2 (HAProxy's) on a listener: every connection must start with a
    header, read before TLS; ``trusted``: the networks (CIDR) allowed to send one. A
    connection from elsewhere, or with a malformed header, is closed."""

    trusted: list[str]

    def __post_init__(self) -> None:
        if not self.trusted:
            raise ValueError("trusted: give at least one network (CIDR)")
        for i, cidr in enumerate(self.trusted):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"trusted[{i}]: {cidr!r} is not a network (CIDR)") from None


class Listener(_IpAddressed):
    """``tls``: serve HTTPS (ListenerTls); absent: plain HTTP. ``proxy_protocol``: connections
    start with a PROXY header (ProxyProtocol). ``redirect_http`` (a plain listener): every
    request is answered ``308`` to ``https://`` its Host (without the port) and target."""

    name: str
    backlog: int = 1024
    limits: Limits = msgspec.field(default_factory=Limits)
    timeouts: ListenerTimeouts = msgspec.field(default_factory=ListenerTimeouts)
    path_normalization: PathNormalization = msgspec.field(default_factory=PathNormalization)
    tls: ListenerTls | None = None
    proxy_protocol: ProxyProtocol | None = None
    redirect_http: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.redirect_http and self.tls is not None:
            raise ValueError("redirect_http: only on a plain listener (this one has tls)")


class ClusterTimeouts(_Section):
    """``connect``: TCP connect to an endpoint. ``response``: longest wait for upstream bytes
    while a response is expected (NGINX's proxy_read_timeout). Seconds; both answer 504."""

    connect: Duration = Duration(1.0)
    response: Duration = Duration(15.0)

    def __post_init__(self) -> None:
        self._positive("connect", "response")


class Pool(_Section):
    """Upstream keep-alive pool, per endpoint: idle connections kept (count) and for how long."""

    max_idle: int = 64
    idle_timeout: Duration = Duration(60.0)


class Endpoint(_Addressed):
    """One upstream: ``address`` host:port (an IP or a DNS name) and a relative ``weight``."""

    weight: int = 1

    def __post_init__(self) -> None:
        try:
            _split_address(self.address)
        except ValueError as e:
            raise ValueError(f"address: {e}") from None
        if not 1 <= self.weight <= 10000:
            raise ValueError("weight: must be between 1 and 10000")



class HashOn(_Section):
    """The key of ring_hash/maglev: one of header, cookie, jwt_claim (a name each)."""

    header: str | None = None
    cookie: str | None = None
    jwt_claim: str | None = None

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.header, self.cookie, self.jwt_claim)) != 1:
            raise ValueError("give exactly one of header, cookie, jwt_claim "
                             "(or the strings path / source_ip)")


POLICIES = ("round_robin", "least_request", "random", "ring_hash", "maglev")


class Balancer(_Section):
    """``policy``: round_robin (smooth weighted), least_request (power of two choices),
    random, ring_hash (ketama), maglev. ``hash_on`` (hash policies): path, source_ip, or
    {header|cookie|jwt_claim: NAME}. ``balance_factor``: bounded-load factor (e.g. 1.25)."""

    policy: Literal["round_robin", "least_request", "random", "ring_hash", "maglev"] = \
        "round_robin"
    hash_on: Literal["path", "source_ip"] | HashOn = "path"
    balance_factor: float | None = None
    table_size: int | None = None

    def __post_init__(self) -> None:
        if self.balance_factor is not None and not 1.0 <= self.balance_factor <= 100:
            raise ValueError("balance_factor: must be between 1.0 and 100")
        if self.table_size is not None and not (
                self.table_size <= 1 << 26 and _is_prime(self.table_size)):
            raise ValueError("table_size: must be a prime no larger than 2^26")


class HealthCheck(_Section):
    """Active HTTP checks: ``GET path`` every ``interval``; an endpoint turns unhealthy after
    ``unhealthy_threshold`` failures in a row and healthy again after ``healthy_threshold``
    successes. A success is an answer within ``timeout`` whose status is in
    ``expected_statuses`` (ranges as [low, high], inclusive)."""

    path: str = "/healthz"
    interval: Duration = Duration(5.0)
    timeout: Duration = Duration(1.0)
    healthy_threshold: int = 2
    unhealthy_threshold: int = 3
    expected_statuses: list[list[int]] = msgspec.field(default_factory=lambda: [[200, 399]])

    def __post_init__(self) -> None:
        self._positive("interval", "timeout")
        if not self.path.startswith("/"):
            raise ValueError(f"path: must start with '/', got {self.path!r}")
        if self.healthy_threshold < 1 or self.unhealthy_threshold < 1:
            raise ValueError("healthy_threshold and unhealthy_threshold must be >= 1")
        for r in self.expected_statuses:
            if len(r) != 2 or not 100 <= r[0] <= r[1] <= 599:
                raise ValueError("expected_statuses: each entry is [low, high] in 100..599")


class OutlierDetection(_Section):
    """Passive ejection: ``consecutive_failures`` (5xx answers, connect failures, resets,
    timeouts) eject an endpoint for ``base_ejection_time`` × the number of times it has been
    ejected, at most ``max_ejection_time``; never more than ``max_ejection_percent`` of a
    cluster at once."""

    consecutive_failures: int = 5
    base_ejection_time: Duration = Duration(30.0)
    max_ejection_time: Duration = Duration(300.0)
    max_ejection_percent: int = 50

    def __post_init__(self) -> None:
        if self.consecutive_failures < 1:
            raise ValueError("consecutive_failures: must be >= 1")
        if not 0 <= self.max_ejection_percent <= 100:
            raise ValueError("max_ejection_percent: must be between 0 and 100")


RETRY_ON = ("connect_failure", "reset", "timeout", "502", "503", "504")


class Retries(_Section):
    """``attempts``: tries in all, the first included. ``on``: what may be retried, on a
    different endpoint: connect_failure (always safe: nothing was sent), reset, timeout,
    "502", "503", "504" (these only for idempotent requests without a body).
    ``per_try_timeout``: response timeout of each try. ``budget``: retries in flight may not
    exceed this share of active requests (at least 3), so an outage never becomes a retry
    storm. ``retry_after_max``: a 503's Retry-After up to this long is waited for before the
    retry; a longer one ends retrying."""

    attempts: int = 2
    on: list[str] = msgspec.field(default_factory=lambda: ["connect_failure"])
    per_try_timeout: Duration | None = None
    budget: str = "20%"
    retry_after_max: Duration = Duration(1.0)

    def __post_init__(self) -> None:
        if not 1 <= self.attempts <= 10:
            raise ValueError("attempts: must be between 1 and 10")
        for i, cond in enumerate(self.on):
            if str(cond) not in RETRY_ON:
                raise ValueError(f"on[{i}]: {cond!r} is not one of {', '.join(RETRY_ON)}")
        if not re.match(r"^\d{1,3}(\.\d+)?%$", self.budget) or float(self.budget[:-1]) > 100:
            raise ValueError(f"budget: expected a percentage like 20%, got {self.budget!r}")

    @property
    def budget_ratio(self) -> float:
        return float(self.budget[:-1]) / 100


class CircuitBreakers(_Section):
    """Per worker and cluster (Envoy's names and defaults): upstream connections open
    (``max_connections``), requests waiting for a connection slot (``max_pending_requests``,
    each for at most ``pending_timeout``), requests under way (``max_requests``) and retries
    under way (``max_retries``). Over a limit → 503 with Retry-After (a retry is not made)."""

    max_connections: int = 1024
    max_pending_requests: int = 1024
    max_requests: int = 1024
    max_retries: int = 3
    pending_timeout: Duration = Duration(5.0)

    def __post_init__(self) -> None:
        self._positive("pending_timeout")
        for name in ("max_connections", "max_requests"):
            if not 1 <= getattr(self, name) <= 1 << 20:
                raise ValueError(f"{name}: must be between 1 and 1048576")
        for name in ("max_pending_requests", "max_retries"):
            if not 0 <= getattr(self, name) <= 1 << 20:
                raise ValueError(f"{name}: must be between 0 and 1048576")


class ClientCert(_Section):
    """A client certificate chain and key (PEM files) an upstream connection presents."""

    cert: str
    key: str


class UpstreamTls(_Section):
    """TLS to a cluster's endpoints (gwcore/tls.py): ``verify`` the server's certificate
    against ``ca`` (a PEM file, or ``system``: the system's trust store) and its name
    (``server_name``, else the endpoint's DNS name; an IP endpoint needs ``server_name`` or
    an IP SAN); ``client_cert`` presented when asked; ``alpn`` offered."""

    verify: bool = True
    ca: str = "system"
    server_name: str | None = None
    client_cert: ClientCert | None = None
    alpn: list[str] = msgspec.field(default_factory=lambda: ["http/1.1"])

    def __post_init__(self) -> None:
        if self.server_name is not None and not _SERVER_NAME.match(self.server_name.lower()):
            raise ValueError(f"server_name: {self.server_name!r} is not a host name")
        for i, proto in enumerate(self.alpn):
            if proto != "http/1.1":
                raise ValueError(f"alpn[{i}]: {proto!r} is not supported (only http/1.1)")


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


class Shedding(_Section):
    """Priority load shedding of a cluster (gwcore/limits/concurrency.py), per worker: when
    its requests under way reach ``max_in_flight``, or the p99 of its last ``samples``
    upstream times to first byte reaches ``p99``, new requests of its least important routes
    (the highest ``priority``) get 503 + Retry-After; every ``step`` the signal stays over,
    one more priority level is shed (never priority 0); once the signal is under ``resume`` ×
    its bound, one level is given back every ``step`` (hysteresis)."""

    max_in_flight: int | None = None
    p99: Duration | None = None
    resume: float = 0.8
    step: Duration = Duration(1.0)
    samples: int = 200

    def __post_init__(self) -> None:
        if self.max_in_flight is None and self.p99 is None:
            raise ValueError("give max_in_flight or p99 (or both)")
        if not 0.0 < self.resume < 1.0:
            raise ValueError("resume: must be between 0 and 1")
        if not 10 <= self.samples <= 100000:
            raise ValueError("samples: must be between 10 and 100000")
        self._positive("step")


class Cluster(_Section):
    name: str
    endpoints: list[str | Endpoint]
    timeouts: ClusterTimeouts = msgspec.field(default_factory=ClusterTimeouts)
    pool: Pool = msgspec.field(default_factory=Pool)
    balancer: Balancer = msgspec.field(default_factory=Balancer)
    health_check: HealthCheck | None = None
    outlier_detection: OutlierDetection = msgspec.field(default_factory=OutlierDetection)
    retries: Retries = msgspec.field(default_factory=Retries)
    circuit_breakers: CircuitBreakers = msgspec.field(default_factory=CircuitBreakers)
    dns_refresh: Duration = Duration(30.0)
    concurrency: Concurrency | None = None     # requests under way from all its routes
    shedding: Shedding | None = None
    tls: UpstreamTls | None = None

    def __post_init__(self) -> None:
        self._positive("dns_refresh")
        if not self.endpoints:
            raise ValueError("endpoints: a cluster needs at least one endpoint")
        for i, ep in enumerate(self.endpoints):
            if isinstance(ep, str):
                try:
                    self.endpoints[i] = Endpoint(address=ep)
                except ValueError as e:
                    raise ValueError(f"endpoints[{i}]: {e}".replace(": address: ", ": ")) \
                        from None
        names = [ep.address for ep in self.endpoints]
        if len(set(names)) != len(names):
            raise ValueError("endpoints: the same address is listed twice")
        size = self.balancer.table_size
        if self.balancer.policy == "maglev" and size is not None and size < 100 * len(names):
            raise ValueError(f"balancer: table_size {size} is under 100 × the "
                             f"{len(names)} endpoints")


_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class Match(_Section):
    """Route match: all given conditions must hold. ``host`` is exact or ``*.suffix``
    (case-insensitive, port ignored); ``path`` exact or ``path_prefix``; ``methods`` a list."""

    host: str | None = None
    path: str | None = None
    path_prefix: str | None = None
    methods: list[str] | None = None

    def __post_init__(self) -> None:
        if self.path is not None and self.path_prefix is not None:
            raise ValueError("path: give path or path_prefix, not both")
        for p in (self.path, self.path_prefix):
            if p is not None and not p.startswith("/"):
                raise ValueError(f"path: paths start with '/', got {p!r}")
        for m in self.methods or ():
            if not _TOKEN.match(m):
                raise ValueError(f"methods: {m!r} is not a method token")


JWS_ALGORITHMS = ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384",
                  "PS512", "ES256", "ES384", "ES512", "EdDSA")


class JwksSource(_Section):
    """Where a provider's keys come from: a JWKS or PEM ``file`` (read at start and on
    reload), or a JWKS ``url`` fetched every ``refresh`` and when a token names an unknown
    kid (at most once per 30 s); the last good key set stays when a fetch fails."""

    file: str | None = None
    url: str | None = None
    refresh: Duration = Duration(300.0)
    timeout: Duration = Duration(5.0)

    def __post_init__(self) -> None:
        self._positive("refresh", "timeout")
        if (self.file is None) == (self.url is None):
            raise ValueError("give exactly one of file, url")
        if self.url is not None and not re.match(r"^https?://", self.url):
            raise ValueError(f"url: expected http:// or https://, got {self.url!r}")


class TokenSource(_Section):
    """Where the token is read: ``header`` (default ``Authorization: Bearer``), a ``cookie``
    or a ``query`` parameter (give one)."""

    header: str | None = None
    cookie: str | None = None
    query: str | None = None

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.header, self.cookie, self.query)) != 1:
            raise ValueError("give exactly one of header, cookie, query")


class JwtProvider(_Section):
    """A JWT issuer the gateway trusts (RFC 7519): tokens must verify with one of ``jwks``'s
    keys under one of ``algorithms``, come from ``issuer`` for one of ``audiences``; exp/nbf/
    iat get ``leeway``. ``forward_claims`` maps a claim to the field sent upstream with its
    value; ``forward_authorization: false`` strips the Authorization field upstream."""

    algorithms: list[str]
    jwks: JwksSource
    issuer: str | None = None
    audiences: list[str] | None = None
    leeway: Duration = Duration(0.0)
    forward_claims: dict[str, str] = msgspec.field(default_factory=dict)
    forward_authorization: bool = True
    token_from: TokenSource | None = msgspec.field(default=None, name="from")
    cache_entries: int = 10000

    def __post_init__(self) -> None:
        for i, alg in enumerate(self.algorithms):
            if alg not in JWS_ALGORITHMS:
                raise ValueError(f"algorithms[{i}]: {alg!r} is not one of "
                                 f"{', '.join(JWS_ALGORITHMS)}")
        if not self.algorithms:
            raise ValueError("algorithms: at least one algorithm is needed")
        for claim, name in self.forward_claims.items():
            if not _TOKEN.match(name):
                raise ValueError(f"forward_claims: {name!r} (for {claim}) is not a field name")


class RouteJwt(_Section):
    provider: str
    optional: bool = False


class CacheKey(_Section):
    """What the cache key is made of besides scheme, host and normalised path: the query
    (``query: all`` as received, ``none``, or only ``keep_query``; ``drop_query`` names
    parameters left out, e.g. tracking ones), request ``fields`` and a verified JWT claim
    (``jwt_claim``; a request without it is not cached)."""

    query: Literal["all", "none"] = "all"
    keep_query: list[str] | None = None
    drop_query: list[str] = msgspec.field(default_factory=list)
    fields: list[str] = msgspec.field(default_factory=list)
    jwt_claim: str | None = None


class RouteCache(_Section):
    """A route's edge cache (gwcore/filters/cache.py; RFC 9111 as a shared cache).
    ``default_ttl``: the freshness lifetime of a response that gives none and could only be
    cached heuristically (NGINX's proxy_cache_valid; None: RFC 9111's heuristic alone).
    ``stale_while_revalidate``/``stale_if_error``: used when a response names none (RFC
    5861). ``client_no_cache``: ``honour`` a client's ``no-cache`` / ``max-age=0`` (revalidate
    first) or ``ignore`` it (NGINX's default). ``store_set_cookie``: store responses with
    Set-Cookie. ``lock_timeout``: the longest a request waits for a concurrent miss of the same
    key before going upstream itself; ``revalidate_timeout``: the longest the cache's own
    revalidation takes (both run while the request's filters run, so each must be below every
    listener's ``timeouts.filter``). ``status_header``: the field naming the outcome
    (HIT, MISS, STALE, UPDATING, REVALIDATED, BYPASS); ``heuristic_max``: cap of the heuristic
    freshness (RFC 9111 §4.2.2)."""

    key: CacheKey = msgspec.field(default_factory=CacheKey)
    default_ttl: Duration | None = None
    stale_while_revalidate: Duration = Duration(0.0)
    stale_if_error: Duration = Duration(0.0)
    client_no_cache: Literal["honour", "ignore"] = "honour"
    store_set_cookie: bool = False
    lock_timeout: Duration = Duration(3.0)
    revalidate_timeout: Duration = Duration(3.0)
    status_header: str = "X-Cache"
    heuristic_max: Duration = Duration(3600.0)

    def __post_init__(self) -> None:
        self._positive("lock_timeout", "revalidate_timeout")


class CacheSettings(_Section):
    """The per-worker store every cached route shares (gwcore.cache.Store): ``max_bytes``
    (bodies, fields and a fixed per-response overhead), ``max_object_bytes`` (a larger
    response streams through uncached), ``policy`` ``s3fifo`` or ``lru``."""

    max_bytes: Size = Size(256 << 20)
    max_object_bytes: Size = Size(64 << 20)
    policy: Literal["s3fifo", "lru"] = "s3fifo"

    def __post_init__(self) -> None:
        if self.max_object_bytes > self.max_bytes:
            raise ValueError("max_object_bytes: must not exceed max_bytes")


class RouteTimeouts(_Section):
    """``request``: from the moment the whole request has gone upstream until the response
    is complete, retries included (Envoy's route timeout); none by default, so long downloads
    and event streams are not cut. Seconds; 504 before a response started, a reset after."""

    request: Duration | None = None

    def __post_init__(self) -> None:
        if self.request is not None:
            self._positive("request")


class FilterSpec(_Section):
    """A filter from config (docs/filters.md): ``use`` is a built-in filter's name (``jwt``)
    or a user filter's import path ``package.module:Class``; ``config`` is the dict its
    class is built with, once per worker. Resolved and built by gwcore.runtime."""

    use: str
    config: dict[str, Any] = msgspec.field(default_factory=dict)


_ROUTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class IpAcl(_Section):
    """The ``ip_acl`` built-in filter's config (gwcore/filters/ip_acl.py): ``allow`` and
    ``deny`` networks (``10.0.0.0/8``, ``2001:db8::/32``) or addresses."""

    allow: list[str] = msgspec.field(default_factory=list)
    deny: list[str] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("allow", "deny"):
            for i, net in enumerate(getattr(self, name)):
                try:
                    n = ipaddress.ip_network(net, strict=False)
                except ValueError:
                    raise ValueError(f"{name}[{i}]: {net!r} is not an IP network or "
                                     f"address") from None
                if "/" in net and n.network_address != ipaddress.ip_interface(net).ip:
                    raise ValueError(f"{name}[{i}]: {net!r} has host bits set (the network "
                                     f"is {n}; a single address needs no prefix)")
        if not self.allow and not self.deny:
            raise ValueError("allow: give allow or deny networks")


_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|m|h)\s*$")
_RATE_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_LIMIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
# GCRA times (src_c/gcra.h) are int64 ns: the emission interval T and burst * T (the furthest a
# key's tat runs ahead of now) stay below 2^62 so tat = now + burst * T never overflows
GCRA_MAX_NS = 1 << 62


class RateLimitKey(_Section):
    """One part of a rate limit's key besides ``source_ip`` and ``route``: a request field's
    first value (``header``) or a claim of the verified JWT (``jwt_claim``)."""

    header: str | None = None
    jwt_claim: str | None = None

    def __post_init__(self) -> None:
        if (self.header is None) == (self.jwt_claim is None):
            raise ValueError("give exactly one of header, jwt_claim")
        if self.header is not None and not re.match(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
                                                    self.header):
            raise ValueError(f"header: {self.header!r} is not a field name")
        if self.jwt_claim == "":
            raise ValueError("jwt_claim: must not be empty")


KeyPart = Literal["source_ip", "route"] | RateLimitKey


class RateLimit(_Section):
    """A named rate limit (gwcore/filters/ratelimit.py): GCRA of ``rate`` (``N/s``, ``N/m``,
    ``N/h``) with ``burst`` (default: N, the rate's count) per value of ``key`` (a part or a
    list of parts: ``source_ip``, ``route``, ``{header: NAME}``, ``{jwt_claim: NAME}``; a
    request lacking a part is not limited by it). ``scope``: ``local`` (exact across this
    host's workers, shared memory) or ``global`` (Redis; ``on_error`` decides when Redis
    fails, ``sync`` batches locally). ``headers``: the RateLimit-Policy and RateLimit fields
    on ``limited`` responses only, on ``always`` (admitted too), or ``never``; ``body``: the
    429's body (default ``429 Too Many Requests: rate limit exceeded``). ``ipv6_prefix``: a
    ``source_ip`` key of an IPv6 client is its network of this prefix length (default 64;
    128: each address); an IPv4-mapped address (``::ffff:a.b.c.d``) counts as its IPv4 one."""

    key: KeyPart | list[KeyPart]
    rate: str
    burst: int | None = None
    scope: Literal["local", "global"] = "local"
    on_error: Literal["allow", "deny"] = "allow"
    sync: Duration | None = None
    headers: Literal["limited", "always", "never"] = "limited"
    body: str | None = None
    ipv6_prefix: int = 64

    def __post_init__(self) -> None:
        m = _RATE.match(self.rate)
        if not m or float(m.group(1)) <= 0:
            raise ValueError(f"rate: expected N/s, N/m or N/h with N > 0, got {self.rate!r}")
        if self.burst is not None and self.burst < 1:
            raise ValueError("burst: must be at least 1")
        if isinstance(self.key, list) and not self.key:
            raise ValueError("key: give at least one part")
        if not 1 <= self.ipv6_prefix <= 128:
            raise ValueError("ipv6_prefix: must be between 1 and 128")
        if self.sync is not None and self.scope != "global":
            raise ValueError("sync: only for scope: global")
        if self.sync is not None:
            self._positive("sync")
        interval = self.period * 1e9 / self.requests
        if not interval < GCRA_MAX_NS:
            raise ValueError(f"rate: {self.rate!r} is too slow (one request per {interval:.3g} "
                             f"ns; at most 2^62 ns)")
        interval_ns = max(1, int(interval + 0.5))
        if self.burst_size > GCRA_MAX_NS // interval_ns:
            raise ValueError(f"{'burst' if self.burst is not None else 'rate'}: burst "
                             f"{self.burst_size} at {self.rate!r} is too large (burst * "
                             f"emission interval must stay below 2^62 ns)")

    @property
    def requests(self) -> float:
        """N of ``N/period``."""
        return float(_RATE.match(self.rate).group(1))     # type: ignore[union-attr]

    @property
    def period(self) -> float:
        """The period of the rate in seconds."""
        return _RATE_PERIODS[_RATE.match(self.rate).group(2)]   # type: ignore[union-attr]

    @property
    def burst_size(self) -> int:
        """``burst``, or the rate's count rounded up."""
        return self.burst if self.burst is not None else max(1, -int(-self.requests // 1))

    @property
    def parts(self) -> list[str | RateLimitKey]:
        return list(self.key) if isinstance(self.key, list) else [self.key]


class Concurrency(_Section):
    """A concurrency limit (gwcore/limits/concurrency.py), per worker process: at most
    ``max`` requests under way; up to ``queue`` more wait, in order of the routes'
    ``priority`` then of arrival, at most ``queue_timeout`` (then 503 + Retry-After). Keep
    ``queue_timeout`` below the listener's ``timeouts.filter`` (past it: 504)."""

    max: int
    queue: int = 0
    queue_timeout: Duration = Duration(1.0)

    def __post_init__(self) -> None:
        if self.max < 1:
            raise ValueError("max: must be at least 1")
        if self.queue < 0:
            raise ValueError("queue: must be 0 or more")
        self._positive("queue_timeout")


class RateLimitTable(_Section):
    """The shared-memory table of local rate limits (src_c/gcra.h): ``slots`` keys active at
    once (rounded up to a power of two times 8); mapped once by the master, so a change
    takes effect only at the next start."""

    slots: int = 65536

    def __post_init__(self) -> None:
        if not 8 <= self.slots <= 1 << 28:
            raise ValueError("slots: must be between 8 and 268435456")


class Redis(_Section):
    """The Redis server of ``scope: global`` rate limits: ``url`` (redis://host:port/db),
    ``timeout`` of one round trip (then the limit's ``on_error`` decides), ``log_interval``
    between two log lines about failures, ``max_connections`` per worker (all in use: a
    request's round trip fails at once and ``on_error`` decides)."""

    url: str = "redis://127.0.0.1:6379/0"
    timeout: Duration = Duration(0.05)
    log_interval: Duration = Duration(10.0)
    max_connections: int = 32

    def __post_init__(self) -> None:
        if not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"url: expected redis://host:port/db, got {self.url!r}")
        self._positive("timeout", "log_interval")
        if not 1 <= self.max_connections <= 10000:
            raise ValueError("max_connections: must be between 1 and 10000")


class WeightedCluster(_Section):
    """One cluster of a route's weighted split (``cluster: [{name: a, weight: 90}, ...]``):
    its share of requests is weight / the sum of the weights (0: none)."""

    name: str
    weight: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= 1_000_000:
            raise ValueError("weight: must be between 0 and 1000000")


class ModelFrom(_Section):
    """Where a model route reads the model a request names (gwcore/inference): exactly one
    of ``json_field`` (a top-level or dotted field of a JSON request body, RFC 8259),
    ``path_regex`` (a regular expression searched in the normalised path; its group
    ``model``, else its first group) or ``header`` (a request field). ``max_body_bytes``:
    the request body is buffered whole up to this size before the model is chosen (larger:
    413), so that it can be read, retried on a fallback and mirrored."""

    json_field: str | None = None
    path_regex: str | None = None
    header: str | None = None
    max_body_bytes: Size = Size(1 << 20)

    def __post_init__(self) -> None:
        given = [k for k in ("json_field", "path_regex", "header") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("json_field: give exactly one of json_field, path_regex, header")
        if self.path_regex is not None:
            try:
                rx = re.compile(self.path_regex)
            except re.error as e:
                raise ValueError(f"path_regex: {e}") from None
            if rx.groups == 0:
                raise ValueError("path_regex: needs a group (?P<model>...) for the model")
        if self.header is not None and not _TOKEN.match(self.header):
            raise ValueError(f"header: {self.header!r} is not a field name")
        if not 1 <= self.max_body_bytes <= 1 << 30:
            raise ValueError("max_body_bytes: must be between 1B and 1GiB")


class ModelVersion(_Section):
    """One version of a model: the cluster serving it and its weight in the model's split."""

    name: str
    cluster: str
    weight: int = 1

    def __post_init__(self) -> None:
        if not _ROUTE_NAME.match(self.name):
            raise ValueError(f"name: {self.name!r} is not a name (1-128 of A-Z a-z 0-9 _ . : "
                             f"-, starting with a letter or digit)")
        if not 0 <= self.weight <= 1_000_000:
            raise ValueError("weight: must be between 0 and 1000000")


class StickyOn(_Section):
    """What keeps one client on one version: exactly one of ``jwt_claim`` (a verified claim
    of the route's JWT), ``header`` (a request field) or ``source_ip: true``."""

    jwt_claim: str | None = None
    header: str | None = None
    source_ip: bool = False

    def __post_init__(self) -> None:
        if sum((self.jwt_claim is not None, self.header is not None, self.source_ip)) != 1:
            raise ValueError("jwt_claim: give exactly one of jwt_claim, header, source_ip")


class ModelMirror(_Section):
    """Shadow traffic: a copy of ``percent`` of the model's requests (the body included) goes
    to ``cluster``, fire-and-forget; at most ``max_in_flight`` copies are under way per
    worker (more are dropped and counted)."""

    cluster: str
    percent: float = 100.0
    max_in_flight: int = 64

    def __post_init__(self) -> None:
        if not 0.0 < self.percent <= 100.0:
            raise ValueError("percent: must be more than 0 and at most 100")
        if not 1 <= self.max_in_flight <= 100000:
            raise ValueError("max_in_flight: must be between 1 and 100000")


class Model(_Section):
    """A model clients name (gwcore/inference): its ``versions`` (a weighted split,
    ``sticky_on`` a client), a ``mirror`` for shadow traffic, ``fallback`` clusters (or
    version names) tried in order when the chosen version's cluster fails to connect,
    answers 429 or 503, or times out; ``max_in_flight`` requests per version and worker
    (None: no bound), up to ``queue`` more waiting at most ``queue_timeout`` (then 503)."""

    versions: list[ModelVersion]
    sticky_on: Literal["source_ip"] | StickyOn | None = None
    mirror: ModelMirror | None = None
    fallback: list[str] = msgspec.field(default_factory=list)
    max_in_flight: int | None = None
    queue: int = 1024
    queue_timeout: Duration = Duration(2.0)

    def __post_init__(self) -> None:
        if not self.versions:
            raise ValueError("versions: a model needs at least one version")
        names = [v.name for v in self.versions]
        if len(set(names)) != len(names):
            raise ValueError("versions: the same version name is listed twice")
        if not any(v.weight for v in self.versions):
            raise ValueError("versions: at least one version needs a weight above 0")
        if self.sticky_on == "source_ip":
            self.sticky_on = StickyOn(source_ip=True)
        if self.max_in_flight is not None and self.max_in_flight < 1:
            raise ValueError("max_in_flight: must be at least 1")
        if self.queue < 0:
            raise ValueError("queue: must be 0 or more")
        self._positive("queue_timeout")


CRITICALITY = {"critical": 0, "standard": 1, "sheddable": 2}


class Route(_Section):
    """``name``: the route's label in exchanges, metrics and logs (default ``route-<index>``).
    ``cluster``: where its requests go — a cluster's name, or a weighted split
    ``[{name: a, weight: 90}, {name: b, weight: 10}]`` (a canary; gwcore/inference/split.py);
    none on a model route (``model_from``: the model's versions decide; ``models``: the
    models it serves, default all; ``version_header``: a request field that may pin a version,
    also the response field naming the version that answered, default ``X-Model-Version``).
    ``rate_limit``: names of ``rate_limits`` checked after the ``jwt`` shorthand and before
    the cache. ``concurrency``: requests under way on the route (after the cache lookup: a
    hit takes no place); ``priority``: how important its requests are, 0 the most, or
    ``critical`` (0), ``standard`` (1), ``sheddable`` (2) (the
    order of concurrency queues, and what a cluster's ``shedding`` refuses first: the
    highest number).
    ``filters``: run after the global ones and the ``jwt`` shorthand (docs/filters.md).
    ``forward_normalized_path``: send the normalised path upstream instead of the
    request-target as received (RFC 9110 §7.7 has a proxy forward it unchanged)."""

    cluster: str | list[WeightedCluster] | None = None
    name: str | None = None
    match: Match = msgspec.field(default_factory=Match)
    model_from: ModelFrom | None = None
    models: list[str] | None = None
    version_header: str | None = None
    jwt: str | RouteJwt | None = None
    filters: list[FilterSpec] = msgspec.field(default_factory=list)
    timeouts: RouteTimeouts = msgspec.field(default_factory=RouteTimeouts)
    forward_normalized_path: bool = False
    cache: RouteCache | None = None
    rate_limit: list[str] = msgspec.field(default_factory=list)
    concurrency: Concurrency | None = None
    priority: int | Literal["critical", "standard", "sheddable"] = 0

    def __post_init__(self) -> None:
        if isinstance(self.priority, str):
            # the Gateway API Inference Extension's criticality, as priorities
            self.priority = CRITICALITY[self.priority]
        if not 0 <= self.priority <= 1000:
            raise ValueError("priority: must be between 0 (the most important) and 1000, or "
                             "critical | standard | sheddable")
        if (self.cluster is None) == (self.model_from is None):
            raise ValueError("cluster: a route has a cluster or model_from (not both)")
        if isinstance(self.cluster, list):
            if not self.cluster:
                raise ValueError("cluster: a weighted split needs at least one cluster")
            if not any(c.weight for c in self.cluster):
                raise ValueError("cluster: at least one cluster needs a weight above 0")
        if self.model_from is None and (self.models is not None
                                        or self.version_header is not None):
            raise ValueError("models: only a route with model_from serves models")
        if self.models is not None and not self.models:
            raise ValueError("models: list the models the route serves (or leave it out: "
                             "all)")
        if self.model_from is not None and (self.cache is not None or any(
                f.use == "cache" for f in self.filters)):
            raise ValueError("cache: a model route is not cached (its cluster is chosen "
                             "after its filters, from the body)")
        if self.version_header is not None and not _TOKEN.match(self.version_header):
            raise ValueError(f"version_header: {self.version_header!r} is not a field name")

    @property
    def cluster_names(self) -> list[str]:
        """The clusters the route's requests may go to without a model: one, a split's, or
        none (a model route)."""
        if isinstance(self.cluster, str):
            return [self.cluster]
        return [c.name for c in self.cluster or ()]

    @property
    def cluster_label(self) -> str:
        """The ``cluster`` label of the route's metrics: its cluster, a split's first
        cluster, or "" for a model route (its versions are counted by model)."""
        names = self.cluster_names
        return names[0] if names else ""

    @property
    def jwt_policy(self) -> RouteJwt | None:
        """The route's JWT requirement, whichever way it was written."""
        return RouteJwt(provider=self.jwt) if isinstance(self.jwt, str) else self.jwt


class Admin(_IpAddressed):
    """The admin listener (gwcore/observability/admin.py), served by the master process and
    never on a public listener's address: /healthz, /readyz, /metrics, /config, /clusters,
    POST /reload. ``token``: a bearer token the mutating endpoints require (None: none).
    ``metrics``: record metrics (shared memory; off = nothing recorded, /metrics empty)."""

    token: str | None = None
    metrics: bool = True


_REDACT_QUERY = ["access_token", "id_token", "token", "api_key", "apikey", "key", "password",
                 "secret", "signature", "sig", "x-amz-signature", "x-amz-credential",
                 "x-amz-security-token", "code"]


class AccessLog(_Section):
    """One line per request (gwcore/observability/_access_log.pyx): ``path`` a file (relative
    to the config file's directory) or ``"-"`` (stdout), reopened on SIGUSR1; ``format``
    ``json`` or ``combined`` (NGINX's); ``sample_2xx``: the share of 2xx lines written (0..1;
    other statuses always); ``buffer_bytes``: the bound of lines waiting for a slow disk
    (beyond it lines are dropped and counted); ``redact_query``: query parameters whose values
    are never logged."""

    path: str
    format: Literal["json", "combined"] = "json"
    sample_2xx: float = 1.0
    buffer_bytes: Size = Size(4 << 20)
    redact_query: list[str] = msgspec.field(default_factory=lambda: list(_REDACT_QUERY))

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError("path: give a file or \"-\" (stdout)")
        if not 0.0 <= self.sample_2xx <= 1.0:
            raise ValueError("sample_2xx: must be between 0 and 1")
        if self.buffer_bytes < 64 << 10:
            raise ValueError("buffer_bytes: must be at least 64KiB")


class Otlp(_Section):
    """OTLP/HTTP export of one server span per sampled request (the ``otel`` extra;
    gwcore/observability/tracing.py): ``endpoint`` the collector's traces URL;
    ``service_name`` the spans' ``service.name``; ``headers`` sent with each export;
    ``timeout`` of one export (and of the flush when a worker exits)."""

    endpoint: str = "http://127.0.0.1:4318/v1/traces"
    service_name: str = "gwcore"
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    timeout: Duration = Duration(10.0)


class Tracing(_Section):
    """W3C Trace Context (gwcore/observability/tracing): ``traceparent`` validated and
    forwarded with a new span id per hop, a trace created when absent, sampled with
    ``sample_ratio`` (0..1; a received sampled flag is kept). Absent: both fields are
    forwarded untouched."""

    sample_ratio: float = 0.01
    otlp: Otlp | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample_ratio <= 1.0:
            raise ValueError("sample_ratio: must be between 0 and 1")


class Config(_Section):
    listeners: list[Listener]
    clusters: list[Cluster]
    routes: list[Route]
    filters: list[FilterSpec] = msgspec.field(default_factory=list)
    jwt_providers: dict[str, JwtProvider] = msgspec.field(default_factory=dict)
    workers: Literal["auto"] | int = "auto"
    pin_cpus: bool = True
    heartbeat_timeout: Duration = Duration(10.0)
    drain_timeout: Duration = Duration(30.0)
    admin: Admin | None = None
    access_log: AccessLog | None = None
    tracing: Tracing | None = None
    cache: CacheSettings = msgspec.field(default_factory=CacheSettings)
    rate_limits: dict[str, RateLimit] = msgspec.field(default_factory=dict)
    rate_limit_table: RateLimitTable = msgspec.field(default_factory=RateLimitTable)
    redis: Redis | None = None
    models: dict[str, Model] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        self._positive("heartbeat_timeout", "drain_timeout")

    def worker_count(self) -> int:
        """``workers: auto`` → CPUs in this process's affinity mask."""
        return len(os.sched_getaffinity(0)) if self.workers == "auto" else self.workers


def _check_references(cfg: Config) -> None:
    def unique(items: list[Any], section: str) -> set[str]:
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.name in seen:
                raise ConfigError(f"{section}[{i}].name: duplicate name {item.name!r}")
            seen.add(item.name)
        return seen

    unique(cfg.listeners, "listeners")
    clusters = unique(cfg.clusters, "clusters")
    _check_route_names(cfg.routes)
    for i, route in enumerate(cfg.routes):
        for j, name in enumerate(route.cluster_names):
            if name not in clusters:
                where = "cluster" if isinstance(route.cluster, str) else f"cluster[{j}].name"
                raise ConfigError(f"routes[{i}].{where}: unknown cluster {name!r}")
        if route.model_from is not None and not cfg.models:
            raise ConfigError(f"routes[{i}].model_from: the config has no models section")
        if isinstance(route.cluster, list):
            for j, wc in enumerate(route.cluster):
                c = next((c for c in cfg.clusters if c.name == wc.name), None)
                if c is not None and (c.concurrency is not None or c.shedding is not None):
                    raise ConfigError(
                        f"routes[{i}].cluster[{j}].name: cluster {wc.name!r} has "
                        f"{'concurrency' if c.concurrency is not None else 'shedding'}, "
                        "which applies to routes sending to that cluster alone (not a split)")
        if route.model_from is not None and any(f.use == "cache" for f in cfg.filters):
            raise ConfigError(f"routes[{i}].model_from: the global filters cache, and a model "
                              "route is not cached")
        for j, name in enumerate(route.models or ()):
            if name not in cfg.models:
                raise ConfigError(f"routes[{i}].models[{j}]: unknown model {name!r}")
        if route.model_from is not None and route.model_from.json_field is not None and (
                route.match.methods and not set(route.match.methods) & {"POST", "PUT", "PATCH"}):
            raise ConfigError(f"routes[{i}].model_from.json_field: the route matches no "
                              "method that carries a body")
        policy = route.jwt_policy
        if policy is not None and policy.provider not in cfg.jwt_providers:
            where = "jwt" if isinstance(route.jwt, str) else "jwt.provider"
            raise ConfigError(f"routes[{i}].{where}: unknown jwt provider {policy.provider!r}")
    for i, route in enumerate(cfg.routes):
        for name in ("lock_timeout", "revalidate_timeout"):
            waits = getattr(route.cache, name) if route.cache is not None else 0.0
            for j, lst in enumerate(cfg.listeners):
                if waits >= lst.timeouts.filter:
                    raise ConfigError(
                        f"routes[{i}].cache.{name}: {waits:g}s must be less than "
                        f"listeners[{j}].timeouts.filter ({lst.timeouts.filter:g}s): it is "
                        "waited for while the request's filters run")
    _check_models(cfg, clusters)
    for name, limit in cfg.rate_limits.items():
        if not _LIMIT_NAME.match(name):
            raise ConfigError(f"rate_limits.{name}: {name!r} is not a name (1-64 of A-Z a-z "
                              f"0-9 _ . : -, starting with a letter or digit)")
        if limit.scope == "global" and cfg.redis is None:
            raise ConfigError(f"rate_limits.{name}.scope: global needs a redis section")
    for i, route in enumerate(cfg.routes):
        for j, name in enumerate(route.rate_limit):
            if name not in cfg.rate_limits:
                raise ConfigError(f"routes[{i}].rate_limit[{j}]: unknown rate limit {name!r}")
            if name in route.rate_limit[:j]:
                raise ConfigError(f"routes[{i}].rate_limit[{j}]: {name!r} is listed twice")
    if isinstance(cfg.workers, int) and not 1 <= cfg.workers <= 1024:
        raise ConfigError("workers: must be 'auto' or between 1 and 1024")
    if not cfg.listeners:
        raise ConfigError("listeners: at least one listener is needed")


def _check_models(cfg: Config, clusters: set[str]) -> None:
    """Every cluster a model names exists; fallbacks name a cluster or one of its versions;
    the mirror is not a cluster the model already serves from; a sticky JWT claim needs a
    route with JWT."""
    for name, model in cfg.models.items():
        if not _ROUTE_NAME.match(name):
            raise ConfigError(f"models.{name}: {name!r} is not a name (1-128 of A-Z a-z 0-9 "
                              f"_ . : -, starting with a letter or digit)")
        for j, v in enumerate(model.versions):
            if v.cluster not in clusters:
                raise ConfigError(f"models.{name}.versions[{j}].cluster: unknown cluster "
                                  f"{v.cluster!r}")
        versions = {v.name for v in model.versions}
        for j, fb in enumerate(model.fallback):
            if fb not in clusters and fb not in versions:
                raise ConfigError(f"models.{name}.fallback[{j}]: {fb!r} is neither a cluster "
                                  f"nor a version of {name!r}")
        if model.mirror is not None:
            if model.mirror.cluster not in clusters:
                raise ConfigError(f"models.{name}.mirror.cluster: unknown cluster "
                                  f"{model.mirror.cluster!r}")
            if model.mirror.cluster in {v.cluster for v in model.versions}:
                raise ConfigError(f"models.{name}.mirror.cluster: {model.mirror.cluster!r} "
                                  f"already serves a version of {name!r}")
        for j, cname in enumerate([v.cluster for v in model.versions] + model.fallback):
            c = next((c for c in cfg.clusters if c.name == cname), None)
            if c is not None and (c.concurrency is not None or c.shedding is not None):
                key = "concurrency" if c.concurrency is not None else "shedding"
                where = (f"versions[{j}].cluster" if j < len(model.versions)
                         else f"fallback[{j - len(model.versions)}]")
                raise ConfigError(f"models.{name}.{where}: cluster {cname!r} has {key}, which "
                                  "applies to routes sending to that cluster alone; bound a "
                                  "model's versions with max_in_flight")
        sticky = model.sticky_on
        if isinstance(sticky, StickyOn) and sticky.jwt_claim is not None:
            for i, route in enumerate(cfg.routes):
                serves = route.model_from is not None and (route.models is None
                                                           or name in route.models)
                if serves and route.jwt_policy is None:
                    raise ConfigError(f"models.{name}.sticky_on.jwt_claim: routes[{i}] serves "
                                      f"{name!r} without jwt, so it has no claims")


def _check_route_names(routes: list[Route]) -> None:
    """Route names are unique, counting the default ``route-<index>`` of an unnamed route
    (the name gwcore.proxy.Router gives it)."""
    owner: dict[str, int] = {}
    for i, route in enumerate(routes):
        if route.name is None:
            owner.setdefault(f"route-{i}", i)
    for i, route in enumerate(routes):
        if route.name is None:
            continue
        if not _ROUTE_NAME.match(route.name):
            raise ConfigError(f"routes[{i}].name: {route.name!r} is not a name (1-128 of "
                              f"A-Z a-z 0-9 _ . : -, starting with a letter or digit)")
        j = owner.setdefault(route.name, i)
        if j != i:
            given = "" if routes[j].name is not None else " (its default name)"
            raise ConfigError(f"routes[{i}].name: duplicate name {route.name!r}: also "
                              f"routes[{j}]{given}")


def _describe(msg: str) -> str:
    """msgspec's "problem - at `$.a[0].b`" → "a[0].b: problem", in config words."""
    problem, sep, path = msg.rpartition(" - at `")
    if not sep:
        problem, path = msg, ""
    path = path.rstrip("`").removeprefix("$").lstrip(".")
    sub, sep, rest = problem.partition(": ")
    if sep and re.match(r"^[a-z_][a-z0-9_]*(\[\d+\])?$", sub):    # raised in __post_init__
        path, problem = f"{path}.{sub}".lstrip("."), rest
    m = re.match(r"Object (contains unknown|missing required) field `(.+)`$", problem)
    if m:
        path = f"{path}.{m.group(2)}".lstrip(".")
        problem = "unknown key" if m.group(1) == "contains unknown" else "missing required key"
    return f"{path or '(top level)'}: {problem}"


def _check_listener_addresses(listeners: list[Listener]) -> None:
    """ConfigError for two listeners that ``serve`` could not both bind: the same IP and port,
    or a wildcard (``0.0.0.0``, ``[::]``) beside another address of its family on the same
    port. IPv6 listeners are IPv6-only, so ``0.0.0.0:P`` and ``[::]:P`` may coexist."""
    seen: list[tuple[int, ipaddress.IPv4Address | ipaddress.IPv6Address]] = []
    for i, lst in enumerate(listeners):
        ip, port = ipaddress.ip_address(lst.host), lst.port
        for j, other_ip in seen:
            other = listeners[j]
            if other.port != port or other_ip.version != ip.version:
                continue
            if other_ip == ip:
                as_ = "" if other.address == lst.address else f" (as {other.address})"
                raise ConfigError(f"listeners[{i}].address: {lst.address} is already used by "
                                  f"listeners[{j}] {other.name!r}{as_}")
            if ip.is_unspecified or other_ip.is_unspecified:
                raise ConfigError(
                    f"listeners[{i}].address: {lst.address} overlaps listeners[{j}] "
                    f"{other.name!r} on {other.address} (a wildcard address takes port {port} "
                    f"on every IPv{ip.version} address)")
        seen.append((i, ip))


def _check_admin_address(admin: Admin, listeners: list[Listener]) -> None:
    """The admin listener never shares a port with a public listener (the same address, or
    a wildcard of its family on the same port): admin paths must not be reachable there."""
    ip = ipaddress.ip_address(admin.host)
    for i, lst in enumerate(listeners):
        other = ipaddress.ip_address(lst.host)
        if lst.port == admin.port and other.version == ip.version and (
                other == ip or other.is_unspecified or ip.is_unspecified):
            raise ConfigError(f"admin.address: {admin.address} overlaps listeners[{i}] "
                              f"{lst.name!r} on {lst.address}: the admin API is never served "
                              "on a public listener")


def _key_path(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}".lstrip(".")


def _check_duplicate_keys(node: yaml.Node | None, path: str = "",
                          seen: set[int] | None = None) -> None:
    """ConfigError naming the key path and lines of the first key (in document order) that a
    mapping repeats: a YAML loader would keep the last value silently. Merge keys (``<<``)
    are not repeats."""
    seen = set() if seen is None else seen
    if node is None or id(node) in seen:            # an alias: its node was checked already
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicate_keys(item, _key_path(path, i), seen)
    elif isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, str], yaml.Node] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            where = _key_path(path, key.value)
            prev = first.setdefault((key.tag, key.value), key)
            if prev is not key:
                raise ConfigError(f"{where}: duplicate key on line {key.start_mark.line + 1} "
                                  f"(first on line {prev.start_mark.line + 1})")
            _check_duplicate_keys(value, where, seen)


def _load_yaml(text: str) -> Any:
    """The YAML document in text, as Python objects (ConfigError with a line or key path)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        _check_duplicate_keys(node)
        return loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "YAML"
        raise ConfigError(f"{where}: {getattr(e, 'problem', None) or e}") from None
    finally:
        loader.dispose()


def _resolve_paths(cfg: Config, base_dir: str) -> None:
    """Make the config's relative file paths (``jwt_providers.*.jwks.file``,
    ``access_log.path``, TLS certificates, keys, OCSP staples and CAs) relative to
    ``base_dir``, the config file's directory; absolute paths stay as written."""
    for provider in cfg.jwt_providers.values():
        if provider.jwks.file is not None:
            provider.jwks.file = os.path.join(base_dir, provider.jwks.file)
    if cfg.access_log is not None and cfg.access_log.path != "-":
        cfg.access_log.path = os.path.join(base_dir, cfg.access_log.path)
    for lst in cfg.listeners:
        if lst.tls is not None:
            for c in lst.tls.certificates:
                c.cert, c.key = os.path.join(base_dir, c.cert), os.path.join(base_dir, c.key)
                if c.ocsp_staple is not None:
                    c.ocsp_staple = os.path.join(base_dir, c.ocsp_staple)
            if lst.tls.ocsp_staple is not None:
                lst.tls.ocsp_staple = os.path.join(base_dir, lst.tls.ocsp_staple)
            if lst.tls.client_auth is not None:
                lst.tls.client_auth.ca = os.path.join(base_dir, lst.tls.client_auth.ca)
    for cluster in cfg.clusters:
        t = cluster.tls
        if t is not None:
            if t.ca != "system":
                t.ca = os.path.join(base_dir, t.ca)
            if t.client_cert is not None:
                t.client_cert.cert = os.path.join(base_dir, t.client_cert.cert)
                t.client_cert.key = os.path.join(base_dir, t.client_cert.key)


def _check_named(data: Any, section: str, typ: type) -> None:
    """Convert each entry of the mapping ``data[section]`` alone, so that an error names the
    entry (msgspec says ``section[...]`` for a key of a dict)."""
    entries = data.get(section) if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        return
    for name, value in entries.items():
        try:
            msgspec.convert(value, typ, dec_hook=_dec_hook)
        except msgspec.ValidationError as e:
            raise ConfigError(f"{section}.{name}.{_describe(str(e))}".replace(".(top level)",
                                                                            "")) from None


def parse(text: str, source: str = "<config>",
          base_dir: str | os.PathLike[str] | None = None) -> Config:
    """Parse YAML text into a :class:`Config`. Relative file paths in it (``jwks.file``) are
    resolved against ``base_dir`` (the config file's directory; None: left as written, i.e.
    relative to the working directory). Files are not read here: ``gwcore.runtime.check``
    does that. Raises ConfigError naming ``source``, the key path and the problem."""
    try:
        data = _load_yaml(text)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    try:
        _check_named(data, "rate_limits", RateLimit)
        _check_named(data, "models", Model)
        cfg = msgspec.convert(data, Config, dec_hook=_dec_hook)
        _check_references(cfg)
        _check_listener_addresses(cfg.listeners)
        if cfg.admin is not None:
            _check_admin_address(cfg.admin, cfg.listeners)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{source}: {_describe(str(e))}") from None
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    if base_dir is not None:
        _resolve_paths(cfg, os.fspath(base_dir))
    return cfg


def load(path: str | os.PathLike[str]) -> Config:
    """Read and parse a config file: ``parse(text, path, base_dir=os.path.dirname(path))``,
    so relative file paths in it are relative to the file's directory. Files it names are
    not read (``gwcore.runtime.check`` does). Raises ConfigError (also for an unreadable
    config file)."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"{name}: {e.strerror}") from None
    return parse(text, name, base_dir=os.path.dirname(name))
