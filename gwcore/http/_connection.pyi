"""Downstream connection protocol: one client connection, driven by data_received.

Requests are handled one at a time in arrival order: pipelined ones wait in the buffer (reads
pause past 64 KiB of them), so responses keep request order (RFC 9112 §9.3.2). Each request
head is parsed in C (src_c/http1.c, RFC 9112), routed, rewritten for the upstream and sent on a
pooled upstream connection (gwcore.proxy._upstream); bodies stream both ways with back-pressure.

Request to the upstream (RFC 9110 §7.6): request-line ``METHOD target HTTP/1.1``, an
absolute-form target reduced to origin-form (RFC 9112 §3.2.2, its authority replacing Host);
hop-by-hop fields removed (Connection and the fields it names, Keep-Alive, Proxy-Connection,
TE, Trailer, Upgrade, Transfer-Encoding; RFC 9110 §7.6.1); Expect removed (the gateway answers
``100 Continue`` itself, RFC 9110 §10.1.1); X-Forwarded-For extended with the client address;
X-Forwarded-Proto and X-Forwarded-Host (the Host, when there is one) replaced; ``Via: 1.1 gwcore`` added
(RFC 9110 §7.6.3); X-Request-Id kept when there is exactly one of 1..128 characters from
``[A-Za-z0-9._:-]``, else replaced by a new ``<12 hex>-<counter hex>``; Host kept, or when the
client sent none (HTTP/1.0) the first endpoint's authority; a chunked body re-framed as chunked
(trailers dropped); filters' field changes (gwcore.filters.base.Exchange) applied.

Response to the client: status line ``HTTP/1.1 <status> <reason>`` from the upstream's, its
hop-by-hop fields removed, ``Via: 1.1 gwcore`` added; a chunked or close-delimited upstream body goes to an HTTP/1.1
client as chunked and to an HTTP/1.0 client close-delimited; ``Connection: close`` when the
connection ends after it, ``Connection: keep-alive`` for an HTTP/1.0 client that keeps it.

Responses the gateway makes itself (text/plain body ``"<status> <reason>: <detail>\\n"``):
400 / 414 / 431 / 501 / 505 for a head the parser rejects (detail: the parser's error code,
see gwcore.http.ParseError), 400 for bad chunked framing, 404 no route, 408 head or body not
received in time, 413 body over the limit, 500 a request filter failed, 502 upstream
unavailable, 504 upstream timed out. After a local answer the connection is closed when the
head was rejected, the request body was not read, the client asked for close or half-closed,
or the listener is draining.
"""

import logging
from typing import Any, Protocol

from gwcore.http._wire import Clock
from gwcore.proxy._router import Route
from gwcore.proxy._upstream import Endpoint, ResponseSink

log: logging.Logger  # the "gwcore" logger: request filter failures

class _Router(Protocol):
    def match(self, host: bytes, target: bytes, method: bytes) -> Route | None: ...

class ListenerRuntime:
    """What every connection of one listener shares in one worker: limits, timeouts
    (seconds), the router, the request-id generator and the set of open connections."""

    def __init__(
        self,
        router: _Router,
        clock: Clock,
        *,
        max_head_bytes: int,
        max_headers: int,
        max_target_bytes: int,
        max_body_bytes: int,
        header_timeout: float,
        idle_timeout: float,
        scheme: str = "http",
    ) -> None:
        """``router``: gwcore.proxy._router.Router or anything with its ``match(host, target,
        method)`` (bytes arguments; the route's ``cluster`` is a gwcore.proxy._upstream.Cluster
        and ``filters`` its request filters); ``match`` is looked up once, here.

        Limits: ``max_head_bytes`` bytes of a request head, request-line to the empty line
        (over: 431); ``max_headers`` field lines (1..1000, over: 431); ``max_target_bytes``
        bytes of request-target (over: 414); ``max_body_bytes`` bytes of request body, the
        Content-Length or the decoded chunked data (over: 413, connection closed).
        ``header_timeout``: seconds from the accept, or from the first bytes of a later head,
        to a complete head (then 408 if bytes were received, else a silent close).
        ``idle_timeout``: seconds a keep-alive connection may wait for its next request
        (then closed silently), and the longest gap between reads of a request body (then
        408). ``scheme``: the X-Forwarded-Proto value, e.g. ``"https"``.

        ValueError: ``max_headers`` outside 1..1000. TypeError: ``clock`` is not a Clock
        (None is not rejected). Other values are not checked (a negative size wraps to a
        huge limit)."""
    @property
    def draining(self) -> bool:
        """True once start_drain was called."""
    def protocol(self) -> Downstream:
        """Protocol factory for ``loop.create_server``: a new Downstream for this listener."""
    @property
    def open_connections(self) -> int:
        """Downstream connections currently open on this listener (in this worker)."""
    def start_drain(self, grace: float = 1.0) -> None:
        """Graceful shutdown of this listener's connections: every response from now on
        carries ``Connection: close`` and ends its connection; a connection with no request
        under way is closed once idle for ``grace`` seconds (not at once: a request may
        already be on the wire). Connections accepted later get 1 second. Stopping accepts
        is the caller's job (server.close())."""

class Downstream(ResponseSink):
    """asyncio protocol of one client connection (made by ListenerRuntime.protocol).

    A request whose head is complete is routed and, unless its filters answer or wait, sent
    upstream at once; its body follows as it arrives. Retries (gwcore.proxy._upstream.Cluster
    policy): another endpoint when possible; a request whose pooled connection turns out to
    have been closed by the upstream (reset before any response byte) is resent once on a new
    connection when idempotent and bodiless. A response that fails after it started is cut
    off by aborting the connection, never passed off as complete."""

    def __init__(self, lr: ListenerRuntime) -> None: ...
    def connection_made(self, transport: Any) -> None:
        """Start the head timeout; record the peer address (``"unknown"`` without one) for
        X-Forwarded-For and source_ip hashing. ``transport``: an asyncio.Transport."""
    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection; abort an upstream exchange under way."""
    def eof_received(self) -> bool:
        """False (close) when idle or when the request can no longer complete (its head or
        body was cut: the connection is aborted); True (half-close: still answer) when the
        request was complete."""
    def pause_writing(self) -> None:
        """Client send buffer full: stop reading the upstream response."""
    def resume_writing(self) -> None:
        """Client send buffer drained: read the upstream response again."""
    def data_received(self, data: bytes) -> None:
        """Request bytes (heads, bodies, pipelined requests). TypeError if not bytes."""
    def _filtered(self, fut: Any) -> None:
        """Internal: done-callback of a request filter that had to wait (an asyncio Future
        resolving to None or a LocalResponse)."""
    def _retry_later(self, failed: Endpoint) -> None:
        """Internal: ``call_later`` callback that starts the retry of a 503 after its
        Retry-After delay, on another endpoint than ``failed`` when there is one."""
