# distutils: sources = src_c/http1.c src_c/path.c
"""Python API of the C HTTP/1.1 parser (src_c/http1.h): request/response heads and chunked bodies,
and of the request path normaliser (src_c/path.h).

Zero copy: a parsed head keeps a reference to the ``bytes`` it came from and stores offsets;
``bytes`` objects for a field are built only when asked for. Input that is not ``bytes``
(bytearray, memoryview) may change after the call, so its head bytes are copied once.
Single-threaded: a module-level scratch field array is reused between calls.
"""
cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport (
    PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE,
)
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.ref cimport Py_INCREF, PyObject
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.stdint cimport uint32_t
from libc.string cimport memcmp, memcpy

from gwcore.http._chttp1 cimport (
    GW_CONN_CLOSE, GW_CONN_KEEP_ALIVE, gw_chunked, gw_field, gw_head, gw_limits,
)
from gwcore.http._cpath cimport (
    GW_PATH_DECODE_SLASHES, GW_PATH_MERGE_SLASHES, GW_PATH_REJECT_SLASHES, gw_normalize_path,
    gw_path_error_name, gw_path_error_status, gw_path_status,
)

# Plain Python (gwcore/http/_errors.py), so that the cffi binding raises the same class.
from gwcore.http._errors import ParseError

# The functions of src_c/http1.h, linked here and in no other Cython extension (the cffi binding,
# gwcore.http._cffi_http1, is a second copy for other interpreters that the gateway never
# imports). Siblings reach them through the wrappers below, declared in _parser.pxd (Cython
# exports them in __pyx_capi__); this module's own calls go to the same wrappers directly, which
# the C compiler inlines.
cdef extern from "http1.h" nogil:
    int c_parse_request "gw_parse_request"(const char *buf, size_t len, const gw_limits *lim,
                                           gw_head *h, gw_field *fields)
    int c_parse_response "gw_parse_response"(const char *buf, size_t len,
                                             const gw_limits *lim, gw_head *h, gw_field *fields)
    void c_chunked_init "gw_chunked_init"(gw_chunked *st)
    ssize_t c_chunked_decode "gw_chunked_decode"(gw_chunked *st, const char *buf, size_t len,
                                                 size_t *data_off, size_t *data_len)
    int c_find_field "gw_find_field"(const char *buf, const gw_field *fields,
                                     uint32_t num_fields, const char *name, size_t name_len)
    int c_next_list_element "gw_next_list_element"(const char *value, size_t value_len,
                                                   size_t *pos, size_t *el_off, size_t *el_len)
    const char *c_http_error_name "gw_http_error_name"(int code)
    int c_http_error_status "gw_http_error_status"(int code)
    int gw_http1_simd_level()
    int gw_http1_set_simd(int level)


cdef int gw_parse_request(const char *buf, size_t len, const gw_limits *lim, gw_head *h,
                          gw_field *fields) noexcept nogil:
    return c_parse_request(buf, len, lim, h, fields)


cdef int gw_parse_response(const char *buf, size_t len, const gw_limits *lim, gw_head *h,
                           gw_field *fields) noexcept nogil:
    return c_parse_response(buf, len, lim, h, fields)


cdef void gw_chunked_init(gw_chunked *st) noexcept nogil:
    c_chunked_init(st)


cdef ssize_t gw_chunked_decode(gw_chunked *st, const char *buf, size_t len, size_t *data_off,
                               size_t *data_len) noexcept nogil:
    return c_chunked_decode(st, buf, len, data_off, data_len)


cdef int gw_find_field(const char *buf, const gw_field *fields, uint32_t num_fields,
                       const char *name, size_t name_len) noexcept nogil:
    return c_find_field(buf, fields, num_fields, name, name_len)


cdef int gw_next_list_element(const char *value, size_t value_len, size_t *pos,
                              size_t *el_off, size_t *el_len) noexcept nogil:
    return c_next_list_element(value, value_len, pos, el_off, el_len)


cdef const char *gw_http_error_name(int code) noexcept nogil:
    return c_http_error_name(code)


cdef int gw_http_error_status(int code) noexcept nogil:
    return c_http_error_status(code)


cdef enum:
    _INLINE_FIELDS = 16     # fields stored inside the object; more go to the heap
    _SCRATCH_FIELDS = 100   # the default max_fields: larger limits allocate per call
    _NAME_MAX = 32          # longest shared field name
    _NAME_SLOTS = 8         # shared names per length


cdef object _parse_error(int code, Py_ssize_t offset):
    return ParseError(gw_http_error_name(code).decode("ascii"), gw_http_error_status(code),
                      offset)


# Common methods as shared constants: no allocation for them.
cdef tuple _METHODS = (None, b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH",
                       b"CONNECT", b"TRACE")
METHOD_NAMES = _METHODS     # by enum gw_method; shared with the connection module

cdef gw_field _scratch[_SCRATCH_FIELDS]

# Field names as clients and servers commonly spell them: `headers` returns these shared bytes
# objects on an exact (case-sensitive) match instead of allocating one per field.
cdef tuple _COMMON_NAMES = tuple(
    spelling
    for name in (
        b"Host", b"User-Agent", b"Accept", b"Accept-Encoding", b"Accept-Language", b"Connection",
        b"Content-Length", b"Content-Type", b"Cookie", b"Referer", b"Origin", b"Cache-Control",
        b"Authorization", b"If-None-Match", b"If-Modified-Since", b"Range", b"Pragma",
        b"Transfer-Encoding", b"Expect", b"Upgrade", b"Keep-Alive", b"TE", b"Via",
        b"X-Request-Id", b"X-Forwarded-For", b"X-Forwarded-Proto", b"X-Forwarded-Host",
        b"X-Real-IP", b"Date", b"Server", b"ETag", b"Last-Modified", b"Location", b"Vary",
        b"Set-Cookie", b"Content-Encoding", b"Age", b"Expires", b"Accept-Ranges",
        b"Upgrade-Insecure-Requests", b"Sec-Fetch-Dest", b"Sec-Fetch-Mode", b"Sec-Fetch-Site",
    )
    for spelling in (name, name.lower())
)
cdef PyObject *_names[_NAME_MAX + 1][_NAME_SLOTS]


cdef void _index_names():
    cdef Py_ssize_t n, j
    for name in _COMMON_NAMES:
        n = len(name)
        for j in range(_NAME_SLOTS):
            if _names[n][j] == NULL:
                _names[n][j] = <PyObject *>name  # kept alive by _COMMON_NAMES
                break
            if <bytes>_names[n][j] == name:
                break


_index_names()


cdef inline object _name_bytes(const char *p, uint32_t n):
    cdef Py_ssize_t j
    cdef PyObject *c
    if n <= _NAME_MAX:
        for j in range(_NAME_SLOTS):
            c = _names[n][j]
            if c == NULL:
                break
            if memcmp(PyBytes_AS_STRING(<object>c), p, n) == 0:
                return <object>c
    return PyBytes_FromStringAndSize(p, n)


@cython.freelist(64)
@cython.no_gc  # holds only bytes and a list of bytes tuples: no reference cycles
cdef class _Head:
    """Fields shared by Request and Response; only the parse functions create them."""
    cdef bytes _buf            # holds the head at _buf[_base:]
    cdef Py_ssize_t _base
    cdef gw_head _h
    cdef int _length
    cdef gw_field *_fields
    cdef gw_field _inline[_INLINE_FIELDS]
    cdef list _headers
    cdef bytes _target         # Request.target, built on first access

    def __init__(self, *args, **kwargs):
        raise TypeError(f"{type(self).__name__} objects are created by the parse functions")

    def __dealloc__(self):
        if self._fields != self._inline:
            PyMem_Free(self._fields)

    cdef inline const char *_ptr(self):
        return PyBytes_AS_STRING(self._buf) + self._base

    @property
    def version_minor(self) -> int:
        return self._h.version_minor

    @property
    def head_length(self) -> int:
        return self._length

    @property
    def content_length(self):
        return None if self._h.content_length < 0 else self._h.content_length

    @property
    def chunked(self) -> bool:
        return self._h.chunked != 0

    @property
    def keep_alive(self) -> bool:
        # RFC 9112 9.3: 1.1 persists unless "close"; 1.0 only with "keep-alive".
        if self._h.connection & GW_CONN_CLOSE:
            return False
        return self._h.version_minor == 1 or (self._h.connection & GW_CONN_KEEP_ALIVE) != 0

    def get(self, name, default=None):
        if not PyBytes_CheckExact(name):
            raise TypeError("field name must be bytes")
        cdef int i = gw_find_field(self._ptr(), self._fields, self._h.num_fields,
                                   PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name))
        if i < 0:
            return default
        return PyBytes_FromStringAndSize(self._ptr() + self._fields[i].value_off,
                                         self._fields[i].value_len)

    @property
    def headers(self) -> list:
        if self._headers is None:
            self._headers = self._build_headers()
        return self._headers

    cdef list _build_headers(self):
        cdef const char *p = self._ptr()
        cdef uint32_t i
        cdef const gw_field *f
        cdef list out = PyList_New(self._h.num_fields)
        for i in range(self._h.num_fields):
            f = &self._fields[i]
            name = _name_bytes(p + f.name_off, f.name_len)
            value = PyBytes_FromStringAndSize(p + f.value_off, f.value_len)
            pair = PyTuple_New(2)
            Py_INCREF(name)
            PyTuple_SET_ITEM(pair, 0, name)
            Py_INCREF(value)
            PyTuple_SET_ITEM(pair, 1, value)
            Py_INCREF(pair)
            PyList_SET_ITEM(out, i, pair)
        return out

    def __len__(self) -> int:
        return self._h.num_fields


@cython.final
cdef class Request(_Head):
    """A parsed request head (RFC 9112 3). Built by parse_request."""

    cdef bytes _path

    @property
    def path(self) -> bytes:
        """The path routes match: the normalised one the gateway set (RFC 3986 §6.2.2),
        else the request-target's path as received (up to "?")."""
        return self.target.partition(b"?")[0] if self._path is None else self._path

    @path.setter
    def path(self, bytes value):
        self._path = value

    @property
    def method(self) -> bytes:
        if self._h.method:
            return _METHODS[self._h.method]
        return PyBytes_FromStringAndSize(self._ptr() + self._h.method_off, self._h.method_len)

    @property
    def target(self) -> bytes:
        if self._target is None:
            self._target = PyBytes_FromStringAndSize(self._ptr() + self._h.target_off,
                                                     self._h.target_len)
        return self._target

    @property
    def query(self) -> bytes:
        """The request-target's query: after the first "?", without it (b"" when none)."""
        return self.target.partition(b"?")[2]

    def header(self, name):
        """The first value of the field ``name`` (bytes, case-insensitive), or None."""
        return _Head.get(self, name, None)

    @property
    def expect_continue(self) -> bool:
        return self._h.expect_continue != 0

    def __repr__(self) -> str:
        return (f"<Request {self.method!r} {self.target!r} HTTP/1.{self._h.version_minor} "
                f"fields={self._h.num_fields}>")


@cython.final
cdef class Response(_Head):
    """A parsed response head (RFC 9112 4). Built by parse_response."""

    @property
    def status(self) -> int:
        return self._h.status

    @property
    def reason(self) -> bytes:
        return PyBytes_FromStringAndSize(self._ptr() + self._h.reason_off, self._h.reason_len)

    def __repr__(self) -> str:
        return (f"<Response HTTP/1.{self._h.version_minor} {self._h.status} "
                f"fields={self._h.num_fields}>")


cdef inline int _fill(_Head m, bytes buf, Py_ssize_t base, const gw_head *h, int length,
                      const gw_field *fields) except -1:
    m._buf = buf
    m._base = base
    m._h = h[0]
    m._length = length
    if h.num_fields <= _INLINE_FIELDS:
        m._fields = m._inline
    else:
        m._fields = <gw_field *>PyMem_Malloc(h.num_fields * sizeof(gw_field))
        if m._fields == NULL:
            m._fields = m._inline
            raise MemoryError()
    memcpy(m._fields, fields, h.num_fields * sizeof(gw_field))
    return 0


cdef object request_view(bytes buf, Py_ssize_t base, const gw_head *h, int length,
                         const gw_field *fields):
    """A Request for a head already parsed at buf[base:] (no second parse; fields copied)."""
    cdef _Head msg = Request.__new__(Request)
    _fill(msg, buf, base, h, length, fields)
    return msg


cdef const char *request_fields(object request, gw_head *h, gw_field *fields) noexcept:
    """Copies a request_view's parsed head into h and its fields into fields (room for
    h.num_fields); returns where its head starts (valid while the Request lives)."""
    cdef _Head msg = <_Head>request
    h[0] = msg._h
    memcpy(fields, msg._fields, msg._h.num_fields * sizeof(gw_field))
    return msg._ptr()


cdef object _parse(bint request, object data, Py_ssize_t offset, gw_limits *lim):
    """Parses data[offset:]; returns a Request/Response, None when incomplete, or raises."""
    cdef Py_buffer view
    if PyBytes_CheckExact(data):
        return _parse_at(request, <bytes>data, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data),
                         offset, lim)
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        return _parse_at(request, None, <const char *>view.buf, view.len, offset, lim)
    finally:
        PyBuffer_Release(&view)


cdef object _parse_at(bint request, bytes owner, const char *p, Py_ssize_t n, Py_ssize_t offset,
                      gw_limits *lim):
    """owner: the bytes p points into, or None when p must be copied (mutable buffers)."""
    cdef gw_field *fields
    if offset < 0 or offset > n:
        raise ValueError(f"offset {offset} outside the data (length {n})")
    if lim.max_fields <= _SCRATCH_FIELDS:
        return _parse_into(request, owner, p, n, offset, lim, _scratch)
    fields = <gw_field *>PyMem_Malloc(lim.max_fields * sizeof(gw_field))
    if fields == NULL:
        raise MemoryError()
    try:
        return _parse_into(request, owner, p, n, offset, lim, fields)
    finally:
        PyMem_Free(fields)


cdef object _parse_into(bint request, bytes owner, const char *p, Py_ssize_t n,
                        Py_ssize_t offset, gw_limits *lim, gw_field *fields):
    cdef gw_head h
    cdef int r
    cdef _Head msg
    if request:
        r = gw_parse_request(p + offset, <size_t>(n - offset), lim, &h, fields)
    else:
        r = gw_parse_response(p + offset, <size_t>(n - offset), lim, &h, fields)
    if r == -2:
        return None
    if r < 0:
        raise _parse_error(h.error, offset + h.error_off)
    msg = Request.__new__(Request) if request else Response.__new__(Response)
    if owner is None:
        _fill(msg, PyBytes_FromStringAndSize(p + offset, r), 0, &h, r, fields)
    else:
        _fill(msg, owner, offset, &h, r, fields)
    return msg


def parse_request(data, Py_ssize_t offset=0, *, uint32_t max_head_bytes=16384,
                  uint32_t max_fields=100, uint32_t max_target_len=8192):
    cdef gw_limits lim
    lim.max_head_bytes = max_head_bytes
    lim.max_fields = max_fields
    lim.max_target_len = max_target_len
    return _parse(True, data, offset, &lim)


def parse_response(data, Py_ssize_t offset=0, *, uint32_t max_head_bytes=16384,
                   uint32_t max_fields=100):
    cdef gw_limits lim
    lim.max_head_bytes = max_head_bytes
    lim.max_fields = max_fields
    lim.max_target_len = 0
    return _parse(False, data, offset, &lim)


@cython.final
cdef class ChunkedDecoder:
    """Streaming decoder of the chunked transfer coding (RFC 9112 7.1)."""
    cdef gw_chunked _st
    cdef bytes _unused
    cdef Py_ssize_t _fed      # bytes consumed by the decoder so far

    def __cinit__(self):
        gw_chunked_init(&self._st)
        self._unused = b""
        self._fed = 0

    def feed(self, data) -> list:
        cdef Py_buffer view
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t r
        cdef size_t off, dlen
        cdef gw_chunked before
        cdef list out = []
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        cdef const char *p = <const char *>view.buf
        cdef Py_ssize_t n = view.len
        try:
            if self._st.done:
                self._unused += p[:n]
                return out
            while pos < n and not self._st.done:
                before = self._st
                r = gw_chunked_decode(&self._st, p + pos, <size_t>(n - pos), &off, &dlen)
                if r < 0:
                    raise _parse_error(self._st.error, self._fed + pos + _error_index(
                        &before, p + pos, <size_t>(n - pos)))
                if dlen:
                    out.append(PyBytes_FromStringAndSize(p + pos + off, dlen))
                pos += r
                if r == 0:
                    break
            self._fed += pos
            if self._st.done and pos < n:
                self._unused += p[pos:n]
            return out
        finally:
            PyBuffer_Release(&view)

    @property
    def done(self) -> bool:
        return self._st.done != 0

    @property
    def unused(self) -> bytes:
        return self._unused


cdef Py_ssize_t _error_index(const gw_chunked *before, const char *p, size_t n):
    """Replays a failed decode byte by byte from its saved state to find the offending byte."""
    cdef gw_chunked st = before[0]
    cdef size_t i = 0, off, dlen
    cdef Py_ssize_t r
    while i < n:
        r = gw_chunked_decode(&st, p + i, 1, &off, &dlen)
        if r < 0:
            return i
        i += 1
    return n


def simd_level() -> int:
    return gw_http1_simd_level()


def set_simd(int level) -> int:
    return gw_http1_set_simd(level)


cdef enum:
    _PATH_STACK = 4096      # paths up to this many bytes are normalised in a stack buffer


def normalize_path(bytes path not None, *, bint merge_slashes=True, str escaped_slashes="decode"):
    cdef unsigned flags = GW_PATH_MERGE_SLASHES if merge_slashes else 0
    if escaped_slashes == "decode":
        flags |= GW_PATH_DECODE_SLASHES
    elif escaped_slashes == "reject":
        flags |= GW_PATH_REJECT_SLASHES
    elif escaped_slashes != "keep":
        raise ValueError(f"escaped_slashes must be 'decode', 'keep' or 'reject', "
                         f"not {escaped_slashes!r}")
    cdef char stack[_PATH_STACK]
    cdef char *out = stack
    cdef Py_ssize_t n = PyBytes_GET_SIZE(path)
    cdef gw_path_status st
    cdef Py_ssize_t r
    if n > _PATH_STACK:
        out = <char *>PyMem_Malloc(n)
        if out == NULL:
            raise MemoryError()
    try:
        r = gw_normalize_path(PyBytes_AS_STRING(path), <size_t>n, out, <size_t>n, flags, &st)
        if r < 0:
            raise ParseError(gw_path_error_name(st.error).decode("ascii"),
                             gw_path_error_status(st.error), st.error_off)
        if st.same:
            return path
        return PyBytes_FromStringAndSize(out, r)
    finally:
        if out != stack:
            PyMem_Free(out)
