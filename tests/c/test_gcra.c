/* test_gcra.c - unit tests for src_c/gcra.c (GCRA in a shared table).
 *
 * The arithmetic at its edges (a fresh key's burst, the request one nanosecond before and
 * exactly at the emission interval, retry_after and remaining, a clock stepping backwards,
 * times near INT64 limits are not used: tat stays within a run's clock), recycling of slots
 * whose tat has passed, a full bucket charging its overflow cell without evicting an active
 * key, overflow cells kept apart per limit (a slow limit never refuses a fast one's keys),
 * hashing, and exactness under contention: threads hammering one key (and racing to
 * insert the same new key) at one fixed time admit exactly `burst` requests in total. The
 * table is a heap block of exactly gw_gcra_bytes(...) bytes so ASan catches any overrun.
 */
#include "gcra.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define MS 1000000LL
#define S 1000000000LL

static void *new_table(uint64_t buckets)
{
    void *t = aligned_alloc(64, (gw_gcra_bytes(buckets) + 63) / 64 * 64);
    memset(t, 0, gw_gcra_bytes(buckets));
    CHECK(gw_gcra_init(t, buckets, 12345) == 0);
    return t;
}

static void arithmetic(void)
{
    void *t = new_table(16);
    gw_gcra_result r;
    const int64_t T = 100 * MS, B = 5, tau = (B - 1) * T;     /* 10/s, burst 5 */
    const int64_t t0 = 1000 * S;
    uint64_t k = gw_gcra_hash(t, 1, "a", 1);

    for (int i = 0; i < B; i++) {           /* a fresh key: the whole burst at one instant */
        CHECK(gw_gcra_take(t, 1, k, t0, T, tau, &r) == 1);
        CHECK_MSG(r.remaining == B - 1 - i, "i=%d remaining=%lld", i, (long long)r.remaining);
        CHECK(r.retry_after == 0 && (r.flags & GW_GCRA_ADMITTED));
    }
    CHECK(gw_gcra_take(t, 1, k, t0, T, tau, &r) == 0);        /* burst exhausted */
    CHECK(r.remaining == 0);
    CHECK_MSG(r.retry_after == T, "retry_after %lld", (long long)r.retry_after);
    CHECK(gw_gcra_peek(t, k) == t0 + B * T);               /* a refusal changes nothing */
    /* exactly one emission interval later one more conforms; a nanosecond earlier none */
    CHECK(gw_gcra_take(t, 1, k, t0 + T - 1, T, tau, &r) == 0);
    CHECK(r.retry_after == 1);
    CHECK(gw_gcra_take(t, 1, k, t0 + T, T, tau, &r) == 1);
    CHECK(r.remaining == 0);
    CHECK(gw_gcra_take(t, 1, k, t0 + T, T, tau, &r) == 0);
    /* the clock steps back: never more admitted (tat stays; the wait only grows) */
    CHECK(gw_gcra_take(t, 1, k, t0 - 10 * S, T, tau, &r) == 0);
    CHECK(r.retry_after == 10 * S + 2 * T);          /* from tat, not from now */
    CHECK(gw_gcra_peek(t, k) == t0 + (B + 1) * T);
    /* idle long enough: the full burst again, and remaining counts it */
    CHECK(gw_gcra_take(t, 1, k, t0 + 60 * S, T, tau, &r) == 1);
    CHECK(r.remaining == B - 1);
    /* a steady rate of exactly 1/T is always admitted, faster is not */
    int ok = 0;
    for (int i = 1; i <= 1000; i++)
        ok += gw_gcra_take(t, 1, k, t0 + 120 * S + i * T, T, tau, &r);
    CHECK(ok == 1000);
    int64_t base = t0 + 300 * S;
    ok = 0;
    for (int i = 0; i < 1000; i++)                          /* 2/T offered for 1000 T/2 */
        ok += gw_gcra_take(t, 1, k, base + i * (T / 2), T, tau, &r);
    /* the burst at once, then one per T: 1 + floor(999 * T/2 / T) + (B - 1) */
    CHECK_MSG(ok == 1 + 499 + B - 1, "ok=%d", ok);
    /* burst 1 (tau 0): one at a time */
    uint64_t k1 = gw_gcra_hash(t, 2, "b", 1);
    CHECK(gw_gcra_take(t, 1, k1, t0, T, 0, &r) == 1 && r.remaining == 0);
    CHECK(gw_gcra_take(t, 1, k1, t0 + T - 1, T, 0, &r) == 0 && r.retry_after == 1);
    CHECK(gw_gcra_take(t, 1, k1, t0 + T, T, 0, &r) == 1);
    free(t);
}

static void hashing(void)
{
    void *t = new_table(16);
    uint64_t a = gw_gcra_hash(t, 1, "10.0.0.1", 8), b = gw_gcra_hash(t, 2, "10.0.0.1", 8);
    CHECK(a != 0 && b != 0 && a != b);                      /* the salt separates limits */
    CHECK(a == gw_gcra_hash(t, 1, "10.0.0.1", 8));
    CHECK(gw_gcra_hash(t, 1, "", 0) != 0);
    CHECK(gw_gcra_buckets(t) == 16 && gw_gcra_seed(t) == 12345);
    CHECK(gw_gcra_init(t, 12, 1) == -1);
    free(t);
}

static void recycling_and_overflow(void)
{
    void *t = new_table(1);                 /* one bucket: 8 slots */
    gw_gcra_result r;
    const int64_t T = 10 * MS, tau = 0, t0 = 5 * S;
    uint64_t keys[GW_GCRA_WAYS + 2];
    for (int i = 0; i < GW_GCRA_WAYS + 2; i++)
        keys[i] = (uint64_t)(i + 1) * 0x1000;             /* all in bucket 0 */
    for (int i = 0; i < GW_GCRA_WAYS; i++)
        CHECK(gw_gcra_take(t, 1, keys[i], t0, T, tau, &r) == 1 && r.flags == GW_GCRA_ADMITTED);
    uint64_t active, used;
    gw_gcra_usage(t, t0, &active, &used);
    CHECK(active == GW_GCRA_WAYS && used == GW_GCRA_WAYS);
    /* full of active keys: a new key goes to the overflow cell, the others keep theirs */
    CHECK(gw_gcra_take(t, 1, keys[8], t0, T, tau, &r) == 1);
    CHECK(r.flags == (GW_GCRA_ADMITTED | GW_GCRA_OVERFLOW));
    CHECK(gw_gcra_take(t, 1, keys[9], t0, T, tau, &r) == 0);    /* the overflow cell is shared */
    CHECK(r.flags == GW_GCRA_OVERFLOW);
    for (int i = 0; i < GW_GCRA_WAYS; i++) {
        CHECK(gw_gcra_peek(t, keys[i]) == t0 + T);
        CHECK(gw_gcra_take(t, 1, keys[i], t0, T, tau, &r) == 0);    /* still limited */
    }
    /* once a key's tat has passed its slot is free: the new key gets it */
    CHECK(gw_gcra_take(t, 1, keys[0], t0 + T, T, tau, &r) == 1);   /* keys[0] renewed */
    CHECK(gw_gcra_take(t, 1, keys[9], t0 + T, T, tau, &r) == 1);
    CHECK(r.flags == GW_GCRA_ADMITTED);                          /* took an idle slot */
    CHECK(gw_gcra_peek(t, keys[9]) == t0 + 2 * T);
    CHECK(gw_gcra_peek(t, keys[0]) == t0 + 2 * T);               /* the active one stayed */
    free(t);
}

/* Overflow cells are per limit: a slow limit (1/h) that overflowed a bucket must not shut
 * out a fast limit (1000/s) whose new keys find the same bucket full. */
static void overflow_per_limit(void)
{
    void *t = new_table(1024);
    gw_gcra_result r;
    const int64_t t0 = 7 * S;
    const int64_t Tslow = 3600 * S, Tfast = MS;             /* 1/h and 1000/s, burst 1 */
    const uint64_t slow = 0x5105, fast = 0xfa57;
    for (int i = 0; i < GW_GCRA_WAYS; i++)                  /* bucket 0 full, slow limit */
        CHECK(gw_gcra_take(t, slow, (uint64_t)(i + 1) << 20, t0, Tslow, 0, &r) == 1);
    CHECK(gw_gcra_take(t, slow, 9ULL << 20, t0, Tslow, 0, &r) == 1);
    CHECK(r.flags == (GW_GCRA_ADMITTED | GW_GCRA_OVERFLOW));
    CHECK(gw_gcra_take(t, slow, 10ULL << 20, t0, Tslow, 0, &r) == 0);   /* its own: shared */
    CHECK(r.retry_after == Tslow);
    /* a new key of the fast limit in the same full bucket: its own cell, its own rate */
    CHECK_MSG(gw_gcra_take(t, fast, 11ULL << 20, t0, Tfast, 0, &r) == 1,
              "fast limit refused, retry_after %lld ns", (long long)r.retry_after);
    CHECK(r.flags == (GW_GCRA_ADMITTED | GW_GCRA_OVERFLOW));
    CHECK(gw_gcra_take(t, fast, 12ULL << 20, t0, Tfast, 0, &r) == 0);
    CHECK_MSG(r.retry_after == Tfast, "retry_after %lld", (long long)r.retry_after);
    CHECK(gw_gcra_take(t, fast, 12ULL << 20, t0 + Tfast, Tfast, 0, &r) == 1);
    free(t);

    /* one overflow cell for the whole table: two limits collide on it; the second is refused
     * (conservative) but told to retry after its own T, never the other limit's hour */
    t = new_table(1);
    for (int i = 0; i < GW_GCRA_WAYS; i++)
        CHECK(gw_gcra_take(t, slow, (uint64_t)(i + 1) << 20, t0, Tslow, 0, &r) == 1);
    CHECK(gw_gcra_take(t, slow, 9ULL << 20, t0, Tslow, 0, &r) == 1);
    CHECK(gw_gcra_take(t, fast, 11ULL << 20, t0, Tfast, 0, &r) == 0);
    CHECK(r.flags == GW_GCRA_OVERFLOW);
    CHECK_MSG(r.retry_after == Tfast, "retry_after %lld", (long long)r.retry_after);
    CHECK(gw_gcra_take(t, slow, 10ULL << 20, t0, Tslow, 0, &r) == 0);  /* slow cell intact */
    CHECK(r.retry_after == Tslow);
    /* an hour later every slot and the cell are idle: the fast limit's key is admitted */
    CHECK(gw_gcra_take(t, fast, 11ULL << 20, t0 + Tslow, Tfast, 0, &r) == 1);
    free(t);
}

enum { THREADS = 8, PER_THREAD = 20000 };

typedef struct {
    void *table;
    uint64_t key;
    int64_t now;
    int64_t T, tau;
    int admitted;
    pthread_barrier_t *go;
} job;

static void *hammer(void *arg)
{
    job *j = arg;
    gw_gcra_result r;
    pthread_barrier_wait(j->go);
    for (int i = 0; i < PER_THREAD; i++)
        j->admitted += gw_gcra_take(j->table, 9, j->key, j->now, j->T, j->tau, &r);
    return NULL;
}

static void contention(void)
{
    void *t = new_table(4);
    for (int round = 0; round < 50; round++) {
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, THREADS);
        pthread_t th[THREADS];
        job jobs[THREADS];
        const int64_t burst = 1000, T = MS;
        /* a new key every round: the threads also race to insert it */
        uint64_t key = gw_gcra_hash(t, 9, &round, sizeof round);
        for (int i = 0; i < THREADS; i++) {
            jobs[i] = (job){t, key, (round + 1) * 1000 * S, T, (burst - 1) * T, 0, &go};
            pthread_create(&th[i], NULL, hammer, &jobs[i]);
        }
        int total = 0;
        for (int i = 0; i < THREADS; i++) {
            pthread_join(th[i], NULL);
            total += jobs[i].admitted;
        }
        CHECK_MSG(total == burst, "round %d: %d admitted of burst %lld", round, total,
                  (long long)burst);
        pthread_barrier_destroy(&go);
    }
    free(t);
}

int main(void)
{
    arithmetic();
    hashing();
    recycling_and_overflow();
    overflow_per_limit();
    contention();
    return check_summary("gcra");
}
