"""Upstream side of the proxy engine: clusters of endpoints, a keep-alive connection pool per
endpoint, and the Upstream protocol that writes a request and parses and streams the response
(RFC 9112 §6.3 message body length) to a ResponseSink. No asyncio Task except to connect."""

import logging
import os
import ssl
from collections import deque
from functools import partial

from gwcore.observability.metrics import (
    C_BUDGET, C_ERRORS, C_OVERFLOWS, C_RETRIES, E_EJECTIONS, OVERFLOW_LIMITS, UPSTREAM_ERRORS,
)

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint32_t, uint64_t

from gwcore.http._chttp1 cimport GW_CONN_CLOSE, GW_CONN_KEEP_ALIVE, GW_CONN_OTHER, gw_field, gw_limits
from gwcore.http._parser cimport (
    gw_chunked_decode, gw_chunked_init, gw_find_field, gw_parse_response,
)
from gwcore.http._wire cimport Clock, Timed, connection_options
from gwcore.observability._cmetrics cimport gw_metric_add
from gwcore.observability._metrics cimport Row
from gwcore.proxy._balancer cimport Balancer

log = logging.getLogger("gwcore")

cdef enum UState:
    U_CONNECTING = 0
    U_IDLE = 1        # in its endpoint's pool
    U_ACTIVE = 2      # carrying an exchange
    U_CLOSED = 3

# Response heads are parsed and re-emitted synchronously, so one array per worker suffices.
cdef enum:
    MAX_RESPONSE_FIELDS = 256
cdef gw_field _fields[MAX_RESPONSE_FIELDS]
cdef gw_limits _limits
_limits.max_head_bytes = 64 * 1024
_limits.max_fields = MAX_RESPONSE_FIELDS
_limits.max_target_len = 0


cdef class ResponseSink(Timed):
    cdef void on_connected(self, Upstream up, int error, unsigned long token):
        pass

    cdef void on_upstream_error(self, Upstream up, int error):
        pass

    cdef void on_response_head(self, Upstream up, const char *buf, const gw_field *fields):
        pass

    cdef void on_response_data(self, object data):
        pass

    cdef void flush(self):
        pass

    cdef void on_response_end(self):
        pass

    cdef void pause_request_body(self, bint pause):
        pass


cdef class Endpoint:
    """One upstream address of a cluster, its idle keep-alive connections (LIFO), and its
    health: ``healthy`` (active checks) and ``ejected_until`` (outlier detection)."""

    def __cinit__(self, Cluster cluster, int index, str host, int port, int weight):
        self.cluster = cluster
        self.index = index
        self.host = host
        self.connect_host = host
        self.port = port
        self.weight = weight
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.authority = self.address.encode()
        self.idle = []
        self.healthy = True

    def __repr__(self):
        return f"Endpoint({self.authority.decode()}, idle={len(self.idle)})"

    @property
    def idle_count(self) -> int:
        """Idle keep-alive connections to this endpoint in this worker's pool."""
        return len(self.idle)


# metrics columns (gwcore/observability/metrics.py owns the layout)
cdef uint32_t _C_ERRORS = C_ERRORS, _C_RETRIES = C_RETRIES, _C_BUDGET = C_BUDGET
cdef uint32_t _C_OVERFLOWS = C_OVERFLOWS, _E_EJECTIONS = E_EJECTIONS
cdef int _N_ERRORS = len(UPSTREAM_ERRORS)
cdef dict _LIMIT_INDEX = {name: i for i, name in enumerate(OVERFLOW_LIMITS)}


cdef unsigned int _retry_bits(list on):
    cdef unsigned int bits = 0
    names = {"connect_failure": RETRY_CONNECT_FAILURE, "reset": RETRY_RESET,
             "timeout": RETRY_TIMEOUT, "502": RETRY_502, "503": RETRY_503, "504": RETRY_504}
    for cond in on:
        bits |= names[str(cond)]
    return bits


cdef class Cluster:
    """A named set of endpoints with a balancer, per-endpoint pools, outlier detection, a
    retry policy and circuit breakers (Envoy's: max_connections, max_pending_requests,
    max_requests, max_retries; per worker). Times in seconds. ``endpoints``: (host, port,
    weight) tuples."""

    def __cinit__(self, str name, list endpoints, Clock clock, loop, *,
                  double connect_timeout, double response_timeout, int max_idle,
                  double idle_timeout, str policy="round_robin", balance_factor=None,
                  table_size=None, int attempts=2, list retry_on=None, double budget=0.2,
                  double retry_after_max=1.0, int od_failures=5, double od_base=30.0,
                  double od_max=300.0, int od_max_percent=50, str hash_on="path",
                  str hash_name="", int max_connections=1024, int max_pending_requests=1024,
                  int max_requests=1024, int max_retries=3, double pending_timeout=5.0):
        self.name = name
        self.clock = clock
        self.loop = loop
        self.connect_timeout = connect_timeout
        self.response_timeout = response_timeout
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.endpoints = [Endpoint(self, i, host, port, weight)
                          for i, (host, port, weight) in enumerate(endpoints)]
        self.balancer = Balancer(policy, [ep.authority.decode() for ep in self.endpoints],
                                 [ep.weight for ep in self.endpoints], balance_factor,
                                 table_size,      # per process: workers must not move in step
                                 seed=int.from_bytes(os.urandom(8), "little") | 1)
        self.attempts = attempts
        self.retry_on = _retry_bits(["connect_failure"] if retry_on is None else retry_on)
        self.budget = budget
        self.retry_after_max = retry_after_max
        self.od_failures = od_failures
        self.od_base = od_base
        self.od_max = od_max
        self.od_max_percent = od_max_percent
        self.max_connections = max_connections
        self.max_pending = max_pending_requests
        self.max_requests = max_requests
        self.max_retries = max_retries
        self.pending_timeout = pending_timeout
        self.waiters = deque()
        self.overflows = {}
        self.hash_kind = {"path": HASH_PATH, "header": HASH_HEADER, "cookie": HASH_COOKIE,
                          "source_ip": HASH_SOURCE_IP, "jwt_claim": HASH_JWT_CLAIM}[hash_on]
        # field names are case-insensitive; cookie and claim names are not (RFC 6265, 7519)
        self.hash_name = (hash_name.lower() if hash_on == "header" else hash_name).encode()

    def __repr__(self):
        return f"Cluster({self.name!r}, {self.endpoints!r})"

    def set_tls(self, ssl_context, server_name=None):
        """Connect to the endpoints with TLS: ``ssl_context`` (an ``ssl.SSLContext``),
        verifying ``server_name`` (None: each endpoint's host as configured)."""
        self.ssl_context = ssl_context
        self.server_name = server_name

    def set_metrics(self, Row row, uint32_t base, list endpoint_bases):
        """Record into ``row`` (gwcore.observability.metrics): the cluster's block at
        ``base``, each endpoint's at its ``endpoint_bases`` entry (config order)."""
        cdef Endpoint ep
        self.mrow = row.p
        self.m_base = base
        for ep, b in zip(self.endpoints, endpoint_bases):
            ep.m_base = b

    def endpoint_in_flight(self, int index) -> int:
        """Requests in flight to endpoint ``index`` in this worker."""
        return self.balancer.active[index]

    cdef void note_error(self, int error):
        """A try failed with ``error`` (UE_*), counted by kind."""
        if 1 <= error <= _N_ERRORS:
            gw_metric_add(self.mrow, self.m_base + _C_ERRORS + error - 1, 1)

    cdef Endpoint pick(self, bytes key, Endpoint exclude):
        """The endpoint for this try (not ``exclude``), or None if there is no other."""
        cdef int i = self.balancer.pick(<const char *>key if key is not None else NULL,
                                        len(key) if key is not None else 0,
                                        exclude.index if exclude is not None else -1)
        return self.endpoints[i] if i >= 0 else None

    cdef void begin(self, Endpoint ep, bint retry):
        self.balancer.acquire(ep.index)
        self.in_flight += 1
        if retry:
            self.retries_in_flight += 1
            gw_metric_add(self.mrow, self.m_base + _C_RETRIES, 1)

    cdef void finish(self, Endpoint ep, bint retry):
        self.balancer.release(ep.index)
        self.in_flight -= 1
        if retry:
            self.retries_in_flight -= 1

    cdef bint may_retry(self, unsigned int condition, int tries, bint replayable):
        """The retry policy, all of it: ``condition`` (RETRY_*) is one ``retries.on`` names,
        tries are left, the retry budget and the max_retries circuit breaker allow one, and
        it is safe — nothing was sent (a connect failure), or the request is ``replayable``
        (idempotent, its body if any held whole)."""
        return ((self.retry_on & condition) != 0
                and tries < self.attempts
                and (condition == RETRY_CONNECT_FAILURE or replayable)
                and self.retry_allowed())

    cdef bytes hash_key(self, const char *base, const gw_field *fields, uint32_t nfields,
                        bytes target, bytes client_ip, object ex):
        """The request's key for ring_hash / maglev, as ``balancer.hash_on`` says (None: no
        key, pick at random): the path, the client address, a field, a cookie (RFC 6265
        §5.4) or a verified JWT claim (``ex.state["jwt_claims"]``)."""
        cdef int i
        cdef bytes name = self.hash_name
        if self.hash_kind == HASH_PATH:
            return target.partition(b"?")[0]
        if self.hash_kind == HASH_SOURCE_IP:
            return client_ip
        if self.hash_kind == HASH_JWT_CLAIM:
            claims = ex.state.get("jwt_claims") if ex is not None else None
            value = claims.get(name.decode()) if claims else None
            return None if value is None else str(value).encode()
        if self.hash_kind == HASH_COOKIE:
            i = gw_find_field(base, fields, nfields, b"cookie", 6)
        else:
            i = gw_find_field(base, fields, nfields, name, len(name))
        if i < 0:
            return None
        value = PyBytes_FromStringAndSize(base + fields[i].value_off, fields[i].value_len)
        if self.hash_kind == HASH_HEADER:
            return value
        for pair in value.split(b";"):
            k, eq, v = pair.strip().partition(b"=")
            if eq and k == name:
                return v
        return None

    cdef bint retry_allowed(self):
        """Envoy's retry budget: retries in flight stay under budget × active requests
        (at least 3 are always allowed), and under the max_retries circuit breaker."""
        if self.retries_in_flight >= self.max_retries:
            self.note_overflow("max_retries")
            gw_metric_add(self.mrow, self.m_base + _C_BUDGET, 1)
            return False
        if self.retries_in_flight < max(3.0, self.budget * self.in_flight):
            return True
        gw_metric_add(self.mrow, self.m_base + _C_BUDGET, 1)
        return False

    cdef void note_overflow(self, str limit):
        """A circuit breaker refused something: counted, and logged at most once a second."""
        self.overflows[limit] = self.overflows.get(limit, 0) + 1
        gw_metric_add(self.mrow, self.m_base + _C_OVERFLOWS + _LIMIT_INDEX[limit], 1)
        if self.clock.now - self.overflow_logged >= 1.0:
            self.overflow_logged = self.clock.now
            log.warning("cluster %s: overflow: %s reached (%d refused so far)", self.name,
                        limit, self.overflows[limit])

    cdef void report(self, Endpoint ep, bint ok):
        """Passive outlier detection: consecutive failures eject the endpoint."""
        if ep is None:
            return
        if ok:
            ep.failures = 0
            return
        ep.failures += 1
        if (ep.failures < self.od_failures or ep.ejected_until != 0
                or (self.ejected + 1) * 100 > self.od_max_percent * len(self.endpoints)):
            return
        ep.failures = 0
        ep.ejections += 1
        gw_metric_add(self.mrow, ep.m_base + _E_EJECTIONS, 1)
        ep.ejected_until = self.clock.now + min(self.od_base * ep.ejections, self.od_max)
        self.ejected += 1
        self.balancer.set_up(ep.index, False)
        log.warning("cluster %s: endpoint %s ejected for %.0fs (%d consecutive failures)",
                    self.name, ep.authority.decode(), ep.ejected_until - self.clock.now,
                    self.od_failures)

    def refresh(self, double now):
        """Periodic: end ejections whose time is over."""
        cdef Endpoint ep
        for ep in self.endpoints:
            if ep.ejected_until and now >= ep.ejected_until:
                ep.ejected_until = 0
                self.ejected -= 1
                self.balancer.set_up(ep.index, ep.healthy)
                log.info("cluster %s: endpoint %s back from ejection", self.name,
                         ep.authority.decode())

    def set_healthy(self, int index, bint healthy):
        """Active health check result for endpoint ``index``."""
        if not 0 <= index < len(self.endpoints):
            raise IndexError(index)
        cdef Endpoint ep = self.endpoints[index]
        if ep.healthy == healthy:
            return
        ep.healthy = healthy
        self.balancer.set_up(index, healthy and not ep.ejected_until)
        log.log(logging.INFO if healthy else logging.WARNING,
                "cluster %s: endpoint %s is %s", self.name, ep.authority.decode(),
                "healthy" if healthy else "unhealthy")

    def retry_after(self, bytes value):
        """Seconds to wait before retrying a 503 with this Retry-After value (RFC 9110
        §10.2.3, delay-seconds form), or None when it is longer than retry_after_max or not
        a number (then the 503 is final)."""
        if value.isdigit() and int(value) <= self.retry_after_max:
            return float(value)
        return None

    cdef Upstream acquire(self, Endpoint ep):
        """A pooled connection to ep, or None (the caller then connects)."""
        cdef Upstream up
        while ep.idle:
            up = ep.idle.pop()
            if up.state == U_IDLE and not up.transport.is_closing():
                up.reused = True
                return up
        return None

    cdef int connect(self, Endpoint ep, ResponseSink sink, unsigned long token):
        """Slow path: open a connection; later sink.on_connected(up, 0, token), or
        sink.on_connected(None, UE_CONNECT_FAILED / UE_CONNECT_TIMEOUT, token) (``token``
        lets the sink tell this try's answer from a late one for an earlier try). Returns 0.
        With max_connections open (after closing an idle one if any, to make room), the sink
        waits for a slot instead (returns 1; the same callbacks follow once it has one,
        unless cancel_wait), or, with max_pending_requests already waiting, returns -1 and
        nothing follows."""
        cdef Endpoint other
        cdef Upstream idle
        if self.connections >= self.max_connections:
            for other in self.endpoints:
                if other.idle:
                    idle = other.idle.pop(0)        # the oldest: LIFO reuse keeps it coldest
                    idle.state = U_CLOSED
                    idle.transport.close()
                    idle.counted = False
                    self.connections -= 1
                    break
        if self.connections >= self.max_connections:
            if len(self.waiters) >= self.max_pending:
                return -1
            self.waiters.append((sink, ep, token))
            return 1
        self.connections += 1
        if self.ssl_context is None:
            coro = self.loop.create_connection(partial(Upstream, ep), ep.connect_host, ep.port)
        else:
            coro = self.loop.create_connection(
                partial(Upstream, ep), ep.connect_host, ep.port, ssl=self.ssl_context,
                server_hostname=self.server_name or ep.host)
        task = self.loop.create_task(coro)
        timer = self.loop.call_later(self.connect_timeout, task.cancel)
        task.add_done_callback(partial(self._connected, sink, timer, token, ep))
        return 0

    cdef bint cancel_wait(self, ResponseSink sink):
        """Takes sink out of the queue for a connection slot; False if it was not in it."""
        if self.waiters:
            for i, w in enumerate(self.waiters):
                if w[0] is sink:
                    del self.waiters[i]
                    return True
        return False

    cdef void _slot_freed(self):
        """A connection closed or a connect failed: the first waiters may connect."""
        self.connections -= 1
        while self.waiters and self.connections < self.max_connections:
            sink, ep, token = self.waiters.popleft()
            self.connect(ep, sink, token)

    cdef bint _hand_over(self, Upstream up):
        """A connection coming back to its pool goes to the first request waiting for a
        slot on its endpoint instead; True if one took it."""
        cdef ResponseSink sink
        for i, w in enumerate(self.waiters):
            if w[1] is up.ep:
                del self.waiters[i]
                sink = w[0]
                up.state = U_ACTIVE
                up.reused = True
                sink.on_connected(up, 0, w[2])
                return True
        return False

    def _connected(self, ResponseSink sink, timer, unsigned long token, Endpoint ep, task):
        cdef Upstream up
        timer.cancel()
        if task.cancelled():
            self._slot_freed()
            self.note_error(UE_CONNECT_TIMEOUT)
            sink.on_connected(None, UE_CONNECT_TIMEOUT, token)
        elif task.exception() is not None:
            self._slot_freed()
            if isinstance(task.exception(), ssl.SSLError):
                log.warning("cluster %s: TLS to %s (name %s) failed: %s", self.name,
                            ep.address, self.server_name or ep.host, task.exception())
            self.note_error(UE_CONNECT_FAILED)
            sink.on_connected(None, UE_CONNECT_FAILED, token)
        else:
            up = task.result()[1]
            if up.state == U_CLOSED or up.transport.is_closing():
                # the upstream closed it before a byte was sent: a connect failure
                self._slot_freed()
                self.note_error(UE_CONNECT_FAILED)
                sink.on_connected(None, UE_CONNECT_FAILED, token)
                return
            up.counted = True
            up.state = U_ACTIVE
            sink.on_connected(up, 0, token)


cdef class Upstream(Timed):
    """Protocol of one upstream connection. send() writes a request head; the response is
    parsed (1xx skipped) and streamed to the sink; the connection then returns to its pool
    when both sides allow keep-alive and the exchange completed cleanly."""

    def __cinit__(self, Endpoint ep):
        self.ep = ep
        self.state = U_CONNECTING

    def connection_made(self, transport):
        self.transport = transport
        self._write = transport.write
        self.ep.connections += 1
        self.ep.cluster.clock.watch(self)

    def connection_lost(self, exc):
        cdef int prev = self.state
        self.state = U_CLOSED
        self.ep.connections -= 1
        self.ep.cluster.clock.unwatch(self)
        if self.counted:
            self.counted = False
            self.ep.cluster._slot_freed()
        if prev == U_IDLE:
            try:
                self.ep.idle.remove(self)
            except ValueError:
                pass
        elif prev == U_ACTIVE and self.sink is not None:
            if exc is None and self.head_done and self.body_mode == BODY_CLOSE:
                self.keep_alive = False
                self._end()
            else:
                self._fail(UE_RESET)

    def eof_received(self):
        return False

    def pause_writing(self):
        if self.sink is not None:
            if not self.request_done:   # the upstream must take the request body in time
                self.deadline = self.ep.cluster.clock.now + self.ep.cluster.response_timeout
            self.sink.pause_request_body(True)

    def resume_writing(self):
        if self.sink is not None:
            if not self.request_done:
                self.deadline = 0
            self.sink.pause_request_body(False)

    def data_received(self, bytes data):
        if self.state != U_ACTIVE or self.sink is None:
            self.transport.close()      # unsolicited bytes: never reuse
            return
        self.got_bytes = True
        self.deadline = self.ep.cluster.clock.now + self.ep.cluster.response_timeout
        if self.head_done:
            self._body(data, 0)
        else:
            if self.buf is None:
                self.buf = data
                self.pos = 0
            else:
                self.buf = self.buf[self.pos:] + data
                self.pos = 0
            self._parse_head()
        if self.sink is not None:
            self.sink.flush()       # what this read produced leaves in one write

    cdef void on_deadline(self):
        if self.state == U_IDLE:
            self.transport.close()
        elif self.state == U_ACTIVE:
            self._fail(UE_TIMEOUT)

    cdef void send(self, ResponseSink sink, bytes head, bytes body, bint no_body):
        """Writes a request head, and ``body`` (bytes, or None) after it in the same write."""
        self.sink = sink
        self.state = U_ACTIVE
        self.no_body = no_body
        self.got_bytes = False
        self.head_done = False
        self.request_done = False
        self.buf = None
        self.pos = 0
        self.deadline = 0     # the response timeout runs once the whole request is sent
        if body is None:
            self._write(head)
        else:
            self.transport.writelines((head, body))

    cdef void write(self, object data):
        self._write(data)

    cdef void writelines(self, list data):
        self.transport.writelines(data)

    cdef void finish_request(self):
        self.request_done = True
        if not self.head_done:
            self.deadline = self.ep.cluster.clock.now + self.ep.cluster.response_timeout

    cdef void pause_reading(self, bint pause):
        if self.state != U_ACTIVE or pause == self.reading_paused:
            return
        self.reading_paused = pause
        # the upstream cannot be late while we are not reading it (the client is slow); it
        # still must take the rest of the request body in time
        if pause:
            if self.request_done:
                self.deadline = 0
            self.transport.pause_reading()
        else:
            if self.request_done:
                self.deadline = self.ep.cluster.clock.now + self.ep.cluster.response_timeout
            self.transport.resume_reading()

    cdef void abandon(self):
        """The downstream went away: this connection is mid-exchange, so it cannot be reused."""
        self.sink = None
        if self.state != U_CLOSED:
            self.state = U_CLOSED
            self.transport.abort()

    cdef void release(self):
        """Park in the endpoint's pool (or close if the pool is full)."""
        cdef Cluster cl = self.ep.cluster
        self.sink = None
        self.buf = None
        if self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()
        if cl.waiters and not self.transport.is_closing():
            if cl._hand_over(self):
                return
            self.state = U_CLOSED       # its slot goes to a request for another endpoint
            self.transport.close()
            return
        if len(self.ep.idle) >= cl.max_idle or self.transport.is_closing():
            self.state = U_CLOSED
            self.transport.close()
            return
        self.state = U_IDLE
        self.deadline = cl.clock.now + cl.idle_timeout
        self.ep.idle.append(self)

    cdef void _parse_head(self):
        cdef const char *base
        cdef Py_ssize_t start, n = PyBytes_GET_SIZE(self.buf)
        cdef int r
        while True:
            base = PyBytes_AS_STRING(self.buf)
            start = self.pos
            r = gw_parse_response(base + start, n - start, &_limits, &self.head, _fields)
            if r == -2:
                return
            if r < 0:
                self._fail(UE_BAD_RESPONSE)
                return
            self.pos = start + r
            if self.head.status < 200:
                if self.head.status == 101:    # we never offer an upgrade
                    self._fail(UE_BAD_RESPONSE)
                    return
                continue                       # interim response: skip (RFC 9110 §15.2)
            break
        if self.head.connection & GW_CONN_OTHER and connection_options(
                base + start, _fields, self.head.num_fields, NULL, True) is not None:
            self._fail(UE_BAD_RESPONSE)     # a Connection option would unframe the response
            return
        self.head_done = True
        self.keep_alive = (
            (self.head.connection & GW_CONN_CLOSE) == 0 if self.head.version_minor == 1
            else (self.head.connection & GW_CONN_KEEP_ALIVE) != 0)
        if self.no_body or self.head.status == 204 or self.head.status == 304:
            self.body_mode = BODY_NONE
        elif self.head.chunked:
            self.body_mode = BODY_CHUNKED
            gw_chunked_init(&self.chunked)
        elif self.head.content_length >= 0:
            self.body_mode = BODY_LENGTH if self.head.content_length > 0 else BODY_NONE
            self.remaining = self.head.content_length
        else:
            self.body_mode = BODY_CLOSE
        self.sink.on_response_head(self, base + start, _fields)
        if self.sink is None:
            return
        if self.body_mode == BODY_NONE:
            if self.pos < n:
                self.keep_alive = False     # bytes after a bodiless response: don't trust it
            self._end()
        else:
            self._body(self.buf, self.pos)
        self.buf = None

    cdef void _body(self, object data, Py_ssize_t start):
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data) - start
        cdef const char *base
        cdef ssize_t used
        cdef size_t doff, dlen
        if n <= 0:
            return
        if self.body_mode == BODY_LENGTH:
            if n < self.remaining:
                self.remaining -= n
                self.sink.on_response_data(data if start == 0 else data[start:])
                return
            if n > self.remaining:
                self.keep_alive = False     # more bytes than Content-Length announced
            self.sink.on_response_data(
                data if start == 0 and n == self.remaining else data[start:start + self.remaining])
            self.remaining = 0
            self._end()
        elif self.body_mode == BODY_CHUNKED:
            base = PyBytes_AS_STRING(data)
            while n > 0:
                used = gw_chunked_decode(&self.chunked, base + start, n, &doff, &dlen)
                if used < 0:
                    self._fail(UE_BAD_RESPONSE)
                    return
                if dlen:
                    self.sink.on_response_data(data[start + doff:start + doff + dlen])
                    if self.sink is None:
                        return
                start += used
                n -= used
                if self.chunked.done:
                    if n:
                        self.keep_alive = False
                    self._end()
                    return
        else:
            self.sink.on_response_data(data if start == 0 else data[start:])

    cdef void _end(self):
        cdef ResponseSink sink = self.sink
        if self.keep_alive and self.request_done and self.state == U_ACTIVE:
            self.release()
        else:
            self.sink = None
            if self.state != U_CLOSED:
                self.state = U_CLOSED
                self.transport.close()
        if sink is not None:
            sink.on_response_end()

    cdef void _fail(self, int error):
        cdef ResponseSink sink = self.sink
        self.sink = None
        if self.state != U_CLOSED:
            self.state = U_CLOSED
            self.transport.abort()
        if sink is not None:
            self.ep.cluster.note_error(error)
            sink.on_upstream_error(self, error)
