# Extern declarations of src_c/ghost.h: the ghost FIFO of S3-FIFO (fingerprints of keys evicted
# from the small queue). Linked into gwcore.cache._store only (its `# distutils: sources`).
from libc.stdint cimport uint64_t

cdef extern from "ghost.h" nogil:
    unsigned int GW_GHOST_MAX_ENTRIES
    uint64_t GW_GHOST_MAX_WEIGHT

    ctypedef struct gw_ghost:
        int error

    gw_ghost *gw_ghost_new()
    void gw_ghost_free(gw_ghost *g)
    void gw_ghost_clear(gw_ghost *g)
    int gw_ghost_push(gw_ghost *g, uint64_t fp, uint64_t weight, uint64_t max_count,
                      uint64_t max_weight)
    uint64_t gw_ghost_trim(gw_ghost *g, uint64_t max_count, uint64_t max_weight)
    int gw_ghost_take(gw_ghost *g, uint64_t fp)
    int gw_ghost_contains(const gw_ghost *g, uint64_t fp)
    uint64_t gw_ghost_count(const gw_ghost *g)
    uint64_t gw_ghost_weight(const gw_ghost *g)
