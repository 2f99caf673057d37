# distutils: sources = src_c/path.c src_c/trace.c
"""The proxy session of a client connection: what each request means. A request head becomes
an exchange (gwcore/proxy/_exchange.pyx), is checked and routed on its normalised path, runs
its route's filters, and goes to an endpoint of the route's cluster (balancer, pool, circuit
breakers, retries); the response comes back through the response phases, and the exchange
ends in one place (``_finish``), where its on_log phases run.

Trace context (W3C Trace Context Level 1, src_c/trace.c), only when the config has
``tracing``: ``_trace`` reads the request's traceparent and tracestate when the exchange is
made, continues the trace or starts one, and ``_upstream_head`` sends this hop's traceparent
instead of the client's. Without ``tracing`` both fields pass untouched and nothing is made.

``Downstream`` is the protocol object: the HTTP/1 connection (gwcore/http/_connection.pyx:
framing, limits, timeouts, keep-alive) with this session's hooks filled in."""

import logging
import os
from asyncio import isfuture

from gwcore.filters.base import Response, reason, run_request_filters
from gwcore.http._parser import METHOD_NAMES
from gwcore.observability.metrics import (
    C_TTFB, CACHE_OUTCOMES, CODE_CLASSES, ENDS, JWT_OUTCOMES, R_CACHE, R_DURATION, R_ENDS,
    R_REQUESTS, R_RX, R_TX,
)
from gwcore.proxy._router import split_absolute
from gwcore.tls import client_cert_fields

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_1BYTE_DATA, PyUnicode_DecodeASCII, PyUnicode_New
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memchr, memcmp, memcpy, memset

from gwcore.http._chttp1 cimport (
    GW_CONN_OTHER, GW_FK_CONTENT_LENGTH, GW_FK_HOST, GW_FK_X_FORWARDED_FOR, GW_FK_EXPECT,
    GW_FK_X_FORWARDED_HOST, GW_FK_X_FORWARDED_PROTO, GW_FK_X_REQUEST_ID, GW_M_CONNECT,
    GW_M_DELETE, GW_M_GET, GW_M_HEAD, GW_M_OPTIONS, GW_M_OTHER, GW_M_PUT, GW_M_TRACE, gw_field,
    gw_head,
)
from gwcore.http._connection cimport (
    D_BODY, D_BUFFER, D_CLOSED, D_CONNECTING, D_FILTERING, D_HEAD, D_LINGER, D_WAIT, MAX_FIELDS,
    OUT_RAW, P_CONNECTING, P_FILTERING, CRLF, EMPTY, TE_CHUNKED, Http1Connection, Http1Settings,
    head_fields, hex_digits,
)
from gwcore.http._cpath cimport (
    GW_PATH_DECODE_SLASHES, GW_PATH_MERGE_SLASHES, GW_PATH_REJECT_SLASHES, gw_normalize_path,
    gw_path_error_name, gw_path_error_status, gw_path_status,
)
from gwcore.http._parser cimport gw_find_field, request_fields, request_view
from gwcore.inference._mirror cimport Mirror
from gwcore.http._wire cimport (
    Clock, build_head, connection_options,
)
from gwcore.limits._gcra cimport RouteLimits
from gwcore.observability._access_log cimport AccessLog
from gwcore.observability._cmetrics cimport gw_metric_add, gw_metric_observe
from gwcore.observability._metrics cimport Row
from gwcore.proxy._ctrace cimport (
    GW_TRACEPARENT_LEN, gw_rng, gw_rng_next, gw_rng_seed, gw_hex64,
    gw_trace_begin, gw_trace_ctx, gw_trace_error_name, gw_trace_threshold,
    gw_traceparent_format, gw_traceparent_parse, gw_tracestate, gw_tracestate_add,
    gw_tracestate_init,
)
from gwcore.proxy._exchange cimport Exchange, new_exchange, now_ns
from gwcore.proxy._router cimport Route, Router
from gwcore.proxy._upstream cimport (
    BODY_CHUNKED, BODY_CLOSE, BODY_LENGTH, BODY_NONE, RETRY_502, RETRY_503, RETRY_504,
    RETRY_CONNECT_FAILURE, RETRY_RESET, RETRY_TIMEOUT, Cluster, Endpoint, UE_CONNECT_FAILED,
    UE_CONNECT_TIMEOUT, UE_RESET, UE_TIMEOUT, Upstream,
)

# metrics columns (gwcore/observability/metrics.py owns the layout)
cdef uint32_t _R_REQUESTS = R_REQUESTS, _R_ENDS = R_ENDS, _R_DURATION = R_DURATION
cdef uint32_t _R_RX = R_RX, _R_TX = R_TX, _C_TTFB = C_TTFB, _CLASSES = len(CODE_CLASSES)
cdef dict _END_INDEX = {end: i for i, end in enumerate(ENDS)}
cdef dict _JWT_INDEX = {outcome: i for i, outcome in enumerate(JWT_OUTCOMES)}
cdef object _JWT_OTHER = len(JWT_OUTCOMES) - 1
cdef uint32_t _R_CACHE = R_CACHE
cdef dict _CACHE_INDEX = {outcome: i for i, outcome in enumerate(CACHE_OUTCOMES)}

cdef unsigned char _drop[MAX_FIELDS]
cdef char _path[1 << 20]        # normalised path; targets are bounded by max_head_bytes ≤ 1 MiB

cdef unsigned int DROP_ALWAYS = (
    (1u << GW_FK_EXPECT) | (1u << GW_FK_X_FORWARDED_FOR) | (1u << GW_FK_X_FORWARDED_PROTO)
    | (1u << GW_FK_X_FORWARDED_HOST))
cdef unsigned int DROP_REQUEST_ID = 1u << GW_FK_X_REQUEST_ID

log = logging.getLogger("gwcore")

cdef tuple _METHODS = METHOD_NAMES       # interned method bytes by enum gw_method
# start lines: the request-line's version, the status-line's
cdef bytes HTTP11 = b" HTTP/1.1\r\n"
cdef bytes HTTP11_STATUS = b"HTTP/1.1 "
# fields the gateway sets
cdef bytes HOST_PREFIX = b"Host: "
cdef bytes XFH_PREFIX = b"X-Forwarded-Host: "
cdef bytes VIA = b"Via: 1.1 gwcore\r\n"
cdef bytes VIA10 = b"Via: 1.0 gwcore\r\n"     # Via names the protocol received (§7.6.3)
cdef tuple RETRY_AFTER = ((b"Retry-After", b"1"),)
# fields a response filter may not set: the gateway frames the response itself
cdef frozenset _FRAMING = frozenset((b"content-length", b"transfer-encoding", b"connection",
                                     b"keep-alive", b"upgrade", b"te", b"trailer"))
cdef bytes TRACESTATE_PREFIX = b"tracestate: "


# -- trace context ids: one generator per process ------------------------------------------

cdef gw_rng _rng                # xoshiro256** (src_c/trace.c), seeded from os.urandom
cdef bint _rng_seeded = False   # lazily, in the process that uses it; cleared in a forked
                                # child, so that no two workers share a stream


cdef inline str _hex_str(const char *p, Py_ssize_t n):
    """A str of n ASCII bytes (lower-case hex the C code wrote): copied, not decoded."""
    cdef str s = PyUnicode_New(n, 127)
    memcpy(PyUnicode_1BYTE_DATA(s), p, n)
    return s


cdef inline void _ensure_seeded():
    global _rng_seeded
    if not _rng_seeded:
        seed = os.urandom(32)
        gw_rng_seed(&_rng, <const unsigned char *>PyBytes_AS_STRING(seed), 32)
        _rng_seeded = True


def _reseed_after_fork():
    global _rng_seeded
    _rng_seeded = False


os.register_at_fork(after_in_child=_reseed_after_fork)


def parse_traceparent(bytes value):
    """``(trace_id, parent_id, flags)`` (hex str, hex str, int) of a valid traceparent value
    (W3C Trace Context Level 1 §3.2, as the session checks it); ValueError naming the
    problem (``traceparent_hex``, ``trace_id_zero``...) otherwise."""
    cdef const char *v = PyBytes_AS_STRING(value)
    cdef uint8_t flags = 0
    cdef int error = 0
    if gw_traceparent_parse(v, PyBytes_GET_SIZE(value), &flags, &error) < 0:
        raise ValueError(gw_trace_error_name(error).decode())
    return v[3:35].decode("ascii"), v[36:52].decode("ascii"), flags


def check_tracestate(*values):
    """The combined tracestate of these field values (bytes, joined with ","), as the
    session forwards it (§3.3: at most 512 bytes, 32 list-members, each ``key=value``);
    ValueError naming the problem otherwise."""
    cdef gw_tracestate st
    cdef bytes v
    gw_tracestate_init(&st)
    for v in values:
        if gw_tracestate_add(&st, PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v)) < 0:
            raise ValueError(gw_trace_error_name(st.error).decode())
    return b",".join(values)


def new_span_id():
    """A span id from this process's generator (16 hex digits, never all zeros)."""
    cdef char out[16]
    cdef uint64_t x = 0
    _ensure_seeded()
    while x == 0:
        x = gw_rng_next(&_rng)
    gw_hex64(x, out)
    return out[:16].decode("ascii")


cdef inline bytes _path_part(bytes target):
    """The path of an origin-form request-target: up to "?" (RFC 9112 §3.2.1)."""
    cdef const char *t = PyBytes_AS_STRING(target)
    cdef const char *q = <const char *>memchr(t, 63, PyBytes_GET_SIZE(target))
    return target if q == NULL else PyBytes_FromStringAndSize(t, q - t)


cdef inline bint _ieq_lower(const char *a, const char *low, Py_ssize_t n) noexcept:
    """a equals the lower-case low, ignoring ASCII case."""
    cdef Py_ssize_t i
    cdef unsigned char x
    for i in range(n):
        x = <unsigned char>a[i]
        if 65 <= x <= 90:
            x += 32
        if x != <unsigned char>low[i]:
            return False
    return True


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


cdef class ListenerRuntime(Http1Settings):
    """What every connection of one listener shares: the HTTP/1 settings (limits in bytes and
    counts, timeouts in seconds) and the router, path normalisation, filter timeout,
    request ids, the global filters' on_log and trace context: ``trace_sample_ratio`` None
    (no ``tracing`` in the config: traceparent and tracestate pass untouched) or the share
    of new traces that are sampled (0..1)."""

    cdef Router router
    cdef double filter_timeout
    cdef unsigned int path_flags
    cdef bytes proto_line
    cdef bytes id_prefix        # 12 hex digits, random per worker
    cdef const char *id_prefix_c
    cdef unsigned long long next_id
    cdef public tuple global_on_log     # the global filters' on_log: requests without a route
    cdef public AccessLog access_log    # gwcore.observability's (record(ex)), or None
    cdef uint64_t *mrow                 # this worker's metrics row, or NULL (metrics off)
    cdef uint32_t m_no_route            # the metrics block of requests no route matched
    cdef readonly bint tracing          # the config has ``tracing``: trace context per request
    cdef uint64_t trace_threshold       # its sample_ratio, for gw_rng_sample
    cdef public object spans            # gwcore.observability.tracing.OtlpSpans, or None
    # mTLS: (subject field name, SAN field name) as sent, their lower-case forms; or None
    cdef tuple cert_fields
    cdef bint tls                       # a TLS listener (X-Forwarded-Proto: https)
    cdef bint redirect_https            # redirect_http: every request gets a 308 to https

    def __cinit__(self, Clock clock, Router router, *, double filter_timeout=5.0,
                  bint merge_slashes=True, str escaped_slashes="decode", str scheme="http",
                  trace_sample_ratio=None, client_cert_fields=None, bint redirect_https=False,
                  **limits):
        self.router = router
        self.redirect_https = redirect_https
        if client_cert_fields is not None:
            subject, san = client_cert_fields
            self.cert_fields = (subject.encode(), san.encode(), subject.lower().encode(),
                                san.lower().encode())
        self.filter_timeout = filter_timeout
        self.path_flags = ((GW_PATH_MERGE_SLASHES if merge_slashes else 0)
                           | {"decode": GW_PATH_DECODE_SLASHES, "keep": 0,
                              "reject": GW_PATH_REJECT_SLASHES}[escaped_slashes])
        self.proto_line = f"X-Forwarded-Proto: {scheme}\r\n".encode()
        self.tls = scheme == "https"
        self.id_prefix = os.urandom(6).hex().encode()
        self.id_prefix_c = self.id_prefix
        self.global_on_log = ()
        if trace_sample_ratio is not None:
            self.tracing = True
            self.trace_threshold = gw_trace_threshold(trace_sample_ratio)

    def set_metrics(self, Row row, uint32_t no_route):
        """Record each request into ``row`` (gwcore.observability.metrics); requests no
        route matched into the block at ``no_route``."""
        self.mrow = row.p
        self.m_no_route = no_route

    def protocol(self):
        """Protocol factory for loop.create_server."""
        return Downstream(self)

    cdef bytes request_id_line(self):
        """``X-Request-Id: <12 hex, per worker>-<counter in hex>`` and its CRLF."""
        cdef char line[64]
        cdef int n
        self.next_id += 1
        memcpy(line, b"X-Request-Id: ", 14)
        memcpy(line + 14, self.id_prefix_c, 12)
        line[26] = 45       # "-"
        n = 27 + hex_digits(line + 27, self.next_id)
        line[n] = 13
        line[n + 1] = 10
        return PyBytes_FromStringAndSize(line, n + 2)


cdef class Downstream(Http1Connection):
    """Protocol of one client connection: the HTTP/1 connection with the proxy session
    (module docstring); made by ListenerRuntime.protocol for each accepted connection."""

    cdef ListenerRuntime lr
    cdef bytes xff_line
    cdef bint idempotent, retried, has_body
    cdef tuple waiting          # while a filter awaits: what the request resumes with
    cdef Endpoint ep            # endpoint of the current try
    cdef int tries
    cdef bytes hash_key
    cdef Upstream up
    cdef Cluster cluster
    cdef bytes up_head
    cdef object request_timer   # the route's request timeout (a TimerHandle), or None
    cdef tuple taps             # the route's on_response_body phases, while a response streams
    cdef unsigned long try_token    # tells this try's connect result from a late earlier one
    cdef int m_method               # the request's enum gw_method (its metrics label)
    cdef bytes trace_line       # tracing: this hop's "traceparent: ..." line, sent upstream
    cdef bytes tracestate_line  # tracing: the tracestate fields received, combined, or None
    cdef bint keep_tracestate   # tracing: the one valid tracestate field is forwarded as is
    cdef list cert_lines        # mTLS: the verified client certificate's fields (or [])
    # a model route (gwcore/inference): (method, target, host, replace_host) until its
    # version is chosen, and the response field naming the version that serves it
    cdef tuple model_req
    cdef bytes model_line

    def __cinit__(self, ListenerRuntime lr):
        self.lr = lr

    def connection_made(self, transport):
        Http1Connection.connection_made(self, transport)
        self.join_writes = self.lr.tls
        if self.lr.cert_fields is not None:
            self.cert_lines = []
            sslobj = transport.get_extra_info("ssl_object")
            got = client_cert_fields(sslobj.getpeercert() if sslobj is not None else None)
            if got is not None:
                self.cert_lines = [self.lr.cert_fields[0] + b": " + got[0] + CRLF,
                                   self.lr.cert_fields[1] + b": " + got[1] + CRLF]

    cdef void _redirect(self, bytes host, bytes target, bint has_body):
        """redirect_http: ``308 Location: https://<Host without its port><target>``."""
        cdef Py_ssize_t end
        if not host:
            self._error(400, "no Host to redirect to", has_body)
            return
        if host[0] == 91:       # "[v6]:port"
            end = host.find(b"]")
            name = host[:end + 1] if end > 0 else host
        else:
            name = host.partition(b":")[0]
        if not target or target[0] != 47:
            target = b"/"
        self._local(Response(308, [(b"Location", b"https://" + name + target)], b""),
                    has_body)

    def set_client(self, str ip):
        """The client's address is ``ip`` (a PROXY protocol header said so), not the
        connection's peer: logs, X-Forwarded-For, hash keys and filters see it."""
        self.client_str = ip
        self.client_ip = ip.encode()
        self.xff_line = None

    def eof_received(self):
        if self.state == D_FILTERING and self.model_req is not None and \
                (self.buf is None or self.pos >= PyBytes_GET_SIZE(self.buf)):
            # queued for a model version's place, nothing sent yet: a client that closes
            # now has given up (an inference it never reads is the dearest kind of waste)
            self.peer_eof = True
            self._client_gone()         # the queued wait is cancelled
            self._close(True)
            return False
        keep_open = Http1Connection.eof_received(self)
        # TLS has no half-close: the transport shuts down whatever we answer (and warns
        # about True each time)
        return keep_open and not self.lr.tls

    # -- a request arrives --------------------------------------------------------------

    cdef void _start(self, const char *base, gw_head *h):
        cdef bytes method = (<bytes>_METHODS[h.method] if h.method != GW_M_OTHER else
                             PyBytes_FromStringAndSize(base + h.method_off, h.method_len))
        cdef bytes target = PyBytes_FromStringAndSize(base + h.target_off, h.target_len)
        cdef bytes host = b""
        cdef bint has_body = h.chunked or h.content_length > 0
        cdef Exchange ex = new_exchange(method, target, self.client_str)
        cdef RouteLimits limits
        cdef int refused
        self.ex = ex
        self.model_req = None
        self.model_line = None
        self.m_method = h.method
        if self.lr.access_log is not None and self.lr.access_log.combined:
            self._log_fields(base, h, ex)
        if self.lr.tracing:
            self._trace(base, h, ex)
        self.idempotent = h.method in (GW_M_GET, GW_M_HEAD, GW_M_OPTIONS, GW_M_PUT,
                                       GW_M_DELETE, GW_M_TRACE)
        if h.connection & GW_CONN_OTHER:
            bad = connection_options(base, head_fields, h.num_fields, NULL, False)
            if bad is not None:
                self._error(400, f"Connection names {bad.decode()}", True)
                return
        if h.host_index >= 0:
            host = PyBytes_FromStringAndSize(base + head_fields[h.host_index].value_off,
                                             head_fields[h.host_index].value_len)
        if target[0] != 47 and b"://" in target:     # absolute-form (RFC 9112 §3.2.2)
            target, authority = split_absolute(target, host)
            if not authority or b"@" in authority:
                self._error(400, "absolute-form target without a valid authority", True)
                return
            if authority != host:
                host = authority
                h.host_index = -2       # replace the received Host with the target's
        if self.lr.redirect_https:
            self._redirect(host, target, has_body)
            return
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
        if route.split is not None:
            ex.cluster = route.split.pick()     # a weighted split: a cluster per request
        else:
            ex.cluster = route.cluster          # None for a model route: chosen later
        if h.content_length > self.settings.max_body:
            self._error(413, "body over limit", True)
            return
        if route.model is not None and h.content_length > route.model.max_body:
            self._local(route.model.too_large(), True)
            return
        if route.forward_normalized_path and target[0] == 47:
            target = path + target[PyBytes_GET_SIZE(_path_part(target)):]
        self.cluster = ex.cluster
        if route.limits is not None:        # local limits keyed by source_ip / route alone
            limits = <RouteLimits>route.limits
            refused = limits.check(self.client_str, route.name)
            if refused >= 0:
                self._local(limits.refusers[refused](limits.retry),
                            h.chunked or h.content_length > 0)
                return
        if route.filters or route.model is not None:
            # the Request view filters (and a model route, once the body is in) read: the
            # parsed fields copied, not parsed again
            ex.request = request_view(self.buf, base - PyBytes_AS_STRING(self.buf), h,
                                      self.pos - (base - PyBytes_AS_STRING(self.buf)),
                                      head_fields)
            ex.request.path = path
        if route.on_request:
            self._filter(base, h, route, method, target, host)
        else:
            self._proceed(base, h, method, target, host, ex.request is not None)

    cdef void _log_fields(self, const char *base, gw_head *h, Exchange ex):
        """What a combined-format access log line shows beyond the exchange: Referer,
        User-Agent and the request's HTTP version."""
        cdef int i = gw_find_field(base, head_fields, h.num_fields, b"referer", 7)
        if i >= 0:
            ex.referer = PyBytes_FromStringAndSize(base + head_fields[i].value_off,
                                                   head_fields[i].value_len)
        i = gw_find_field(base, head_fields, h.num_fields, b"user-agent", 10)
        if i >= 0:
            ex.user_agent = PyBytes_FromStringAndSize(base + head_fields[i].value_off,
                                                      head_fields[i].value_len)
        ex.http10 = self.http10
    cdef void _trace(self, const char *base, gw_head *h, Exchange ex):
        """This hop's trace context (W3C Trace Context Level 1 §4): a valid traceparent —
        exactly one field — is continued (its trace-id, its parent-id, its sampled flag) and
        its tracestate kept when valid (§3.3.1; several fields combined into one); otherwise
        a new trace is started (sampled per sample_ratio) and tracestate dropped (§3.3: it
        means nothing without its traceparent). Either way a new span id, this hop's: the
        exchange gets the ids, ``trace_line`` the traceparent sent upstream."""
        cdef uint32_t i
        cdef const gw_field *f
        cdef const gw_field *tp = NULL
        cdef int n_tp = 0, n_ts = 0
        cdef gw_trace_ctx ctx
        cdef gw_tracestate st
        cdef char line[70]      # "traceparent: " (13) + 55 + CRLF
        for i in range(h.num_fields):
            f = &head_fields[i]
            if f.name_len == 11 and _ieq_lower(base + f.name_off, b"traceparent", 11):
                tp = f
                n_tp += 1
            elif f.name_len == 10 and _ieq_lower(base + f.name_off, b"tracestate", 10):
                n_ts += 1
        _ensure_seeded()
        if n_tp != 1:
            tp = NULL           # more than one traceparent is as bad as an invalid one
        gw_trace_begin(&_rng, base + tp.value_off if tp != NULL else NULL,
                       tp.value_len if tp != NULL else 0, self.lr.trace_threshold, &ctx, NULL)
        ex.trace_id = _hex_str(ctx.trace_id, 32)
        ex.span_id = _hex_str(ctx.span_id, 16)
        ex.sampled = ctx.sampled
        memcpy(line, b"traceparent: ", 13)
        gw_traceparent_format(&ctx, line + 13, GW_TRACEPARENT_LEN)
        line[68] = 13
        line[69] = 10
        self.trace_line = PyBytes_FromStringAndSize(line, 70)
        self.keep_tracestate = False
        self.tracestate_line = None
        if not ctx.continued:
            return
        ex.parent_id = _hex_str(ctx.parent_id, 16)
        if n_ts == 0:
            return
        gw_tracestate_init(&st)
        parts = [] if n_ts > 1 else None
        for i in range(h.num_fields):
            f = &head_fields[i]
            if f.name_len == 10 and _ieq_lower(base + f.name_off, b"tracestate", 10):
                if gw_tracestate_add(&st, base + f.value_off, f.value_len) < 0:
                    return      # dropped whole (over 512 bytes, or malformed)
                if parts is not None:
                    parts.append(PyBytes_FromStringAndSize(base + f.value_off, f.value_len))
        if st.members == 0:
            return              # empty: valid, but not worth sending
        if parts is None:
            self.keep_tracestate = True
        else:
            self.tracestate_line = TRACESTATE_PREFIX + b",".join(parts) + CRLF

    cdef void _trace_fields(self, const char *base, gw_head *h, list extra, bint filtered):
        """The client's traceparent is replaced by this hop's, its tracestate forwarded as it
        came, combined into one field, or dropped (``_trace`` decided). A filter that set
        either field itself (Exchange.set_upstream_field) has the last word on it."""
        cdef uint32_t i
        cdef const gw_field *f
        cdef set removed = self.ex.removed_fields if filtered else None
        for i in range(h.num_fields):
            f = &head_fields[i]
            if ((f.name_len == 11 and _ieq_lower(base + f.name_off, b"traceparent", 11))
                    or (f.name_len == 10 and not self.keep_tracestate
                        and _ieq_lower(base + f.name_off, b"tracestate", 10))):
                _drop[i] = 1
        if removed is None or b"traceparent" not in removed:
            extra.append(self.trace_line)
        if self.tracestate_line is not None and (removed is None
                                                 or b"tracestate" not in removed):
            extra.append(self.tracestate_line)

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

    # -- filters ------------------------------------------------------------------------

    cdef void _filter(self, const char *base, gw_head *h, Route route, bytes method,
                      bytes target, bytes host):
        """Runs the route's on_request phases; when one waits, reading pauses (at most the
        filter timeout) and the head is restored from the Request view afterwards."""
        try:
            result = run_request_filters(self.ex, route.on_request)
        except Exception:
            log.exception("request filter failed")
            self._error(500, "filter error", True)
            return
        if result is None:
            self._proceed(base, h, method, target, host, True)
        elif isinstance(result, Response):
            self._local(result, h.chunked or h.content_length > 0)
        else:
            # the future at [4] (wraparound is off: no negative indexes in this module)
            self.waiting = (method, target, host, h.host_index == -2, result)
            self.state = D_FILTERING
            self.deadline = self.settings.clock.now + self.lr.filter_timeout
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
        base = request_fields(self.ex.request, &h, head_fields)
        result = fut.result()
        if result is not None and not isinstance(result, Response):
            log.error("request filter returned %s, not None or a Response",
                      type(result).__name__)
            self._error(500, "filter error", True)
            return
        if result is not None:
            self._local(result, h.chunked or h.content_length > 0)
        else:
            if replace_host:
                h.host_index = -2
            self._proceed(base, &h, method, target, host, True)
        self._process()

    cdef void _cancel_filter(self):
        """Stops waiting for a request filter (its task is cancelled; reading resumes)."""
        fut = self.waiting[4]
        self.waiting = None
        self.state = D_HEAD
        self._pause(P_FILTERING, False)
        fut.cancel()

    # -- to the upstream ----------------------------------------------------------------

    cdef void _proceed(self, const char *base, gw_head *h, bytes method, bytes target,
                       bytes host, bint filtered):
        """Builds the upstream request head, then receives the body first (small bodies) or
        picks an endpoint at once. ``filtered``: the exchange's fields apply. A model route
        receives the whole body first, then chooses its cluster (_model_choose)."""
        self.has_body = h.chunked or h.content_length > 0
        self.tries = 0
        self.retried = False
        if (<Route>self.ex.route).model is not None:
            self.model_req = (method, target, host, h.host_index == -2, filtered)
            self.must_buffer = (<Route>self.ex.route).model.max_body
            if not self._begin_body(h):
                self._model_choose()
            return
        self.hash_key = (self.cluster.hash_key(base, head_fields, h.num_fields, target,
                                               self.client_ip, self.ex)
                         if self.cluster.balancer.is_hash() else None)
        self.up_head = self._upstream_head(base, h, method, target, host, filtered)
        if self._begin_body(h):
            return          # _process goes on with _buffer_body, then _body_ready
        self.state = D_BODY if self.has_body else D_WAIT
        self._dispatch(None, False)

    cdef bytes _upstream_head(self, const char *base, gw_head *h, bytes method, bytes target,
                              bytes host, bint filtered):
        cdef uint32_t i
        cdef unsigned int drop_kinds = DROP_ALWAYS | (
            (1u << GW_FK_HOST) if h.host_index == -2 else 0)
        cdef int rid = -1
        cdef list xff = None
        cdef const gw_field *f
        cdef unsigned char *drop = NULL
        for i in range(h.num_fields):
            f = &head_fields[i]
            if f.kind == GW_FK_X_REQUEST_ID:
                rid = <int>i if rid == -1 else -2
            elif f.kind == GW_FK_X_FORWARDED_FOR:
                if xff is None:
                    xff = []
                xff.append(PyBytes_FromStringAndSize(base + f.value_off, f.value_len))
        if xff is None:
            if self.xff_line is None:
                self.xff_line = b"X-Forwarded-For: " + self.client_ip + CRLF
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
        if rid < 0 or not _request_id_ok(base + head_fields[rid].value_off,
                                         head_fields[rid].value_len):
            drop_kinds |= DROP_REQUEST_ID
            # the exchange's own id when this head is built again (a model's fallback)
            line = (self.lr.request_id_line() if self.ex.request_id is None
                    else b"X-Request-Id: " + self.ex.request_id.encode() + CRLF)
            extra.append(line)
            # "X-Request-Id: " before the id, CRLF after it
            self.ex.request_id = PyUnicode_DecodeASCII(PyBytes_AS_STRING(line) + 14,
                                                       PyBytes_GET_SIZE(line) - 16, NULL)
        else:
            self.ex.request_id = PyUnicode_DecodeASCII(base + head_fields[rid].value_off,
                                                       head_fields[rid].value_len, NULL)
        if h.connection & GW_CONN_OTHER or filtered:
            memset(_drop, 0, h.num_fields)
            connection_options(base, head_fields, h.num_fields, _drop, False)
            drop = _drop
            if filtered:
                self._apply_exchange(base, h, extra)
        if self.trace_line is not None:     # tracing: this hop's traceparent
            if drop == NULL:
                memset(_drop, 0, h.num_fields)
                drop = _drop
            self._trace_fields(base, h, extra, filtered)
        if self.model_line is not None:     # a model route: the version chosen, not the client's
            if drop == NULL:
                memset(_drop, 0, h.num_fields)
                drop = _drop
            self._drop_named(base, h, (<Route>self.ex.route).model.field_lower)
            extra.append(self.model_line)
        if self.cert_lines is not None:     # mTLS: the client's own such fields never pass
            if drop == NULL:
                memset(_drop, 0, h.num_fields)
                drop = _drop
            self._drop_named(base, h, self.lr.cert_fields[2])
            self._drop_named(base, h, self.lr.cert_fields[3])
            extra += self.cert_lines
        if h.chunked:
            extra.append(TE_CHUNKED)        # last: _body_ready may swap it for Content-Length
        if len(target) != h.target_len or memcmp(PyBytes_AS_STRING(target),
                                                 base + h.target_off, h.target_len) != 0:
            # absolute-form rewritten to origin-form, or the normalised path forwarded
            return build_head(base, method + b" ", target, len(target), HTTP11, head_fields,
                              h.num_fields, drop_kinds, drop, extra)
        # "method SP request-target" is one span of the received request-line
        return build_head(base, EMPTY, base + h.method_off,
                          h.target_off + h.target_len - h.method_off, HTTP11, head_fields,
                          h.num_fields, drop_kinds, drop, extra)

    cdef void _drop_named(self, const char *base, gw_head *h, bytes name):
        """Marks in _drop the received fields called ``name`` (lower-case)."""
        cdef uint32_t i
        for i in range(h.num_fields):
            if head_fields[i].name_len == <uint32_t>PyBytes_GET_SIZE(name) and _ieq_lower(
                    base + head_fields[i].name_off, PyBytes_AS_STRING(name),
                    head_fields[i].name_len):
                _drop[i] = 1

    cdef void _apply_exchange(self, const char *base, gw_head *h, list extra):
        """The fields filters added or removed (Exchange.add_upstream_header and friends)."""
        cdef uint32_t i
        cdef Exchange ex = self.ex
        cdef bytes name
        if ex.removed_fields:
            for name in ex.removed_fields:      # lower-case already
                for i in range(h.num_fields):
                    if head_fields[i].name_len == <uint32_t>PyBytes_GET_SIZE(name) and _ieq_lower(
                            base + head_fields[i].name_off, PyBytes_AS_STRING(name),
                            head_fields[i].name_len):
                        _drop[i] = 1
        if ex.upstream_fields:
            for name, value in ex.upstream_fields:
                extra.append(name + b": " + value + CRLF)

    cdef void _body_ready(self):
        if self.model_req is not None:
            self._model_choose()
            return
        if self.state == D_WAIT and self.body_chunked:
            self._length_head()
        self._dispatch(None, False)

    cdef void _length_head(self):
        """A buffered chunked body goes with Content-Length: its length is known now (RFC 9112
        §7.1.3). Transfer-Encoding is the head's last field (_upstream_head)."""
        self.up_head = (self.up_head[:PyBytes_GET_SIZE(self.up_head)
                                     - PyBytes_GET_SIZE(TE_CHUNKED) - 2]
                        + b"Content-Length: %d\r\n\r\n" % PyBytes_GET_SIZE(self.req_body))

    # -- model routes (gwcore/inference/models.py) ----------------------------------------

    cdef void _model_choose(self):
        """The body is in (or there is none): the route's model routing picks the version,
        answers (400, 404, 503), or queues the request (reading paused, as a filter wait)."""
        cdef Route route = self.ex.route
        try:
            got = route.model.choose(self.ex, self.req_body)
        except Exception:
            log.exception("model routing of route %s failed", route.name)
            self._error(500, "model routing error", self.body_unread)
            return
        if isinstance(got, Response):
            self._local(got, self.body_unread)
        elif not isfuture(got):     # a gwcore.inference.models.Version
            self._model_go(got, True)
        else:       # queued for a place among the version's max_in_flight
            self.waiting = (None, None, None, False, got)
            # reading goes on (the body is in: what comes is pipelined, bounded by
            # _process), so a client that goes away is seen at once and never queued for
            self.state = D_FILTERING
            self.deadline = self.settings.clock.now + route.model.wait_bound
            got.add_done_callback(self._model_granted)

    def _model_granted(self, fut):
        if self.state != D_FILTERING or self.waiting is None or self.waiting[4] is not fut:
            return              # the client went away meanwhile
        self.waiting = None
        self.state = D_WAIT
        self.deadline = 0
        if fut.cancelled() or fut.exception() is not None:
            if not fut.cancelled():
                log.error("model queue failed", exc_info=fut.exception())
            self._error(500, "model routing error", self.body_unread)
        else:
            got = (<Route>self.ex.route).model.granted(self.ex, fut.result())
            if isinstance(got, Response):
                self._local(got, self.body_unread)
            else:
                self._model_go(got, True)
        self._process()

    cdef void _model_go(self, object version, bint first):
        """Sends the request to ``version``'s cluster (gwcore.inference.models.Version): the
        upstream head is built now, from the Request view, with the version field; the first
        time, a copy may go to the model's mirror."""
        cdef gw_head h
        cdef const char *base
        cdef Exchange ex = self.ex
        cdef Route route = ex.route
        method, target, host, replace_host, filtered = self.model_req
        self.cluster = version.cluster
        ex.cluster = self.cluster
        self.model_line = route.model.lines[version]
        base = request_fields(ex.request, &h, head_fields)
        if replace_host:
            h.host_index = -2
        self.hash_key = (self.cluster.hash_key(base, head_fields, h.num_fields, target,
                                               self.client_ip, ex)
                         if self.cluster.balancer.is_hash() else None)
        self.up_head = self._upstream_head(base, &h, method, target, host, filtered)
        if h.chunked:
            self._length_head()
        mirror = version.model.mirror if first else None
        if mirror is not None and (<Mirror>mirror).sample():
            (<Mirror>mirror).send(self.up_head, self.req_body, ex)    # never raises
        self.state = D_WAIT
        self._dispatch(None, False)

    cdef object _fallback(self, object retry_after):
        """A model route's version failed (connect failure, timeout, 429, 503) and its
        cluster will not retry: the model's next fallback, taken if its cluster's retry
        budget allows one more try; else None (the failure is answered)."""
        cdef Route route = self.ex.route if self.ex is not None else None
        if route is None or route.model is None or (self.has_body and not self.body_buffered):
            return None
        got = route.model.next_fallback(self.ex, retry_after)
        if got is None or not (<Cluster>got[1].cluster).retry_allowed():
            return None
        return route.model.take_fallback(self.ex, got[0], got[1])

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
            self.deadline = self.settings.clock.now + self.cluster.pending_timeout

    cdef void _overflow(self, str limit):
        """A circuit breaker is open: 503 with Retry-After, nothing sent upstream."""
        self.cluster.note_overflow(limit)
        self._error(503, f"upstream overflow ({limit})", self.body_unread, RETRY_AFTER,
                    "overflow")

    cdef void _connecting_done(self):
        """Back from D_CONNECTING to the state the request was in (reading resumes)."""
        self.state = self.after_connect
        self.after_connect = D_HEAD
        self._pause(P_CONNECTING, False)

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
            return
        self.deadline = 0
        self._connecting_done()
        self._use(up)
        if self.state == D_BODY and self.buf is not None:
            self._process()

    cdef void _body_out(self, object data):
        self.up.write(data)

    cdef void _body_out_list(self, list data):
        self.up.writelines(data)

    cdef void _body_sent(self):
        self.up.finish_request()
        self._request_sent()

    cdef void _writing(self, bint paused):
        if self.up is not None:
            self.up.pause_reading(paused)

    cdef void _abandon_upstream(self):
        if self.up is not None:
            self.up.abandon()
            self.up = None
        self._end_try()

    cdef void _end_try(self):
        if self.ep is not None:
            self.cluster.cancel_wait(self)
            self.cluster.finish(self.ep, self.tries > 1)
            self.ep = None

    # -- retries and time ---------------------------------------------------------------

    cdef bint _may_retry(self, unsigned int condition):
        return self.cluster.may_retry(condition, self.tries,
                                      self.idempotent and (not self.has_body
                                                           or self.body_buffered))

    def _retry_later(self, Endpoint failed, unsigned long token):
        if self.state == D_CONNECTING and token == self.try_token:
            self._connecting_done()
            self._dispatch(failed, False)

    cdef void _request_sent(self):
        """The whole request is upstream: the route's timeouts.request starts (once per
        exchange, so it spans retries; Envoy's route timeout)."""
        cdef Route route = self.ex.route
        if route.request_timeout > 0 and self.request_timer is None:
            self.request_timer = self.settings.clock.loop.call_later(
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

    cdef bint _session_deadline(self):
        if self.state == D_FILTERING:
            self._cancel_filter()
            self._error(504, "request filter timed out", True)
            return True
        if self.state == D_CONNECTING:
            if self.cluster.cancel_wait(self):      # still queued for a connection slot
                self._connecting_done()
                self._overflow("pending_timeout")
                self._go_on()
            return True
        return False

    cdef void _too_large(self):
        cdef Route route = self.ex.route if self.ex is not None else None
        if route is not None and route.model is not None:
            self._local(route.model.too_large(), True)
        else:
            self._error(413, "body over limit", True)

    cdef void _client_gone(self):
        if self.state == D_FILTERING:
            self.waiting[4].cancel()      # nobody waits for this filter any more
            self.waiting = None

    # -- the response -------------------------------------------------------------------

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
                    self.settings.clock.loop.call_later(delay, self._retry_later, failed,
                                                        self.try_token)
                else:
                    self._dispatch(failed, False)
                return
        if (h.status == 429 or h.status == 503) and self.model_req is not None:
            i = gw_find_field(buf, fields, h.num_fields, b"retry-after", 11)
            if self._model_refused(up, PyBytes_FromStringAndSize(
                    buf + fields[i].value_off, fields[i].value_len) if i >= 0 else None):
                return
        self._response_framing(up.body_mode == BODY_CHUNKED or up.body_mode == BODY_CLOSE,
                               extra)
        if self.model_line is not None:
            extra.append(self.model_line)
        extra.append(VIA10 if h.version_minor == 0 else VIA)    # RFC 9110 §7.6.3
        if h.connection & GW_CONN_OTHER:
            memset(_drop, 0, h.num_fields)
            connection_options(buf, fields, h.num_fields, _drop, True)
            drop = _drop
        cdef Exchange ex = self.ex
        ex.t_response = now_ns()
        ex.response_length = (h.content_length if up.body_mode == BODY_LENGTH
                              or (up.body_mode == BODY_NONE and not up.no_body) else -1)
        cdef Route route = ex.route
        if route.on_response_head:
            head = self._filtered_head(up, buf, fields, drop, extra, route)
            if head is None:
                return          # replaced by a filter's Response, or failed
        else:
            ex.status = h.status
            # "HTTP/1.x " is 9 bytes; the status code and reason follow as received
            head = build_head(buf, HTTP11_STATUS, buf + 9, h.reason_off + h.reason_len - 9,
                              CRLF, fields, h.num_fields, 0, drop, extra)
        ex.bytes_sent += PyBytes_GET_SIZE(head)
        self.taps = route.on_response_body
        self.pending = [head]

    cdef bint _model_refused(self, Upstream up, bytes retry_after):
        """A model version answered 429 or 503: its response is dropped and the request goes
        to the next fallback, if there is one (``Retry-After`` in seconds keeps the version
        out of new splits until then)."""
        version = self._fallback(float(retry_after) if retry_after is not None
                                 and retry_after.isdigit() else None)
        if version is None:
            return False
        self._end_try()
        up.abandon()
        self.up = None
        self._model_go(version, False)
        return True

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
        response = Response.received(h.status, items)
        try:
            for phase in route.on_response_head:
                replaced = phase(self.ex, response)
                if replaced is not None:
                    if not isinstance(replaced, Response):
                        raise TypeError(f"{phase.__qualname__} returned "
                                        f"{type(replaced).__name__}")
                    self.response_started = False
                    self._abandon_upstream()
                    self._stop_request_timer()
                    self._local(replaced, self.body_unread)
                    self._go_on()
                    return None
        except Exception:
            log.exception("on_response_head of route %s failed", route.name)
            self.response_started = False
            self._error(500, "response filter error", self.body_unread)
            self._go_on()
            return None
        self.ex.status = response.status
        lines = [b"HTTP/1.1 %d %s\r\n" % (response.status, reason(response.status).encode())]
        for name, value in response.headers:
            if name.lower() not in _FRAMING:
                lines += [name, b": ", value, CRLF]
        if self.out_mode == OUT_RAW and h.content_length >= 0:
            lines.append(b"Content-Length: %d\r\n" % h.content_length)
        lines += extra
        lines.append(CRLF)
        return b"".join(lines)

    cdef void _go_on(self):
        """After an answer that kept the connection: pipelined requests go on."""
        if self.state == D_HEAD:
            self._process()

    cdef void _stop_request_timer(self):
        if self.request_timer is not None:
            self.request_timer.cancel()
            self.request_timer = None

    cdef void _tap(self, bytes data, bint end):
        """The route's on_response_body phases see the chunk (a memoryview, no copy)."""
        view = memoryview(data)
        for phase in self.taps:
            try:
                phase(self.ex, view, end)
            except Exception:
                log.exception("on_response_body of route %s failed", self.ex.route_name)
        view.release()

    cdef void on_response_data(self, object data):
        self.ex.bytes_sent += PyBytes_GET_SIZE(data)
        if self.taps:
            self._tap(data, False)
        self._respond_data(data)

    cdef void on_response_end(self):
        self.up = None
        self._end_try()
        if self.taps:
            self._tap(EMPTY, True)
        self._finish("ok")
        self._respond_end()

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
        cdef bint body_pending = self.state == D_BODY or (self.state == D_CONNECTING
                                                          and self.after_connect == D_BODY)
        if self.state == D_CONNECTING:
            self._connecting_done()
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
        if (condition == RETRY_CONNECT_FAILURE or condition == RETRY_TIMEOUT) and \
                self.model_req is not None:
            version = self._fallback(None)
            if version is not None:
                self._model_go(version, False)
                return
        body_pending = body_pending or self.state == D_BODY
        if error == UE_CONNECT_TIMEOUT or error == UE_TIMEOUT:
            self._error(504, "upstream timed out", body_pending)
        else:
            self._error(502, "upstream unavailable", body_pending)
        if self.state == D_HEAD:
            self._process()

    # -- the end ------------------------------------------------------------------------

    cdef void _finish(self, str end):
        """The one place where an exchange ends, however it ended (``end``: ok, local,
        client_abort, upstream_error, timeout, overflow, draining): its route timer stops
        and the on_log phases run, once. A no-op when no exchange is under way."""
        cdef Exchange ex = self.ex
        self._stop_request_timer()
        self.req_body = None
        if ex is None:
            return
        self.ex = None
        ex.end = end
        ex.t_end = now_ns()
        if ex.route is not None and (<Route>ex.route).model is not None and \
                (<Route>ex.route).model.limited:
            try:
                (<Route>ex.route).model.on_log(ex)
            except Exception:
                log.exception("model routing of route %s failed", ex.route_name)
        if self.lr.mrow != NULL:
            self._record(ex, self.lr.mrow)
        phases = (<Route>ex.route).on_log if ex.route is not None else self.lr.global_on_log
        for phase in phases:
            try:
                phase(ex)
            except Exception:
                log.exception("on_log of route %s failed", ex.route_name)
        if self.lr.access_log is not None:
            self.lr.access_log.record(ex)
        if ex.sampled and self.lr.spans is not None:
            self.lr.spans.on_log(ex)      # one server span (gwcore.observability.tracing)

    cdef void _record(self, Exchange ex, uint64_t *row):
        """The exchange's metrics (docs/metrics.md), into this worker's row: plain adds, no
        Python object made."""
        cdef Route route = ex.route
        cdef uint32_t base = route.m_base if route is not None else self.lr.m_no_route
        cdef int status = ex.status
        cdef uint32_t cls = <uint32_t>(status // 100) if 100 <= status <= 599 else 0
        cdef Cluster cluster
        gw_metric_add(row, base + _R_REQUESTS + <uint32_t>self.m_method * _CLASSES + cls, 1)
        gw_metric_add(row, base + _R_ENDS + <uint32_t>_END_INDEX[ex.end], 1)
        gw_metric_observe(row, base + _R_DURATION, ex.t_end - ex.t_received)
        gw_metric_add(row, base + _R_RX, <uint64_t>ex.bytes_received)
        gw_metric_add(row, base + _R_TX, <uint64_t>ex.bytes_sent)
        if ex.cache is not None and ex.cache in _CACHE_INDEX:
            gw_metric_add(row, base + _R_CACHE + <uint32_t>_CACHE_INDEX[ex.cache], 1)
        if ex.t_response != 0 and ex.t_upstream != 0 and ex.cluster is not None:
            cluster = ex.cluster
            gw_metric_observe(cluster.mrow, cluster.m_base + _C_TTFB,
                              ex.t_response - ex.t_upstream)
        if ex.auth is not None and route is not None and route.m_jwt >= 0:
            gw_metric_add(row, <uint32_t>route.m_jwt + <uint32_t>_JWT_INDEX.get(ex.auth,
                                                                               _JWT_OTHER), 1)
