from libc.stdint cimport int64_t, uint32_t, uint64_t
from gwcore.http._chttp1 cimport gw_head, gw_field, gw_chunked
from gwcore.http._wire cimport Timed, Clock
from gwcore.proxy._balancer cimport Balancer

# why an exchange with the upstream failed (before or during the response)
cdef enum UpstreamError:
    UE_CONNECT_FAILED = 1      # refused / unreachable: nothing was sent, retry is safe
    UE_CONNECT_TIMEOUT = 2
    UE_RESET = 3               # closed or reset before a whole response head arrived
    UE_TIMEOUT = 4             # no upstream bytes for the response timeout
    UE_BAD_RESPONSE = 5        # malformed response head or body framing

# how the response body is delimited
cdef enum BodyMode:
    BODY_NONE = 0
    BODY_LENGTH = 1
    BODY_CHUNKED = 2
    BODY_CLOSE = 3

cdef class ResponseSink(Timed):
    """The downstream side of one exchange; the Upstream calls these in order:
    on_connected (for a new or handed-over connection, with the token of the try that asked)
    → on_response_head → on_response_data* → on_response_end, with flush after each upstream
    read (what the read produced goes out in one write), or on_upstream_error at any point."""
    cdef void on_connected(self, Upstream up, int error, unsigned long token)
    cdef void on_upstream_error(self, Upstream up, int error)
    cdef void on_response_head(self, Upstream up, const char *buf, const gw_field *fields)
    cdef void on_response_data(self, object data)
    cdef void flush(self)
    cdef void on_response_end(self)
    cdef void pause_request_body(self, bint pause)

# retry conditions (bits of Cluster.retry_on)
cdef enum RetryOn:
    RETRY_CONNECT_FAILURE = 1
    RETRY_RESET = 2
    RETRY_TIMEOUT = 4
    RETRY_502 = 8
    RETRY_503 = 16
    RETRY_504 = 32

cdef enum HashKind:
    HASH_PATH = 0
    HASH_HEADER = 1
    HASH_COOKIE = 2
    HASH_SOURCE_IP = 3
    HASH_JWT_CLAIM = 4

cdef class Endpoint:
    cdef readonly str host
    cdef readonly int port
    cdef readonly bytes authority
    cdef readonly str address        # the same, as str: "host:port"
    cdef readonly int index
    cdef readonly int weight
    cdef public str connect_host     # resolved address (DNS names are re-resolved)
    cdef list idle
    cdef Cluster cluster
    cdef readonly bint healthy       # active health checks
    cdef readonly double ejected_until
    cdef readonly int ejections
    cdef int failures                # consecutive, for outlier detection
    cdef readonly int connections    # established connections (busy and idle)
    cdef uint32_t m_base             # its metrics block

cdef class Cluster:
    cdef readonly str name
    cdef readonly list endpoints
    cdef readonly Balancer balancer
    cdef readonly double connect_timeout, response_timeout, idle_timeout
    cdef Py_ssize_t max_idle
    cdef Clock clock
    cdef object loop
    # outlier detection
    cdef int od_failures, od_max_percent, ejected
    cdef double od_base, od_max
    # retries
    cdef readonly int attempts
    cdef unsigned int retry_on
    cdef double budget, retry_after_max
    cdef readonly long in_flight, retries_in_flight
    # circuit breakers (per worker)
    cdef readonly int max_connections, max_pending, max_requests, max_retries
    cdef readonly double pending_timeout
    cdef readonly int connections        # open or being opened
    cdef object waiters                  # deque of (sink, endpoint) waiting for a slot
    cdef readonly dict overflows         # limit name → times it answered 503
    cdef double overflow_logged
    cdef readonly int hash_kind          # HASH_* below
    cdef readonly bytes hash_name        # header / cookie / claim name (lower-case)
    cdef uint64_t *mrow                  # this worker's metrics row, or NULL
    cdef uint32_t m_base                 # the cluster's metrics block
    cdef readonly object ssl_context     # upstream TLS (gwcore.tls.client_context), or None
    cdef readonly str server_name        # TLS: the name verified (None: each endpoint's host)
    cdef Endpoint pick(self, bytes key, Endpoint exclude)
    cdef void begin(self, Endpoint ep, bint retry)
    cdef void finish(self, Endpoint ep, bint retry)
    cdef void report(self, Endpoint ep, bint ok)
    cdef bint retry_allowed(self)
    cdef bint may_retry(self, unsigned int condition, int tries, bint replayable)
    cdef bytes hash_key(self, const char *base, const gw_field *fields, uint32_t nfields,
                        bytes target, bytes client_ip, object ex)
    cdef Upstream acquire(self, Endpoint ep)
    cdef int connect(self, Endpoint ep, ResponseSink sink, unsigned long token)
    cdef bint cancel_wait(self, ResponseSink sink)
    cdef void note_overflow(self, str limit)
    cdef void note_error(self, int error)
    cdef void _slot_freed(self)
    cdef bint _hand_over(self, Upstream up)

cdef class Upstream(Timed):
    cdef object transport
    cdef object _write
    cdef Endpoint ep
    cdef ResponseSink sink
    cdef int state
    cdef bint reused
    cdef bint counted                # holds one of the cluster's connection slots
    cdef bint got_bytes
    cdef bint request_done
    cdef bint no_body
    cdef bint keep_alive
    cdef bint reading_paused
    cdef bytes buf
    cdef Py_ssize_t pos
    cdef gw_head head
    cdef bint head_done
    cdef int body_mode
    cdef int64_t remaining
    cdef gw_chunked chunked
    cdef void send(self, ResponseSink sink, bytes head, bytes body, bint no_body)
    cdef void write(self, object data)
    cdef void writelines(self, list data)
    cdef void finish_request(self)
    cdef void pause_reading(self, bint pause)
    cdef void abandon(self)
    cdef void release(self)
    cdef void _parse_head(self)
    cdef void _body(self, object data, Py_ssize_t start)
    cdef void _end(self)
    cdef void _fail(self, int error)
