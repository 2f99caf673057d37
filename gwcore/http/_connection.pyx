# distutils: sources = src_c/path.c
"""Downstream connection protocol: one client connection, driven by data_received.

Requests are handled one at a time in arrival order (pipelined ones wait in the buffer, so
responses keep request order, RFC 9112 §9.3.2). Each request head is parsed in C, routed,
rewritten for the upstream (hop-by-hop fields out, X-Forwarded-*/Via/X-Request-Id in) and
sent on a pooled upstream connection; bodies stream both ways with back-pressure."""

import logging
import os

from gwcore.filters.base import Response, reason, run_request_filters
from gwcore.http._parser import METHOD_NAMES
from gwcore.proxy._router cimport Route, Router
from gwcore.proxy._router import split_absolute
from gwcore.proxy._exchange cimport Exchange, new_exchange, now_ns
from gwcore.http._chttp1 cimport GW_FK_CONTENT_LENGTH

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint32_t
from libc.string cimport memchr, memcmp, memcpy, memset

from gwcore.http._chttp1 cimport (
    GW_CONN_CLOSE, GW_CONN_KEEP_ALIVE, GW_CONN_OTHER, GW_FK_EXPECT, GW_FK_HOST, GW_FK_X_FORWARDED_FOR,
    GW_FK_X_FORWARDED_HOST, GW_FK_X_FORWARDED_PROTO, GW_FK_X_REQUEST_ID, GW_M_DELETE, GW_M_GET,
    GW_M_CONNECT, GW_M_HEAD, GW_M_OPTIONS, GW_M_OTHER, GW_M_PUT, GW_M_TRACE, gw_chunked, gw_field,
    gw_head, gw_limits,
)
from gwcore.http._parser cimport (
    gw_chunked_decode, gw_chunked_init, gw_find_field, gw_http_error_name, gw_http_error_status,
    gw_parse_request, request_fields, request_view,
)
from gwcore.http._cpath cimport (
    GW_PATH_DECODE_SLASHES, GW_PATH_MERGE_SLASHES, GW_PATH_REJECT_SLASHES, gw_normalize_path,
    gw_path_error_name, gw_path_error_status, gw_path_status,
)
from gwcore.http._wire cimport (
    Clock, build_head, mark_connection_options, protected_connection_option,
)
from gwcore.proxy._upstream cimport (
    BODY_CHUNKED, BODY_CLOSE, HASH_COOKIE, HASH_HEADER, HASH_JWT_CLAIM, HASH_PATH,
    HASH_SOURCE_IP, RETRY_502, RETRY_503, RETRY_504, RETRY_CONNECT_FAILURE, RETRY_RESET,
    RETRY_TIMEOUT, Cluster, Endpoint, ResponseSink, UE_CONNECT_FAILED, UE_CONNECT_TIMEOUT,
    UE_RESET, UE_TIMEOUT, Upstream,
)

cdef enum DState:
    D_HEAD = 0          # reading a request head (or idle between requests)
    D_CONNECTING = 1    # waiting for an upstream connection
    D_BODY = 2          # streaming the request body upstream
    D_WAIT = 3          # request sent; waiting for the response to finish
    D_CLOSED = 4
    D_FILTERING = 5     # a request filter is waiting (slow path)
    D_LINGER = 6        # answered and half-closed; discarding the rest of a request body
    D_BUFFER = 7        # receiving a small request body whole before choosing an upstream
    D_LOCAL = 8         # streaming a filter's Response body (an iterable or async iterator)

cdef enum Out:
    OUT_RAW = 0         # bytes as received (Content-Length or no body)
    OUT_CHUNKED = 1     # re-framed as chunked
    OUT_CLOSE = 2       # delimited by closing the connection (HTTP/1.0 client)

# reasons the downstream read side is paused (bits)
cdef enum Pause:
    P_CONNECTING = 1
    P_UPSTREAM_FULL = 2
    P_PIPELINE_FULL = 4
    P_FILTERING = 8
    P_LOCAL = 16

cdef enum:
    MAX_FIELDS = 1000               # config bound for max_headers
    PIPELINE_BUFFER = 64 * 1024     # buffered bytes of waiting requests before pausing reads
    LINGER_SECONDS = 2              # NGINX's lingering close: see _close

# Request heads are parsed and rewritten synchronously: one field array per worker.
cdef gw_field _fields[MAX_FIELDS]
cdef unsigned char _drop[MAX_FIELDS]
cdef char _path[1 << 20]        # normalised path; targets are bounded by max_head_bytes ≤ 1 MiB

cdef unsigned int DROP_ALWAYS = (
    (1u << GW_FK_EXPECT) | (1u << GW_FK_X_FORWARDED_FOR) | (1u << GW_FK_X_FORWARDED_PROTO)
    | (1u << GW_FK_X_FORWARDED_HOST))
cdef unsigned int DROP_REQUEST_ID = 1u << GW_FK_X_REQUEST_ID

log = logging.getLogger("gwcore")

cdef tuple _METHODS = METHOD_NAMES       # interned method bytes by enum gw_method
cdef bytes CRLF = b"\r\n"
cdef bytes HTTP11 = b" HTTP/1.1\r\n"
cdef bytes HTTP11_STATUS = b"HTTP/1.1 "
cdef bytes EMPTY = b""
cdef bytes HOST_PREFIX = b"Host: "
cdef bytes XFH_PREFIX = b"X-Forwarded-Host: "
cdef bytes VIA = b"Via: 1.1 gwcore\r\n"
cdef bytes VIA10 = b"Via: 1.0 gwcore\r\n"     # Via names the protocol received (§7.6.3)
cdef bytes TE_CHUNKED = b"Transfer-Encoding: chunked\r\n"
cdef bytes CONN_CLOSE = b"Connection: close\r\n"
cdef bytes CONN_KEEP_ALIVE = b"Connection: keep-alive\r\n"
cdef bytes CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
cdef tuple RETRY_AFTER = ((b"Retry-After", b"1"),)
cdef bytes LAST_CHUNK = b"0\r\n\r\n"

cdef bytes _chunk_line(Py_ssize_t n):
    """``<size in hex>\r\n``, the chunk-size line of the chunked coding (RFC 9112 §7.1)."""
    cdef char line[20]
    cdef char digits[16]
    cdef int k = 0, w = 0
    cdef size_t v = <size_t>n
    while True:
        digits[k] = b"0123456789abcdef"[v & 15]
        k += 1
        v >>= 4
        if v == 0:
            break
    while k:
        k -= 1
        line[w] = digits[k]
        w += 1
    line[w] = 13
    line[w + 1] = 10
    return PyBytes_FromStringAndSize(line, w + 2)


cdef str _end_of(int status, tuple headers):
    """How an exchange answered by the gateway itself ended, by its status."""
    if status == 502:
        return "upstream_error"
    if status == 504 or status == 408:
        return "timeout"
    if status == 503 and headers is RETRY_AFTER:
        return "overflow"
    return "local"


cdef inline bytes _path_part(bytes target):
    """The path of an origin-form request-target: up to "?" (RFC 9112 §3.2.1)."""
    cdef const char *t = PyBytes_AS_STRING(target)
    cdef const char *q = <const char *>memchr(t, 63, PyBytes_GET_SIZE(target))
    return target if q == NULL else PyBytes_FromStringAndSize(t, q - t)


cdef inline bint _request_id_ok(const char *p, uint32_t n) noexcept:
    """1..128 of [A-Za-z0-9._:-]: anything else is replaced, never forwarded."""
    cdef uint32_t i
    cdef unsigned char c
    if n == 0 or n > 128:
        return False
    for i in range(n):
        c = <unsigned char>p[i]
        if not (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c == 46 or c == 95
                or c == 58 or c == 45):
            return False
    return True


cdef class ListenerRuntime:
    """What every connection of one listener shares: limits, timeouts (seconds), router."""

    cdef gw_limits limits
    cdef int64_t max_body, buffer_body
    cdef double header_timeout, idle_timeout, filter_timeout
    cdef unsigned int path_flags
    cdef Router router
    cdef Clock clock
    cdef bytes proto_line
    cdef bytes id_prefix        # 12 hex digits, random per worker
    cdef const char *id_prefix_c
    cdef unsigned long long next_id
    cdef set conns
    cdef public tuple global_on_log     # the global filters' on_log: requests without a route
    cdef readonly bint draining
    cdef double drain_grace

    def __cinit__(self, Router router, Clock clock, *, int max_head_bytes, int max_headers,
                  int max_target_bytes, int64_t max_body_bytes, double header_timeout,
                  double idle_timeout, int64_t buffer_body_bytes=64 * 1024,
                  double filter_timeout=5.0, bint merge_slashes=True,
                  str escaped_slashes="decode", str scheme="http"):
        if not 1 <= max_headers <= MAX_FIELDS:
            raise ValueError(f"max_headers must be 1..{MAX_FIELDS}")
        self.limits.max_head_bytes = max_head_bytes
        self.limits.max_fields = max_headers
        self.limits.max_target_len = max_target_bytes
        self.max_body = max_body_bytes
        self.buffer_body = buffer_body_bytes
        self.filter_timeout = filter_timeout
        self.path_flags = ((GW_PATH_MERGE_SLASHES if merge_slashes else 0)
                           | {"decode": GW_PATH_DECODE_SLASHES, "keep": 0,
                              "reject": GW_PATH_REJECT_SLASHES}[escaped_slashes])
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.router = router
        self.clock = clock
        self.proto_line = f"X-Forwarded-Proto: {scheme}\r\n".encode()
        self.id_prefix = os.urandom(6).hex().encode()
        self.id_prefix_c = self.id_prefix
        self.next_id = 0
        self.conns = set()
        self.global_on_log = ()

    def protocol(self):
        """Protocol factory for loop.create_server."""
        return Downstream(self)

    @property
    def open_connections(self) -> int:
        """Downstream connections currently open on this listener (in this worker)."""
        return len(self.conns)

    def start_drain(self, double grace=1.0):
        """Graceful shutdown of this listener's connections: every response from now on
        carries ``Connection: close`` and ends its connection; a connection with no request
        under way is closed once idle for ``grace`` seconds (not at once: a request may
        already be on the wire). Stopping accepts is the caller's job (server.close())."""
        cdef Downstream c
        self.draining = True
        self.drain_grace = grace
        for c in list(self.conns):
            c.drain(grace)

    def abort_all(self):
        """The drain ran out of time: every connection is cut, and the requests still under
        way end as ``draining`` (their on_log runs)."""
        cdef Downstream c
        for c in list(self.conns):
            if c.state != D_CLOSED:
                c._finish("draining")
                c._close(True)

    cdef bytes request_id_line(self):
        """``X-Request-Id: <12 hex, per worker>-<counter in hex>`` and its CRLF."""
        cdef char line[64]
        cdef char digits[16]
        cdef int n = 0, k = 0
        cdef unsigned long long v
        self.next_id += 1
        v = self.next_id
        while True:
            digits[k] = b"0123456789abcdef"[v & 15]
            k += 1
            v >>= 4
            if v == 0:
                break
        memcpy(line, b"X-Request-Id: ", 14)
        memcpy(line + 14, self.id_prefix_c, 12)
        line[26] = 45       # "-"
        n = 27
        while k:
            k -= 1
            line[n] = digits[k]
            n += 1
        line[n] = 13
        line[n + 1] = 10
        return PyBytes_FromStringAndSize(line, n + 2)


cdef class Downstream(ResponseSink):
    """Protocol of one client connection (see the module docstring); made by
    ListenerRuntime.protocol for each accepted connection."""

    cdef ListenerRuntime lr
    cdef object transport
    cdef object _write
    cdef bytes client_ip
    cdef bytes buf
    cdef Py_ssize_t pos
    cdef int state
    cdef unsigned int paused
    cdef bint keep_alive, http10, head_method, idempotent, peer_eof
    cdef bint body_chunked, response_started, retried, head_started, partial_head
    cdef bint writing_paused    # the client's send buffer is full (asyncio flow control)
    cdef bint body_unread       # the current request's body has not been received whole
    cdef int after_connect
    cdef bytes xff_line
    cdef list pending           # response bytes of this upstream read, for one writev
    cdef Exchange ex            # the request under way (None between requests)
    cdef tuple waiting          # while a filter awaits: what the request resumes with
    cdef str client_str
    cdef Endpoint ep            # endpoint of the current try
    cdef int tries
    cdef bint has_body
    cdef bytes hash_key
    cdef int64_t body_remaining, body_seen
    cdef gw_chunked chunked
    cdef Upstream up
    cdef Cluster cluster
    cdef bytes up_head
    cdef int out_mode
    cdef object req_body        # body bytes written right after the head (buffered), or None
    cdef bint body_buffered     # req_body is the whole body: a retry can send it again
    cdef list body_parts        # D_BUFFER: the body received so far
    cdef object request_timer   # the route's request timeout (a TimerHandle), or None
    cdef tuple taps             # the route's on_response_body phases, while a response streams
    cdef unsigned long try_token    # tells this try's connect result from a late earlier one
    cdef object local_body      # D_LOCAL: the iterator of a sync iterable body
    cdef object local_task      # D_LOCAL: the task pumping an async iterator body
    cdef object drain_waiter    # D_LOCAL: a future the async pump awaits while writing is paused
    cdef bint local_chunked, local_close

    def __cinit__(self, ListenerRuntime lr):
        self.lr = lr
        self.state = D_HEAD

    # -- asyncio protocol ---------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        self._write = transport.write
        peer = transport.get_extra_info("peername")
        self.client_str = peer[0] if peer else "unknown"
        self.client_ip = self.client_str.encode()
        self.xff_line = b"X-Forwarded-For: " + self.client_ip + CRLF
        self.lr.clock.watch(self)
        self.lr.conns.add(self)
        self.head_started = True     # the first head is timed from the accept
        self.deadline = self.lr.clock.now + self.lr.header_timeout
        if self.lr.draining:
            self.drain(self.lr.drain_grace)

    def connection_lost(self, exc):
        if self.state == D_FILTERING:
            self.waiting[4].cancel()      # nobody waits for this filter any more
            self.waiting = None
        if self.local_task is not None:
            self.local_task.cancel()        # the async body has nobody to go to
            self.local_task = None
        self.state = D_CLOSED
        self.lr.clock.unwatch(self)
        self.lr.conns.discard(self)
        if self.up is not None:
            self.up.abandon()
            self.up = None
        self._end_try()
        self._finish("client_abort")

    cdef bint _last(self):
        """The client half-closed and nothing more is buffered: this response is the last."""
        return self.peer_eof and (self.buf is None or self.pos >= PyBytes_GET_SIZE(self.buf))

    cdef void drain(self, double grace):
        cdef double at = self.lr.clock.now + grace
        if self.state == D_HEAD and (self.buf is None or self.pos == PyBytes_GET_SIZE(self.buf)):
            if self.deadline == 0 or self.deadline > at:
                self.deadline = at

    def eof_received(self):
        self.peer_eof = True
        if self.state == D_LINGER:
            return False        # the client is done sending: close now
        if self.state == D_HEAD and (self.buf is None or self.pos == PyBytes_GET_SIZE(self.buf)):
            return False
        if (self.state == D_BODY or self.state == D_HEAD or self.state == D_BUFFER
                or self.after_connect == D_BODY):
            self._close(True)       # the request can no longer complete
            return False
        return True                 # half-close: still answer the request in flight

    def pause_writing(self):
        self.writing_paused = True
        if self.up is not None:
            self.up.pause_reading(True)
        if self.state == D_WAIT or self.state == D_BODY:
            # a client that stops reading gets idle_timeout to resume
            self.deadline = self.lr.clock.now + self.lr.idle_timeout

    def resume_writing(self):
        self.writing_paused = False
        if self.up is not None:
            self.up.pause_reading(False)
        if self.state == D_WAIT:
            self.deadline = 0
        elif self.state == D_LOCAL:
            self.deadline = 0
            if self.drain_waiter is not None:
                if not self.drain_waiter.done():
                    self.drain_waiter.set_result(None)
            else:
                self._pump()

    def data_received(self, bytes data):
        if self.state == D_CLOSED or self.state == D_LINGER:
            return
        if self.buf is None or self.pos >= PyBytes_GET_SIZE(self.buf):
            self.buf = data
        else:
            self.buf = self.buf[self.pos:] + data
        self.pos = 0
        if (self.partial_head and self.state == D_HEAD and b"\n" not in data
                and PyBytes_GET_SIZE(self.buf) <= self.lr.limits.max_head_bytes):
            return      # a head arriving in pieces is parsed again only when a line ends
        self._process()

    # -- request side -------------------------------------------------------------------

    cdef void _process(self):
        cdef Py_ssize_t n
        while True:
            n = PyBytes_GET_SIZE(self.buf) - self.pos if self.buf is not None else 0
            if self.state == D_HEAD:
                if n == 0:
                    self.buf = None
                    return
                if not self._read_head(n):
                    return
            elif self.state == D_BODY:
                if n == 0 or not self._forward_body(n):
                    return
            elif self.state == D_BUFFER:
                if n == 0 or not self._buffer_body(n):
                    return
            else:
                # only while waiting for a response are the buffered bytes later requests;
                # while connecting or filtering they may be this request's body
                if n > PIPELINE_BUFFER and self.state == D_WAIT:
                    self._pause(P_PIPELINE_FULL, True)
                return

    cdef bint _read_head(self, Py_ssize_t n):
        """Parses the head at pos; True when a request was started and work may continue."""
        cdef gw_head h
        cdef const char *base = PyBytes_AS_STRING(self.buf) + self.pos
        cdef int r = gw_parse_request(base, n, &self.lr.limits, &h, _fields)
        self.partial_head = r == -2
        if r == -2:
            if not self.head_started:
                self.head_started = True
                self.deadline = self.lr.clock.now + self.lr.header_timeout
            return False
        if r < 0:
            self._error(gw_http_error_status(h.error), gw_http_error_name(h.error).decode(), True)
            return False
        self.pos += r
        self._start(base, &h)
        return self.state != D_CLOSED

    cdef void _start(self, const char *base, gw_head *h):
        cdef bytes method = (<bytes>_METHODS[h.method] if h.method != GW_M_OTHER else
                             PyBytes_FromStringAndSize(base + h.method_off, h.method_len))
        cdef bytes target = PyBytes_FromStringAndSize(base + h.target_off, h.target_len)
        cdef bytes host = b""
        cdef bint has_body = h.chunked or h.content_length > 0
        cdef Exchange ex = new_exchange(method, target, self.client_str)
        self.ex = ex
        self.body_unread = has_body
        self.deadline = 0
        self.head_started = False
        self.after_connect = D_HEAD
        self.http10 = h.version_minor == 0
        self.keep_alive = ((h.connection & GW_CONN_CLOSE) == 0 if not self.http10
                           else (h.connection & GW_CONN_KEEP_ALIVE) != 0)
        self.head_method = h.method == GW_M_HEAD
        self.idempotent = h.method in (GW_M_GET, GW_M_HEAD, GW_M_OPTIONS, GW_M_PUT,
                                       GW_M_DELETE, GW_M_TRACE)
        if h.connection & GW_CONN_OTHER:
            bad = protected_connection_option(base, _fields, h.num_fields, False)
            if bad is not None:
                self._error(400, f"Connection names {bad.decode()}", True)
                return
        if h.host_index >= 0:
            host = PyBytes_FromStringAndSize(base + _fields[h.host_index].value_off,
                                             _fields[h.host_index].value_len)
        if target[0] != 47 and b"://" in target:     # absolute-form (RFC 9112 §3.2.2)
            target, authority = split_absolute(target, host)
            if not authority or b"@" in authority:
                self._error(400, "absolute-form target without a valid authority", True)
                return
            if authority != host:
                host = authority
                h.host_index = -2       # replace the received Host with the target's
        if h.method == GW_M_CONNECT or h.method == GW_M_TRACE:
            self._error(501 if h.method == GW_M_CONNECT else 405, "method not supported",
                        has_body)
            return
        cdef bytes path = self._normalized_path(target)
        if path is None:
            return
        ex.path = path
        cdef Route route = self.lr.router.match(host, path, method)
        if route is None:
            self._error(404, "no route", has_body)
            return
        ex.route = route
        ex.route_name = route.name
        ex.cluster = route.cluster
        if h.content_length > self.lr.max_body:
            self._error(413, "body over limit", True)
            return
        if route.forward_normalized_path and target[0] == 47:
            target = path + target[PyBytes_GET_SIZE(_path_part(target)):]
        self.cluster = route.cluster
        if route.on_request:
            self._filter(base, h, route, method, target, host, path)
        else:
            self._proceed(base, h, method, target, host, None)

    cdef bytes _normalized_path(self, bytes target):
        """The path routes match and filters see (RFC 3986 §6.2.2 with the listener's
        path_normalization; src_c/path.c), or None after answering 400."""
        cdef gw_path_status st
        cdef bytes path
        cdef ssize_t n
        if PyBytes_AS_STRING(target)[0] != 47:
            return target       # asterisk-form: routed by Host only
        path = _path_part(target)
        n = gw_normalize_path(PyBytes_AS_STRING(path), PyBytes_GET_SIZE(path), _path,
                              sizeof(_path), self.lr.path_flags, &st)
        if n < 0:
            self._error(gw_path_error_status(st.error), gw_path_error_name(st.error).decode(),
                        True)
            return None
        return path if st.same else PyBytes_FromStringAndSize(_path, n)

    cdef void _filter(self, const char *base, gw_head *h, route, bytes method, bytes target,
                      bytes host, bytes path):
        """Runs the route's on_request phases on a Request view of the parsed head (its
        fields copied, not parsed again); when a filter waits, the head is restored from
        that view afterwards (_filtered)."""
        cdef Exchange ex = self.ex
        request = request_view(self.buf, base - PyBytes_AS_STRING(self.buf), h,
                               self.pos - (base - PyBytes_AS_STRING(self.buf)), _fields)
        request.path = path
        ex.request = request
        try:
            result = run_request_filters(ex, route.on_request)
        except Exception:
            log.exception("request filter failed")
            self._error(500, "filter error", True)
            return
        if result is None:
            self._proceed(base, h, method, target, host, ex)
        elif isinstance(result, Response):
            self._local(result, h.chunked or h.content_length > 0)
        else:
            # the future at [4] (wraparound is off: no negative indexes in this module)
            self.waiting = (method, target, host, h.host_index == -2, result)
            self.state = D_FILTERING
            self.deadline = self.lr.clock.now + self.lr.filter_timeout
            self._pause(P_FILTERING, True)
            result.add_done_callback(self._filtered)

    def _filtered(self, fut):
        cdef gw_head h
        cdef const char *base
        if self.state != D_FILTERING or self.waiting[4] is not fut:
            return              # the client went away meanwhile, or this is an earlier wait
        method, target, host, replace_host, _ = self.waiting
        self.waiting = None
        self.state = D_HEAD
        self.deadline = 0
        self._pause(P_FILTERING, False)
        if fut.cancelled() or fut.exception() is not None:
            if not fut.cancelled():
                log.error("request filter failed", exc_info=fut.exception())
            self._error(500, "filter error", True)
            return
        base = request_fields(self.ex.request, &h, _fields)
        if fut.result() is not None:
            self._local(fut.result(), h.chunked or h.content_length > 0)
        else:
            if replace_host:
                h.host_index = -2
            self._proceed(base, &h, method, target, host, self.ex)
        self._process()

    cdef void _local(self, response, bint body_pending):
        """Answers a filter's Response; closes when the request body was not read. A body
        that is not bytes streams (_pump, _pump_async)."""
        cdef bint close = body_pending or not self.keep_alive or self._last() \
            or self.lr.draining
        body = response.body
        cdef bytes data
        if not isinstance(body, bytes):
            self._local_stream(response, close)
            return
        data = response.encode_head(close, len(body))
        if not self.head_method:
            data += body
        if self.ex is not None:
            self.ex.status = response.status
            self.ex.bytes_sent = len(data)
        self._finish("local")
        self._write(data)
        if close:
            self._close(False)
        else:
            self._next_request()

    cdef void _local_stream(self, response, bint close):
        """Starts streaming a Response whose body is an iterable or an async iterator of
        bytes, with back-pressure: chunked for HTTP/1.1 unless it has a Content-Length,
        delimited by the close for HTTP/1.0."""
        length = response.headers.get(b"content-length")
        cdef object n = int(length) if length is not None and length.isdigit() else None
        if n is None and self.http10:
            close = True
        self.local_close = close
        self.local_chunked = n is None and not close
        head = response.encode_head(close, n)
        self.ex.status = response.status
        self.ex.bytes_sent = len(head)
        self._write(head)
        self.state = D_LOCAL
        self._pause(P_LOCAL, True)
        body = response.body
        if self.head_method:
            self._local_done()
        elif hasattr(body, "__aiter__"):
            self.local_task = self.lr.clock.loop.create_task(self._pump_async(body))
        else:
            try:
                self.local_body = iter(body)
            except TypeError:
                log.error("filter Response body is %s, not bytes or an iterable of bytes",
                          type(body).__name__)
                self._finish("local")
                self._close(True)
                return
            self._pump()

    cdef void _local_chunk(self, chunk):
        cdef Py_ssize_t n = len(chunk)
        if n == 0:
            return
        self.ex.bytes_sent += n
        if self.local_chunked:
            self.transport.writelines((_chunk_line(n), chunk, CRLF))
        else:
            self._write(chunk)

    cdef void _pump(self):
        """Writes from a sync iterable body until the client's buffer is full or it ends."""
        it = self.local_body
        while self.state == D_LOCAL and not self.writing_paused:
            try:
                chunk = next(it)
            except StopIteration:
                self._local_done()
                return
            except Exception:
                log.exception("filter Response body failed")
                self._finish("local")
                self._close(True)       # never pass a cut body as whole
                return
            self._local_chunk(chunk)
        if self.state == D_LOCAL:
            self.deadline = self.lr.clock.now + self.lr.idle_timeout

    async def _pump_async(self, body):
        loop = self.lr.clock.loop
        try:
            async for chunk in body:
                if self.state != D_LOCAL:
                    return
                self._local_chunk(chunk)
                while self.writing_paused and self.state == D_LOCAL:
                    self.deadline = self.lr.clock.now + self.lr.idle_timeout
                    self.drain_waiter = loop.create_future()
                    await self.drain_waiter
                    self.drain_waiter = None
        except Exception:
            if self.state == D_LOCAL:
                log.exception("filter Response body failed")
                self._finish("local")
                self._close(True)
            return
        if self.state == D_LOCAL:
            self._local_done()

    cdef void _local_done(self):
        self.local_body = None
        self.local_task = None
        self.drain_waiter = None
        if self.local_chunked:
            self._write(LAST_CHUNK)
        self._finish("local")
        if self.local_close:
            self._close(False)
        else:
            self._next_request()
            self._process()

    cdef void _proceed(self, const char *base, gw_head *h, bytes method, bytes target,
                       bytes host, ex):
        cdef bint has_body = h.chunked or h.content_length > 0
        self.has_body = has_body
        self.tries = 0
        self.hash_key = (self._hash_key(base, h, target, ex)
                         if self.cluster.balancer.is_hash() else None)
        self.up_head = self._upstream_head(base, h, method, target, host, ex)
        self.body_chunked = h.chunked
        self.body_remaining = h.content_length if h.content_length > 0 else 0
        self.body_seen = 0
        self.req_body = None
        self.body_buffered = False
        self.retried = False
        if h.chunked:
            gw_chunked_init(&self.chunked)
        if h.expect_continue and has_body and not self.http10:
            self._write(CONTINUE)
        if has_body:        # the body must keep arriving (re-armed by each read)
            self.deadline = self.lr.clock.now + self.lr.idle_timeout
        if has_body and (h.chunked or h.content_length <= self.lr.buffer_body):
            # received and validated whole before an upstream is chosen (NGINX's
            # proxy_request_buffering): a bad body never reaches the origin, and the
            # request can be retried
            self.state = D_BUFFER
            self.body_parts = []
            return          # _process goes on with _buffer_body
        self.state = D_BODY if has_body else D_WAIT
        self._dispatch(None, False)

    cdef bint _buffer_body(self, Py_ssize_t n):
        """D_BUFFER: takes body bytes at pos; True once the request went on to an upstream
        (or was answered). A chunked body larger than buffer_body_bytes streams from there."""
        cdef Py_ssize_t take
        cdef ssize_t used
        cdef size_t doff, dlen
        cdef const char *base
        self.deadline = self.lr.clock.now + self.lr.idle_timeout
        if not self.body_chunked:
            take = n if n < self.body_remaining else self.body_remaining
            self.body_parts.append(self.buf[self.pos:self.pos + take])
            self.pos += take
            self.body_remaining -= take
            if self.body_remaining:
                return False
            self.req_body = b"".join(self.body_parts)
        else:
            base = PyBytes_AS_STRING(self.buf)
            while n > 0 and not self.chunked.done:
                used = gw_chunked_decode(&self.chunked, base + self.pos, n, &doff, &dlen)
                if used < 0:
                    self._error(400, gw_http_error_name(self.chunked.error).decode(), True)
                    return False
                if dlen:
                    self.body_seen += dlen
                    if self.body_seen > self.lr.max_body:
                        self._error(413, "body over limit", True)
                        return False
                    self.body_parts.append(self.buf[self.pos + doff:self.pos + doff + dlen])
                self.pos += used
                n -= used
                if self.body_seen > self.lr.buffer_body and not self.chunked.done:
                    # too large to hold: stream it, starting with what was received
                    self.req_body = b"".join([_chunk_line(self.body_seen)]
                                             + self.body_parts + [CRLF])
                    self.body_parts = None
                    self.state = D_BODY
                    self._dispatch(None, False)
                    return self.state == D_BODY
            if not self.chunked.done:
                return False
            body = b"".join(self.body_parts)
            # sent with Content-Length: the length is known now (RFC 9112 §7.1.3)
            self.up_head = (self.up_head[:PyBytes_GET_SIZE(self.up_head)
                                         - PyBytes_GET_SIZE(TE_CHUNKED) - 2]
                            + b"Content-Length: %d\r\n\r\n" % len(body))
            self.req_body = body
        self.body_parts = None
        self.body_buffered = True
        self.body_unread = False
        self.deadline = 0
        self.state = D_WAIT
        self._dispatch(None, False)
        return True

    cdef bytes _hash_key(self, const char *base, gw_head *h, bytes target, ex):
        """The request's key for ring_hash / maglev (None: no key, pick at random)."""
        cdef int kind = self.cluster.hash_kind
        cdef int i
        cdef bytes name = self.cluster.hash_name
        if kind == HASH_PATH:
            return target.partition(b"?")[0]
        if kind == HASH_SOURCE_IP:
            return self.client_ip
        if kind == HASH_JWT_CLAIM:
            claims = ex.state.get("jwt_claims") if ex is not None else None
            value = claims.get(name.decode()) if claims else None
            return None if value is None else str(value).encode()
        if kind == HASH_COOKIE:
            i = gw_find_field(base, _fields, h.num_fields, b"cookie", 6)
        else:
            i = gw_find_field(base, _fields, h.num_fields, name, len(name))
        if i < 0:
            return None
        value = PyBytes_FromStringAndSize(base + _fields[i].value_off, _fields[i].value_len)
        if kind == HASH_HEADER:
            return value
        for pair in value.split(b";"):     # Cookie: a=1; b=2 (RFC 6265 §5.4)
            k, eq, v = pair.strip().partition(b"=")
            if eq and k == name:
                return v
        return None

    cdef bytes _upstream_head(self, const char *base, gw_head *h, bytes method, bytes target,
                              bytes host, ex):
        cdef uint32_t i
        cdef unsigned int drop_kinds = DROP_ALWAYS | (
            (1u << GW_FK_HOST) if h.host_index == -2 else 0)
        cdef int rid = -1
        cdef list xff = None
        cdef const gw_field *f
        cdef unsigned char *drop = NULL
        for i in range(h.num_fields):
            f = &_fields[i]
            if f.kind == GW_FK_X_REQUEST_ID:
                rid = <int>i if rid == -1 else -2
            elif f.kind == GW_FK_X_FORWARDED_FOR:
                if xff is None:
                    xff = []
                xff.append(PyBytes_FromStringAndSize(base + f.value_off, f.value_len))
        if xff is None:
            extra = [self.xff_line, self.lr.proto_line]
        else:
            xff.append(self.client_ip)
            extra = [b"X-Forwarded-For: " + b", ".join(xff) + CRLF, self.lr.proto_line]
        # pieces, not concatenations: build_head copies each of them once anyway
        if h.host_index == -2:
            extra += [HOST_PREFIX, host, CRLF]
        if host:
            extra += [XFH_PREFIX, host, CRLF]
        else:
            extra += [HOST_PREFIX, self.cluster.endpoints[0].authority, CRLF]
        extra.append(VIA10 if self.http10 else VIA)
        if rid < 0 or not _request_id_ok(base + _fields[rid].value_off, _fields[rid].value_len):
            drop_kinds |= DROP_REQUEST_ID
            extra.append(self.lr.request_id_line())
        if h.connection & GW_CONN_OTHER or ex is not None:
            memset(_drop, 0, h.num_fields)
            mark_connection_options(base, _fields, h.num_fields, _drop)
            drop = _drop
            if ex is not None:
                self._apply_exchange(base, h, ex, extra)
        if h.chunked:
            extra.append(TE_CHUNKED)        # last: _buffer_body may swap it for Content-Length
        if len(target) != h.target_len or memcmp(PyBytes_AS_STRING(target),
                                                 base + h.target_off, h.target_len) != 0:
            # absolute-form rewritten to origin-form, or the normalised path forwarded
            return build_head(base, method + b" ", target, len(target), HTTP11, _fields,
                              h.num_fields, drop_kinds, drop, extra)
        # "method SP request-target" is one span of the received request-line
        return build_head(base, EMPTY, base + h.method_off,
                          h.target_off + h.target_len - h.method_off, HTTP11, _fields,
                          h.num_fields, drop_kinds, drop, extra)

    cdef void _apply_exchange(self, const char *base, gw_head *h, ex, list extra):
        """The fields filters set or removed (Exchange.set_upstream_field and friends)."""
        cdef uint32_t i
        removed = ex.removed_fields
        if removed:
            for i in range(h.num_fields):
                if PyBytes_FromStringAndSize(base + _fields[i].name_off,
                                             _fields[i].name_len).lower() in removed:
                    _drop[i] = 1
        if ex.upstream_fields:
            for name, value in ex.upstream_fields:
                extra.append(name + b": " + value + CRLF)

    cdef void _dispatch(self, Endpoint exclude, bint fresh):
        """Starts a try: picks an endpoint (not ``exclude`` when there is another), sends on
        a pooled connection, or starts connecting (slow path, reading paused), or waits for
        a connection slot (circuit breakers). ``fresh``: do not use the pool (the retry after
        a stale pooled connection)."""
        cdef Upstream up = None
        cdef Endpoint ep
        cdef int r
        if self.cluster.in_flight >= self.cluster.max_requests:
            self._overflow("max_requests")
            return
        ep = self.cluster.pick(self.hash_key, exclude)
        if ep is None:
            ep = exclude
        self.ep = ep
        self.tries += 1
        self.ex.tries = self.tries
        self.ex.endpoint = ep.address
        self.cluster.begin(ep, self.tries > 1)
        if not fresh:
            up = self.cluster.acquire(ep)
        if up is not None:
            self._use(up)
            return
        self.try_token += 1
        r = self.cluster.connect(ep, self, self.try_token)
        if r < 0:
            self._overflow("max_pending_requests")
            return
        self._pause(P_CONNECTING, True)
        self.after_connect = self.state
        self.state = D_CONNECTING
        if r == 1:      # queued for a connection slot
            self.deadline = self.lr.clock.now + self.cluster.pending_timeout

    cdef void _overflow(self, str limit):
        """A circuit breaker is open: 503 with Retry-After, nothing sent upstream."""
        self.cluster.note_overflow(limit)
        self._error(503, f"upstream overflow ({limit})",
                    self.body_unread, RETRY_AFTER)

    cdef void _end_try(self):
        if self.ep is not None:
            self.cluster.cancel_wait(self)
            self.cluster.finish(self.ep, self.tries > 1)
            self.ep = None

    cdef void _finish(self, str end):
        """The one place where an exchange ends, however it ended (``end``: ok, local,
        client_abort, upstream_error, timeout, overflow, draining): its route timer stops
        and the route's on_log phases run, once. A no-op when no exchange is under way."""
        cdef Exchange ex = self.ex
        if self.request_timer is not None:
            self.request_timer.cancel()
            self.request_timer = None
        self.req_body = None
        if ex is None:
            return
        self.ex = None
        ex.end = end
        ex.t_end = now_ns()
        phases = (<Route>ex.route).on_log if ex.route is not None else self.lr.global_on_log
        for phase in phases:
            try:
                phase(ex)
            except Exception:
                log.exception("on_log of route %s failed", ex.route_name)

    cdef void _request_sent(self):
        """The whole request is upstream: the route's timeouts.request starts (once per
        exchange, so it spans retries; Envoy's route timeout)."""
        cdef Route route = self.ex.route
        if route.request_timeout > 0 and self.request_timer is None:
            self.request_timer = self.lr.clock.loop.call_later(
                route.request_timeout, self._request_timed_out)

    def _request_timed_out(self):
        """The route's ``timeouts.request`` ran out: 504, or a reset once a response began
        (a cut response must never look whole)."""
        self.request_timer = None
        if self.state == D_CLOSED or self.state == D_LINGER or self.state == D_HEAD:
            return
        if self.ep is not None and not self.response_started:
            self.cluster.report(self.ep, False)
        self._error(504, "request timed out", self.body_unread)
        if self.state == D_HEAD:
            self._process()         # pipelined requests go on

    cdef bint _may_retry(self, unsigned int condition):
        """Retry policy: a configured condition, tries left, within the budget and the
        max_retries circuit breaker, and safe: nothing was sent (connect failure), or an
        idempotent request whose body (if any) is held whole."""
        return ((self.cluster.retry_on & condition) != 0
                and self.tries < self.cluster.attempts
                and (condition == RETRY_CONNECT_FAILURE
                     or (self.idempotent and (not self.has_body or self.body_buffered)))
                and self.cluster.retry_allowed())

    def _retry_later(self, Endpoint failed, unsigned long token):
        if self.state == D_CONNECTING and token == self.try_token:
            self.state = self.after_connect
            self._pause(P_CONNECTING, False)
            self._dispatch(failed, False)

    cdef void _use(self, Upstream up):
        self.up = up
        if self.ex.t_upstream == 0:
            self.ex.t_upstream = now_ns()
        up.send(self, self.up_head, self.req_body, self.head_method)
        if self.writing_paused:
            up.pause_reading(True)      # the client is still not reading: neither do we
        if self.state != D_BODY:
            self.state = D_WAIT
            up.finish_request()
            self._request_sent()

    cdef void on_connected(self, Upstream up, int error, unsigned long token):
        if token != self.try_token or self.state != D_CONNECTING:
            if up is not None:
                up.release()        # for an earlier try, or the client went away meanwhile
            return
        if up is None:
            self.on_upstream_error(None, error)
        else:
            self.on_upstream_ready(up)

    cdef void on_upstream_ready(self, Upstream up):
        if self.state != D_CONNECTING:
            up.release()            # the client went away while we connected
            return
        self.deadline = 0
        self.state = self.after_connect
        self.after_connect = D_HEAD
        self._use(up)
        self._pause(P_CONNECTING, False)
        if self.state == D_BODY and self.buf is not None:
            self._process()

    cdef bint _forward_body(self, Py_ssize_t n):
        """Sends buffered body bytes upstream; True when the body is complete."""
        cdef Py_ssize_t take
        cdef ssize_t used
        cdef size_t doff, dlen
        cdef const char *base
        cdef list out
        if not self.body_chunked:
            take = n if n < self.body_remaining else self.body_remaining
            if take == PyBytes_GET_SIZE(self.buf) and self.pos == 0:
                self.up.write(self.buf)
            else:
                self.up.write(self.buf[self.pos:self.pos + take])
            self.pos += take
            self.body_remaining -= take
            if self.body_remaining:
                self._body_deadline()
                return False
        else:
            out = []
            base = PyBytes_AS_STRING(self.buf)
            while n > 0:
                used = gw_chunked_decode(&self.chunked, base + self.pos, n, &doff, &dlen)
                if used < 0:
                    self._error(400, gw_http_error_name(self.chunked.error).decode(), True)
                    return False
                if dlen:
                    self.body_seen += dlen
                    if self.body_seen > self.lr.max_body:
                        self._error(413, "body over limit", True)
                        return False
                    out.append(f"{dlen:x}\r\n".encode())
                    out.append(self.buf[self.pos + doff:self.pos + doff + dlen])
                    out.append(CRLF)
                self.pos += used
                n -= used
                if self.chunked.done:
                    out.append(LAST_CHUNK)
                    break
            if out:
                self.up.writelines(out)
            if not self.chunked.done:
                self._body_deadline()
                return False
        self.deadline = 0
        self.state = D_WAIT
        self.body_unread = False
        self._pause(P_UPSTREAM_FULL, False)
        self.up.finish_request()
        self._request_sent()
        return True

    cdef void _body_deadline(self):
        """More body is due from the client within idle_timeout, unless the upstream is the
        one not taking it (then the upstream's timeout runs) while the client reads."""
        self.deadline = (0 if self.paused & P_UPSTREAM_FULL and not self.writing_paused
                         else self.lr.clock.now + self.lr.idle_timeout)

    cdef void pause_request_body(self, bint pause):
        self._pause(P_UPSTREAM_FULL, pause)
        if self.state == D_BODY:
            self._body_deadline()

    cdef void _pause(self, unsigned int reason, bint on):
        cdef unsigned int before = self.paused
        if on:
            self.paused |= reason
        else:
            self.paused &= ~reason
        if self.state == D_CLOSED or self.state == D_LINGER:
            return
        if before == 0 and self.paused != 0:
            self.transport.pause_reading()
        elif before != 0 and self.paused == 0:
            self.transport.resume_reading()

    # -- response side ------------------------------------------------------------------

    cdef void on_response_head(self, Upstream up, const char *buf, const gw_field *fields):
        cdef gw_head *h = &up.head
        cdef list extra = []
        cdef unsigned char *drop = NULL
        cdef Endpoint failed = self.ep
        cdef int i
        self.cluster.report(failed, h.status < 500)
        if 502 <= h.status <= 504 and self._may_retry(
                RETRY_502 if h.status == 502 else RETRY_503 if h.status == 503 else RETRY_504):
            delay = 0.0
            if h.status == 503:
                i = gw_find_field(buf, fields, h.num_fields, b"retry-after", 11)
                if i >= 0:
                    delay = self.cluster.retry_after(PyBytes_FromStringAndSize(
                        buf + fields[i].value_off, fields[i].value_len))
            if delay is not None:
                self._end_try()
                up.abandon()
                self.up = None
                if delay:
                    self._pause(P_CONNECTING, True)
                    self.after_connect = self.state
                    self.state = D_CONNECTING
                    self.lr.clock.loop.call_later(delay, self._retry_later, failed,
                                                  self.try_token)
                else:
                    self._dispatch(failed, False)
                return
        self.response_started = True
        self.out_mode = OUT_RAW
        if up.body_mode == BODY_CHUNKED or up.body_mode == BODY_CLOSE:
            if self.http10:
                self.out_mode = OUT_CLOSE
                self.keep_alive = False
            else:
                self.out_mode = OUT_CHUNKED
                extra.append(TE_CHUNKED)
        if self.state == D_BODY or self.lr.draining:
            self.keep_alive = False     # answered before the whole body arrived, or draining
        extra.append(VIA10 if h.version_minor == 0 else VIA)    # RFC 9110 §7.6.3
        if not self.keep_alive or self._last():
            extra.append(CONN_CLOSE)
        elif self.http10:
            extra.append(CONN_KEEP_ALIVE)
        if h.connection & GW_CONN_OTHER:
            memset(_drop, 0, h.num_fields)
            mark_connection_options(buf, fields, h.num_fields, _drop)
            drop = _drop
        cdef Exchange ex = self.ex
        ex.status = h.status
        ex.t_response = now_ns()
        cdef Route route = ex.route
        if route.on_response_head:
            head = self._filtered_head(up, buf, fields, drop, extra, route)
            if head is None:
                return          # replaced by a filter's Response, or failed
        else:
            # "HTTP/1.x " is 9 bytes; the status code and reason follow as received
            head = build_head(buf, HTTP11_STATUS, buf + 9, h.reason_off + h.reason_len - 9,
                              CRLF, fields, h.num_fields, 0, drop, extra)
        ex.bytes_sent += PyBytes_GET_SIZE(head)
        self.taps = route.on_response_body
        self.pending = [head]

    cdef bytes _filtered_head(self, Upstream up, const char *buf, const gw_field *fields,
                              const unsigned char *drop, list extra, Route route):
        """The response head after the route's on_response_head phases (slow path), or None
        when a filter answered instead (the upstream response is dropped) or failed."""
        cdef gw_head *h = &up.head
        cdef uint32_t i
        cdef const gw_field *f
        items = []
        for i in range(h.num_fields):
            f = &fields[i]
            if f.hop or f.kind == GW_FK_CONTENT_LENGTH or (drop != NULL and drop[i]):
                continue        # framing stays the gateway's
            items.append((PyBytes_FromStringAndSize(buf + f.name_off, f.name_len),
                          PyBytes_FromStringAndSize(buf + f.value_off, f.value_len)))
        response = Response(h.status, items, None)
        try:
            for phase in route.on_response_head:
                replaced = phase(self.ex, response)
                if replaced is not None:
                    if not isinstance(replaced, Response):
                        raise TypeError(f"{phase.__qualname__} returned "
                                        f"{type(replaced).__name__}")
                    self.response_started = False
                    self._error_replaced(replaced)
                    return None
        except Exception:
            log.exception("on_response_head of route %s failed", route.name)
            self.response_started = False
            self._error(502, "response filter error", self.body_unread)
            return None
        lines = [b"HTTP/1.1 %d %s\r\n" % (response.status, reason(response.status).encode())]
        for name, value in response.headers:
            lines += [name, b": ", value, CRLF]
        if self.out_mode == OUT_RAW and h.content_length >= 0:
            lines.append(b"Content-Length: %d\r\n" % h.content_length)
        lines += extra
        lines.append(CRLF)
        return b"".join(lines)

    cdef void _error_replaced(self, response):
        """A response filter answered instead of the upstream: its Response goes out."""
        if self.up is not None:
            self.up.abandon()
            self.up = None
        self._end_try()
        self._local(response, self.body_unread)

    cdef void _tap(self, bytes data, bint end):
        """The route's on_response_body phases see the chunk (a memoryview, no copy)."""
        view = memoryview(data)
        for phase in self.taps:
            try:
                phase(self.ex, view, end)
            except Exception:
                log.exception("on_response_body of route %s failed", self.ex.route_name)
        view.release()

    cdef void flush(self):
        """Writes what this upstream read produced: one write or one writev."""
        cdef list out = self.pending
        if out is None:
            return
        self.pending = None
        if len(out) == 1:
            self._write(out[0])
        else:
            self.transport.writelines(out)

    cdef void on_response_data(self, object data):
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        self.ex.bytes_sent += n
        if self.taps:
            self._tap(data, False)
        if self.out_mode != OUT_CHUNKED:
            if self.pending is None:
                self._write(data)       # the common case: body bytes go out as they came
            else:
                self.pending.append(data)
            return
        if self.pending is None:
            self.pending = []
        self.pending += [_chunk_line(len(data)), data, CRLF]

    cdef void on_response_end(self):
        self.up = None
        self._end_try()
        if self.taps:
            self._tap(EMPTY, True)
        self._finish("ok")
        self._pause(P_UPSTREAM_FULL, False)
        self.response_started = False
        if self.out_mode == OUT_CHUNKED:
            if self.pending is None:
                self.pending = []
            self.pending.append(LAST_CHUNK)
        self.flush()
        if self.state == D_CLOSED or self.state == D_LINGER:
            return
        if not self.keep_alive or self.state != D_WAIT:
            self._close(False)
            return
        self._next_request()
        self._process()
        if self.peer_eof and self.state == D_HEAD:
            self._close(False)      # half-closed: the pipelined requests are answered

    cdef void _next_request(self):
        """Back to reading heads; the caller runs _process for pipelined requests."""
        self.state = D_HEAD
        self.head_started = False
        self.deadline = self.lr.clock.now + self.lr.idle_timeout
        # whatever held reading for the last request no longer applies
        self._pause(P_PIPELINE_FULL | P_CONNECTING | P_UPSTREAM_FULL | P_FILTERING | P_LOCAL,
                    False)

    cdef void on_upstream_error(self, Upstream up, int error):
        cdef Endpoint failed = self.ep
        cdef unsigned int condition
        if self.state == D_CLOSED or self.state == D_LINGER:
            return
        self._pause(P_CONNECTING, False)
        self._end_try()
        self.up = None
        if self.response_started:
            self.cluster.report(failed, False)
            self._finish("timeout" if error == UE_TIMEOUT else "upstream_error")
            self._close(True)       # never let a truncated body pass as complete
            return
        if self.state == D_CONNECTING:
            self.state = self.after_connect
        if (error == UE_RESET and up is not None and up.reused and not up.got_bytes
                and not self.retried and self.idempotent and self.state == D_WAIT
                and (not self.has_body or self.body_buffered)):
            # a pooled connection the upstream had already closed: nothing was processed, so
            # this try does not count against attempts or the retry budget
            self.retried = True
            self.tries -= 1
            self._dispatch(None, True)
            return
        self.cluster.report(failed, False)
        condition = (RETRY_CONNECT_FAILURE if error == UE_CONNECT_FAILED
                     or error == UE_CONNECT_TIMEOUT else RETRY_RESET if error == UE_RESET
                     else RETRY_TIMEOUT if error == UE_TIMEOUT else 0)
        if condition and self._may_retry(condition):
            self._dispatch(failed, False)
            if self.state == D_BODY:
                self._process()     # a pooled connection: send the buffered body now
            return
        cdef bint body_pending = self.state == D_BODY or self.after_connect == D_BODY
        if error == UE_CONNECT_TIMEOUT or error == UE_TIMEOUT:
            self._error(504, "upstream timed out", body_pending)
        else:
            self._error(502, "upstream unavailable", body_pending)
        if self.state == D_HEAD:
            self._process()

    # -- local answers and closing ------------------------------------------------------

    cdef void _error(self, int status, str detail, bint close, tuple headers=()):
        """Answers a gateway error (``headers``: extra (name, value) bytes pairs)."""
        if self.up is not None:
            self.up.abandon()
            self.up = None
        self._end_try()
        if self.response_started or self.pending is not None:
            self._finish(_end_of(status, headers))
            self._close(True)       # a response is under way: no second one inside it
            return
        close = close or not self.keep_alive or self._last() or self.lr.draining
        cdef bytes data = Response.error(status, detail, headers).encode(close)
        if self.ex is not None:
            self.ex.status = status
            self.ex.bytes_sent = len(data)
        self._finish(_end_of(status, headers))
        self._write(data)
        if close:
            self._close(False)
        else:
            self._next_request()

    cdef void _cancel_filter(self):
        """Stops waiting for a request filter (its task is cancelled; reading resumes)."""
        fut = self.waiting[4]
        self.waiting = None
        self.state = D_HEAD
        self._pause(P_FILTERING, False)
        fut.cancel()

    cdef void on_deadline(self):
        if self.state == D_LINGER:
            self.state = D_CLOSED
            self.transport.close()
        elif self.state == D_FILTERING:
            self._cancel_filter()
            self._error(504, "request filter timed out", True)
        elif self.state == D_CONNECTING:
            if self.cluster.cancel_wait(self):      # still queued for a connection slot
                self.state = self.after_connect
                self._pause(P_CONNECTING, False)
                self._overflow("pending_timeout")
                if self.state == D_HEAD:
                    self._process()     # pipelined requests go on
        elif self.writing_paused and (self.state == D_WAIT or self.state == D_BODY
                                      or self.state == D_LOCAL):
            self._finish("timeout")
            self._close(True)           # the client stopped reading (NGINX's send_timeout)
        elif self.state == D_HEAD:
            if self.buf is not None and self.pos < PyBytes_GET_SIZE(self.buf):
                self._error(408, "request head not received in time", True)
            else:
                self._close(False)      # idle keep-alive connection
        elif self.state == D_BODY or self.state == D_BUFFER:
            self._error(408, "request body not received in time", True)

    cdef void _close(self, bint abort):
        """Ends the connection: abort (RST) when a response was cut short; else close. When
        the client may still be sending a request body we answered early (413, 4xx, an early
        upstream answer), half-close and discard its bytes for a moment first: a close with
        unread data would send RST, and the client could lose the response it was sent."""
        if self.state == D_CLOSED or self.state == D_LINGER:
            return
        if not abort:
            self.flush()
        self.buf = None
        if self.up is not None:
            self.up.abandon()
            self.up = None
        self._end_try()
        self._finish("client_abort")
        if abort:
            self.state = D_CLOSED
            self.transport.abort()
        elif self.body_unread and not self.peer_eof and self.transport.can_write_eof():
            self.state = D_LINGER
            self.transport.write_eof()
            self.deadline = self.lr.clock.now + LINGER_SECONDS
            self.paused = 0
            self.transport.resume_reading()
        else:
            self.state = D_CLOSED
            self.transport.close()
