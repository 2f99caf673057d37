"""The HTTP/1.1 side of a client connection (RFC 9112), driven by data_received: request
framing (heads parsed in C, bodies buffered or streamed, chunked decoding), limits, timeouts,
keep-alive and pipelining, response framing, local answers and lingering close.

What a request means — routing, filters, upstreams, retries — is the proxy session's
(gwcore/proxy/_session.pyx, a subclass): this class calls its hooks (``_start`` when a head
is parsed, ``_body_ready`` / ``_body_out`` / ``_body_sent`` for the body, ``_finish`` once
an exchange ended...). Requests are handled one at a time in arrival order (pipelined ones
wait in the buffer, so responses keep request order, RFC 9112 §9.3.2)."""

import logging

from gwcore.filters.base import Response

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t

from gwcore.http._chttp1 cimport GW_CONN_CLOSE, GW_CONN_KEEP_ALIVE, GW_M_HEAD, gw_head, gw_limits
from gwcore.http._parser cimport (
    gw_chunked_decode, gw_chunked_init, gw_http_error_name, gw_http_error_status,
    gw_parse_request,
)
from gwcore.http._wire cimport Clock

cdef enum:
    PIPELINE_BUFFER = 64 * 1024     # buffered bytes of waiting requests before pausing reads
    LINGER_SECONDS = 2              # NGINX's lingering close: see _close

log = logging.getLogger("gwcore")

CRLF = b"\r\n"
EMPTY = b""
TE_CHUNKED = b"Transfer-Encoding: chunked\r\n"
cdef bytes CONN_CLOSE = b"Connection: close\r\n"
cdef bytes CONN_KEEP_ALIVE = b"Connection: keep-alive\r\n"
cdef bytes CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
cdef bytes LAST_CHUNK = b"0\r\n\r\n"
cdef bytes REFUSED_CONNECTION = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                                 b"Content-Type: text/plain\r\nContent-Length: 46\r\n"
                                 b"Connection: close\r\n\r\n"
                                 b"503 Service Unavailable: too many connections\n")


cdef int hex_digits(char *out, unsigned long long v) noexcept:
    """Writes v in lower-case hex (no leading zeros) at out (room for 16); returns the count."""
    cdef char digits[16]
    cdef int k = 0, w = 0
    while True:
        digits[k] = b"0123456789abcdef"[v & 15]
        k += 1
        v >>= 4
        if v == 0:
            break
    while k:
        k -= 1
        out[w] = digits[k]
        w += 1
    return w


cdef bytes chunk_line(Py_ssize_t n):
    """``<size in hex>\r\n``, the chunk-size line of the chunked coding (RFC 9112 §7.1)."""
    cdef char line[20]
    cdef int w = hex_digits(line, <size_t>n)
    line[w] = 13
    line[w + 1] = 10
    return PyBytes_FromStringAndSize(line, w + 2)


cdef str _end_of(int status):
    """How an exchange the gateway answered itself ended, by its status."""
    if status == 502:
        return "upstream_error"
    if status == 504 or status == 408:
        return "timeout"
    return "local"


cdef void _refuse_connection(Http1Connection c):
    """Over a listener's max_connections or max_connections_per_client: a 503 and the end of
    the connection; it never enters the listener's ``conns``."""
    c.settings.refused_connections += 1
    c.state = D_CLOSED
    c._write(REFUSED_CONNECTION)
    c.transport.close()


cdef class Http1Settings:
    """What every connection of one listener shares on the HTTP/1 side: limits (bytes,
    counts), timeouts (seconds), the worker's clock, the open connections, drain state."""

    def __cinit__(self, Clock clock, *args, int max_head_bytes, int max_headers,
                  int max_target_bytes, int64_t max_body_bytes, double header_timeout,
                  double idle_timeout, int64_t buffer_body_bytes=64 * 1024,
                  Py_ssize_t max_connections=0, Py_ssize_t max_connections_per_client=0,
                  **kwargs):
        if not 1 <= max_headers <= MAX_FIELDS:
            raise ValueError(f"max_headers must be 1..{MAX_FIELDS}")
        self.limits = gw_limits(max_head_bytes=max_head_bytes, max_fields=max_headers,
                                max_target_len=max_target_bytes)
        self.max_body = max_body_bytes
        self.buffer_body = buffer_body_bytes
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.clock = clock
        self.conns = set()
        self.max_connections = max_connections
        self.max_per_client = max_connections_per_client
        self.per_client = {} if max_connections_per_client > 0 else None

    @property
    def connections_by_client(self) -> dict:
        """Open connections per client address (empty without max_connections_per_client)."""
        return dict(self.per_client or {})

    @property
    def open_connections(self) -> int:
        """Client connections currently open on this listener (in this worker)."""
        return len(self.conns)

    def start_drain(self, double grace=1.0):
        """Graceful shutdown of this listener's connections: every response from now on
        carries ``Connection: close`` and ends its connection; a connection with no request
        under way is closed once idle for ``grace`` seconds (not at once: a request may
        already be on the wire). Stopping accepts is the caller's job (server.close())."""
        cdef Http1Connection c
        self.draining = True
        self.drain_grace = grace
        for c in list(self.conns):
            c.drain(grace)

    def abort_all(self):
        """The drain ran out of time: every connection is cut, and the requests still under
        way end as ``draining`` (their on_log runs)."""
        cdef Http1Connection c
        for c in list(self.conns):
            if c.state != D_CLOSED:
                c._finish("draining")
                c._close(True)


cdef class Http1Connection(ResponseSink):
    """Protocol of one client connection, HTTP/1 side (module docstring)."""

    def __cinit__(self, Http1Settings settings, *args):
        self.settings = settings
        self.state = D_HEAD

    # -- asyncio protocol ---------------------------------------------------------------

    def connection_made(self, transport):
        cdef Http1Settings s = self.settings
        self.transport = transport
        self._write = transport.write
        peer = transport.get_extra_info("peername")
        self.client_str = peer[0] if peer else "unknown"
        self.client_ip = self.client_str.encode()
        if s.max_connections and len(s.conns) >= s.max_connections:
            _refuse_connection(self)
            return
        if s.per_client is not None:
            n = s.per_client.get(self.client_str, 0)
            if n >= s.max_per_client:
                _refuse_connection(self)
                return
            s.per_client[self.client_str] = n + 1
        self.settings.clock.watch(self)
        self.settings.conns.add(self)
        self.settings.accepted += 1
        self.head_started = True     # the first head is timed from the accept
        self.deadline = self.settings.clock.now + self.settings.header_timeout
        if self.settings.draining:
            self.drain(self.settings.drain_grace)

    def connection_lost(self, exc):
        cdef Http1Settings s = self.settings
        if self not in s.conns:
            return                          # refused in connection_made: nothing to undo
        if s.per_client is not None:
            n = s.per_client.pop(self.client_str, 1) - 1
            if n > 0:
                s.per_client[self.client_str] = n
        if self.local_task is not None:
            self.local_task.cancel()        # the async body has nobody to go to
            self.local_task = None
        self._client_gone()
        self.state = D_CLOSED
        self.settings.clock.unwatch(self)
        self.settings.conns.discard(self)
        self._abandon_upstream()
        self._finish("client_abort")

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
        if (self.state == D_WAIT and self.response_started and self.out_mode != OUT_RAW
                and self._last()):
            # A proxied body of unknown length (an event or token stream) may never end, and
            # a client that went away looks like a half-closed one: end it, and the upstream
            # request with it, now (as NGINX does unless proxy_ignore_client_abort), not a
            # write or two later.
            self._close(True)       # the exchange ends as client_abort
            return False
        return True                 # half-close: still answer the request in flight

    def pause_writing(self):
        self.writing_paused = True
        self._writing(True)
        if self.state == D_WAIT or self.state == D_BODY:
            # a client that stops reading gets idle_timeout to resume
            self.deadline = self.settings.clock.now + self.settings.idle_timeout

    def resume_writing(self):
        self.writing_paused = False
        self._writing(False)
        if self.state == D_WAIT:
            self.deadline = 0
        elif self.state == D_LOCAL:
            self.deadline = 0
            if self.drain_waiter is not None:
                if not self.drain_waiter.done():
                    self.drain_waiter.set_result(None)
            elif self.local_body is not None:
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
                and PyBytes_GET_SIZE(self.buf) <= self.settings.limits.max_head_bytes):
            return      # a head arriving in pieces is parsed again only when a line ends
        self._process()

    cdef bint _last(self):
        """The client half-closed and nothing more is buffered: this response is the last."""
        return self.peer_eof and (self.buf is None or self.pos >= PyBytes_GET_SIZE(self.buf))

    cdef void drain(self, double grace):
        cdef double at = self.settings.clock.now + grace
        if self.state == D_HEAD and (self.buf is None or self.pos == PyBytes_GET_SIZE(self.buf)):
            if self.deadline == 0 or self.deadline > at:
                self.deadline = at

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
                if n > PIPELINE_BUFFER and (self.state == D_WAIT or (
                        self.state == D_FILTERING and not self.body_unread)):
                    self._pause(P_PIPELINE_FULL, True)
                return

    cdef bint _read_head(self, Py_ssize_t n):
        """Parses the head at pos; True when a request was started and work may continue."""
        cdef gw_head h
        cdef const char *base = PyBytes_AS_STRING(self.buf) + self.pos
        cdef int r = gw_parse_request(base, n, &self.settings.limits, &h, head_fields)
        self.partial_head = r == -2
        if r == -2:
            if not self.head_started:
                self.head_started = True
                self.deadline = self.settings.clock.now + self.settings.header_timeout
            return False
        if r < 0:
            self._error(gw_http_error_status(h.error), gw_http_error_name(h.error).decode(), True)
            return False
        self.pos += r
        self.must_buffer = 0
        self.body_unread = h.chunked or h.content_length > 0
        self.deadline = 0
        self.head_started = False
        self.after_connect = D_HEAD
        self.http10 = h.version_minor == 0
        self.head_method = h.method == GW_M_HEAD
        self.keep_alive = ((h.connection & GW_CONN_CLOSE) == 0 if not self.http10
                           else (h.connection & GW_CONN_KEEP_ALIVE) != 0)
        self._start(base, &h)
        return self.state != D_CLOSED

    cdef bint _begin_body(self, gw_head *h):
        """Gets ready for the request's body (answering ``Expect: 100-continue``); True when
        it is to be received whole first (D_BUFFER: up to buffer_body_bytes, NGINX's
        proxy_request_buffering — a bad body then never reaches an upstream, and the request
        can be retried), False when it streams or there is none."""
        cdef bint has_body = h.chunked or h.content_length > 0
        self.body_chunked = h.chunked
        self.body_remaining = h.content_length if h.content_length > 0 else 0
        self.body_seen = 0
        self.req_body = None
        self.body_buffered = False
        if not has_body:
            return False
        if h.chunked:
            gw_chunked_init(&self.chunked)
        if h.expect_continue and not self.http10:
            self._write(CONTINUE)
        self.deadline = self.settings.clock.now + self.settings.idle_timeout
        self.buffer_limit = self.must_buffer or self.settings.buffer_body
        if h.chunked or h.content_length <= self.buffer_limit:
            self.state = D_BUFFER
            self.body_parts = []
            return True
        return False

    cdef bint _buffer_body(self, Py_ssize_t n):
        """D_BUFFER: takes body bytes at pos; True once the request went on (_body_ready) or
        was answered. A chunked body growing past buffer_body_bytes streams from there on."""
        cdef Py_ssize_t take
        cdef int r
        self.deadline = self.settings.clock.now + self.settings.idle_timeout
        if not self.body_chunked:
            take = n if n < self.body_remaining else self.body_remaining
            self.body_parts.append(self.buf[self.pos:self.pos + take])
            self._received(take)
            self.pos += take
            self.body_remaining -= take
            if self.body_remaining:
                return False
        else:
            r = self._decode_chunks(n, self.body_parts, False)
            if r < 0:
                return False
            if r == 0 and self.body_seen > self.buffer_limit:
                if self.must_buffer:
                    self._too_large()
                    return False
                # too large to hold: stream it, starting with what was received
                self.req_body = b"".join([chunk_line(self.body_seen)] + self.body_parts
                                         + [CRLF])
                self.body_parts = None
                self.state = D_BODY
                self._body_ready()
                return self.state == D_BODY
            if r == 0:
                return False
        self.req_body = b"".join(self.body_parts)
        self.body_parts = None
        self.body_buffered = True
        self.body_unread = False
        self.deadline = 0
        self.state = D_WAIT
        self._body_ready()
        return True

    cdef bint _forward_body(self, Py_ssize_t n):
        """D_BODY: passes body bytes at pos to _body_out (re-chunked when chunked); True
        when the body is complete."""
        cdef Py_ssize_t take
        cdef int r
        cdef list out
        if not self.body_chunked:
            take = n if n < self.body_remaining else self.body_remaining
            self._received(take)
            if take == PyBytes_GET_SIZE(self.buf) and self.pos == 0:
                self._body_out(self.buf)
            else:
                self._body_out(self.buf[self.pos:self.pos + take])
            self.pos += take
            self.body_remaining -= take
            if self.body_remaining:
                self._body_deadline()
                return False
        else:
            out = []
            r = self._decode_chunks(n, out, True)
            if r < 0:
                return False
            if out:
                self._body_out_list(out)
            if r == 0:
                self._body_deadline()
                return False
        self.deadline = 0
        self.state = D_WAIT
        self.body_unread = False
        self._pause(P_UPSTREAM_FULL, False)
        self._body_sent()
        return True

    cdef int _decode_chunks(self, Py_ssize_t n, list out, bint framed):
        """Decodes chunked body bytes at pos (RFC 9112 §7.1) into out: the data pieces, with
        their chunk framing when ``framed`` (re-chunked for the upstream). Returns 1 once the
        last chunk was read, 0 when more is due (or, unframed, past buffer_body_bytes), -1
        after answering 400 (bad framing) or 413 (over max_body_bytes)."""
        cdef ssize_t used
        cdef size_t doff, dlen
        cdef const char *base = PyBytes_AS_STRING(self.buf)
        while n > 0:
            used = gw_chunked_decode(&self.chunked, base + self.pos, n, &doff, &dlen)
            if used < 0:
                self._error(400, gw_http_error_name(self.chunked.error).decode(), True)
                return -1
            if dlen:
                self._received(dlen)
                self.body_seen += dlen
                if self.body_seen > self.settings.max_body:
                    self._error(413, "body over limit", True)
                    return -1
                piece = self.buf[self.pos + doff:self.pos + doff + dlen]
                if framed:
                    out += [chunk_line(dlen), piece, CRLF]
                else:
                    out.append(piece)
            self.pos += used
            n -= used
            if self.chunked.done:
                if framed:
                    out.append(LAST_CHUNK)
                return 1
            if not framed and self.body_seen > self.buffer_limit:
                return 0
        return 0

    cdef void _received(self, Py_ssize_t n):
        """Request body bytes (decoded) counted on the exchange."""
        if self.ex is not None:
            self.ex.bytes_received += n

    cdef void _body_deadline(self):
        """More body is due from the client within idle_timeout, unless the upstream is the
        one not taking it (then the upstream's timeout runs) while the client reads."""
        self.deadline = (0 if self.paused & P_UPSTREAM_FULL and not self.writing_paused
                         else self.settings.clock.now + self.settings.idle_timeout)

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

    cdef void _response_framing(self, bint unframed, list extra):
        """Framing of a proxied response: re-chunked for an HTTP/1.1 client when the
        upstream body has no length (``unframed``: chunked or close-delimited), delimited by
        the close for HTTP/1.0; and the Connection field. Appends its field lines to extra."""
        self.response_started = True
        self.out_mode = OUT_RAW
        if unframed:
            if self.http10:
                self.out_mode = OUT_CLOSE
                self.keep_alive = False
            else:
                self.out_mode = OUT_CHUNKED
                extra.append(TE_CHUNKED)
        if self.state == D_BODY or self.settings.draining:
            self.keep_alive = False     # answered before the whole body arrived, or draining
        if not self.keep_alive or self._last():
            extra.append(CONN_CLOSE)
        elif self.http10:
            extra.append(CONN_KEEP_ALIVE)

    cdef void flush(self):
        """Writes what this upstream read produced: one write or one writev (over TLS one
        write, so that a small response is one TLS record, not one per piece)."""
        cdef list out = self.pending
        if out is None:
            return
        self.pending = None
        if len(out) == 1:
            self._write(out[0])
        elif self.join_writes:
            self._write(b"".join(out))
        else:
            self.transport.writelines(out)

    cdef void _respond_data(self, object data):
        if self.out_mode != OUT_CHUNKED:
            if self.pending is None:
                self._write(data)       # the common case: body bytes go out as they came
            else:
                self.pending.append(data)
            return
        if self.pending is None:
            self.pending = []
        self.pending += [chunk_line(PyBytes_GET_SIZE(data)), data, CRLF]

    cdef void _respond_end(self):
        """The proxied response is complete: the last chunk, then the next request (or the
        close)."""
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
        self.deadline = self.settings.clock.now + self.settings.idle_timeout
        if self.settings.draining:
            # a head sent before the drain said keep-alive: the next request on it is
            # answered with Connection: close; an idle one is closed after the drain grace
            self.drain(self.settings.drain_grace)
        # whatever held reading for the last request no longer applies
        self._pause(P_PIPELINE_FULL | P_CONNECTING | P_UPSTREAM_FULL | P_FILTERING | P_LOCAL,
                    False)

    # -- local answers ------------------------------------------------------------------

    cdef void _local(self, response, bint body_pending):
        """Answers a gwcore.filters.Response; closes when the request body was not read. A
        body that is not bytes streams (_local_stream)."""
        cdef bint close = body_pending or not self.keep_alive or self._last() \
            or self.settings.draining
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
        self.local_chunked = n is None and not close and not self.head_method
        head = response.encode_head(close, n)
        self.ex.status = response.status
        self.ex.bytes_sent = len(head)
        self._write(head)
        self.response_started = True    # an error from now on cuts it (_error)
        self.state = D_LOCAL
        self._pause(P_LOCAL, True)
        body = response.body
        if self.head_method:
            self._local_done()
        elif hasattr(body, "__aiter__"):
            self.local_task = self.settings.clock.loop.create_task(self._pump_async(body))
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
            self.transport.writelines((chunk_line(n), chunk, CRLF))
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
            self.deadline = self.settings.clock.now + self.settings.idle_timeout

    async def _pump_async(self, body):
        loop = self.settings.clock.loop
        try:
            async for chunk in body:
                if self.state != D_LOCAL:
                    return
                self._local_chunk(chunk)
                while self.writing_paused and self.state == D_LOCAL:
                    self.deadline = self.settings.clock.now + self.settings.idle_timeout
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
        self.response_started = False
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

    cdef void _error(self, int status, str detail, bint close, tuple headers=(),
                     str end=None):
        """Answers a gateway error (``headers``: extra (name, value) bytes pairs; ``end``:
        how the exchange ended, by default from the status); with a response already under
        way, cuts the connection instead (never a second response inside one)."""
        if end is None:
            end = _end_of(status)
        self._abandon_upstream()
        if self.response_started or self.pending is not None:
            self._finish(end)
            self._close(True)
            return
        close = close or not self.keep_alive or self._last() or self.settings.draining
        response = Response.error(status, detail, headers)
        cdef bytes data = response.encode_head(close, len(response.body))
        if not self.head_method:
            data += response.body
        if self.ex is not None:
            self.ex.status = status
            self.ex.bytes_sent = len(data)
        self._finish(end)
        self._write(data)
        if close:
            self._close(False)
        else:
            self._next_request()

    # -- time and closing ---------------------------------------------------------------

    cdef void on_deadline(self):
        if self.state == D_LINGER:
            self.state = D_CLOSED
            self.transport.close()
        elif self._session_deadline():
            pass
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
        if self.local_task is not None:
            self.local_task.cancel()        # a streamed answer cut short: nobody to write to
            self.local_task = None
        self.local_body = None
        self._abandon_upstream()
        self._finish("client_abort")
        if abort:
            self.state = D_CLOSED
            self.transport.abort()
        elif self.body_unread and not self.peer_eof and self.transport.can_write_eof():
            self.state = D_LINGER
            self.transport.write_eof()
            self.deadline = self.settings.clock.now + LINGER_SECONDS
            self.paused = 0
            self.transport.resume_reading()
        else:
            self.state = D_CLOSED
            self.transport.close()

    # -- hooks (the proxy session overrides them) ---------------------------------------

    cdef void _start(self, const char *base, gw_head *h):
        """A request head was parsed at base (fields in head_fields, until the next parse);
        the connection's per-request state is set. Must answer it or send it on."""
        self._error(501, "no request handler", True)

    cdef void _body_ready(self):
        """The body was received whole (req_body; state D_WAIT), or a chunked body outgrew
        buffer_body_bytes (req_body holds what came, re-chunked; state D_BODY)."""

    cdef void _body_out(self, object data):
        """Streamed body bytes, as received (Content-Length)."""

    cdef void _body_out_list(self, list data):
        """Streamed body pieces, re-chunked (chunk-size lines included)."""

    cdef void _body_sent(self):
        """The streamed body is complete."""

    cdef void _writing(self, bint paused):
        """The client stopped (or resumed) reading what is written to it."""

    cdef void _abandon_upstream(self):
        """Drop whatever upstream work the request has under way."""

    cdef bint _session_deadline(self):
        """The deadline passed in a state of the session's (filtering, connecting): True
        when it handled it."""
        return False

    cdef void _client_gone(self):
        """The client connection is lost."""

    cdef void _too_large(self):
        """A body that had to be received whole (``must_buffer``) grew past its bound."""
        self._error(413, "body over limit", True)

    cdef void _finish(self, str end):
        """The exchange under way (if any) ended: ``end`` says how."""
