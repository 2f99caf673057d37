# Extern declarations of src_c/ring.h, and the C-level API of gwcore.proxy._ring for sibling
# extensions (the balancer): `from gwcore.proxy._ring cimport RingBase` then, per request,
#     i = ring.lookup_index_bounded(key_ptr, key_len)   # no Python object is created
#     ring.acquire_index(i) ... ring.release_index(i)
# Call with the GIL held: a ring reuses one MD5 context and scratch marks (see ring.h).
from libc.stdint cimport uint8_t, uint32_t, int64_t, uint64_t

cdef extern from "ring.h" nogil:
    unsigned int GW_RING_MAX_NODES, GW_MAGLEV_DEFAULT_SIZE, GW_MAGLEV_MAX_SIZE

    enum gw_ring_error:
        GW_RING_OK, GW_RING_E_NOMEM, GW_RING_E_COUNT, GW_RING_E_WEIGHT, GW_RING_E_TABLE_SIZE,
        GW_RING_E_DIGEST, GW_RING_E_EMPTY, GW_RING_E_ALL_DOWN, GW_RING_E_INDEX,
        GW_RING_E_UNDERFLOW, GW_RING_E_FACTOR, GW_RING_E_ARG, GW_RING_E__COUNT

    ctypedef struct gw_ring_node:
        const char *name
        size_t name_len
        uint32_t weight

    ctypedef struct gw_ring_load:
        uint32_t n, n_down, factor_pct
        int error
        uint64_t total, up_weight
        uint32_t *weight
        uint32_t *inflight
        uint8_t *up
        uint8_t *reachable

    ctypedef struct gw_ketama:
        pass

    ctypedef struct gw_maglev:
        pass

    int gw_ring_acquire(gw_ring_load *l, uint32_t index)
    int gw_ring_release(gw_ring_load *l, uint32_t index)
    int gw_ring_set_up(gw_ring_load *l, uint32_t index, int up)
    int gw_ring_set_factor(gw_ring_load *l, uint32_t factor_pct)
    int gw_ring_carry(gw_ring_load *dst, uint32_t dst_index, const gw_ring_load *src,
                      uint32_t src_index)
    const char *gw_ring_error_name(int code)
    uint64_t gw_xxh64(const void *data, size_t len, uint64_t seed)

    gw_ketama *gw_ketama_new(const gw_ring_node *nodes, uint32_t n, int *err)
    void gw_ketama_free(gw_ketama *k)
    gw_ring_load *gw_ketama_load(gw_ketama *k)
    uint32_t gw_ketama_points(const gw_ketama *k)
    int64_t gw_ketama_point(gw_ketama *k, uint32_t p, uint32_t *owner)
    uint32_t gw_ketama_hash(gw_ketama *k, const void *key, size_t len)
    int gw_ketama_lookup(gw_ketama *k, const void *key, size_t len)
    int gw_ketama_lookup_hash(gw_ketama *k, uint32_t hash)
    int gw_ketama_lookup_bounded(gw_ketama *k, const void *key, size_t len)
    int gw_ketama_range(gw_ketama *k, const void *key, size_t len, uint32_t *out, uint32_t max)

    int gw_is_prime(uint32_t m)
    uint32_t gw_maglev_default_size(uint32_t n)
    gw_maglev *gw_maglev_new(const gw_ring_node *nodes, uint32_t n, uint32_t m, int *err)
    void gw_maglev_free(gw_maglev *g)
    gw_ring_load *gw_maglev_load(gw_maglev *g)
    uint32_t gw_maglev_size(const gw_maglev *g)
    uint32_t gw_maglev_slot(const gw_maglev *g, uint32_t s)
    int gw_maglev_lookup(gw_maglev *g, const void *key, size_t len)
    int gw_maglev_lookup_hash(gw_maglev *g, uint64_t hash)
    int gw_maglev_lookup_bounded(gw_maglev *g, const void *key, size_t len)
    int gw_maglev_range(gw_maglev *g, const void *key, size_t len, uint32_t *out, uint32_t max)


cdef class RingBase:
    """Node bookkeeping shared by HashRing and Maglev; not instantiated directly."""
    cdef gw_ring_load *_load      # owned by the subclass's C structure; NULL before __init__
    cdef list _names              # index -> name
    cdef dict _index              # name -> index
    cdef list _weights            # index -> weight

    # Node index for the key (bytes, as the key hash sees them) among up nodes, or -1 when
    # there is none. The bounded variant applies balance_factor. Neither allocates.
    cdef int lookup_index(self, const char *key, size_t length) noexcept
    cdef int lookup_index_bounded(self, const char *key, size_t length) noexcept
    # Up to max distinct up nodes in ring / table order into out; returns how many.
    cdef int range_indices(self, const char *key, size_t length, uint32_t *out,
                           uint32_t max) noexcept
    # In-flight bookkeeping: 0 ok, -1 for an index out of range or a release below zero.
    cdef int acquire_index(self, uint32_t index) noexcept
    cdef int release_index(self, uint32_t index) noexcept

    cdef int _install(self, const gw_ring_node *nodes, uint32_t n, list names) except -1
    cdef int _carry_into(self, gw_ring_load *dst, list names) except -1
    cdef int _rebuild(self, list names, list weights) except -1
    cdef int _ready(self) except -1
    cdef uint32_t _checked_index(self, index) except? 0xFFFFFFFF


cdef class HashRing(RingBase):
    cdef gw_ketama *_k


cdef class Maglev(RingBase):
    cdef gw_maglev *_g
    cdef uint32_t _fixed_size     # 0: size follows gw_maglev_default_size(len(nodes))
