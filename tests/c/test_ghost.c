/* test_ghost.c - unit tests for src_c/ghost.c, built with ASan/UBSan by tests/c/test_c.py.
 *
 * The ghost is checked against a plain model: an array holding the fingerprints oldest first,
 * searched linearly, trimmed from the front. Random operation sequences over a small
 * fingerprint alphabet (so pushes of held fingerprints, takes from the middle and long probe
 * runs are common) must leave both with the same entries in the same order, and the same count
 * and weight. Exits 0 when every check passes, 1 after printing the failures.
 */
#include "ghost.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* ---- the model ---------------------------------------------------------------------------- */

#define MODEL_MAX 4096

typedef struct model {
    uint64_t fp[MODEL_MAX];
    uint64_t w[MODEL_MAX];
    size_t n;
    uint64_t weight;
} model;

static long model_find(const model *m, uint64_t fp)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->fp[i] == fp)
            return (long)i;
    return -1;
}

static void model_remove(model *m, size_t i)
{
    m->weight -= m->w[i];
    memmove(&m->fp[i], &m->fp[i + 1], (m->n - i - 1) * sizeof(uint64_t));
    memmove(&m->w[i], &m->w[i + 1], (m->n - i - 1) * sizeof(uint64_t));
    m->n--;
}

static void model_trim(model *m, uint64_t max_count, uint64_t max_weight)
{
    while (m->n > max_count || m->weight > max_weight)
        model_remove(m, 0);
}

static void model_push(model *m, uint64_t fp, uint64_t w, uint64_t max_count,
                       uint64_t max_weight)
{
    long i = model_find(m, fp);
    if (i >= 0)
        model_remove(m, (size_t)i);
    m->fp[m->n] = fp;
    m->w[m->n] = w;
    m->n++;
    m->weight += w;
    model_trim(m, max_count, max_weight);
}

/* Same entries, same order (walking the ghost's list oldest -> newest), same totals, and every
 * held fingerprint found through the table. */
static int same(const gw_ghost *g, const model *m)
{
    if (gw_ghost_count(g) != m->n || gw_ghost_weight(g) != m->weight)
        return 0;
    size_t i = 0;
    for (uint32_t n = g->oldest; n != GW_GHOST_NIL; n = g->nodes[n].newer, i++) {
        if (i >= m->n || g->nodes[n].fp != m->fp[i] || g->nodes[n].weight != m->w[i])
            return 0;
        if (!gw_ghost_contains(g, m->fp[i]))
            return 0;
    }
    return i == m->n;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_empty(void)
{
    gw_ghost *g = gw_ghost_new();
    CHECK(g != NULL);
    if (g == NULL)
        return;
    CHECK(gw_ghost_count(g) == 0 && gw_ghost_weight(g) == 0);
    CHECK(gw_ghost_contains(g, 42) == 0);
    CHECK(gw_ghost_take(g, 42) == 0);
    CHECK(gw_ghost_trim(g, 0, 0) == 0);
    gw_ghost_clear(g);
    CHECK(gw_ghost_count(g) == 0);
    gw_ghost_free(g);
    gw_ghost_free(NULL);
}

static void test_fifo_basics(void)
{
    gw_ghost *g = gw_ghost_new();
    if (g == NULL)
        return;
    for (uint64_t i = 1; i <= 5; i++)
        CHECK(gw_ghost_push(g, i, 10, 3, UINT64_MAX) == 0);
    /* holds 3, 4, 5: the two oldest were dropped */
    CHECK(gw_ghost_count(g) == 3 && gw_ghost_weight(g) == 30);
    CHECK(!gw_ghost_contains(g, 1) && !gw_ghost_contains(g, 2));
    CHECK(gw_ghost_contains(g, 3) && gw_ghost_contains(g, 5));
    /* a re-push moves 3 to the newest place: the next push drops 4, not 3 */
    CHECK(gw_ghost_push(g, 3, 10, 3, UINT64_MAX) == 0);
    CHECK(gw_ghost_count(g) == 3);
    CHECK(gw_ghost_push(g, 6, 10, 3, UINT64_MAX) == 0);
    CHECK(!gw_ghost_contains(g, 4) && gw_ghost_contains(g, 3));
    /* take from the middle */
    CHECK(gw_ghost_take(g, 5) == 1);
    CHECK(gw_ghost_take(g, 5) == 0);
    CHECK(gw_ghost_count(g) == 2 && gw_ghost_weight(g) == 20);
    /* weight bound: a push of 25 with max_weight 30 drops older entries until <= 30 */
    CHECK(gw_ghost_push(g, 7, 25, 10, 30) == 0);
    CHECK(gw_ghost_count(g) == 1 && gw_ghost_weight(g) == 25 && gw_ghost_contains(g, 7));
    /* a weight above the bound is dropped by its own push */
    CHECK(gw_ghost_push(g, 8, 31, 10, 30) == 0);
    CHECK(gw_ghost_count(g) == 0 && gw_ghost_weight(g) == 0);
    /* max_count 0 keeps nothing */
    CHECK(gw_ghost_push(g, 9, 1, 0, UINT64_MAX) == 0);
    CHECK(gw_ghost_count(g) == 0 && !gw_ghost_contains(g, 9));
    /* trim with new bounds */
    for (uint64_t i = 0; i < 100; i++)
        CHECK(gw_ghost_push(g, i, 1, 1000, UINT64_MAX) == 0);
    CHECK(gw_ghost_trim(g, 40, UINT64_MAX) == 60);
    CHECK(gw_ghost_count(g) == 40 && gw_ghost_contains(g, 60) && !gw_ghost_contains(g, 59));
    CHECK(gw_ghost_trim(g, 40, 10) == 30);
    CHECK(gw_ghost_count(g) == 10 && gw_ghost_contains(g, 90));
    gw_ghost_clear(g);
    CHECK(gw_ghost_count(g) == 0 && !gw_ghost_contains(g, 95));
    CHECK(gw_ghost_push(g, 95, 1, 10, 10) == 0 && gw_ghost_contains(g, 95));
    gw_ghost_free(g);
}

static void test_weight_limits(void)
{
    gw_ghost *g = gw_ghost_new();
    if (g == NULL)
        return;
    CHECK(gw_ghost_push(g, 1, 5, 10, UINT64_MAX) == 0);
    CHECK(gw_ghost_push(g, 2, GW_GHOST_MAX_WEIGHT + 1, 10, UINT64_MAX) == -1);
    CHECK(g->error == GW_GHOST_E_ARG);
    CHECK(gw_ghost_count(g) == 1 && gw_ghost_weight(g) == 5 && !gw_ghost_contains(g, 2));
    /* the largest weights: max_weight is clamped to 2^62, so the sum never overflows */
    CHECK(gw_ghost_push(g, 3, GW_GHOST_MAX_WEIGHT, 10, UINT64_MAX) == 0);
    CHECK(gw_ghost_count(g) == 1 && gw_ghost_weight(g) == GW_GHOST_MAX_WEIGHT);
    CHECK(gw_ghost_push(g, 4, GW_GHOST_MAX_WEIGHT, 10, UINT64_MAX) == 0);
    CHECK(gw_ghost_count(g) == 1 && gw_ghost_contains(g, 4) && !gw_ghost_contains(g, 3));
    gw_ghost_free(g);
}

/* The extreme values of the fingerprint range (long probe runs are the random test's job). */
static void test_extreme_fingerprints(void)
{
    gw_ghost *g = gw_ghost_new();
    if (g == NULL)
        return;
    uint64_t fps[] = {0, 1, UINT64_MAX, UINT64_MAX - 1, UINT64_C(1) << 63, (UINT64_C(1) << 63) + 1};
    size_t n = sizeof(fps) / sizeof(fps[0]);
    for (size_t i = 0; i < n; i++)
        CHECK(gw_ghost_push(g, fps[i], i, 100, UINT64_MAX) == 0);
    for (size_t i = 0; i < n; i++)
        CHECK_MSG(gw_ghost_contains(g, fps[i]), "fp %zu", i);
    for (size_t i = 0; i < n; i++)
        CHECK(gw_ghost_take(g, fps[i]) == 1);
    CHECK(gw_ghost_count(g) == 0 && gw_ghost_weight(g) == 0);
    gw_ghost_free(g);
}

static void run_random(uint64_t alphabet, uint64_t max_count, uint64_t max_weight, int steps)
{
    static model m;
    memset(&m, 0, sizeof(m));
    gw_ghost *g = gw_ghost_new();
    if (g == NULL)
        return;
    int bad = 0;
    for (int step = 0; step < steps && !bad; step++) {
        uint64_t fp = rng() % alphabet * UINT64_C(0x10000000000);  /* same low bits */
        if (rng() % 4 == 0)
            fp = rng() % alphabet;                                  /* sequential ones */
        uint64_t r = rng() % 10;
        if (r < 6) {
            uint64_t w = rng() % 8;
            CHECK(gw_ghost_push(g, fp, w, max_count, max_weight) == 0);
            model_push(&m, fp, w, max_count, max_weight);
        } else if (r < 9) {
            long i = model_find(&m, fp);
            int got = gw_ghost_take(g, fp);
            CHECK_MSG(got == (i >= 0), "take %llu: %d", (unsigned long long)fp, got);
            if (i >= 0)
                model_remove(&m, (size_t)i);
        } else {
            uint64_t c = rng() % (max_count + 1), w = rng() % (max_weight + 1);
            uint64_t before = m.n;
            model_trim(&m, c, w);
            CHECK(gw_ghost_trim(g, c, w) == before - m.n);
        }
        CHECK(gw_ghost_contains(g, fp) == (model_find(&m, fp) >= 0));
        if (!same(g, &m)) {
            CHECK_MSG(0, "ghost and model differ after step %d (alphabet %llu)", step,
                      (unsigned long long)alphabet);
            bad = 1;
        }
    }
    gw_ghost_free(g);
}

static void test_random_against_model(void)
{
    run_random(8, 4, 1000, 20000);
    run_random(64, 32, 1000, 50000);
    run_random(64, 1000, 60, 50000);
    run_random(3000, 2000, 100000, 100000);   /* growth past several doublings */
    run_random(100000, 3000, 100000, 60000);  /* mostly fresh fingerprints: FIFO trimming */
}

int main(void)
{
    test_empty();
    test_fifo_basics();
    test_weight_limits();
    test_extreme_fingerprints();
    test_random_against_model();
    return check_summary("test_ghost");
}
