from libc.stdint cimport uint32_t, uint64_t
from gwcore.proxy._ring cimport RingBase

cdef enum Policy:
    ROUND_ROBIN = 0
    LEAST_REQUEST = 1
    RANDOM = 2
    RING_HASH = 3
    MAGLEV = 4

cdef class Balancer:
    cdef readonly int policy
    cdef readonly int n
    cdef long *weight
    cdef long *active           # in-flight exchanges per endpoint
    cdef long *current          # smooth weighted round robin state
    cdef unsigned char *up      # 1 = may be picked (healthy and not ejected)
    cdef uint32_t *scratch
    cdef RingBase ring
    cdef bint bounded
    cdef uint64_t rng

    cdef int pick(self, const char *key, Py_ssize_t key_len, int exclude) noexcept
    cdef void acquire(self, int i) noexcept
    cdef void release(self, int i) noexcept
    cdef bint is_hash(self) noexcept
    cdef bint _eligible(self, int i, int exclude, bint need_up) noexcept
    cdef int _pick(self, const char *key, Py_ssize_t key_len, int exclude, bint need_up) noexcept
    cdef int _random_eligible(self, int exclude, bint need_up) noexcept
    cdef int _index(self, int i) except -1
