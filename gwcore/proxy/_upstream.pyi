"""Upstream side of the proxy engine: clusters of endpoints with a balancer
(gwcore.proxy._balancer), a keep-alive connection pool per endpoint, passive outlier
detection, a retry policy with a retry budget, and the Upstream protocol that writes a request
and parses and streams the response to a ResponseSink. No asyncio Task except to connect.

Response framing follows RFC 9112 §6.3: no body for a response to HEAD, 204 or 304;
otherwise chunked, Content-Length, or read until the connection closes. Interim 1xx responses
are skipped (RFC 9110 §15.2); a 101 is a bad response (no upgrade is ever offered). Times are
seconds on the loop's clock (gwcore.http._wire.Clock). The exchange itself (pick, send,
stream, retry) is C-level and driven by gwcore.http._connection.
"""

import asyncio
import logging

from gwcore.http._wire import Clock, Timed
from gwcore.proxy._balancer import Balancer

log: logging.Logger  # the "gwcore" logger: ejections, recoveries, health changes

class ResponseSink(Timed):
    """The downstream side of one exchange (C-level callbacks only). The Upstream calls, in
    order: on_upstream_ready? -> on_response_head -> on_response_data* -> on_response_end, or
    on_upstream_error at any point."""

    def __init__(self) -> None: ...

class Endpoint:
    """One upstream address of a cluster, its idle keep-alive connections (a LIFO pool), and
    its health: ``healthy`` (active checks) and ``ejected_until`` (outlier detection). Made by
    Cluster; an endpoint is picked only while healthy and not ejected (or in panic mode)."""

    def __init__(self, cluster: Cluster, index: int, host: str, port: int, weight: int) -> None:
        """``index``: position in ``cluster.endpoints``. ``host``: name or IP address as
        configured (an IPv6 address without brackets). Nothing is validated here."""
    @property
    def host(self) -> str:
        """Host as configured (DNS name or IP address)."""
    @property
    def port(self) -> int:
        """TCP port."""
    @property
    def authority(self) -> bytes:
        """``b"host:port"``, or ``b"[v6addr]:port"`` when host contains ':'; the balancer's
        endpoint name, and the Host sent when the client gave none."""
    @property
    def index(self) -> int:
        """Position in the cluster's ``endpoints`` and in its Balancer."""
    @property
    def weight(self) -> int:
        """Balancing weight (>= 1)."""
    connect_host: str
    """Address connections are opened to: ``host`` at first; the worker and the health
    checker store the resolved address here (DNS names are re-resolved periodically)."""
    @property
    def healthy(self) -> bool:
        """Last active health check result (True until a check says otherwise)."""
    @property
    def ejected_until(self) -> float:
        """Clock time (seconds) at which the current outlier ejection ends; 0.0 when not
        ejected."""
    @property
    def ejections(self) -> int:
        """Times this endpoint has been ejected since the cluster was built (never reset)."""
    @property
    def idle_count(self) -> int:
        """Idle keep-alive connections in the pool."""

class Cluster:
    """A named set of endpoints with a balancer, per-endpoint pools, outlier detection and a
    retry policy. Times in seconds. Not thread-safe: one per cluster per worker loop."""

    def __init__(
        self,
        name: str,
        endpoints: list[tuple[str, int, int]],
        clock: Clock,
        loop: asyncio.AbstractEventLoop,
        *,
        connect_timeout: float,
        response_timeout: float,
        max_idle: int,
        idle_timeout: float,
        policy: str = "round_robin",
        balance_factor: float | None = None,
        table_size: int | None = None,
        attempts: int = 2,
        retry_on: list[str] | None = None,
        budget: float = 0.2,
        retry_after_max: float = 1.0,
        od_failures: int = 5,
        od_base: float = 30.0,
        od_max: float = 300.0,
        od_max_percent: int = 50,
        hash_on: str = "path",
        hash_name: str = "",
    ) -> None:
        """``endpoints``: (host, port, weight) per endpoint, in index order (at least one).

        Connections: ``connect_timeout`` to open one (then the try fails as a connect
        timeout); ``response_timeout``: longest upstream silence once the whole request is
        sent, and between response reads (then the try fails as a timeout); ``max_idle``
        idle connections kept per endpoint (0: none), each for at most ``idle_timeout``.

        Balancing: ``policy``, ``balance_factor``, ``table_size`` as for
        gwcore.proxy._balancer.Balancer (its seed is derived from hash(name)). ``hash_on``
        (hash policies): ``"path"`` (request path without the query), ``"header"``,
        ``"cookie"`` or ``"jwt_claim"`` (the value of the header / cookie / claim named
        ``hash_name``; a claim from the jwt_auth filter, as str), or ``"source_ip"``; a
        request without that value is placed at random. ``hash_name`` is stored
        lower-cased.

        Retries: ``attempts`` tries in all, the first included. ``retry_on``: conditions
        that may be retried on another endpoint: ``"connect_failure"`` (always safe, nothing
        was sent), ``"reset"``, ``"timeout"``, ``"502"``, ``"503"``, ``"504"`` (these only for
        idempotent requests without a body); None or empty means ``["connect_failure"]``.
        ``budget``: Envoy's retry budget as a ratio (0.2 = 20%), see retries_in_flight.
        ``retry_after_max``: longest Retry-After of a 503 that is waited for (retry_after).

        Outlier detection (Envoy's consecutive failures): ``od_failures`` failures in a row
        (a 5xx response, a connect failure or timeout, a reset, a response timeout, a
        malformed response) eject an endpoint for ``od_base`` x its number of ejections, at
        most ``od_max`` seconds, unless that would eject more than ``od_max_percent`` % of
        the endpoints at once (so a one-endpoint cluster is ejected only at 100).

        KeyError: unknown ``hash_on`` or ``retry_on`` name. ValueError (and the rest) from
        Balancer: unknown policy, no endpoints, a weight < 1, bad balance_factor or
        table_size. TypeError / ValueError: an ``endpoints`` entry that is not a (str, int,
        int) triple."""
    @property
    def name(self) -> str:
        """Cluster name from the config."""
    @property
    def endpoints(self) -> list[Endpoint]:
        """The endpoints in index order (the list itself: do not mutate)."""
    @property
    def balancer(self) -> Balancer:
        """The cluster's balancer; endpoint availability follows health and ejection."""
    @property
    def attempts(self) -> int:
        """Tries in all per request, the first included."""
    @property
    def in_flight(self) -> int:
        """Tries (first tries and retries) under way on any endpoint."""
    @property
    def retries_in_flight(self) -> int:
        """Retries under way. A retry is allowed while this stays below
        max(3, budget x in_flight) (Envoy's retry budget: budget_percent of active requests,
        min_retry_concurrency 3), so an outage never becomes a retry storm."""
    @property
    @property
    def hash_kind(self) -> int:
        """``hash_on`` as a code: 0 path, 1 header, 2 cookie, 3 source_ip, 4 jwt_claim."""
    @property
    def hash_name(self) -> bytes:
        """Header / cookie / claim name of ``hash_on``, lower-cased ASCII (b"" if none)."""
    def refresh(self, now: float) -> None:
        """Periodic: end the ejections whose time is over at ``now`` (Clock seconds); such an
        endpoint is available again if its last health check passed."""
    def set_healthy(self, index: int, healthy: bool) -> None:
        """Active health check result for endpoint ``index``: available when healthy and not
        ejected. Logs a change, ignores a repeat. ``index`` must be in
        range(len(endpoints)): it is not checked."""
    def retry_after(self, value: bytes) -> float | None:
        """Seconds to wait before retrying a 503 whose Retry-After value is ``value`` (RFC
        9110 §10.2.3, delay-seconds form, ASCII digits only), or None when it is longer than
        retry_after_max or not delay-seconds (an HTTP-date): the 503 is then final. A 503
        without Retry-After is retried at once."""
    def _connected(
        self,
        sink: ResponseSink,
        timer: asyncio.TimerHandle,
        task: asyncio.Task[tuple[asyncio.BaseTransport, Upstream]],
    ) -> None:
        """Internal: done-callback of the connect task; reports the new Upstream, a connect
        timeout (task cancelled by ``timer``) or a connect failure to ``sink``."""

class Upstream(Timed):
    """asyncio protocol of one upstream connection, made by ``loop.create_connection(partial(
    Upstream, endpoint), ...)``. The C-level send() writes a request head; the response is
    parsed in C (1xx skipped) and streamed to the sink. The connection returns to its
    endpoint's pool only when both sides allow keep-alive (HTTP/1.1 unless ``Connection:
    close``; HTTP/1.0 only with ``Connection: keep-alive``), the whole request was sent, and
    the response ended exactly where its framing said (no extra bytes); otherwise it is
    closed. Response heads: at most 64 KiB and 256 field lines."""

    def __init__(self, ep: Endpoint) -> None: ...
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start watching the connection's deadline on the cluster's Clock."""
    def connection_lost(self, exc: Exception | None) -> None:
        """Leave the pool if idle. Mid-exchange, a clean close (``exc`` None) ends a
        close-delimited body; anything else fails the exchange as a reset."""
    def eof_received(self) -> bool:
        """False: the transport closes itself (then connection_lost)."""
    def pause_writing(self) -> None:
        """Upstream send buffer full: stop reading the request body from the client."""
    def resume_writing(self) -> None:
        """Upstream send buffer drained: read the request body again."""
    def data_received(self, data: bytes) -> None:
        """Response bytes. Bytes while no exchange is active (e.g. on an idle pooled
        connection) close the connection. TypeError if ``data`` is not bytes."""
