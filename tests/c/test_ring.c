/* test_ring.c - unit tests for src_c/ring.c, built with ASan/UBSan by tests/c/test_c.py.
 *
 * Vectors: XXH64 values from the reference libxxhash; ketama answers and continuum facts from
 * uhashring's HashRing(nodes, hash_fn="ketama"); MD5("abc") from RFC 1321 A.5. Exits 0 when every
 * check passes, 1 after printing the failures.
 */
#include "ring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static gw_ring_node node(const char *name, uint32_t weight)
{
    gw_ring_node n = {name, strlen(name), weight};
    return n;
}

/* Deterministic key stream (xorshift) so the tests need no libc randomness. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static size_t key_of(uint64_t i, char *buf, size_t cap)
{
    int len = snprintf(buf, cap, "/video/%llu/seg.ts", (unsigned long long)i);
    return (size_t)len;
}

static void test_xxh64(void)
{
    char hundred_x[100];
    memset(hundred_x, 'x', sizeof(hundred_x));
    CHECK(gw_xxh64("", 0, 0) == 0xEF46DB3751D8E999ull);
    CHECK(gw_xxh64(NULL, 0, 0) == 0xEF46DB3751D8E999ull);
    CHECK(gw_xxh64("a", 1, 0) == 0xD24EC4F1A98C6E5Bull);
    CHECK(gw_xxh64("abc", 3, 0) == 0x44BC2CF5AD770999ull);
    CHECK(gw_xxh64(hundred_x, 100, 0) == 0x92F0DE5A88A3C094ull);
    uint8_t bytes[512];
    for (int i = 0; i < 512; i++)
        bytes[i] = (uint8_t)i;
    CHECK(gw_xxh64(bytes, 37, 0x9E3779B97F4A7C15ull) == 0x5475DB574CAA6A58ull);
    CHECK(gw_xxh64(bytes, 64, 1) == 0x3CE5BDF7575926C0ull);
    CHECK(gw_xxh64(bytes, 511, 12345) == 0x1FC6971F2CA3D7B1ull);
}

static void test_ketama_vectors(void)
{
    gw_ring_node nodes[3] = {node("alpha", 1), node("beta", 1), node("gamma", 1)};
    int err = -1;
    gw_ketama *k = gw_ketama_new(nodes, 3, &err);
    CHECK(k != NULL && err == GW_RING_OK);
    if (k == NULL)
        return;
    CHECK(gw_ketama_hash(k, "abc", 3) == 0x98500190u);  /* MD5("abc") = 90 01 50 98 ... */
    CHECK(gw_ketama_hash(k, "foo", 3) == 3675831724u);
    CHECK(gw_ketama_lookup(k, "foo", 3) == 1);
    CHECK(gw_ketama_lookup(k, "bar", 3) == 1);
    CHECK(gw_ketama_lookup(k, "", 0) == 1);
    CHECK(gw_ketama_lookup(k, "key-1", 5) == 0);
    CHECK(gw_ketama_lookup(k, "\xc3\xbcn\xc3\xaf" "code", 9) == 2);  /* "ünïcode" */
    CHECK(gw_ketama_points(k) == 480);
    uint32_t owner = 99;
    CHECK(gw_ketama_point(k, 0, &owner) == 8391929 && owner == 0);
    CHECK(gw_ketama_point(k, 479, &owner) == 4294218021ll && owner == 2);
    CHECK(gw_ketama_point(k, 480, &owner) == -1 && gw_ketama_load(k)->error == GW_RING_E_INDEX);
    gw_ketama_free(k);

    /* floor(40 * n * w / W) digests: {a:1, b:1000} gives a 0 digests, b 79 (316 points). */
    gw_ring_node skew[2] = {node("a", 1), node("b", 1000)};
    k = gw_ketama_new(skew, 2, &err);
    CHECK(k != NULL);
    if (k == NULL)
        return;
    CHECK(gw_ketama_points(k) == 316);
    gw_ring_load *l = gw_ketama_load(k);
    CHECK(l->reachable[0] == 0 && l->reachable[1] == 1 && l->up_weight == 1000);
    gw_ketama_free(k);

    gw_ring_node weighted[3] = {node("a", 1), node("b", 3), node("c", 6)};
    k = gw_ketama_new(weighted, 3, &err);
    CHECK(k != NULL);
    if (k == NULL)
        return;
    CHECK(gw_ketama_points(k) == 480);
    const int expect[8] = {2, 2, 2, 1, 2, 2, 2, 2};  /* keys "k0".."k7" */
    for (int i = 0; i < 8; i++) {
        char key[4] = {'k', (char)('0' + i), 0, 0};
        CHECK(gw_ketama_lookup(k, key, 2) == expect[i]);
    }
    gw_ketama_free(k);
}

/* Every hash lands on the first point strictly above it, wrapping past the last point. */
static void test_ketama_search_bounds(void)
{
    gw_ring_node nodes[4] = {node("n0", 1), node("n1", 2), node("n2", 1), node("n3", 5)};
    gw_ketama *k = gw_ketama_new(nodes, 4, NULL);
    CHECK(k != NULL);
    if (k == NULL)
        return;
    uint32_t np = gw_ketama_points(k);
    CHECK(np > 4);
    uint32_t first_owner, last_owner, owner;
    int64_t first = gw_ketama_point(k, 0, &first_owner);
    int64_t last = gw_ketama_point(k, np - 1, &last_owner);
    CHECK(gw_ketama_lookup_hash(k, 0) == (int)first_owner || first == 0);
    CHECK(gw_ketama_lookup_hash(k, (uint32_t)last) == (int)first_owner);
    CHECK(gw_ketama_lookup_hash(k, UINT32_MAX) == (int)first_owner);
    int64_t prev = -1;
    for (uint32_t p = 0; p < np; p++) {
        int64_t pt = gw_ketama_point(k, p, &owner);
        CHECK(pt > prev);  /* ascending and distinct */
        prev = pt;
        if (pt > 0)
            CHECK(gw_ketama_lookup_hash(k, (uint32_t)(pt - 1)) == (int)owner);
        if (p + 1 < np) {
            uint32_t next_owner;
            gw_ketama_point(k, p + 1, &next_owner);
            CHECK(gw_ketama_lookup_hash(k, (uint32_t)pt) == (int)next_owner);
        }
    }
    gw_ketama_free(k);
}

static void test_rejections(void)
{
    int err = 0;
    gw_ring_node zero[2] = {node("a", 1), node("b", 0)};
    CHECK(gw_ketama_new(zero, 2, &err) == NULL && err == GW_RING_E_WEIGHT);
    CHECK(gw_maglev_new(zero, 2, 65537, &err) == NULL && err == GW_RING_E_WEIGHT);
    CHECK(gw_ketama_new(NULL, 2, &err) == NULL && err == GW_RING_E_ARG);
    gw_ring_node noname = {NULL, 3, 1};
    CHECK(gw_maglev_new(&noname, 1, 65537, &err) == NULL && err == GW_RING_E_ARG);
    /* The count is refused before the array is read. */
    CHECK(gw_ketama_new(zero, GW_RING_MAX_NODES + 1, &err) == NULL && err == GW_RING_E_COUNT);
    CHECK(gw_maglev_new(zero, GW_RING_MAX_NODES + 1, 65537, &err) == NULL &&
          err == GW_RING_E_COUNT);

    gw_ring_node one[1] = {node("a", 1)};
    CHECK(gw_maglev_new(one, 1, 65536, &err) == NULL && err == GW_RING_E_TABLE_SIZE);
    CHECK(gw_maglev_new(one, 1, 97, &err) == NULL && err == GW_RING_E_TABLE_SIZE);  /* < 100 */
    CHECK(gw_maglev_new(one, 1, 0, &err) == NULL && err == GW_RING_E_TABLE_SIZE);
    CHECK(gw_maglev_new(one, 1, 1, &err) == NULL && err == GW_RING_E_TABLE_SIZE);
    CHECK(gw_maglev_new(one, 1, 2147483647u, &err) == NULL && err == GW_RING_E_TABLE_SIZE);
    gw_maglev *g = gw_maglev_new(one, 1, 101, &err);
    CHECK(g != NULL && err == GW_RING_OK);
    gw_maglev_free(g);

    CHECK(gw_is_prime(2) && gw_is_prime(3) && gw_is_prime(65537) && gw_is_prime(4294967291u));
    CHECK(!gw_is_prime(0) && !gw_is_prime(1) && !gw_is_prime(4) && !gw_is_prime(65535) &&
          !gw_is_prime(4294967295u) && !gw_is_prime(65537u * 3u));
    CHECK(gw_maglev_default_size(0) == 65537 && gw_maglev_default_size(655) == 65537);
    CHECK(gw_maglev_default_size(656) == 65609);  /* smallest prime >= 65600 */
    CHECK(gw_maglev_default_size(GW_RING_MAX_NODES) >= 6553500);
    CHECK(strcmp(gw_ring_error_name(GW_RING_E_WEIGHT), "weight must be >= 1") == 0);
    CHECK(strcmp(gw_ring_error_name(-1), "") == 0);
    CHECK(strcmp(gw_ring_error_name(GW_RING_E__COUNT), "") == 0);
}

static void test_empty_and_single(void)
{
    int err = -1;
    uint32_t out[4];
    gw_ketama *k = gw_ketama_new(NULL, 0, &err);
    CHECK(k != NULL && err == GW_RING_OK);
    gw_maglev *g = gw_maglev_new(NULL, 0, 65537, &err);
    CHECK(g != NULL && err == GW_RING_OK);
    if (k == NULL || g == NULL)
        return;
    CHECK(gw_ketama_points(k) == 0);
    CHECK(gw_ketama_lookup(k, "x", 1) == -1 && gw_ketama_load(k)->error == GW_RING_E_EMPTY);
    CHECK(gw_ketama_lookup_bounded(k, "x", 1) == -1);
    CHECK(gw_ketama_range(k, "x", 1, out, 4) == 0);
    CHECK(gw_maglev_lookup(g, "x", 1) == -1 && gw_maglev_load(g)->error == GW_RING_E_EMPTY);
    CHECK(gw_maglev_range(g, "x", 1, out, 4) == 0);
    CHECK(gw_maglev_slot(g, 0) == 0xFFFF);
    CHECK(gw_ring_acquire(gw_ketama_load(k), 0) == -1);
    gw_ketama_free(k);
    gw_maglev_free(g);
    gw_ketama_free(NULL);
    gw_maglev_free(NULL);

    gw_ring_node one[1] = {node("only", 7)};
    k = gw_ketama_new(one, 1, &err);
    g = gw_maglev_new(one, 1, 101, &err);
    CHECK(k != NULL && g != NULL);
    if (k == NULL || g == NULL)
        return;
    CHECK(gw_ketama_points(k) == 160);
    char key[64];
    for (uint64_t i = 0; i < 1000; i++) {
        size_t len = key_of(i, key, sizeof(key));
        CHECK(gw_ketama_lookup(k, key, len) == 0);
        CHECK(gw_maglev_lookup(g, key, len) == 0);
    }
    for (uint32_t s = 0; s < 101; s++)
        CHECK(gw_maglev_slot(g, s) == 0);
    CHECK(gw_maglev_slot(g, 101) == 0xFFFF);
    CHECK(gw_ketama_range(k, "x", 1, out, 4) == 1 && out[0] == 0);
    CHECK(gw_maglev_range(g, "x", 1, out, 4) == 1 && out[0] == 0);
    gw_ring_set_up(gw_ketama_load(k), 0, 0);
    CHECK(gw_ketama_lookup(k, "x", 1) == -1 && gw_ketama_load(k)->error == GW_RING_E_ALL_DOWN);
    CHECK(gw_ketama_range(k, "x", 1, out, 4) == 0);
    gw_ring_set_up(gw_maglev_load(g), 0, 0);
    CHECK(gw_maglev_lookup(g, "x", 1) == -1 && gw_maglev_load(g)->error == GW_RING_E_ALL_DOWN);
    gw_ketama_free(k);
    gw_maglev_free(g);
}

static void test_load_bookkeeping(void)
{
    gw_ring_node nodes[3] = {node("a", 1), node("b", 2), node("c", 3)};
    gw_ketama *k = gw_ketama_new(nodes, 3, NULL);
    gw_maglev *g = gw_maglev_new(nodes, 3, 65537, NULL);
    CHECK(k != NULL && g != NULL);
    if (k == NULL || g == NULL)
        return;
    gw_ring_load *l = gw_ketama_load(k);
    CHECK(l->n == 3 && l->total == 0 && l->up_weight == 6 && l->factor_pct == 0);
    CHECK(gw_ring_acquire(l, 1) == 0 && gw_ring_acquire(l, 1) == 0 && gw_ring_acquire(l, 2) == 0);
    CHECK(l->inflight[1] == 2 && l->inflight[2] == 1 && l->total == 3);
    CHECK(gw_ring_acquire(l, 3) == -1 && l->error == GW_RING_E_INDEX);
    CHECK(gw_ring_release(l, 3) == -1 && l->error == GW_RING_E_INDEX);
    CHECK(gw_ring_release(l, 0) == -1 && l->error == GW_RING_E_UNDERFLOW && l->total == 3);
    CHECK(gw_ring_release(l, 1) == 0 && l->inflight[1] == 1 && l->total == 2);
    CHECK(gw_ring_set_factor(l, 99) == -1 && l->error == GW_RING_E_FACTOR);
    CHECK(gw_ring_set_factor(l, 65536) == -1 && l->factor_pct == 0);
    CHECK(gw_ring_set_factor(l, 125) == 0 && l->factor_pct == 125);
    CHECK(gw_ring_set_factor(l, 0) == 0 && l->factor_pct == 0);
    CHECK(gw_ring_set_up(l, 5, 0) == -1 && l->error == GW_RING_E_INDEX);
    CHECK(gw_ring_set_up(l, 1, 0) == 0 && l->n_down == 1 && l->up_weight == 4);
    CHECK(gw_ring_set_up(l, 1, 0) == 0 && l->n_down == 1 && l->up_weight == 4);
    CHECK(gw_ring_set_up(l, 1, 1) == 0 && l->n_down == 0 && l->up_weight == 6);

    /* Saturation keeps total equal to the sum. */
    l->inflight[0] = UINT32_MAX;
    l->total += UINT32_MAX;
    uint64_t before = l->total;
    CHECK(gw_ring_acquire(l, 0) == 0 && l->inflight[0] == UINT32_MAX && l->total == before);
    CHECK(gw_ring_release(l, 0) == 0 && l->total == before - 1);
    l->inflight[0] = 0;
    l->total -= UINT32_MAX - 1;

    /* Carry state from the ketama into the Maglev. */
    gw_ring_load *m = gw_maglev_load(g);
    gw_ring_set_up(l, 2, 0);
    CHECK(gw_ring_carry(m, 0, l, 2) == 0);
    CHECK(m->inflight[0] == 1 && m->total == 1 && m->up[0] == 0 && m->n_down == 1);
    CHECK(m->up_weight == 5);
    CHECK(gw_ring_carry(m, 0, l, 1) == 0);
    CHECK(m->inflight[0] == 1 && m->total == 1 && m->up[0] == 1 && m->up_weight == 6);
    CHECK(gw_ring_carry(m, 3, l, 1) == -1 && m->error == GW_RING_E_INDEX);
    CHECK(gw_ring_carry(m, 0, l, 3) == -1);
    gw_ketama_free(k);
    gw_maglev_free(g);
}

/* Builds a ketama (maglev 0) or a 1009-slot Maglev (maglev 1) over nodes into *k or *g, the
 * other one NULL; returns its load, or NULL (a failed check) when the constructor failed. */
static gw_ring_load *build_ring(int maglev, const gw_ring_node *nodes, uint32_t n, gw_ketama **k,
                                gw_maglev **g)
{
    *k = maglev ? NULL : gw_ketama_new(nodes, n, NULL);
    *g = maglev ? gw_maglev_new(nodes, n, 1009, NULL) : NULL;
    CHECK(*k != NULL || *g != NULL);
    if (*k == NULL && *g == NULL)
        return NULL;
    return maglev ? gw_maglev_load(*g) : gw_ketama_load(*k);
}

/* Down nodes: keys of up nodes stay; keys of the down node go to another up node. */
static void check_down_stability(int maglev)
{
    enum { N = 7, KEYS = 20000 };
    gw_ring_node nodes[N];
    char names[N][24];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "10.0.0.%d", i);
        nodes[i] = node(names[i], (uint32_t)(1 + i % 3));
    }
    gw_ketama *k;
    gw_maglev *g;
    gw_ring_load *l = build_ring(maglev, nodes, N, &k, &g);
    if (l == NULL)
        return;
    static int before[KEYS];
    char key[64];
    for (int i = 0; i < KEYS; i++) {
        size_t len = key_of((uint64_t)i, key, sizeof(key));
        before[i] = maglev ? gw_maglev_lookup(g, key, len) : gw_ketama_lookup(k, key, len);
    }
    gw_ring_set_up(l, 3, 0);
    gw_ring_set_up(l, 5, 0);
    int moved_ok = 1, kept_ok = 1, range_ok = 1;
    for (int i = 0; i < KEYS; i++) {
        size_t len = key_of((uint64_t)i, key, sizeof(key));
        int now = maglev ? gw_maglev_lookup(g, key, len) : gw_ketama_lookup(k, key, len);
        if (before[i] == 3 || before[i] == 5)
            moved_ok &= now >= 0 && now != 3 && now != 5;
        else
            kept_ok &= now == before[i];
        uint32_t out[N];
        int got = maglev ? gw_maglev_range(g, key, len, out, N)
                         : gw_ketama_range(k, key, len, out, N);
        range_ok &= got == N - 2 && (int)out[0] == now;
    }
    CHECK(range_ok);
    CHECK(moved_ok);
    CHECK(kept_ok);
    gw_ring_set_up(l, 3, 1);
    gw_ring_set_up(l, 5, 1);
    int back_ok = 1;
    for (int i = 0; i < KEYS; i++) {
        size_t len = key_of((uint64_t)i, key, sizeof(key));
        back_ok &= before[i] == (maglev ? gw_maglev_lookup(g, key, len)
                                        : gw_ketama_lookup(k, key, len));
    }
    CHECK(back_ok);
    gw_ketama_free(k);
    gw_maglev_free(g);
}

static void test_range(void)
{
    enum { N = 5 };
    gw_ring_node nodes[N] = {node("a", 1), node("b", 1), node("c", 2), node("d", 1),
                             node("e", 1)};
    gw_ketama *k = gw_ketama_new(nodes, N, NULL);
    gw_maglev *g = gw_maglev_new(nodes, N, 503, NULL);
    CHECK(k != NULL && g != NULL);
    if (k == NULL || g == NULL)
        return;
    uint32_t out[N + 2];
    char key[64];
    for (uint64_t i = 0; i < 500; i++) {
        size_t len = key_of(i, key, sizeof(key));
        for (int which = 0; which < 2; which++) {
            memset(out, 0xAB, sizeof(out));
            int got = which ? gw_maglev_range(g, key, len, out, N + 2)
                            : gw_ketama_range(k, key, len, out, N + 2);
            CHECK(got == N);
            int first = which ? gw_maglev_lookup(g, key, len) : gw_ketama_lookup(k, key, len);
            CHECK(first == (which ? gw_maglev_lookup_hash(g, gw_xxh64(key, len, 0))
                                  : gw_ketama_lookup_hash(k, gw_ketama_hash(k, key, len))));
            CHECK((int)out[0] == first);
            unsigned mask = 0;
            for (int j = 0; j < got; j++)
                mask |= 1u << out[j];
            CHECK(mask == (1u << N) - 1);
            CHECK(out[N] == 0xABABABABu);  /* nothing written past the count */
            int two = which ? gw_maglev_range(g, key, len, out, 2)
                            : gw_ketama_range(k, key, len, out, 2);
            CHECK(two == 2 && (int)out[0] == first && out[1] != out[0]);
            CHECK((which ? gw_maglev_range(g, key, len, out, 0)
                         : gw_ketama_range(k, key, len, out, 0)) == 0);
        }
    }
    /* The scratch marks survive their counter wrapping. */
    gw_ketama_load(k)->epoch = UINT32_MAX;
    CHECK(gw_ketama_range(k, "x", 1, out, N) == N && gw_ketama_load(k)->epoch == 1);
    CHECK(gw_ketama_range(k, "x", 1, out, N) == N);
    gw_ketama_free(k);
    gw_maglev_free(g);
}

/* Slots per node: equal weights differ by at most one; weighted shares within 1% of fair. */
static void test_maglev_shares(void)
{
    enum { N = 10 };
    gw_ring_node nodes[N];
    char names[N][24];
    for (int pass = 0; pass < 2; pass++) {
        uint64_t wsum = 0;
        for (int i = 0; i < N; i++) {
            snprintf(names[i], sizeof(names[i]), "backend-%d", i);
            nodes[i] = node(names[i], pass == 0 ? 1u : (uint32_t)(1 + i));
            wsum += nodes[i].weight;
        }
        gw_maglev *g = gw_maglev_new(nodes, N, 65537, NULL);
        CHECK(g != NULL);
        if (g == NULL)
            return;
        uint32_t count[N] = {0};
        for (uint32_t s = 0; s < gw_maglev_size(g); s++) {
            uint32_t i = gw_maglev_slot(g, s);
            CHECK(i < N);
            if (i < N)
                count[i]++;
        }
        uint32_t lo = UINT32_MAX, hi = 0;
        for (int i = 0; i < N; i++) {
            double fair = 65537.0 * nodes[i].weight / (double)wsum;
            CHECK(count[i] >= fair * 0.99 && count[i] <= fair * 1.01);
            lo = count[i] < lo ? count[i] : lo;
            hi = count[i] > hi ? count[i] : hi;
        }
        if (pass == 0)
            CHECK(hi - lo <= 1);
        gw_maglev_free(g);
    }
}

/* Arrivals and departures at random; at every pick the chosen node, once acquired, holds at
 * most ceil(f * total * w_i / W) requests. Arrivals only: that bound holds for every node. */
static void check_bounded(int maglev, uint32_t factor_pct, int with_departures)
{
    enum { N = 8, STEPS = 20000 };
    gw_ring_node nodes[N];
    char names[N][24];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "n%d", i);
        nodes[i] = node(names[i], i == 0 ? 3u : 1u);
    }
    gw_ketama *k;
    gw_maglev *g;
    gw_ring_load *l = build_ring(maglev, nodes, N, &k, &g);
    if (l == NULL)
        return;
    CHECK(gw_ring_set_factor(l, factor_pct) == 0);
    /* A few hot keys make the unbounded choice badly unbalanced. */
    static uint32_t live[STEPS];
    uint32_t nlive = 0;
    int ok = 1, moved = 0;
    char key[64];
    for (int step = 0; step < STEPS; step++) {
        if (with_departures && nlive > 0 && rng() % 3 == 0) {
            uint32_t j = (uint32_t)(rng() % nlive);
            ok &= gw_ring_release(l, live[j]) == 0;
            live[j] = live[--nlive];
            continue;
        }
        size_t len = key_of(rng() % 4, key, sizeof(key));
        int plain = maglev ? gw_maglev_lookup(g, key, len) : gw_ketama_lookup(k, key, len);
        int i = maglev ? gw_maglev_lookup_bounded(g, key, len)
                       : gw_ketama_lookup_bounded(k, key, len);
        ok &= i >= 0 && i < N;
        if (i < 0 || i >= N)
            break;
        moved += i != plain;
        ok &= gw_ring_acquire(l, (uint32_t)i) == 0;
        live[nlive++] = (uint32_t)i;
        uint64_t cap_num = (uint64_t)factor_pct * l->total;  /* ceil(f * total * w_i / W) */
        for (int j = 0; j < N; j++) {
            if (!with_departures || j == i) {
                uint64_t num = cap_num * l->weight[j], den = 100u * l->up_weight;
                ok &= l->inflight[j] <= (num + den - 1) / den;
            }
        }
    }
    CHECK(ok);
    CHECK(moved > 0);  /* the bound did act */
    uint64_t sum = 0;
    for (int i = 0; i < N; i++)
        sum += l->inflight[i];
    CHECK(sum == l->total && l->total == nlive);
    gw_ketama_free(k);
    gw_maglev_free(g);
}

/* Lookups that cannot pass the bound anywhere still answer (one node always has room). */
static void test_bounded_edges(void)
{
    gw_ring_node nodes[2] = {node("x", 1), node("y", 1)};
    gw_ketama *k = gw_ketama_new(nodes, 2, NULL);
    CHECK(k != NULL);
    if (k == NULL)
        return;
    gw_ring_load *l = gw_ketama_load(k);
    gw_ring_set_factor(l, 100);
    int first = gw_ketama_lookup_bounded(k, "hot", 3);
    CHECK(first == gw_ketama_lookup(k, "hot", 3));
    gw_ring_acquire(l, (uint32_t)first);
    /* cap = ceil(1.0 * 2 * 1/2) = 1: the owner is full, the other one is chosen. */
    int second = gw_ketama_lookup_bounded(k, "hot", 3);
    CHECK(second == 1 - first);
    gw_ring_set_up(l, (uint32_t)(1 - first), 0);
    /* The bound is computed over up nodes, so a lone up node always has room. */
    CHECK(gw_ketama_lookup_bounded(k, "hot", 3) == first);
    gw_ketama_free(k);
}

int main(void)
{
    test_xxh64();
    test_ketama_vectors();
    test_ketama_search_bounds();
    test_rejections();
    test_empty_and_single();
    test_load_bookkeeping();
    check_down_stability(0);
    check_down_stability(1);
    test_range();
    test_maglev_shares();
    for (int maglev = 0; maglev < 2; maglev++) {
        check_bounded(maglev, 100, 0);
        check_bounded(maglev, 125, 0);
        check_bounded(maglev, 150, 1);
        check_bounded(maglev, 200, 1);
    }
    test_bounded_edges();
    return check_summary("test_ring");
}
