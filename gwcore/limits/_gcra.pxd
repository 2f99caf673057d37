# The compiled API of gwcore/limits/_gcra.pyx for sibling extensions (the proxy session checks
# a route's RouteLimits without a Python call).
from libc.stdint cimport int64_t, uint64_t


cdef class Table:
    cdef object mem
    cdef object view
    cdef void *base
    cdef readonly Py_ssize_t buckets


cdef class Limit:
    cdef Table table
    cdef void *base
    cdef readonly int64_t T, tau
    cdef readonly Py_ssize_t burst
    cdef readonly str name
    cdef uint64_t salt
    cdef public uint64_t overflows
    cdef int take_c(self, const char *data, Py_ssize_t n, int64_t *retry)


cdef class RouteLimits:
    cdef tuple limits           # Limit objects, in the route's order
    cdef bytes kinds            # per limit: b"s" (key: source_ip) or b"r" (key: route)
    cdef readonly tuple refusers    # per limit: refuser(retry_ns) -> the 429 Response
    cdef readonly int64_t retry     # ns until the refusing limit would admit (last check)
    cdef readonly tuple prefixes    # per limit: the IPv6 prefix length of source_ip keys
    cdef int check(self, str client, str route) except -2
