from libc.stdint cimport int64_t

from gwcore.http._chttp1 cimport gw_chunked, gw_field, gw_head, gw_limits
from gwcore.http._wire cimport Clock
from gwcore.proxy._exchange cimport Exchange
from gwcore.proxy._upstream cimport ResponseSink

cdef enum DState:
    D_HEAD = 0          # reading a request head (or idle between requests)
    D_CONNECTING = 1    # waiting for an upstream connection (or a connection slot)
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

# Request heads are parsed synchronously: one field array per worker, valid until the next
# head is parsed.
cdef gw_field head_fields[MAX_FIELDS]

# pieces of messages both sides write
cdef bytes CRLF, EMPTY, TE_CHUNKED

cdef bytes chunk_line(Py_ssize_t n)
cdef int hex_digits(char *out, unsigned long long v) noexcept


cdef class Http1Settings:
    cdef gw_limits limits
    cdef int64_t max_body, buffer_body
    cdef double header_timeout, idle_timeout
    cdef Clock clock
    cdef set conns
    cdef readonly unsigned long long accepted     # connections accepted so far
    cdef readonly bint draining
    cdef double drain_grace
    cdef Py_ssize_t max_connections          # 0: no limit (this process's connections)
    cdef Py_ssize_t max_per_client           # 0: no limit (per client address)
    cdef dict per_client                     # address → open connections, or None
    cdef readonly unsigned long long refused_connections


cdef class Http1Connection(ResponseSink):
    cdef Http1Settings settings
    cdef object transport
    cdef object _write
    cdef bytes client_ip
    cdef str client_str
    cdef bytes buf
    cdef Py_ssize_t pos
    cdef int state
    cdef int after_connect          # the state to go back to once connected
    cdef unsigned int paused
    cdef bint keep_alive, http10, head_method, peer_eof, head_started, partial_head
    cdef bint writing_paused        # the client's send buffer is full (asyncio flow control)
    cdef bint join_writes           # a TLS transport: pieces joined into one write (record)
    cdef bint response_started
    cdef Exchange ex                # the request under way (None between requests)
    # request body
    cdef bint body_unread           # the current request's body has not been received whole
    cdef bint body_chunked
    cdef int64_t body_remaining, body_seen
    cdef gw_chunked chunked
    cdef object req_body            # body bytes to write right after the head, or None
    cdef bint body_buffered         # req_body is the whole body: a retry can send it again
    cdef list body_parts            # D_BUFFER: the body received so far
    cdef int64_t buffer_limit       # D_BUFFER: bytes held at most (buffer_body_bytes...)
    cdef int64_t must_buffer        # ...or this request's bound: the body is needed whole
                                    # (a model route; larger: 413), 0 for none
    # response
    cdef list pending               # response bytes of this upstream read, for one writev
    cdef int out_mode
    cdef object local_body          # D_LOCAL: the iterator of a sync iterable body
    cdef object local_task          # D_LOCAL: the task pumping an async iterator body
    cdef object drain_waiter        # D_LOCAL: what the async pump awaits while writing is paused
    cdef bint local_chunked, local_close

    # the connection's own work, used by the proxy session
    cdef void _process(self)
    cdef bint _read_head(self, Py_ssize_t n)
    cdef bint _begin_body(self, gw_head *h)
    cdef bint _buffer_body(self, Py_ssize_t n)
    cdef bint _forward_body(self, Py_ssize_t n)
    cdef int _decode_chunks(self, Py_ssize_t n, list out, bint framed)
    cdef void _body_deadline(self)
    cdef void _received(self, Py_ssize_t n)
    cdef void _pause(self, unsigned int reason, bint on)
    cdef bint _last(self)
    cdef void drain(self, double grace)
    cdef void _response_framing(self, bint unframed, list extra)
    cdef void _respond_data(self, object data)
    cdef void _respond_end(self)
    cdef void _local(self, response, bint body_pending)
    cdef void _local_stream(self, response, bint close)
    cdef void _local_chunk(self, chunk)
    cdef void _pump(self)
    cdef void _local_done(self)
    cdef void _error(self, int status, str detail, bint close, tuple headers=*, str end=*)
    cdef void _next_request(self)
    cdef void _close(self, bint abort)

    # hooks: what the proxy session (gwcore/proxy/_session.pyx) does at these points
    cdef void _start(self, const char *base, gw_head *h)       # a head was parsed
    # the request body: received whole, streamed piece by piece, complete
    cdef void _body_ready(self)
    cdef void _body_out(self, object data)
    cdef void _body_out_list(self, list data)
    cdef void _body_sent(self)
    cdef void _writing(self, bint paused)       # the client stopped or resumed reading
    cdef void _abandon_upstream(self)           # before an error answer or a close
    cdef bint _session_deadline(self)           # the deadline, in filtering or connecting
    cdef void _client_gone(self)
    cdef void _too_large(self)                  # a must_buffer body over its bound: 413
    cdef void _finish(self, str end)            # the one end of an exchange
