/* test_metrics.c - unit tests for src_c/metrics.h (header-only: no metrics.c).
 *
 * Bucket edges (an observation equal to a bound lands in that bound's bucket, Prometheus'
 * `le`), negative durations, the histogram's sum and count cells, NULL rows, sums over live
 * rows only, and a fold that moves counters to row 0, drops gauges and zeroes the row. The
 * region is a heap block of exactly rows * cols cells so ASan catches any access past it.
 */
#include "metrics.h"

#include <stdint.h>
#include <stdlib.h>

#include "check.h"

int main(void)
{
    enum { ROWS = 4, COLS = 64 };
    uint64_t *region = calloc(ROWS * COLS, sizeof(uint64_t));
    uint64_t out[COLS];
    uint8_t live[ROWS] = {0, 1, 1, 0};
    uint8_t gauge[COLS] = {0};
    uint64_t *r1 = region + COLS, *r2 = region + 2 * COLS;

    CHECK(gw_hist_bucket(0) == 0);
    CHECK(gw_hist_bucket(-5) == 0);
    CHECK(gw_hist_bucket(100000) == 0);               /* le=0.0001 holds 0.0001 itself */
    CHECK(gw_hist_bucket(100001) == 1);
    CHECK(gw_hist_bucket(60000000000LL) == GW_HIST_BOUNDS - 1);
    CHECK(gw_hist_bucket(60000000001LL) == GW_HIST_BOUNDS);   /* +Inf */
    CHECK(gw_hist_bucket(INT64_MAX) == GW_HIST_BOUNDS);
    for (int i = 1; i < GW_HIST_BOUNDS; i++)
        CHECK(GW_HIST_BOUNDS_NS[i - 1] < GW_HIST_BOUNDS_NS[i]);

    gw_metric_observe(r1, 10, 300000);                /* bucket 2 (le=0.0005) */
    gw_metric_observe(r1, 10, -1);                    /* counts as 0 */
    gw_metric_observe(r2, 10, 70000000000LL);         /* +Inf */
    CHECK(r1[10 + 2] == 1 && r1[10 + 0] == 1);
    CHECK(r1[10 + GW_HIST_BOUNDS + 1] == 300000);     /* sum in ns */
    CHECK(r1[10 + GW_HIST_BOUNDS + 2] == 2);          /* count */
    CHECK(r2[10 + GW_HIST_BOUNDS] == 1);

    gw_metric_add(NULL, 0, 1);                        /* metrics off: nothing, no crash */
    gw_metric_set(NULL, 0, 1);
    gw_metric_observe(NULL, 0, 1);

    gw_metric_add(r1, 0, 5);
    gw_metric_add(r2, 0, 7);
    gw_metric_set(r1, 1, (uint64_t)(int64_t)-2);      /* a gauge share may be negative */
    gw_metric_set(r2, 1, 5);
    gauge[1] = 1;
    region[3 * COLS] = 1000;                          /* a row that is not live: ignored */
    gw_metrics_sum(region, COLS, live, ROWS, COLS, out);
    CHECK(out[0] == 12);
    CHECK((int64_t)out[1] == 3);
    CHECK(out[10 + GW_HIST_BOUNDS + 2] == 3);

    gw_metrics_fold(region, COLS, 1, gauge, COLS);    /* row 1's process exited */
    live[1] = 0;
    CHECK(region[0] == 5);                            /* its counter stays, in row 0 */
    CHECK(region[1] == 0);                            /* its gauge share is gone */
    for (int c = 0; c < COLS; c++)
        CHECK(r1[c] == 0);
    gw_metrics_sum(region, COLS, live, ROWS, COLS, out);
    CHECK(out[0] == 12);                              /* the sum did not go backwards */
    CHECK((int64_t)out[1] == 5);

    free(region);
    return check_summary("metrics");
}
