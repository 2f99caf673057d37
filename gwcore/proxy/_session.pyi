"""The proxy session of a client connection (gwcore/proxy/_session.pyx): each request head
becomes an exchange (gwcore.proxy._exchange.Exchange), is checked, normalised (RFC 3986
§6.2.2) and routed, runs its route's filters, and goes to an endpoint of the route's cluster
(gwcore.proxy._upstream); the exchange ends in one place, where its on_log phases run. The
HTTP/1 side (framing, limits, timeouts, keep-alive) is gwcore.http._connection.

Request to the upstream (RFC 9110 §7.6): request-line ``METHOD target HTTP/1.1``, an
absolute-form target reduced to origin-form (RFC 9112 §3.2.2, its authority replacing Host);
hop-by-hop fields removed (Connection and the fields it names, Keep-Alive, Proxy-Connection,
TE, Trailer, Upgrade, Transfer-Encoding; RFC 9110 §7.6.1); Expect removed (the gateway answers
``100 Continue`` itself, RFC 9110 §10.1.1); X-Forwarded-For extended with the client address;
X-Forwarded-Proto and X-Forwarded-Host (the Host, when there is one) replaced; ``Via: 1.1 gwcore`` added
(RFC 9110 §7.6.3); X-Request-Id kept when there is exactly one of 1..128 characters from
``[A-Za-z0-9._:-]``, else replaced by a new ``<12 hex>-<counter hex>``; Host kept, or when the
client sent none (HTTP/1.0) the first endpoint's authority; a chunked body re-framed as chunked
(trailers dropped); filters' field changes (Exchange.add_upstream_header and friends) applied;
a body of at most buffer_body_bytes received whole first (a chunked one then sent with
Content-Length). With tracing configured (W3C Trace Context Level 1): ``traceparent``
replaced by this hop's ``00-<trace-id>-<new span id>-<flags>`` (the client's trace-id and
sampled flag when it sent exactly one valid traceparent, else a new trace), ``tracestate``
forwarded (several fields combined into one) only with a valid traceparent and when itself
valid; without tracing both fields pass untouched.

Response to the client: status line ``HTTP/1.1 <status> <reason>`` from the upstream's, its
hop-by-hop fields removed, ``Via: 1.1 gwcore`` added; a chunked or close-delimited upstream body goes to an HTTP/1.1
client as chunked and to an HTTP/1.0 client close-delimited; ``Connection: close`` when the
connection ends after it, ``Connection: keep-alive`` for an HTTP/1.0 client that keeps it.

Responses the gateway makes itself (text/plain body ``"<status> <reason>: <detail>\\n"``):
400 / 414 / 431 / 501 / 505 for a head the parser rejects (detail: the parser's error code,
see gwcore.http.ParseError), 400 for bad chunked framing, a path that cannot be normalised or a Connection option
naming a framing field, 404 no route, 408 head or body not
received in time, 413 body over the limit, 500 a filter failed, 502 upstream unavailable,
503 a circuit breaker is open (with Retry-After), 504 upstream, filter or route timeout. After a local answer the connection is closed when the
head was rejected, the request body was not read, the client asked for close or half-closed,
or the listener is draining.
"""

from typing import Any

from gwcore.http._connection import Http1Connection, Http1Settings
from gwcore.http._wire import Clock
from gwcore.observability._access_log import AccessLog
from gwcore.proxy._router import Router
from gwcore.proxy._upstream import Endpoint

class ListenerRuntime(Http1Settings):
    """What every connection of one listener shares in one worker: the HTTP/1 settings, the
    router, path normalisation, the filter timeout, request ids, the global on_log phases."""

    global_on_log: tuple[Any, ...]
    """The global filters' on_log methods: run for requests that matched no route."""
    access_log: AccessLog | None
    """The worker's access log: ``record(exchange)`` for every exchange that ends, after its
    on_log phases (None: no access log)."""
    tracing: bool
    """The listener makes trace context (``trace_sample_ratio`` was given)."""
    spans: Any
    """The span exporter (``on_log(exchange)`` for each sampled exchange at its end;
    gwcore.observability.tracing.OtlpSpans), or None."""

    def __init__(self, clock: Clock, router: Router, *, filter_timeout: float = 5.0,
                 merge_slashes: bool = True, escaped_slashes: str = "decode",
                 scheme: str = "http", trace_sample_ratio: float | None = None,
                 **limits: Any) -> None:
        """``limits``: the keyword arguments of Http1Settings (limits and timeouts).
        ``filter_timeout``: seconds a request filter may wait (then 504). ``merge_slashes``
        / ``escaped_slashes`` (``decode``, ``keep``, ``reject``): the listener's
        path_normalization. ``scheme``: the X-Forwarded-Proto value.
        ``trace_sample_ratio``: None, no trace context (traceparent and tracestate pass
        untouched, the exchanges' trace fields stay None); else the share (0..1) of new
        traces marked sampled. KeyError: an unknown escaped_slashes."""
    def protocol(self) -> Downstream:
        """Protocol factory for ``loop.create_server``: a new Downstream for this listener."""

class Downstream(Http1Connection):
    """asyncio protocol of one client connection: the HTTP/1 connection with the proxy
    session (made by ListenerRuntime.protocol). Retries follow the cluster's policy
    (Cluster.may_retry): another endpoint when possible; a request whose pooled connection
    turns out to have been closed by the upstream (reset before any response byte) is resent
    once on a new connection when idempotent and bodiless or buffered. A response that fails
    after it started is cut off by aborting the connection, never passed off as complete."""

    def __init__(self, lr: ListenerRuntime) -> None: ...
    def _filtered(self, fut: Any) -> None:
        """Internal: done-callback of a request filter that had to wait."""
    def _retry_later(self, failed: Endpoint, token: int) -> None:
        """Internal: starts the retry of a 503 after its Retry-After delay."""
    def _request_timed_out(self) -> None:
        """Internal: the route's timeouts.request ran out."""


def parse_traceparent(value: bytes) -> tuple[str, str, int]:
    """``(trace_id, parent_id, flags)`` of a valid traceparent value (W3C Trace Context
    Level 1 §3.2; a higher version is read for its first 55 bytes, §3.2.4); ValueError with
    the problem's name (``traceparent_length``, ``traceparent_version``,
    ``traceparent_version_ff``, ``traceparent_format``, ``traceparent_hex``,
    ``trace_id_zero``, ``parent_id_zero``)."""

def check_tracestate(*values: bytes) -> bytes:
    """The tracestate field values combined (joined with ","), when the session would forward
    them; ValueError with the problem's name (``tracestate_size``: over 512 bytes,
    ``tracestate_members``: over 32, ``tracestate_member``, ``tracestate_key``,
    ``tracestate_value``)."""

def new_span_id() -> str:
    """A new span id (16 lower-case hex digits, not all zeros) from this process's generator,
    seeded from os.urandom on first use and again in a forked child."""
