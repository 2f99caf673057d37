"""Wire helpers shared by the downstream and upstream protocols: the coarse clock that
enforces every connection deadline, and the head writer that re-emits a parsed head with
fields removed and added (RFC 9110 §7.6.1 hop-by-hop handling)."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcpy

from gwcore.http._chttp1 cimport GW_FK_CONNECTION, gw_field
from gwcore.http._parser cimport gw_next_list_element


cdef class Timed:
    cdef void on_deadline(self):
        pass


cdef class Clock:
    """Per-worker coarse clock: ``now`` (loop.time() seconds) is refreshed every ``tick``
    seconds, and every watched connection whose deadline has passed gets ``on_deadline``.
    One periodic callback replaces a timer per request (NGINX caches its time the same way)."""

    def __cinit__(self, loop, double tick=0.1):
        self.loop = loop
        self.tick = tick
        self.watched = set()
        self.now = loop.time()
        self.handle = loop.call_later(tick, self._sweep)

    cdef void watch(self, Timed t):
        self.watched.add(t)

    cdef void unwatch(self, Timed t):
        self.watched.discard(t)

    def _sweep(self):
        cdef Timed t
        cdef double now = self.loop.time()
        self.now = now
        self.handle = self.loop.call_later(self.tick, self._sweep)
        expired = [t for t in self.watched if 0 < t.deadline <= now]
        for t in expired:
            t.deadline = 0
            t.on_deadline()

    def close(self):
        """Stop the periodic sweep."""
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


cdef inline bint _ieq(const char *a, const char *b, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i
    cdef unsigned char x, y
    for i in range(n):
        x = <unsigned char>a[i]
        y = <unsigned char>b[i]
        if x >= 65 and x <= 90:
            x += 32
        if y >= 65 and y <= 90:
            y += 32
        if x != y:
            return False
    return True


# Fields a Connection option may not remove: they frame the message, route it, or are set by
# the gateway. Dropping Content-Length as "hop-by-hop" would turn a body into a second request.
cdef tuple _FRAMING = (b"content-length", b"transfer-encoding")
cdef tuple _PROTECTED = _FRAMING + (
    b"host", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-request-id",
    b"via", b"forwarded")


cdef bytes connection_options(const char *buf, const gw_field *fields, Py_ssize_t nfields,
                              unsigned char *drop, bint response):
    """Reads the Connection options (RFC 9110 §7.6.1): sets drop[i] for every field one of
    them names (drop may be NULL), and returns the first option (lower-case) that names a
    field no Connection option may remove, or None — for requests the framing fields, Host
    and the fields the gateway sets; for responses the framing fields (Content-Length,
    Transfer-Encoding)."""
    cdef Py_ssize_t i, j
    cdef size_t pos, el_off, el_len
    cdef const char *value
    cdef bytes name, bad = None
    cdef tuple protected = _FRAMING if response else _PROTECTED
    for i in range(nfields):
        if fields[i].kind != GW_FK_CONNECTION:
            continue
        value = buf + fields[i].value_off
        pos = 0
        while gw_next_list_element(value, fields[i].value_len, &pos, &el_off, &el_len):
            if drop != NULL:
                for j in range(nfields):
                    if fields[j].name_len == el_len and _ieq(buf + fields[j].name_off,
                                                             value + el_off, el_len):
                        drop[j] = 1
            if bad is None:
                for name in protected:
                    if <size_t>PyBytes_GET_SIZE(name) == el_len and _ieq(
                            PyBytes_AS_STRING(name), value + el_off, el_len):
                        bad = name
    return bad


cdef bytes build_head(const char *buf, bytes prefix, const char *mid, Py_ssize_t mid_len,
                      bytes suffix, const gw_field *fields, Py_ssize_t nfields,
                      unsigned int drop_kinds, const unsigned char *drop, list extra):
    """The start line, written as prefix + mid[0:mid_len] (usually a span of the received
    head) + suffix (ending in CRLF); then every field line of buf not dropped (copied as
    received), the already-formatted ``extra`` field lines, and the empty line. A field is
    dropped when it is hop-by-hop, its kind bit is set in drop_kinds, or drop[i] is set (drop
    may be NULL). One allocation, one pass of memcpy."""
    cdef Py_ssize_t i, n
    cdef Py_ssize_t total = PyBytes_GET_SIZE(prefix) + mid_len + PyBytes_GET_SIZE(suffix) + 2
    cdef const gw_field *f
    cdef bytes piece
    for i in range(nfields):
        f = &fields[i]
        if f.hop or (drop_kinds >> f.kind) & 1 or (drop != NULL and drop[i]):
            continue
        total += f.value_off + f.value_len - f.name_off + 2
    for piece in extra:
        total += PyBytes_GET_SIZE(piece)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef char *w = PyBytes_AS_STRING(out)
    for piece in (prefix, None, suffix):
        if piece is None:
            memcpy(w, mid, mid_len)
            w += mid_len
        else:
            n = PyBytes_GET_SIZE(piece)
            memcpy(w, PyBytes_AS_STRING(piece), n)
            w += n
    for i in range(nfields):
        f = &fields[i]
        if f.hop or (drop_kinds >> f.kind) & 1 or (drop != NULL and drop[i]):
            continue
        n = f.value_off + f.value_len - f.name_off
        memcpy(w, buf + f.name_off, n)
        w[n] = 13
        w[n + 1] = 10
        w += n + 2
    for piece in extra:
        n = PyBytes_GET_SIZE(piece)
        memcpy(w, PyBytes_AS_STRING(piece), n)
        w += n
    w[0] = 13
    w[1] = 10
    return out
