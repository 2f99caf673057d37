"""The access log: one line per request, from the one place an exchange ends
(``Downstream._finish``), written without the event loop ever waiting for a disk.

A line is formatted in C into the worker's current batch (no Python string formatting per
field). A batch goes to the log's one writer thread once it holds ``batch_bytes`` (at most a
quarter of ``buffer_bytes``, so several fit in the buffer) or when it is ``flush_interval``
seconds old (a loop timer, armed only while a batch is open); the thread does the ``write``
calls, without the GIL. Bytes handed over and not yet written are
bounded by ``buffer_bytes``: a batch that would go beyond it is dropped and its lines counted
in ``lines_dropped`` (a warning is logged at most every 10 s), so a slow disk or a pipe
nobody reads costs lines, never memory or latency. A pipe or socket (stdout, shared by the
workers) gets whole lines in writes of at most PIPE_BUF bytes, so lines of two workers never
mix. ``reopen`` (SIGUSR1, logrotate) has the thread open the path again between two writes.

Secrets are never logged: no request field is, except Referer and User-Agent in the combined
format, and the values of the query parameters named by ``redact_query`` (case-insensitive,
percent-escapes in the name decoded) are written as ``REDACTED``, in the query and in the
Referer's query alike.
"""

import errno as errno_codes
import logging
import os
import stat
import threading

from gwcore.config import _REDACT_QUERY

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.errno cimport EAGAIN, EBADF, EINTR, errno
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memcmp, memcpy, memrchr, strlen
from posix.fcntl cimport O_APPEND, O_CLOEXEC, O_CREAT, O_WRONLY, open
from posix.stat cimport S_ISREG, fstat, struct_stat
from posix.unistd cimport close, write

from gwcore.proxy._exchange cimport Exchange
from gwcore.proxy._upstream cimport Cluster

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    cdef struct tm:
        int tm_sec
        int tm_min
        int tm_hour
        int tm_mday
        int tm_mon
        int tm_year
        long tm_gmtoff
    enum:
        CLOCK_REALTIME
        CLOCK_MONOTONIC
    int clock_gettime(int clk, timespec *ts)
    tm *gmtime_r(const time_t *t, tm *out)
    tm *localtime_r(const time_t *t, tm *out)

cdef extern from "<pthread.h>" nogil:
    int pthread_mutex_init(pthread_mutex_t *m, const void *attr)
    int pthread_mutex_destroy(pthread_mutex_t *m)
    int pthread_mutex_lock(pthread_mutex_t *m)
    int pthread_mutex_unlock(pthread_mutex_t *m)
    int pthread_cond_init(pthread_cond_t *c, const void *attr)
    int pthread_cond_destroy(pthread_cond_t *c)
    int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
    int pthread_cond_signal(pthread_cond_t *c)

cdef extern from "<limits.h>" nogil:
    enum:
        PIPE_BUF

cdef extern from "<poll.h>" nogil:
    cdef struct pollfd:
        int fd
        short events
        short revents
    enum:
        POLLOUT
    int poll(pollfd *fds, unsigned long nfds, int timeout)

log = logging.getLogger("gwcore")

DEFAULT_REDACT = tuple(_REDACT_QUERY)     # the config's default access_log.redact_query
cdef double WARN_INTERVAL = 10.0    # seconds between two warnings about dropped lines
JOIN_TIMEOUT = 5.0                  # seconds close() waits for the writer to write what is left

cdef const char *HEX = b"0123456789abcdef"
cdef const char *HEX_UPPER = b"0123456789ABCDEF"
cdef const char *MONTHS = b"JanFebMarAprMayJunJulAugSepOctNovDec"
cdef const char *REDACTED = b"REDACTED"

# per byte, in JSON strings: 0 copied, 1 escaped, 2 the start of a UTF-8 sequence (or not)
cdef unsigned char JSON_CLASS[256]
# per byte, in combined lines (NGINX's escape=default): 0 copied, 1 written as \xXX
cdef unsigned char CLF_ESCAPE[256]


cdef void _init_tables() noexcept:
    cdef int c
    for c in range(256):
        JSON_CLASS[c] = 1 if c < 32 or c == 34 or c == 92 or c == 127 else 2 if c >= 128 else 0
        CLF_ESCAPE[c] = 1 if c < 32 or c > 126 or c == 34 or c == 92 else 0


_init_tables()


# -- writing into a buffer the caller has reserved ------------------------------------------

cdef inline char *_put(char *o, const char *s) noexcept:
    """A NUL-terminated literal (its length is folded at compile time)."""
    cdef size_t n = strlen(s)
    memcpy(o, s, n)
    return o + n


cdef inline char *_int(char *o, int64_t v) noexcept:
    cdef char digits[20]
    cdef int k = 0
    cdef uint64_t u
    if v < 0:
        o[0] = 45       # "-"
        o += 1
        u = <uint64_t>(-(v + 1)) + 1
    else:
        u = <uint64_t>v
    while True:
        digits[k] = <char>(48 + u % 10)
        k += 1
        u //= 10
        if u == 0:
            break
    while k > 0:
        k -= 1
        o[0] = digits[k]
        o += 1
    return o


cdef inline char *_two(char *o, long v) noexcept:
    o[0] = <char>(48 + v // 10 % 10)
    o[1] = <char>(48 + v % 10)
    return o + 2


cdef inline char *_seconds(char *o, int64_t ns) noexcept:
    """ns as seconds with 6 decimals (microseconds): 0.000412."""
    cdef int64_t us
    cdef int i
    if ns < 0:
        ns = 0
    o = _int(o, ns // 1000000000)
    o[0] = 46           # "."
    us = (ns % 1000000000) // 1000
    for i in range(6, 0, -1):
        o[i] = <char>(48 + us % 10)
        us //= 10
    return o + 7


cdef inline int _utf8_len(const unsigned char *s, Py_ssize_t n) noexcept:
    """The length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong forms, no
    surrogates, nothing above U+10FFFF), or 0."""
    cdef unsigned char c = s[0]
    if 0xC2 <= c <= 0xDF:
        return 2 if n >= 2 and 0x80 <= s[1] <= 0xBF else 0
    if 0xE0 <= c <= 0xEF:
        if n < 3 or not (0x80 <= s[2] <= 0xBF):
            return 0
        if c == 0xE0:
            return 3 if 0xA0 <= s[1] <= 0xBF else 0
        if c == 0xED:
            return 3 if 0x80 <= s[1] <= 0x9F else 0
        return 3 if 0x80 <= s[1] <= 0xBF else 0
    if 0xF0 <= c <= 0xF4:
        if n < 4 or not (0x80 <= s[2] <= 0xBF and 0x80 <= s[3] <= 0xBF):
            return 0
        if c == 0xF0:
            return 4 if 0x90 <= s[1] <= 0xBF else 0
        if c == 0xF4:
            return 4 if 0x80 <= s[1] <= 0x8F else 0
        return 4 if 0x80 <= s[1] <= 0xBF else 0
    return 0


cdef char *_json_escape(char *o, const char *text, Py_ssize_t n) noexcept:
    """The bytes as the inside of a JSON string: well-formed UTF-8 as it is, `"`, `\\` and
    control characters escaped, every other byte as \\u00XX. At most 6 bytes per byte."""
    cdef const unsigned char *s = <const unsigned char *>text
    cdef Py_ssize_t i = 0
    cdef unsigned char c, k
    cdef int m
    while i < n:
        c = s[i]
        k = JSON_CLASS[c]
        if k == 0:
            o[0] = <char>c
            o += 1
            i += 1
            continue
        if k == 2:
            m = _utf8_len(s + i, n - i)
            if m:
                memcpy(o, s + i, m)
                o += m
                i += m
                continue
        i += 1
        o[0] = 92       # "\"
        if c == 34 or c == 92:
            o[1] = <char>c
            o += 2
        elif c == 10:
            o[1] = 110  # n
            o += 2
        elif c == 13:
            o[1] = 114  # r
            o += 2
        elif c == 9:
            o[1] = 116  # t
            o += 2
        else:
            memcpy(o + 1, b"u00", 3)
            o[4] = HEX[c >> 4]
            o[5] = HEX[c & 15]
            o += 6
    return o


cdef char *_clf_escape(char *o, const char *text, Py_ssize_t n) noexcept:
    """NGINX's escape=default: `"`, `\\` and bytes outside 0x20..0x7E as \\xXX (at most 4
    bytes per byte)."""
    cdef const unsigned char *s = <const unsigned char *>text
    cdef Py_ssize_t i
    cdef unsigned char c
    for i in range(n):
        c = s[i]
        if CLF_ESCAPE[c]:
            o[0] = 92
            o[1] = 120  # x
            o[2] = HEX_UPPER[c >> 4]
            o[3] = HEX_UPPER[c & 15]
            o += 4
        else:
            o[0] = <char>c
            o += 1
    return o


cdef inline char *_escape(char *o, const char *s, Py_ssize_t n, bint json) noexcept:
    return _json_escape(o, s, n) if json else _clf_escape(o, s, n)


cdef inline char *_jstr(char *o, const char *s, Py_ssize_t n) noexcept:
    """A JSON string, or null when s is NULL."""
    if s == NULL:
        return _put(o, b"null")
    o[0] = 34
    o = _json_escape(o + 1, s, n)
    o[0] = 34
    return o + 1


cdef inline int _hex_value(unsigned char c) noexcept:
    if 48 <= c <= 57:
        return c - 48
    c |= 32
    if 97 <= c <= 102:
        return c - 87
    return -1


cdef inline const char *_utf8(str s, Py_ssize_t *n) except? NULL:
    """s as UTF-8 (no copy for ASCII strings), or NULL for None."""
    if s is None:
        n[0] = 0
        return NULL
    return PyUnicode_AsUTF8AndSize(s, n)


@cython.final
cdef class AccessLog:
    """One worker's access log (module docstring).

    ``AccessLog(path, format="json", sample_2xx=1.0, buffer_bytes=4 MiB, redact_query=...,
    loop=None, batch_bytes=64 KiB, flush_interval=0.1)``: ``path`` a file (appended to,
    created 0644) or ``"-"`` (file descriptor 1, stdout); ``format`` ``json`` or
    ``combined``; ``sample_2xx`` the share of 2xx responses logged (0..1; other statuses
    always are); ``buffer_bytes`` the bound of bytes waiting for the writer; ``redact_query``
    query parameter names whose values are replaced by ``REDACTED`` (case-insensitive);
    ``loop`` the event loop whose timer hands a batch over after ``flush_interval`` seconds
    (None: only full batches, ``flush`` and ``close`` hand lines over). Opens the file at
    once (OSError), except a FIFO nobody reads yet: the writer thread opens that one.

    ``lines_written`` and ``lines_dropped`` count lines since the start (ints)."""

    def __cinit__(self):
        self.fd = -1
        self.cached_sec = -1
        self.redact = ()
        self.drop_warned = self.write_warned = -1e18

    def __init__(self, str path, str format="json", double sample_2xx=1.0,
                 Py_ssize_t buffer_bytes=4 << 20, redact_query=DEFAULT_REDACT, loop=None,
                 Py_ssize_t batch_bytes=64 << 10, double flush_interval=0.1):
        if self.thread is not None:
            raise RuntimeError("AccessLog is initialised once")
        if format not in ("json", "combined"):
            raise ValueError(f"format must be json or combined, got {format!r}")
        if not 0.0 <= sample_2xx <= 1.0:
            raise ValueError("sample_2xx must be between 0 and 1")
        if buffer_bytes <= 0 or batch_bytes <= 0:
            raise ValueError("buffer_bytes and batch_bytes must be positive")
        self.path = path
        self.combined = format == "combined"
        self.sample_2xx = sample_2xx
        self.keep_all_2xx = sample_2xx >= 1.0
        self.threshold = <uint64_t>(sample_2xx * 18446744073709551616.0) if sample_2xx < 1.0 \
            else 0
        self.rng = int.from_bytes(os.urandom(8), "little") | 1
        self.buffer_bytes = buffer_bytes
        # a few batches fit in the buffer: one being written, the next ones queued
        self.batch_bytes = min(batch_bytes, max(buffer_bytes // 4, 1))
        self.flush_interval = flush_interval
        self.loop = loop
        self.redact = tuple(sorted({name.lower().encode() for name in redact_query}))
        self.redact_max = max((len(name) for name in self.redact), default=0)
        self._reserve(self.batch_bytes + 4096)
        if path == "-":
            self.fd = 1
        else:
            self.path_c = os.fsencode(path)
            self.path_p = self.path_c
            self.fd = _open_now(path)
        if pthread_mutex_init(&self.mutex, NULL) or pthread_cond_init(&self.wake, NULL):
            raise OSError("pthread_mutex_init / pthread_cond_init failed")
        self.sync_ready = True
        self.thread = threading.Thread(target=self._run, name="gwcore-access-log", daemon=True)
        self.thread.start()

    def __dealloc__(self):
        cdef Batch *b = self.head
        cdef Batch *nxt
        while b != NULL:
            nxt = b.next
            free(b.data)
            free(b)
            b = nxt
        free(self.buf)
        if self.sync_ready:
            pthread_cond_destroy(&self.wake)
            pthread_mutex_destroy(&self.mutex)

    # -- the loop thread --------------------------------------------------------------------

    cpdef void record(self, Exchange ex) noexcept:
        """Logs the exchange that just ended (sampling 2xx), or does nothing after close."""
        cdef timespec now
        if self.closed or self.thread is None or ex is None:
            return      # closed, or never initialised
        if 200 <= ex.status < 300 and not self.keep_all_2xx and self._random() >= self.threshold:
            return
        clock_gettime(CLOCK_REALTIME, &now)
        try:
            self._append(ex, now.tv_sec, now.tv_nsec)
            self.batch_lines += 1
            if self.len >= self.batch_bytes:
                self._handoff()
            elif self.timer is None and self.loop is not None:
                self.timer = self.loop.call_later(self.flush_interval, self._tick)
        except Exception:
            log.exception("access log: a line could not be written")

    def record_line(self, bytes line) -> None:
        """Logs one line made elsewhere (a JSON object and its newline, bytes; e.g. a
        mirrored request's outcome, gwcore/inference), never sampled; nothing after close."""
        cdef Py_ssize_t n = PyBytes_GET_SIZE(line)
        if self.closed or self.thread is None:
            return
        self._reserve(n)
        memcpy(self.buf + self.len, PyBytes_AS_STRING(line), n)
        self.len += n
        self.batch_lines += 1
        if self.len >= self.batch_bytes:
            self._handoff()
        elif self.timer is None and self.loop is not None:
            self.timer = self.loop.call_later(self.flush_interval, self._tick)

    def line(self, Exchange ex not None, now=None) -> bytes:
        """The line ``record`` would write for ex at ``now`` (seconds since the epoch, float;
        default: now), newline included; neither sampled nor buffered."""
        cdef timespec ts
        cdef Py_ssize_t start = self.len
        cdef double t
        cdef long us
        if now is None:
            clock_gettime(CLOCK_REALTIME, &ts)
        else:
            # to the microsecond: a double near 2e9 holds no finer time (.123 is .12299990...)
            t = now
            ts.tv_sec = <time_t>(t // 1)
            us = <long>((t - ts.tv_sec) * 1e6 + 0.5)
            if us >= 1000000:
                ts.tv_sec += 1
                us -= 1000000
            ts.tv_nsec = us * 1000
        self._append(ex, ts.tv_sec, ts.tv_nsec)
        out = PyBytes_FromStringAndSize(self.buf + start, self.len - start)
        self.len = start
        return out

    def flush(self) -> None:
        """Hands the lines buffered so far to the writer thread now (does not wait)."""
        self._handoff()

    def reopen(self) -> None:
        """Has the writer thread open the path again before its next write (SIGUSR1:
        logrotate renamed the file); a no-op for ``"-"``."""
        with nogil:
            pthread_mutex_lock(&self.mutex)
            self.reopen_wanted = True
            pthread_cond_signal(&self.wake)
            pthread_mutex_unlock(&self.mutex)

    def close(self, double timeout=JOIN_TIMEOUT) -> bool:
        """Hands over what is buffered, stops the writer once it has written everything and
        waits for that at most ``timeout`` seconds; record() does nothing afterwards. True
        when everything was written (or dropped and counted) in time."""
        if self.thread is None:
            return True         # never initialised
        if not self.closed:
            self._handoff()
            self.closed = True
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            with nogil:
                pthread_mutex_lock(&self.mutex)
                self.stopping = True
                pthread_cond_signal(&self.wake)
                pthread_mutex_unlock(&self.mutex)
        self.thread.join(timeout)
        if self.thread.is_alive():
            log.warning("access log: %d bytes still unwritten to %s after %gs",
                        self.waiting_bytes, self.path, timeout)
            return False
        return True

    @property
    def lines_written(self) -> int:
        """Lines written since the start."""
        cdef unsigned long long n
        with nogil:
            pthread_mutex_lock(&self.mutex)
            n = self.written
            pthread_mutex_unlock(&self.mutex)
        return n

    @property
    def lines_dropped(self) -> int:
        """Lines dropped since the start: the buffer for a slow writer was full, or writing
        failed."""
        cdef unsigned long long n
        with nogil:
            pthread_mutex_lock(&self.mutex)
            n = self.dropped
            pthread_mutex_unlock(&self.mutex)
        return n

    @property
    def waiting_bytes(self) -> int:
        """Bytes handed to the writer thread and not written yet."""
        cdef size_t n
        with nogil:
            pthread_mutex_lock(&self.mutex)
            n = self.waiting
            pthread_mutex_unlock(&self.mutex)
        return n

    def _tick(self):
        self.timer = None
        self._handoff()

    cdef uint64_t _random(self) noexcept:
        """xorshift64*: the next pseudo-random 64-bit number."""
        cdef uint64_t x = self.rng
        x ^= x >> 12
        x ^= x << 25
        x ^= x >> 27
        self.rng = x
        return x * <uint64_t>2685821657736338717ULL

    cdef int _reserve(self, Py_ssize_t n) except -1:
        cdef Py_ssize_t cap = self.cap
        cdef char *grown
        if self.len + n <= cap:
            return 0
        while cap < self.len + n:
            cap = cap * 2 if cap else 4096
        grown = <char *>realloc(self.buf, cap)
        if grown == NULL:
            raise MemoryError()
        self.buf = grown
        self.cap = cap
        return 0

    cdef int _handoff(self) except -1:
        """The current batch goes to the writer thread (no copy: a new buffer takes its
        place), or is dropped and counted when the bytes waiting would exceed
        buffer_bytes (a batch finding nothing waiting always goes: one line may be longer
        than the buffer)."""
        cdef Batch *b
        cdef char *fresh
        cdef bint dropped = False
        if self.len == 0:
            return 0
        b = <Batch *>malloc(sizeof(Batch))
        fresh = <char *>malloc(self.batch_bytes + 4096)
        if b == NULL or fresh == NULL:
            free(b)
            free(fresh)
            raise MemoryError()
        b.next = NULL
        b.data = self.buf
        b.len = self.len
        b.lines = self.batch_lines
        self.buf = fresh
        self.cap = self.batch_bytes + 4096
        self.len = 0
        self.batch_lines = 0
        with nogil:
            pthread_mutex_lock(&self.mutex)
            if self.waiting and self.waiting + b.len > <size_t>self.buffer_bytes:
                self.dropped += b.lines
                dropped = True
            else:
                if self.tail == NULL:
                    self.head = b
                else:
                    self.tail.next = b
                self.tail = b
                self.waiting += b.len
                pthread_cond_signal(&self.wake)
            pthread_mutex_unlock(&self.mutex)
        if dropped:
            free(b.data)
            free(b)
            self._warn_dropped()
        return 0

    cdef void _warn_dropped(self):
        cdef double now = _monotonic()
        cdef unsigned long long dropped
        if now - self.drop_warned < WARN_INTERVAL:
            return
        self.drop_warned = now
        dropped = self.lines_dropped
        log.warning("access log: %d lines dropped (%d in all): writing to %s is slower than "
                    "the requests and %d bytes already wait (buffer_bytes %d)",
                    dropped - self.drop_warned_at, dropped, self.path, self.waiting_bytes,
                    self.buffer_bytes)
        self.drop_warned_at = dropped

    cdef void _stamp(self, long sec):
        """Caches the formatted second of both timestamp forms."""
        cdef tm t
        cdef time_t s = sec
        cdef long off
        cdef char *o
        self.cached_sec = sec
        gmtime_r(&s, &t)
        o = self.iso
        o = _int(o, t.tm_year + 1900)
        o = _two(_put(o, b"-"), t.tm_mon + 1)
        o = _two(_put(o, b"-"), t.tm_mday)
        o = _two(_put(o, b"T"), t.tm_hour)
        o = _two(_put(o, b":"), t.tm_min)
        o = _two(_put(o, b":"), t.tm_sec)
        o[0] = 46       # "."
        o[1] = 0
        localtime_r(&s, &t)
        o = _two(self.clf, t.tm_mday)
        o[0] = 47       # "/"
        memcpy(o + 1, MONTHS + 3 * t.tm_mon, 3)
        o[4] = 47
        o = _int(o + 5, t.tm_year + 1900)
        o = _two(_put(o, b":"), t.tm_hour)
        o = _two(_put(o, b":"), t.tm_min)
        o = _two(_put(o, b":"), t.tm_sec)
        off = t.tm_gmtoff // 60
        o = _put(o, b" -" if off < 0 else b" +")
        if off < 0:
            off = -off
        o = _two(_two(o, off // 60), off % 60)
        o[0] = 0

    cdef bint _redacted(self, const unsigned char *name, Py_ssize_t n) noexcept:
        """Whether a query parameter name (percent-escapes decoded, ASCII case ignored) is
        one of those whose value is never logged."""
        cdef unsigned char low[256]
        cdef Py_ssize_t i = 0, k = 0
        cdef int hi, lo
        cdef unsigned char c
        cdef bytes r
        while i < n:
            if k >= self.redact_max or k >= 256:
                return False
            c = name[i]
            if c == 37 and i + 2 < n:
                hi = _hex_value(name[i + 1])
                lo = _hex_value(name[i + 2])
                if hi >= 0 and lo >= 0:
                    c = <unsigned char>(hi * 16 + lo)
                    i += 2
            elif c == 43:
                c = 32  # "+" is a space in a form-encoded name
            if 65 <= c <= 90:
                c += 32
            low[k] = c
            k += 1
            i += 1
        for r in self.redact:
            if PyBytes_GET_SIZE(r) == k and memcmp(PyBytes_AS_STRING(r), low, k) == 0:
                return True
        return False

    cdef char *_query(self, char *o, const char *q, Py_ssize_t n, bint json) noexcept:
        """The query with the values of redacted parameters replaced, escaped for the
        format."""
        cdef Py_ssize_t pos = 0, end, name_len
        cdef const char *amp
        cdef const char *eq
        while pos < n:
            amp = <const char *>memchr(q + pos, 38, n - pos)       # "&"
            end = amp - q if amp != NULL else n
            eq = <const char *>memchr(q + pos, 61, end - pos)       # "="
            if eq != NULL:
                name_len = eq - (q + pos)
                if self._redacted(<const unsigned char *>q + pos, name_len):
                    o = _escape(o, q + pos, name_len + 1, json)
                    o = _put(o, REDACTED)
                else:
                    o = _escape(o, q + pos, end - pos, json)
            else:
                o = _escape(o, q + pos, end - pos, json)
            if amp != NULL:
                o[0] = 38
                o += 1
            pos = end + 1
        return o

    cdef int _append(self, Exchange ex, long sec, long nsec) except -1:
        """Formats ex's line at the end of the batch."""
        cdef bytes method = ex.method
        cdef bytes path = ex.path
        cdef bytes target = ex.target
        cdef const char *tp = NULL
        cdef const char *qp = NULL
        cdef Py_ssize_t tn = 0, qn = -1, rid_n, trace_n, client_n, ep_n, route_n, cl_n, end_n
        cdef Py_ssize_t cache_n, auth_n, model_n, version_n, bound
        cdef const char *model_s
        cdef const char *version_s
        cdef const char *rid_s
        cdef const char *trace_s
        cdef const char *client_s
        cdef const char *ep_s
        cdef const char *route_s
        cdef const char *cl_s = NULL
        cdef const char *end_s
        cdef const char *cache_s
        cdef const char *auth_s
        cdef char *o
        cdef Cluster cluster
        if sec != self.cached_sec:
            self._stamp(sec)
        if target is not None:
            tp = PyBytes_AS_STRING(target)
            tn = PyBytes_GET_SIZE(target)
            qp = <const char *>memchr(tp, 63, tn)       # "?"
            if qp != NULL:
                qp += 1
                qn = tn - (qp - tp)
        client_s = _utf8(ex.client_address, &client_n)
        if self.combined:
            return self._append_combined(ex, method, tp, tn, qp, qn, client_s, client_n)
        rid_s = _utf8(ex.request_id, &rid_n)
        trace_s = _utf8(ex.trace_id, &trace_n)
        ep_s = _utf8(ex.endpoint, &ep_n)
        route_s = _utf8(ex.route_name, &route_n)
        cl_n = 0
        if isinstance(ex.cluster, Cluster):
            cluster = <Cluster>ex.cluster
            cl_s = _utf8(cluster.name, &cl_n)
        end_s = _utf8(ex.end, &end_n)
        cache_s = _utf8(ex.cache, &cache_n)
        auth_s = _utf8(ex.auth, &auth_n)
        model_s = _utf8(ex.model, &model_n)
        version_s = _utf8(ex.model_version, &version_n)
        bound = 640 + 6 * (rid_n + trace_n + client_n + ep_n + route_n + cl_n + end_n + cache_n
                           + auth_n + model_n + version_n) + 16 * tn + 16
        if method is not None:
            bound += 6 * PyBytes_GET_SIZE(method)
        if path is not None:
            bound += 6 * PyBytes_GET_SIZE(path)
        self._reserve(bound)
        o = self.buf + self.len
        o = _put(o, b'{"ts":"')
        o = _put(o, self.iso)
        o[0] = <char>(48 + nsec // 100000000)
        o[1] = <char>(48 + nsec // 10000000 % 10)
        o[2] = <char>(48 + nsec // 1000000 % 10)
        o = _put(o + 3, b'Z","request_id":')
        o = _jstr(o, rid_s, rid_n)
        o = _jstr(_put(o, b',"trace_id":'), trace_s, trace_n)
        o = _jstr(_put(o, b',"client":'), client_s, client_n)
        o = _put(o, b',"method":')
        o = (_jstr(o, PyBytes_AS_STRING(method), PyBytes_GET_SIZE(method)) if method is not None
             else _put(o, b"null"))
        o = _put(o, b',"path":')
        o = (_jstr(o, PyBytes_AS_STRING(path), PyBytes_GET_SIZE(path)) if path is not None
             else _put(o, b"null"))
        o = _put(o, b',"query":"')
        if qn > 0:
            o = self._query(o, qp, qn, True)
        o = _int(_put(o, b'","status":'), ex.status)
        o = _int(_put(o, b',"request_bytes":'), ex.bytes_received)
        o = _int(_put(o, b',"response_bytes":'), ex.bytes_sent)
        o = _seconds(_put(o, b',"duration":'), ex.t_end - ex.t_received if ex.t_end else 0)
        o = _put(o, b',"upstream_duration":')
        if ex.t_response and ex.t_upstream:
            o = _seconds(o, ex.t_response - ex.t_upstream)
        else:
            o = _put(o, b"null")
        o = _jstr(_put(o, b',"endpoint":'), ep_s, ep_n)
        o = _jstr(_put(o, b',"route":'), route_s, route_n)
        o = _jstr(_put(o, b',"cluster":'), cl_s, cl_n)
        o = _int(_put(o, b',"tries":'), ex.tries)
        o = _jstr(_put(o, b',"end":'), end_s, end_n)
        o = _jstr(_put(o, b',"cache":'), cache_s, cache_n)
        o = _jstr(_put(o, b',"auth":'), auth_s, auth_n)
        if ex.model is not None:
            o = _jstr(_put(o, b',"model":'), model_s, model_n)
            o = _jstr(_put(o, b',"model_version":'), version_s, version_n)
        o = _put(o, b"}\n")
        self.len = o - self.buf
        return 0

    cdef int _append_combined(self, Exchange ex, bytes method, const char *tp, Py_ssize_t tn,
                              const char *qp, Py_ssize_t qn, const char *client_s,
                              Py_ssize_t client_n) except -1:
        """NGINX's combined format: ``$remote_addr - - [$time_local] "$request" $status
        $body_bytes_sent "$http_referer" "$http_user_agent"`` (the size here is every
        response byte written, head included)."""
        cdef bytes referer = ex.referer
        cdef bytes agent = ex.user_agent
        cdef const char *rp
        cdef const char *rq
        cdef Py_ssize_t rn
        cdef Py_ssize_t bound = 200 + 4 * client_n + 16 * tn
        cdef char *o
        if method is not None:
            bound += 4 * PyBytes_GET_SIZE(method)
        if referer is not None:
            bound += 16 * PyBytes_GET_SIZE(referer)
        if agent is not None:
            bound += 4 * PyBytes_GET_SIZE(agent)
        self._reserve(bound)
        o = self.buf + self.len
        o = _clf_escape(o, client_s, client_n) if client_n else _put(o, b"-")
        o = _put(_put(o, b" - - ["), self.clf)
        o = _put(o, b'] "')
        if method is not None:
            o = _clf_escape(o, PyBytes_AS_STRING(method), PyBytes_GET_SIZE(method))
        o[0] = 32
        o += 1
        if qp != NULL:
            o = _clf_escape(o, tp, qp - tp)
            o = self._query(o, qp, qn, False)
        elif tp != NULL:
            o = _clf_escape(o, tp, tn)
        o = _put(o, b' HTTP/1.0" ' if ex.http10 else b' HTTP/1.1" ')
        o = _int(o, ex.status)
        o[0] = 32
        o = _int(o + 1, ex.bytes_sent)
        o = _put(o, b' "')
        if referer is not None and PyBytes_GET_SIZE(referer):
            rp = PyBytes_AS_STRING(referer)
            rn = PyBytes_GET_SIZE(referer)
            rq = <const char *>memchr(rp, 63, rn)
            if rq != NULL:
                o = _clf_escape(o, rp, rq + 1 - rp)
                o = self._query(o, rq + 1, rn - (rq + 1 - rp), False)
            else:
                o = _clf_escape(o, rp, rn)
        else:
            o = _put(o, b"-")
        o = _put(o, b'" "')
        if agent is not None and PyBytes_GET_SIZE(agent):
            o = _clf_escape(o, PyBytes_AS_STRING(agent), PyBytes_GET_SIZE(agent))
        else:
            o = _put(o, b"-")
        o = _put(o, b'"\n')
        self.len = o - self.buf
        return 0

    # -- the writer thread ----------------------------------------------------------------

    def _run(self):
        with nogil:
            self._write_loop()

    cdef void _write_loop(self) noexcept nogil:
        """Writes the batches handed over, in order; reopens the file when asked (between
        two writes); returns once stopping and everything taken has been written. Holds
        the mutex only to take batches and count them, never while it needs the GIL."""
        cdef Batch *b
        cdef Batch *nxt
        cdef bint reopen, stop
        cdef int err
        self.piece = _piece(self.fd)
        while True:
            pthread_mutex_lock(&self.mutex)
            while self.head == NULL and not self.stopping and not self.reopen_wanted:
                pthread_cond_wait(&self.wake, &self.mutex)
            b = self.head
            self.head = self.tail = NULL
            reopen = self.reopen_wanted
            self.reopen_wanted = False
            stop = self.stopping
            pthread_mutex_unlock(&self.mutex)
            if reopen or (self.fd < 0 and b != NULL):
                self._open_file()
            while b != NULL:
                err = _write_all(self.fd, b.data, b.len, self.piece) if self.fd >= 0 \
                    else EBADF
                pthread_mutex_lock(&self.mutex)
                self.waiting -= b.len
                if err == 0:
                    self.written += b.lines
                else:
                    self.dropped += b.lines
                pthread_mutex_unlock(&self.mutex)
                if err:
                    self._write_failed(err)
                nxt = b.next
                free(b.data)
                free(b)
                b = nxt
            if stop:
                break
        if self.fd > 2:
            close(self.fd)
            self.fd = -1

    cdef void _open_file(self) noexcept nogil:
        """(Re)opens the path (blocking only this thread, e.g. on a FIFO until it has a
        reader); on failure the file open so far stays (logged)."""
        cdef int fd, err
        if self.path_p == NULL:
            return          # "-"
        while True:
            fd = open(self.path_p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
            if fd >= 0 or errno != EINTR:
                break
        if fd < 0:
            err = errno
            with gil:
                log.error("access log: cannot open %s: %s", self.path, os.strerror(err))
            return
        if self.fd > 2:
            close(self.fd)
        self.fd = fd
        self.piece = _piece(fd)

    cdef void _write_failed(self, int err) noexcept nogil:
        cdef double now = _monotonic()
        if now - self.write_warned < WARN_INTERVAL:
            return
        self.write_warned = now
        with gil:
            log.error("access log: writing to %s failed, lines dropped: %s", self.path,
                      os.strerror(err) if err != EBADF else "not open")


cdef size_t _piece(int fd) noexcept nogil:
    """0 for a regular file (a write(2) with O_APPEND is never interleaved with another
    process's), else PIPE_BUF: writes to a pipe of at most that size are atomic, so lines
    from several workers sharing stdout or a FIFO never mix."""
    cdef struct_stat st
    if fd < 0 or fstat(fd, &st) != 0 or S_ISREG(st.st_mode):
        return 0
    return PIPE_BUF


cdef int _write_all(int fd, const char *p, size_t n, size_t piece) noexcept nogil:
    """write(2) until all of p went out, in pieces of whole lines of at most ``piece``
    bytes when piece is not 0 (a longer line goes alone); 0, or the errno that stopped
    it."""
    cdef ssize_t w
    cdef size_t take
    cdef const char *nl
    cdef pollfd pfd
    while n:
        take = n
        if piece and n > piece:
            nl = <const char *>memrchr(p, 10, piece)
            if nl == NULL:
                nl = <const char *>memchr(p + piece, 10, n - piece)
            if nl != NULL:
                take = nl + 1 - p
        w = write(fd, p, take)
        if w < 0:
            if errno == EINTR:
                continue
            if errno == EAGAIN:             # fd 1 may be non-blocking
                pfd.fd = fd
                pfd.events = POLLOUT
                poll(&pfd, 1, -1)
                continue
            return errno
        p += w
        n -= w
    return 0


cdef double _monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


def _open_now(str path) -> int:
    """The log file's descriptor, opened for appending (created 0644); -1 for a FIFO no one
    reads yet (the writer thread opens it, blocking only itself). OSError."""
    try:
        is_fifo = stat.S_ISFIFO(os.stat(path).st_mode)
    except FileNotFoundError:
        is_fifo = False
    if not is_fifo:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno_codes.ENXIO:        # no reader yet
            return -1
        raise
    os.set_blocking(fd, True)
    return fd
