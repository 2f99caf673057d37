# C-level API of gwcore.inference._mirror for sibling extensions (the proxy session):
#     from gwcore.inference._mirror cimport Mirror
#     mirror.send(head, body, context)      # a C call; False: dropped, nothing else follows
from libc.stdint cimport int64_t
from gwcore.proxy._upstream cimport Cluster, Endpoint, ResponseSink, Upstream

# why a copy ended without a whole response (MIRROR_ERRORS in _mirror.pyx names them)
cdef enum MirrorError:
    ME_NONE = 0
    ME_CONNECT_FAILED = 1      # refused, unreachable or connect timeout: nothing was sent
    ME_TIMEOUT = 2             # the cluster's response timeout ran out
    ME_RESET = 3               # the connection closed or reset before the response ended
    ME_BAD_RESPONSE = 4        # malformed response head or body framing
    ME_OVERFLOW = 5            # waited for a connection slot longer than pending_timeout

cdef class _Copy(ResponseSink):
    """One mirrored request under way: the sink of its Upstream exchange."""
    cdef Mirror mirror
    cdef Endpoint ep                 # set while the copy holds a begin() on the cluster
    cdef Upstream up                 # the connection carrying it, once it has one
    cdef bytes head
    cdef bytes body
    cdef object context
    cdef int64_t t_sent              # monotonic ns at send()
    cdef int status                  # response status, 0 before a head arrived
    cdef unsigned long token         # tells this copy's connect answer from a stale one
    cdef bint connecting             # waiting for Cluster.connect's on_connected
    cdef bint queued                 # ... and queued for a connection slot (watched)
    cdef _Copy next_free
    cdef void _use(self, Upstream up)
    cdef void _fail(self, int error)

cdef class Mirror:
    cdef readonly Cluster cluster
    cdef readonly int max_in_flight
    cdef readonly object on_done
    cdef readonly long in_flight, sent, dropped, completed, failed
    cdef readonly dict statuses          # "2xx".. → responses
    cdef _Copy free                      # free list of ended copies
    cdef int nfree
    cdef unsigned long token
    # after a copy could not connect, copies are dropped until paused_until (monotonic ns):
    # backoff seconds, doubled per failure from 0.25 s to 10 s, cleared by a response
    cdef readonly int64_t paused_until
    cdef double backoff
    cdef readonly double percent         # the share of requests sample() takes (0..100]
    cdef double acc
    cdef readonly double seconds         # the ended copies' time, summed
    cdef bint sample(self) noexcept
    cpdef bint send(self, bytes head, object body, object context)
    cdef bint _start(self, _Copy c)
    cdef void _recycle(self, _Copy c)
    cdef void _end(self, _Copy c, int error)
