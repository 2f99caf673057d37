"""The exchange: one per request, from its parsed head to its log phase (DESIGN.md §1).

The downstream connection makes one for every request and ends it in exactly one place
(``Downstream._finish``), however the request ended; filters read and write it. Its times
are monotonic nanoseconds (``time.monotonic_ns()``'s clock)."""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int64_t
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec


cdef int64_t now_ns() noexcept:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


@cython.freelist(256)
cdef class Exchange:
    """One request and what became of it.

    Request: ``request`` (gwcore.http.Request: ``method``, ``target``, ``path`` — normalised,
    ``query``, ``header(name)``; None on a route without filters, where nothing reads it),
    ``method``, ``path`` (bytes), ``client_address`` (str). Routing: ``route_name`` (str),
    ``cluster`` (the runtime cluster or None), ``endpoint`` (``host:port`` str of the last try,
    or None), ``tries``. Response: ``status`` (int, 0 before a response), ``bytes_received``
    (request body bytes), ``bytes_sent`` (response bytes written to the client, head
    included). Times, monotonic ns (0 = did not happen): ``t_received`` (head parsed),
    ``t_upstream`` (request handed to an upstream connection), ``t_response`` (response head
    ready), ``t_end``. ``end``: how it ended — ``ok``, ``local`` (the gateway or a filter
    answered), ``client_abort``, ``upstream_error``, ``timeout``, ``overflow``, ``draining``
    (None until it ended). ``state``: a dict for filters (per-request scratch space).
    Trace context (W3C, when tracing is configured): ``trace_id`` (32 hex), ``parent_id``
    (the client's span, 16 hex, or None), ``span_id`` (this hop's, sent upstream as the
    parent), ``sampled``. Outcomes for logs and metrics: ``auth`` (``ok`` or the JWT
    rejection reason; None when no JWT filter ran), ``cache`` (the edge cache's outcome:
    HIT, MISS, STALE, UPDATING, REVALIDATED, BYPASS; None on routes without a cache).
    ``response_length``: the upstream response's body length in bytes as its head announced
    it (set before on_response_head; -1 when chunked or close-delimited).
    ``referer``, ``user_agent`` (bytes or None) and ``http10``: set only when the access log's
    format is combined (gwcore.observability)."""

    def __init__(self, request, route=None, str client_address=""):
        """An exchange for ``request`` (a gwcore.http.Request), as the gateway makes them;
        for testing filters. ``route``: a gwcore.proxy.Route or None."""
        self.request = request
        self.method = getattr(request, "method", None)
        self.target = getattr(request, "target", b"/")
        self.path = getattr(request, "path", None) or self.target.partition(b"?")[0]
        self.client_address = client_address
        self.route = route
        self.route_name = route.name if route is not None else None
        self.t_received = now_ns()

    @property
    def state(self) -> dict:
        if self._state is None:
            self._state = {}
        return self._state

    @property
    def query(self) -> bytes:
        """The request-target's query (after "?", without it; b"" if none)."""
        return self.target.partition(b"?")[2]

    @property
    def duration(self) -> float:
        """Seconds from the head being parsed to the end (or to now while under way)."""
        return ((self.t_end or now_ns()) - self.t_received) / 1e9

    @property
    def client_ip(self) -> str:
        """The same as ``client_address`` (the name the JWT filter first used)."""
        return self.client_address

    def add_upstream_header(self, bytes name, bytes value) -> None:
        """Send ``name: value`` upstream in addition to the request's fields. bytes without
        CR, LF or NUL (ValueError)."""
        _check_field(name, value)
        if self.upstream_fields is None:
            self.upstream_fields = []
        self.upstream_fields.append((name, value))

    def set_upstream_field(self, bytes name, bytes value) -> None:
        """Send ``name: value`` upstream instead of any field of that name the client sent
        (so a client can never forge it). ValueError as add_upstream_header."""
        _check_field(name, value)
        self.remove_upstream_field(name)
        cdef bytes low = name.lower()
        cdef list fields = self.upstream_fields
        cdef Py_ssize_t i
        for i in range(len(fields) - 1, -1, -1):      # set again: the earlier value goes
            if (<bytes>fields[i][0]).lower() == low:
                del fields[i]
        fields.append((name, value))

    def remove_upstream_field(self, bytes name) -> None:
        """Do not forward the client's ``name`` field(s) upstream (case-insensitive)."""
        if self.removed_fields is None:
            self.removed_fields = set()
        if self.upstream_fields is None:
            self.upstream_fields = []
        self.removed_fields.add(name.lower())

    def __repr__(self):
        return (f"<Exchange {self.method!r} {self.path!r} route={self.route_name!r} "
                f"status={self.status} end={self.end!r}>")


cdef _check_field(bytes name, bytes value):
    """ValueError unless name is non-empty without CR, LF, NUL, ":" or whitespace and value
    has no CR, LF or NUL (what would let a filter split or forge a field line)."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(name)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(name)
    cdef unsigned char c
    cdef bint bad = n == 0
    for i in range(n):
        c = p[i]
        if c == 13 or c == 10 or c == 0 or c == 58 or c == 32 or c == 9:
            bad = True
    p = <const unsigned char *>PyBytes_AS_STRING(value)
    for i in range(PyBytes_GET_SIZE(value)):
        c = p[i]
        if c == 13 or c == 10 or c == 0:
            bad = True
    if bad:
        raise ValueError("a field name is a token and its value has no CR, LF or NUL")


cdef Exchange new_exchange(bytes method, bytes target, str client_address):
    cdef Exchange ex = Exchange.__new__(Exchange)
    ex.method = method
    ex.target = target
    ex.client_address = client_address
    ex.t_received = now_ns()
    return ex
