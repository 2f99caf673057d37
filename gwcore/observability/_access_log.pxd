cimport cython
from libc.stdint cimport uint64_t

from gwcore.proxy._exchange cimport Exchange

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_cond_t:
        pass


cdef struct Batch:              # lines handed to the writer thread (it frees them)
    Batch *next
    char *data
    size_t len
    unsigned long long lines


@cython.final
cdef class AccessLog:
    cdef readonly str path
    cdef readonly bint combined             # format: combined (else json)
    cdef readonly double sample_2xx
    cdef readonly Py_ssize_t buffer_bytes
    # the batch being filled on the loop thread
    cdef char *buf
    cdef Py_ssize_t len, cap, batch_bytes
    cdef unsigned long long batch_lines
    cdef double flush_interval
    cdef object loop, timer
    # 2xx sampling: keep all, or when the next random number is below threshold
    cdef bint keep_all_2xx
    cdef uint64_t threshold, rng
    # query parameters whose values are not logged: lower-case names
    cdef tuple redact
    cdef Py_ssize_t redact_max
    # the cached second of the timestamp
    cdef long cached_sec
    cdef char iso[24]                       # "2026-12-07T06:05:39."
    cdef char clf[32]                       # "07/Dec/2026:06:05:39 +0000"
    # shared with the writer thread, under mutex
    cdef pthread_mutex_t mutex
    cdef pthread_cond_t wake
    cdef bint sync_ready                    # mutex and wake initialised
    cdef Batch *head
    cdef Batch *tail
    cdef size_t waiting                     # bytes handed over and not written yet
    cdef unsigned long long written, dropped
    cdef bint stopping, reopen_wanted
    # the writer thread's own
    cdef int fd                             # -1: not open yet (a FIFO without a reader)
    cdef size_t piece                       # largest write: 0 whole batches (a file), or
                                            # PIPE_BUF (a pipe or socket others share)
    cdef bytes path_c                       # the path for open(2); None for "-"
    cdef const char *path_p                 # its bytes (NULL for "-")
    cdef double write_warned                # monotonic seconds of its last warning
    # the loop thread's own
    cdef object thread
    cdef bint closed
    cdef double drop_warned                 # monotonic seconds of the last drop warning
    cdef unsigned long long drop_warned_at  # dropped lines at that warning

    cpdef void record(self, Exchange ex) noexcept
    cdef uint64_t _random(self) noexcept
    cdef int _reserve(self, Py_ssize_t n) except -1
    cdef int _handoff(self) except -1
    cdef void _warn_dropped(self)
    cdef void _stamp(self, long sec)
    cdef bint _redacted(self, const unsigned char *name, Py_ssize_t n) noexcept
    cdef char *_query(self, char *o, const char *q, Py_ssize_t n, bint json) noexcept
    cdef int _append(self, Exchange ex, long sec, long nsec) except -1
    cdef int _append_combined(self, Exchange ex, bytes method, const char *tp, Py_ssize_t tn,
                              const char *qp, Py_ssize_t qn, const char *client_s,
                              Py_ssize_t client_n) except -1
    cdef void _write_loop(self) noexcept nogil
    cdef void _open_file(self) noexcept nogil
    cdef void _write_failed(self, int err) noexcept nogil
