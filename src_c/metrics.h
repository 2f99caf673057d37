/* metrics.h - counters, gauges and histograms in shared memory, one row per process.
 *
 * Contract
 * - A metrics region is `rows` rows of `cols` 64-bit cells, mapped MAP_SHARED by the master
 *   before it forks (gwcore/observability/metrics.py owns the mapping and the column layout).
 *   Each worker process writes only its own row, so a write is a plain relaxed load and store
 *   (C11 atomics, no read-modify-write across cores, no cache line shared between writers);
 *   any process may read any row at any time with relaxed loads (x86-64 and AArch64 never
 *   tear an aligned 64-bit access). Row 0 belongs to the master: it accumulates the counters
 *   of processes that exited (gw_metrics_fold), so a sum over row 0 and the live rows never
 *   goes backwards while the master lives.
 * - Counters only grow. A gauge cell holds the process's own value as an int64 in two's
 *   complement; a sum over rows wraps back to the right value.
 * - A histogram is GW_HIST_CELLS consecutive cells: one per bucket (non-cumulative; the last
 *   is +Inf), then the sum of observations in nanoseconds, then their count. The bucket
 *   bounds are GW_HIST_BOUNDS_NS (the seconds listed in docs/metrics.md).
 * - Callers check every column against `cols` when they lay the region out; these functions
 *   do not (they are on the per-request path). row may be NULL: metrics off, nothing is
 *   written.
 */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define GW_HIST_BOUNDS 18
#define GW_HIST_CELLS (GW_HIST_BOUNDS + 3)      /* buckets incl. +Inf, sum, count */

static const int64_t GW_HIST_BOUNDS_NS[GW_HIST_BOUNDS] = {
    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 25000000, 50000000,
    100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000,
    30000000000, 60000000000,
};

typedef _Atomic uint64_t gw_cell;

static inline void gw_metric_add(uint64_t *row, uint32_t col, uint64_t v)
{
    if (row == NULL)
        return;
    gw_cell *c = (gw_cell *)&row[col];
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

static inline void gw_metric_set(uint64_t *row, uint32_t col, uint64_t v)
{
    if (row != NULL)
        atomic_store_explicit((gw_cell *)&row[col], v, memory_order_relaxed);
}

/* Index of the bucket of a duration of ns nanoseconds (negative counts as 0). */
static inline uint32_t gw_hist_bucket(int64_t ns)
{
    uint32_t i = 0;
    while (i < GW_HIST_BOUNDS && ns > GW_HIST_BOUNDS_NS[i])
        i++;
    return i;
}

static inline void gw_metric_observe(uint64_t *row, uint32_t base, int64_t ns)
{
    if (row == NULL)
        return;
    if (ns < 0)
        ns = 0;
    gw_metric_add(row, base + gw_hist_bucket(ns), 1);
    gw_metric_add(row, base + GW_HIST_BOUNDS + 1, (uint64_t)ns);
    gw_metric_add(row, base + GW_HIST_BOUNDS + 2, 1);
}

/* out[c] = sum of cells c over row 0 and the rows r with live[r] != 0, for c < n. */
static inline void gw_metrics_sum(const uint64_t *region, size_t cols, const uint8_t *live,
                                  size_t rows, size_t n, uint64_t *out)
{
    for (size_t c = 0; c < n; c++)
        out[c] = atomic_load_explicit((const gw_cell *)&region[c], memory_order_relaxed);
    for (size_t r = 1; r < rows; r++) {
        if (!live[r])
            continue;
        const uint64_t *row = region + r * cols;
        for (size_t c = 0; c < n; c++)
            out[c] += atomic_load_explicit((const gw_cell *)&row[c], memory_order_relaxed);
    }
}

/* Row r's process has exited: its counters (gauge[c] == 0) join row 0, gauges are dropped,
 * and the row is zeroed for the next process. Only the master calls this, once r has no
 * writer left. */
static inline void gw_metrics_fold(uint64_t *region, size_t cols, size_t r,
                                   const uint8_t *gauge, size_t n)
{
    uint64_t *row = region + r * cols;
    for (size_t c = 0; c < n; c++) {
        uint64_t v = atomic_load_explicit((gw_cell *)&row[c], memory_order_relaxed);
        if (v && !gauge[c])
            gw_metric_add(region, (uint32_t)c, v);
        atomic_store_explicit((gw_cell *)&row[c], 0, memory_order_relaxed);
    }
}

#endif
