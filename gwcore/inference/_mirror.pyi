"""Shadow traffic (the inference gateway's ``mirror:``): fire-and-forget copies of requests to
a candidate cluster, with a bounded number in flight.

A Mirror sends each copy to the endpoint its cluster's balancer picks (no hash key), on an
idle pooled keep-alive connection when there is one, else on a new connection. The response is
parsed by gwcore.proxy._upstream.Upstream and discarded chunk by chunk (never buffered); the
connection goes back to the pool when the response ended cleanly. Copies are never retried
and never queued by the Mirror: beyond ``max_in_flight`` a copy is dropped and counted. Each
copy counts in the cluster's in-flight accounting (``Cluster.in_flight``, the balancer's
per-endpoint counts) and reports endpoint health (a 5xx, connect failure, reset, timeout or
malformed response is a failure for outlier detection) like a client request's try, so the
cluster's circuit breakers see mirrored traffic: ``max_requests`` and
``max_pending_requests`` refuse a copy at once (dropped); a copy queued for a connection slot
(``max_connections``) longer than ``pending_timeout`` ends with error ``"overflow"``. The
cluster's ``response_timeout`` bounds upstream silence (``"timeout"``). Times are seconds.

Not thread-safe: one Mirror per cluster per worker loop. The C-level API (``cpdef send``) is
in ``_mirror.pxd`` for the proxy session to cimport.
"""

import logging
from collections.abc import Callable
from typing import Any, TypeAlias

from gwcore.proxy._upstream import Cluster, ResponseSink

log: logging.Logger  # the "gwcore" logger: exceptions from on_done and from send()

MIRROR_ERRORS: tuple[str | None, ...]
"""on_done's ``error`` values: None (the response ended cleanly), ``"connect_failed"``
(refused, unreachable or connect timeout: nothing was sent), ``"timeout"`` (no upstream bytes
for the cluster's response timeout), ``"reset"`` (the connection closed or was reset before
the response ended), ``"bad_response"`` (malformed response head or body framing),
``"overflow"`` (waited for a connection slot longer than the cluster's pending_timeout)."""

_OnDone: TypeAlias = Callable[[Any, int, float, str | None], object]

class _Copy(ResponseSink):
    """Internal: the response sink of one mirrored request (status kept, body dropped);
    ended copies are kept on a free list (at most 256 per Mirror) for reuse."""

class Mirror:
    """Sends fire-and-forget copies of requests to ``cluster``, at most ``max_in_flight`` at
    once. Counters: ``sent == completed + failed + in_flight`` at all times; ``dropped``
    counts the copies send() refused."""

    def __init__(self, cluster: Cluster, max_in_flight: int,
                 on_done: _OnDone | None = None, percent: float = 100.0) -> None:
        """``cluster``: the candidate (built like any cluster, e.g. by
        gwcore.process.worker.make_cluster; its timeouts, pool and circuit breakers apply).
        ``max_in_flight``: copies under way at most (0: every copy is dropped).
        ``on_done(context, status, seconds, error)`` runs on the loop as each copy ends:
        ``context`` as given to send(); ``status`` the response status code (0 when no
        response head arrived); ``seconds`` (float) from send() to the end of the response
        or the failure; ``error`` None or a MIRROR_ERRORS string (a status and an error
        together: the head arrived, then the body failed). Exceptions it raises are logged
        and never propagated. ValueError: ``max_in_flight`` < 0; TypeError: ``on_done`` not
        callable."""
    def send(self, head: bytes, body: bytes | None, context: Any) -> bool:
        """Starts a copy of a request and returns at once (a C call from Cython).

        ``head``: the complete upstream request head, the final CRLF CRLF included, framed
        with ``Content-Length`` for ``body`` or without a body (a HEAD request's response is
        read as bodiless). ``body``: bytes (a bytes-like object is copied to bytes), or None
        / b"" for none; head and body go out in one write.

        True: the copy is under way and on_done will be called exactly once, later, from a
        loop callback (never from within send()). False: dropped and counted in
        ``dropped``, and on_done is not called, because ``max_in_flight`` copies are
        already under way, or the mirror is paused after a copy could not connect
        (``paused_until``), or a circuit breaker of the cluster refused it
        (``max_requests``, or ``max_pending_requests`` when no connection slot is free;
        counted in ``cluster.overflows``), or ``head`` is None. Never raises for such
        arguments (an unexpected exception is logged and the copy dropped)."""
    @property
    def cluster(self) -> Cluster:
        """The cluster copies go to."""
    @property
    def max_in_flight(self) -> int:
        """Copies under way at most."""
    @property
    def on_done(self) -> _OnDone | None:
        """The callback given to the constructor."""
    @property
    def in_flight(self) -> int:
        """Copies under way now (sent, on_done not called yet)."""
    @property
    def sent(self) -> int:
        """Copies send() accepted (returned True) since the Mirror was made."""
    @property
    def dropped(self) -> int:
        """Copies send() refused (returned False)."""
    @property
    def percent(self) -> float:
        """The share of requests (0..100] that ``sampled()`` (the session's ``sample``)
        takes: every (100 / percent)th, spread evenly. ValueError outside it."""
    def sampled(self) -> bool:
        """Whether the next request is one to mirror (advances the accumulator)."""
    @property
    def seconds(self) -> float:
        """Seconds the ended copies took, summed (send() to end or failure)."""
    @property
    def paused_until(self) -> int:
        """Monotonic ns (CLOCK_MONOTONIC) until which copies are dropped because the last
        one could not connect (0: not paused): 0.25 s after a first failure, doubled per
        failure up to 10 s; a response clears it."""
    @property
    def completed(self) -> int:
        """Copies whose response ended cleanly (whatever its status)."""
    @property
    def failed(self) -> int:
        """Copies that ended with an error (on_done's ``error`` not None)."""
    @property
    def statuses(self) -> dict[str, int]:
        """Response heads received by status class: ``"2xx"``, ``"3xx"``, ``"4xx"``,
        ``"5xx"`` (always present), other classes when seen. Counted when a copy ends, also
        for a copy whose body then failed (the dict itself: do not mutate)."""
