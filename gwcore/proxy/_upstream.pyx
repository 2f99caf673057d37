# distutils: sources = src_c/http1.c
"""Upstream side of the proxy engine: clusters of endpoints, a keep-alive connection pool per
endpoint, and the Upstream protocol that writes a request and parses and streams the response
(RFC 9112 §6.3 message body length) to a ResponseSink. No asyncio Task except to connect."""

from functools import partial

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int64_t

from gwcore.http._chttp1 cimport (
    GW_CONN_CLOSE, GW_CONN_KEEP_ALIVE, gw_chunked_decode, gw_chunked_init, gw_field, gw_limits,
    gw_parse_response,
)
from gwcore.http._wire cimport Clock, Timed

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
    cdef void on_upstream_ready(self, Upstream up):
        pass

    cdef void on_upstream_error(self, Upstream up, int error):
        pass

    cdef void on_response_head(self, Upstream up, const char *buf, const gw_field *fields):
        pass

    cdef void on_response_data(self, object data):
        pass

    cdef void flush_head(self):
        pass

    cdef void on_response_end(self):
        pass

    cdef void pause_request_body(self, bint pause):
        pass


cdef class Endpoint:
    """One upstream address of a cluster and its idle keep-alive connections (LIFO)."""

    def __cinit__(self, Cluster cluster, str host, int port):
        self.cluster = cluster
        self.host = host
        self.port = port
        self.authority = (f"[{host}]:{port}" if ":" in host else f"{host}:{port}").encode()
        self.idle = []

    def __repr__(self):
        return f"Endpoint({self.authority.decode()}, idle={len(self.idle)})"

    @property
    def idle_count(self) -> int:
        return len(self.idle)


cdef class Cluster:
    """A named set of endpoints chosen round robin, with their pools and timeouts (seconds)."""

    def __cinit__(self, str name, list addresses, Clock clock, loop, *,
                  double connect_timeout, double response_timeout, int max_idle,
                  double idle_timeout):
        self.name = name
        self.clock = clock
        self.loop = loop
        self.connect_timeout = connect_timeout
        self.response_timeout = response_timeout
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.endpoints = [Endpoint(self, host, port) for host, port in addresses]
        self.rr = 0

    def __repr__(self):
        return f"Cluster({self.name!r}, {self.endpoints!r})"

    cdef Endpoint next_endpoint(self):
        cdef Endpoint ep = self.endpoints[self.rr % len(self.endpoints)]
        self.rr += 1
        return ep

    cdef Upstream acquire(self, Endpoint ep):
        """A pooled connection to ep, or None (the caller then connects)."""
        cdef Upstream up
        while ep.idle:
            up = ep.idle.pop()
            if up.state == U_IDLE and not up.transport.is_closing():
                up.reused = True
                return up
        return None

    cdef void connect(self, Endpoint ep, ResponseSink sink, int attempts_left):
        """Slow path: open a connection; sink.on_upstream_ready(up) or, once attempts_left
        endpoints have failed, sink.on_upstream_error(None, UE_CONNECT_*)."""
        task = self.loop.create_task(
            self.loop.create_connection(partial(Upstream, ep), ep.host, ep.port))
        timer = self.loop.call_later(self.connect_timeout, task.cancel)
        task.add_done_callback(partial(self._connected, ep, sink, attempts_left, timer))

    def _connected(self, Endpoint ep, ResponseSink sink, int attempts_left, timer, task):
        cdef Upstream up
        cdef int error
        timer.cancel()
        if task.cancelled():
            error = UE_CONNECT_TIMEOUT
        elif task.exception() is not None:
            error = UE_CONNECT_FAILED
        else:
            up = task.result()[1]
            up.state = U_ACTIVE
            sink.on_upstream_ready(up)
            return
        if attempts_left > 1:
            self.connect(self.next_endpoint(), sink, attempts_left - 1)
        else:
            sink.on_upstream_error(None, error)


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
        self.ep.cluster.clock.watch(self)

    def connection_lost(self, exc):
        cdef int prev = self.state
        self.state = U_CLOSED
        self.ep.cluster.clock.unwatch(self)
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
            self.sink.pause_request_body(True)

    def resume_writing(self):
        if self.sink is not None:
            self.sink.pause_request_body(False)

    def data_received(self, bytes data):
        if self.state != U_ACTIVE or self.sink is None:
            self.transport.close()      # unsolicited bytes: never reuse
            return
        self.got_bytes = True
        self.deadline = self.ep.cluster.clock.now + self.ep.cluster.response_timeout
        if self.head_done:
            self._body(data, 0)
            return
        if self.buf is None:
            self.buf = data
            self.pos = 0
        else:
            self.buf = self.buf[self.pos:] + data
            self.pos = 0
        self._parse_head()

    cdef void on_deadline(self):
        if self.state == U_IDLE:
            self.transport.close()
        elif self.state == U_ACTIVE:
            self._fail(UE_TIMEOUT)

    cdef void send(self, ResponseSink sink, bytes head, bint no_body):
        self.sink = sink
        self.state = U_ACTIVE
        self.no_body = no_body
        self.got_bytes = False
        self.head_done = False
        self.request_done = False
        self.buf = None
        self.pos = 0
        self.deadline = self.ep.cluster.clock.now + self.ep.cluster.response_timeout
        self._write(head)

    cdef void write(self, object data):
        self.deadline = self.ep.cluster.clock.now + self.ep.cluster.response_timeout
        self._write(data)

    cdef void writelines(self, list data):
        self.deadline = self.ep.cluster.clock.now + self.ep.cluster.response_timeout
        self.transport.writelines(data)

    cdef void finish_request(self):
        self.request_done = True

    cdef void pause_reading(self, bint pause):
        if self.state != U_ACTIVE or pause == self.reading_paused:
            return
        self.reading_paused = pause
        if pause:
            self.transport.pause_reading()
        else:
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
            if self.sink is not None:
                self.sink.flush_head()     # no body bytes in this read: don't hold the head
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
            sink.on_upstream_error(self, error)
