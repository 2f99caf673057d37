# Extern declarations of src_c/trace.h (W3C Trace Context checks, ids) for the extensions that
# cimport it. A module that cimports this must also list src_c/trace.c in its own
# `# distutils: sources =` header line (each extension links its own copy of the C code; the
# generator state is the caller's, so copies share nothing).
from libc.stdint cimport uint8_t, uint64_t

cdef extern from "trace.h" nogil:
    enum:
        GW_TRACEPARENT_LEN
        GW_TRACESTATE_MAX_BYTES

    enum gw_trace_error:
        GW_TRACE_OK

    ctypedef struct gw_rng:
        uint64_t s[4]

    ctypedef struct gw_trace_ctx:
        char trace_id[32]
        char parent_id[16]
        char span_id[16]
        uint8_t sampled
        uint8_t continued

    ctypedef struct gw_tracestate:
        size_t bytes
        unsigned fields
        unsigned members
        int error

    void gw_rng_seed(gw_rng *r, const unsigned char *seed, size_t n)
    uint64_t gw_rng_next(gw_rng *r)
    uint64_t gw_trace_threshold(double ratio)
    void gw_hex64(uint64_t v, char *out)
    # 0 valid (trace-id v[3..35), parent-id v[36..52), *flags); -1 invalid (*error)
    int gw_traceparent_parse(const char *v, size_t n, uint8_t *flags, int *error)
    # 0 continued from tp, 1 a new trace (tp NULL or invalid; *error says why, may be NULL)
    int gw_trace_begin(gw_rng *r, const char *tp, size_t tp_len, uint64_t threshold,
                       gw_trace_ctx *ctx, int *error)
    # writes 55 bytes, returns 55; -1 when cap < 55
    int gw_traceparent_format(const gw_trace_ctx *ctx, char *out, size_t cap)
    void gw_tracestate_init(gw_tracestate *st)
    # 0 the combined value is valid so far; -1 not (st.error, sticky)
    int gw_tracestate_add(gw_tracestate *st, const char *v, size_t n)
    const char *gw_trace_error_name(int code)
