# Extern declarations of src_c/gcra.h (GCRA rate limits in a table shared across processes).
# A module that cimports this links src_c/gcra.c: `# distutils: sources = src_c/gcra.c`.
from libc.stdint cimport int64_t, uint64_t

cdef extern from "gcra.h" nogil:
    enum:
        GW_GCRA_WAYS
        GW_GCRA_ADMITTED
        GW_GCRA_OVERFLOW
    ctypedef struct gw_gcra_result:
        int64_t now
        int64_t tat
        int64_t retry_after
        int64_t remaining
        int flags
    size_t gw_gcra_bytes(uint64_t buckets)
    int gw_gcra_init(void *table, uint64_t buckets, uint64_t seed)
    uint64_t gw_gcra_buckets(const void *table)
    uint64_t gw_gcra_hash(const void *table, uint64_t salt, const void *data, size_t len)
    int64_t gw_gcra_now()
    int gw_gcra_take(void *table, uint64_t salt, uint64_t hash, int64_t now, int64_t T,
                     int64_t tau, gw_gcra_result *out)
    int64_t gw_gcra_peek(const void *table, uint64_t hash)
    void gw_gcra_usage(const void *table, int64_t now, uint64_t *active, uint64_t *used)
