# Extern declarations of src_c/metrics.h (per-process rows of counters, gauges and histograms
# in shared memory). Header-only: nothing to add to a module's `# distutils: sources`.
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

cdef extern from "metrics.h" nogil:
    enum:
        GW_HIST_BOUNDS
        GW_HIST_CELLS
    const int64_t GW_HIST_BOUNDS_NS[]
    void gw_metric_add(uint64_t *row, uint32_t col, uint64_t v)
    void gw_metric_set(uint64_t *row, uint32_t col, uint64_t v)
    void gw_metric_observe(uint64_t *row, uint32_t base, int64_t ns)
    void gw_metrics_sum(const uint64_t *region, size_t cols, const uint8_t *live, size_t rows,
                        size_t n, uint64_t *out)
    void gw_metrics_fold(uint64_t *region, size_t cols, size_t r, const uint8_t *gauge,
                         size_t n)
