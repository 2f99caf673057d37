"""Shadow traffic: fire-and-forget copies of requests to a candidate cluster.

A Mirror sends a copy of a request (its upstream head and buffered body) to an endpoint its
cluster's balancer picks, on a pooled keep-alive connection when one is idle, else on a new one
(the cluster's circuit breakers apply). The response is parsed by the Upstream and discarded
chunk by chunk as it arrives; the connection goes back to the pool when the response ended
cleanly. At most ``max_in_flight`` copies are under way: a copy beyond that is dropped and
counted, never queued. Copies are never retried. A copy that cannot connect pauses the
mirror: copies are dropped (counted) for 0.25 s, doubled per failure up to 10 s, until one is
answered — a candidate that is down would otherwise cost a connect attempt per request. Each
copy counts in the cluster's in-flight
accounting and reports endpoint health like a client request's try, so the cluster's circuit
breakers and outlier detection see mirrored traffic. When a copy ends, ``on_done(context,
status, seconds, error)`` runs on the loop; send() itself never raises and never waits.
"""

import logging

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int64_t
from libc.string cimport memcmp
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from gwcore.http._chttp1 cimport gw_field
from gwcore.proxy._upstream cimport (
    Cluster, Endpoint, ResponseSink, Upstream,
    UE_BAD_RESPONSE, UE_CONNECT_FAILED, UE_CONNECT_TIMEOUT, UE_RESET, UE_TIMEOUT,
)

log = logging.getLogger("gwcore")

# on_done's error for each MirrorError (index); None: the response ended cleanly
MIRROR_ERRORS = (None, "connect_failed", "timeout", "reset", "bad_response", "overflow")
cdef tuple _ERRORS = MIRROR_ERRORS
cdef tuple _CLASSES = ("0xx", "1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "7xx", "8xx", "9xx")
cdef int _FREE_MAX = 256        # ended copies kept for reuse, per Mirror


cdef inline int64_t _now_ns() noexcept:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef inline bint _is_head(bytes head) noexcept:
    """The request is a HEAD: its response has no body whatever it announces."""
    return (PyBytes_GET_SIZE(head) >= 5
            and memcmp(PyBytes_AS_STRING(head), b"HEAD ", 5) == 0)


cdef class _Copy(ResponseSink):
    """The sink of one mirrored exchange: keeps the status, drops the body."""

    cdef void _use(self, Upstream up):
        """Writes the whole request on ``up``; the response timeout starts."""
        self.up = up
        up.send(self, self.head, self.body, _is_head(self.head))
        up.finish_request()
        self.head = None
        self.body = None

    cdef void _fail(self, int error):
        self.up = None
        self.mirror._end(self, error)

    cdef void on_connected(self, Upstream up, int error, unsigned long token):
        cdef Cluster cl = self.mirror.cluster
        if not self.connecting or token != self.token:
            if up is not None:
                up.release()        # the answer for a copy that ended meanwhile
            return
        self.connecting = False
        if self.queued:
            self.queued = False
            self.deadline = 0
            cl.clock.unwatch(self)
        if up is None:
            cl.report(self.ep, False)
            self._fail(ME_CONNECT_FAILED)
            return
        self._use(up)

    cdef void on_deadline(self):
        """Queued for a connection slot longer than the cluster's pending_timeout."""
        cdef Cluster cl = self.mirror.cluster
        if not self.queued:
            return
        self.queued = False
        cl.clock.unwatch(self)
        if cl.cancel_wait(self):
            self.connecting = False
            cl.note_overflow("pending_timeout")
            self._fail(ME_OVERFLOW)
        # else: it got a slot and is connecting now; the connect timeout bounds that

    cdef void on_response_head(self, Upstream up, const char *buf, const gw_field *fields):
        self.status = up.head.status
        self.mirror.cluster.report(self.ep, self.status < 500)

    cdef void on_response_data(self, object data):
        pass        # discarded as it comes: a mirrored response is never buffered

    cdef void flush(self):
        pass

    cdef void on_response_end(self):
        self.up = None
        self.mirror._end(self, ME_NONE)

    cdef void on_upstream_error(self, Upstream up, int error):
        cdef int me
        if not (error == UE_RESET and up is not None and up.reused and not up.got_bytes):
            # (a pooled connection the upstream had already closed says nothing about it)
            self.mirror.cluster.report(self.ep, False)
        if error == UE_TIMEOUT:
            me = ME_TIMEOUT
        elif error == UE_BAD_RESPONSE:
            me = ME_BAD_RESPONSE
        elif error == UE_CONNECT_FAILED or error == UE_CONNECT_TIMEOUT:
            me = ME_CONNECT_FAILED
        else:
            me = ME_RESET
        self._fail(me)

    cdef void pause_request_body(self, bint pause):
        pass        # the whole request went out in one write


cdef class Mirror:
    """Sends fire-and-forget copies of requests to ``cluster``, at most ``max_in_flight`` at
    a time; ``on_done(context, status, seconds, error)`` is called as each one ends."""

    def __cinit__(self, Cluster cluster not None, int max_in_flight, on_done=None,
                  double percent=100.0):
        if max_in_flight < 0:
            raise ValueError(f"max_in_flight: must be >= 0, got {max_in_flight}")
        if not 0.0 < percent <= 100.0:
            raise ValueError(f"percent: must be in (0, 100], got {percent}")
        self.percent = percent
        if on_done is not None and not callable(on_done):
            raise TypeError("on_done: must be callable or None")
        self.cluster = cluster
        self.max_in_flight = max_in_flight
        self.on_done = on_done
        self.statuses = {"2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0}

    def __repr__(self):
        return (f"Mirror({self.cluster.name!r}, in_flight={self.in_flight}/"
                f"{self.max_in_flight}, sent={self.sent}, dropped={self.dropped})")

    cdef bint sample(self) noexcept:
        """Whether this request is one of the mirrored ``percent``: every (100 / percent)th,
        spread evenly (an accumulator, not a coin)."""
        self.acc += self.percent
        if self.acc >= 100.0:
            self.acc -= 100.0
            return True
        return False

    def sampled(self) -> bool:
        """``sample()`` from Python (tests)."""
        return self.sample()

    cpdef bint send(self, bytes head, object body, object context):
        """Starts a copy of a request (``head``: the whole upstream request head, CRLF CRLF
        included, framed with Content-Length for ``body`` or without a body; ``body``: bytes
        or None). True: under way, on_done follows; False: dropped (counted), nothing does."""
        cdef _Copy c
        if head is None or self.in_flight >= self.max_in_flight or (
                self.paused_until and _now_ns() < self.paused_until):
            self.dropped += 1
            return False
        if self.free is not None:
            c = self.free
            self.free = c.next_free
            c.next_free = None
            self.nfree -= 1
        else:
            c = _Copy.__new__(_Copy)
            c.mirror = self
        try:
            if body is not None and not isinstance(body, bytes):
                body = bytes(body)
            c.head = head
            c.body = body if body else None
            c.context = context
            c.status = 0
            c.t_sent = _now_ns()
            self.in_flight += 1
            if self._start(c):
                self.sent += 1
                return True
            self.in_flight -= 1
        except Exception:
            log.exception("mirror to cluster %s: send failed", self.cluster.name)
            if c.ep is not None or c.connecting:
                self.sent += 1
                return True         # under way after all: on_done will follow
            self.in_flight -= 1
        c.head = c.body = c.context = None
        self.dropped += 1
        self._recycle(c)
        return False

    cdef bint _start(self, _Copy c):
        """Picks an endpoint and sends on a pooled connection, or starts connecting (or
        queues for a connection slot); False when a circuit breaker refuses the copy."""
        cdef Cluster cl = self.cluster
        cdef Endpoint ep
        cdef Upstream up
        cdef int r
        if cl.in_flight >= cl.max_requests:
            cl.note_overflow("max_requests")
            return False
        ep = cl.pick(None, None)
        if ep is None:
            return False
        c.ep = ep
        cl.begin(ep, False)
        up = cl.acquire(ep)
        if up is not None:
            c._use(up)
            return True
        self.token += 1
        c.token = self.token
        c.connecting = True
        r = cl.connect(ep, c, c.token)
        if r < 0:
            c.connecting = False
            c.token = 0
            c.ep = None
            cl.finish(ep, False)
            cl.note_overflow("max_pending_requests")
            return False
        if r == 1:          # queued for a connection slot, for at most pending_timeout
            c.queued = True
            c.deadline = cl.clock.now + cl.pending_timeout
            cl.clock.watch(c)
        return True

    cdef void _recycle(self, _Copy c):
        c.up = None
        c.ep = None
        c.token = 0
        c.connecting = False
        c.queued = False
        c.deadline = 0
        if self.nfree < _FREE_MAX:
            c.next_free = self.free
            self.free = c
            self.nfree += 1

    cdef void _end(self, _Copy c, int error):
        """A copy ended (``error``: ME_*): accounting, then on_done (its exceptions are
        logged). The copy is reusable before on_done runs, so on_done may send again."""
        cdef int status = c.status
        cdef object context = c.context
        cdef double seconds = (_now_ns() - c.t_sent) * 1e-9
        cdef int64_t t_sent = c.t_sent
        if c.ep is not None:
            self.cluster.finish(c.ep, False)
        c.head = c.body = c.context = None
        self._recycle(c)
        self.in_flight -= 1
        self.seconds += seconds
        if error == ME_NONE:
            self.completed += 1
        else:
            self.failed += 1
        if error == ME_CONNECT_FAILED and t_sent >= self.paused_until:
            # only a copy sent since the last pause began escalates it: copies under way
            # when the candidate went down fail together, and count once
            # a candidate that is down costs a connect per request: back off, as an
            # ejection would (a cluster of one endpoint is never ejected)
            self.backoff = min(max(self.backoff * 2.0, 0.25), 10.0)
            self.paused_until = _now_ns() + <int64_t>(self.backoff * 1e9)
        elif status > 0:
            self.backoff = 0.0
            self.paused_until = 0
        if status > 0:
            key = _CLASSES[(status // 100) % 10]
            self.statuses[key] = self.statuses.get(key, 0) + 1
        if self.on_done is not None:
            try:
                self.on_done(context, status, seconds, _ERRORS[error])
            except Exception:
                log.exception("mirror to cluster %s: on_done failed", self.cluster.name)
