/* ring.c - ketama continuum, Maglev table, bounded load (contract in ring.h).
 *
 * Contract notes specific to the implementation
 * - MD5 without allocation: EVP_Digest allocates an EVP_MD_CTX and a provider context on
 *   every call (and even a reused EVP_MD_CTX re-creates its provider context on each
 *   EVP_DigestInit_ex2 in OpenSSL 3.0). A lookup must not allocate, so the ring fetches MD5
 *   once with EVP_MD_fetch, takes the digest functions of the provider that serves it
 *   (OSSL_PROVIDER_query_operation, the public provider API that EVP itself uses) and keeps one
 *   provider context per ring, reinitialised for every key. The fetched EVP_MD is held for the
 *   ring's lifetime so the provider stays loaded.
 * - Every size is checked before it is multiplied: n <= 65535 and weights < 2^32 keep
 *   40 * n * w below 2^54 and sum(w) below 2^48; the bounded-load comparison is done in 128 bits.
 */
#include "ring.h"

#include <openssl/core_dispatch.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define GW_RING_NONE 0xFFFFu

#ifndef GW_LIKELY
#define GW_LIKELY(x) __builtin_expect(!!(x), 1)
#define GW_UNLIKELY(x) __builtin_expect(!!(x), 0)
#endif

__extension__ typedef unsigned __int128 gw_u128;

/* ---- MD5 through the provider's dispatch table ------------------------------------------ */

typedef struct gw_md5 {
    EVP_MD *md;
    void *ctx;
    OSSL_FUNC_digest_freectx_fn *freectx;
    OSSL_FUNC_digest_init_fn *init;
    OSSL_FUNC_digest_update_fn *update;
    OSSL_FUNC_digest_final_fn *final;
} gw_md5;

/* 1 if the colon-separated provider name list contains MD5. */
static int names_md5(const char *names)
{
    const char *p = names;
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ':');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len == 3 && strncasecmp(p, "MD5", 3) == 0)
            return 1;
        p = end != NULL ? end + 1 : NULL;
    }
    return 0;
}

static void md5_close(gw_md5 *h)
{
    if (h->ctx != NULL && h->freectx != NULL)
        h->freectx(h->ctx);
    EVP_MD_free(h->md);
    memset(h, 0, sizeof(*h));
}

static int md5_open(gw_md5 *h)
{
    memset(h, 0, sizeof(*h));
    h->md = EVP_MD_fetch(NULL, "MD5", NULL);
    if (h->md == NULL)
        return -1;
    const OSSL_PROVIDER *prov = EVP_MD_get0_provider(h->md);
    int no_cache = 0;
    const OSSL_ALGORITHM *algs = OSSL_PROVIDER_query_operation(prov, OSSL_OP_DIGEST, &no_cache);
    OSSL_FUNC_digest_newctx_fn *newctx = NULL;
    for (const OSSL_ALGORITHM *a = algs; a != NULL && a->algorithm_names != NULL; a++) {
        if (!names_md5(a->algorithm_names))
            continue;
        for (const OSSL_DISPATCH *d = a->implementation; d->function_id != 0; d++) {
            switch (d->function_id) {
            case OSSL_FUNC_DIGEST_NEWCTX: newctx = OSSL_FUNC_digest_newctx(d); break;
            case OSSL_FUNC_DIGEST_FREECTX: h->freectx = OSSL_FUNC_digest_freectx(d); break;
            case OSSL_FUNC_DIGEST_INIT: h->init = OSSL_FUNC_digest_init(d); break;
            case OSSL_FUNC_DIGEST_UPDATE: h->update = OSSL_FUNC_digest_update(d); break;
            case OSSL_FUNC_DIGEST_FINAL: h->final = OSSL_FUNC_digest_final(d); break;
            default: break;
            }
        }
        break;
    }
    if (algs != NULL)
        OSSL_PROVIDER_unquery_operation(prov, OSSL_OP_DIGEST, algs);
    if (newctx == NULL || h->freectx == NULL || h->init == NULL || h->update == NULL ||
        h->final == NULL)
        goto fail;
    h->ctx = newctx(OSSL_PROVIDER_get0_provider_ctx(prov));
    if (h->ctx == NULL)
        goto fail;
    /* Prove the table computes MD5 before trusting it: RFC 1321 A.5, MD5("abc"). */
    static const uint8_t abc[16] = {0x90, 0x01, 0x50, 0x98, 0x3c, 0xd2, 0x4f, 0xb0,
                                    0xd6, 0x96, 0x3f, 0x7d, 0x28, 0xe1, 0x7f, 0x72};
    uint8_t out[16] = {0};
    size_t outl = 0;
    if (h->init(h->ctx, NULL) != 1 || h->update(h->ctx, (const unsigned char *)"abc", 3) != 1 ||
        h->final(h->ctx, out, &outl, sizeof(out)) != 1 || outl != 16 ||
        memcmp(out, abc, 16) != 0)
        goto fail;
    return 0;
fail:
    md5_close(h);
    ERR_clear_error();      /* leave no stale error for unrelated OpenSSL users */
    return -1;
}

/* The default provider's MD5 functions cannot fail on a valid context (md5_open proved it
 * valid), so their results are not checked on the lookup path; out starts zeroed regardless. */
static inline void md5_digest(gw_md5 *h, const void *data, size_t len, uint8_t out[16])
{
    size_t outl = 0;
    memset(out, 0, 16);
    h->init(h->ctx, NULL);
    h->update(h->ctx, (const unsigned char *)data, len);
    h->final(h->ctx, out, &outl, 16);
}

static inline uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- XXH64, from the xxHash specification ------------------------------------------------ */

#define XXH_P1 0x9E3779B185EBCA87ull
#define XXH_P2 0xC2B2AE3D27D4EB4Full
#define XXH_P3 0x165667B19E3779F9ull
#define XXH_P4 0x85EBCA77C2B2AE63ull
#define XXH_P5 0x27D4EB2F165667C5ull

static inline uint64_t rotl64(uint64_t x, unsigned r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint64_t xxh_round(uint64_t acc, uint64_t lane)
{
    return rotl64(acc + lane * XXH_P2, 31) * XXH_P1;
}

static inline uint64_t xxh_merge(uint64_t acc, uint64_t lane)
{
    return (acc ^ xxh_round(0, lane)) * XXH_P1 + XXH_P4;
}

uint64_t gw_xxh64(const void *data, size_t len, uint64_t seed)
{
    const uint8_t *p = (const uint8_t *)data;
    size_t left = len;
    uint64_t acc;
    if (left >= 32) {
        uint64_t a1 = seed + XXH_P1 + XXH_P2, a2 = seed + XXH_P2, a3 = seed, a4 = seed - XXH_P1;
        do {
            a1 = xxh_round(a1, rd64(p));
            a2 = xxh_round(a2, rd64(p + 8));
            a3 = xxh_round(a3, rd64(p + 16));
            a4 = xxh_round(a4, rd64(p + 24));
            p += 32;
            left -= 32;
        } while (left >= 32);
        acc = rotl64(a1, 1) + rotl64(a2, 7) + rotl64(a3, 12) + rotl64(a4, 18);
        acc = xxh_merge(acc, a1);
        acc = xxh_merge(acc, a2);
        acc = xxh_merge(acc, a3);
        acc = xxh_merge(acc, a4);
    } else {
        acc = seed + XXH_P5;
    }
    acc += (uint64_t)len;
    while (left >= 8) {
        acc ^= xxh_round(0, rd64(p));
        acc = rotl64(acc, 27) * XXH_P1 + XXH_P4;
        p += 8;
        left -= 8;
    }
    if (left >= 4) {
        acc ^= (uint64_t)le32(p) * XXH_P1;
        acc = rotl64(acc, 23) * XXH_P2 + XXH_P3;
        p += 4;
        left -= 4;
    }
    while (left > 0) {
        acc ^= (uint64_t)*p * XXH_P5;
        acc = rotl64(acc, 11) * XXH_P1;
        p++;
        left--;
    }
    acc ^= acc >> 33;
    acc *= XXH_P2;
    acc ^= acc >> 29;
    acc *= XXH_P3;
    acc ^= acc >> 32;
    return acc;
}

/* ---- shared per-node state --------------------------------------------------------------- */

static const char *const error_names[GW_RING_E__COUNT] = {
    [GW_RING_OK] = "ok",
    [GW_RING_E_NOMEM] = "out of memory",
    [GW_RING_E_COUNT] = "too many nodes",
    [GW_RING_E_WEIGHT] = "weight must be >= 1",
    [GW_RING_E_TABLE_SIZE] = "table size must be a prime >= 100 x nodes and <= 2^26",
    [GW_RING_E_DIGEST] = "MD5 unavailable from libcrypto",
    [GW_RING_E_EMPTY] = "no node",
    [GW_RING_E_ALL_DOWN] = "every node is down",
    [GW_RING_E_INDEX] = "node index out of range",
    [GW_RING_E_UNDERFLOW] = "release without a matching acquire",
    [GW_RING_E_FACTOR] = "balance factor must be 0 or within [100, 65535] percent",
    [GW_RING_E_ARG] = "NULL node array or node name",
};

const char *gw_ring_error_name(int code)
{
    if (code < 0 || code >= GW_RING_E__COUNT)
        return "";
    return error_names[code];
}

static void load_free(gw_ring_load *l)
{
    free(l->weight);
    free(l->inflight);
    free(l->up);
    free(l->reachable);
    free(l->seen);
    memset(l, 0, sizeof(*l));
}

/* Validate the node array and allocate the per-node arrays (all up, idle, unreachable until
 * load_finish). Returns a gw_ring_error. */
static int load_init(gw_ring_load *l, const gw_ring_node *nodes, uint32_t n)
{
    memset(l, 0, sizeof(*l));
    if (n > GW_RING_MAX_NODES)
        return GW_RING_E_COUNT;
    if (n > 0 && nodes == NULL)
        return GW_RING_E_ARG;
    for (uint32_t i = 0; i < n; i++) {
        if (nodes[i].name == NULL && nodes[i].name_len > 0)
            return GW_RING_E_ARG;
        if (nodes[i].weight == 0)
            return GW_RING_E_WEIGHT;
    }
    size_t cap = n > 0 ? n : 1;
    l->weight = calloc(cap, sizeof(uint32_t));
    l->inflight = calloc(cap, sizeof(uint32_t));
    l->up = calloc(cap, 1);
    l->reachable = calloc(cap, 1);
    l->seen = calloc(cap, sizeof(uint32_t));
    if (l->weight == NULL || l->inflight == NULL || l->up == NULL || l->reachable == NULL ||
        l->seen == NULL) {
        load_free(l);
        return GW_RING_E_NOMEM;
    }
    l->n = n;
    for (uint32_t i = 0; i < n; i++) {
        l->weight[i] = nodes[i].weight;
        l->up[i] = 1;
    }
    return GW_RING_OK;
}

/* Mark the owners of a lookup structure reachable and total their weight. */
static void load_finish(gw_ring_load *l, const uint16_t *owners, size_t count)
{
    for (size_t s = 0; s < count; s++)
        l->reachable[owners[s]] = 1;
    l->up_weight = 0;
    for (uint32_t i = 0; i < l->n; i++)
        if (l->reachable[i])
            l->up_weight += l->weight[i];
}

int gw_ring_acquire(gw_ring_load *l, uint32_t index)
{
    if (GW_UNLIKELY(index >= l->n)) {
        l->error = GW_RING_E_INDEX;
        return -1;
    }
    if (GW_LIKELY(l->inflight[index] != UINT32_MAX)) {
        l->inflight[index]++;
        l->total++;
    }
    return 0;
}

int gw_ring_release(gw_ring_load *l, uint32_t index)
{
    if (GW_UNLIKELY(index >= l->n)) {
        l->error = GW_RING_E_INDEX;
        return -1;
    }
    if (GW_UNLIKELY(l->inflight[index] == 0)) {
        l->error = GW_RING_E_UNDERFLOW;
        return -1;
    }
    l->inflight[index]--;
    l->total--;
    return 0;
}

int gw_ring_set_up(gw_ring_load *l, uint32_t index, int up)
{
    if (index >= l->n) {
        l->error = GW_RING_E_INDEX;
        return -1;
    }
    uint8_t now = up ? 1 : 0;
    if (l->up[index] == now)
        return 0;
    l->up[index] = now;
    if (now)
        l->n_down--;
    else
        l->n_down++;
    if (l->reachable[index]) {
        if (now)
            l->up_weight += l->weight[index];
        else
            l->up_weight -= l->weight[index];
    }
    return 0;
}

int gw_ring_set_factor(gw_ring_load *l, uint32_t factor_pct)
{
    if (factor_pct != 0 &&
        (factor_pct < GW_RING_MIN_FACTOR_PCT || factor_pct > GW_RING_MAX_FACTOR_PCT)) {
        l->error = GW_RING_E_FACTOR;
        return -1;
    }
    l->factor_pct = factor_pct;
    return 0;
}

int gw_ring_carry(gw_ring_load *dst, uint32_t dst_index, const gw_ring_load *src,
                  uint32_t src_index)
{
    if (dst_index >= dst->n || src_index >= src->n) {
        dst->error = GW_RING_E_INDEX;
        return -1;
    }
    dst->total -= dst->inflight[dst_index];
    dst->inflight[dst_index] = src->inflight[src_index];
    dst->total += dst->inflight[dst_index];
    return gw_ring_set_up(dst, dst_index, src->up[src_index]);
}

/* inflight_i < f * (total + 1) * w_i / W, with f = factor_pct / 100, in exact integers. */
static inline int below_bound(const gw_ring_load *l, uint32_t i)
{
    gw_u128 lhs = (gw_u128)l->inflight[i] * 100u * l->up_weight;
    gw_u128 rhs = (gw_u128)l->factor_pct * (l->total + 1) * l->weight[i];
    return lhs < rhs;
}

/* Fresh mark value for a distinct walk; seen[] is cleared only when the counter wraps. */
static uint32_t next_epoch(gw_ring_load *l)
{
    if (++l->epoch == 0) {
        memset(l->seen, 0, (size_t)l->n * sizeof(uint32_t));
        l->epoch = 1;
    }
    return l->epoch;
}

/* Walk `count` owners cyclically from `start`: the first up node (bounded: also below the
 * bound). Used only when a node is down or the bound is on. */
static int walk_first(gw_ring_load *l, const uint16_t *owners, uint32_t count, uint32_t start,
                      int bounded)
{
    if (l->up_weight == 0) {    /* nothing can answer: fail now, not after a whole table */
        l->error = GW_RING_E_ALL_DOWN;
        return -1;
    }
    uint32_t s = start;
    for (uint32_t step = 0; step < count; step++) {
        uint32_t i = owners[s];
        if (l->up[i] && (!bounded || below_bound(l, i)))
            return (int)i;
        if (++s == count)
            s = 0;
    }
    l->error = GW_RING_E_ALL_DOWN;
    return -1;
}

/* Distinct up owners cyclically from `start`, at most max. */
static int walk_range(gw_ring_load *l, const uint16_t *owners, uint32_t count, uint32_t start,
                      uint32_t *out, uint32_t max)
{
    if (count == 0 || max == 0 || l->up_weight == 0)
        return 0;
    uint32_t mark = next_epoch(l);
    uint32_t found = 0, s = start;
    for (uint32_t step = 0; step < count && found < max; step++) {
        uint32_t i = owners[s];
        if (l->up[i] && l->seen[i] != mark) {
            l->seen[i] = mark;
            out[found++] = i;
        }
        if (++s == count)
            s = 0;
    }
    return (int)found;
}

/* ---- ketama ------------------------------------------------------------------------------ */

struct gw_ketama {
    gw_ring_load load;
    uint32_t npoints;
    uint32_t *points;   /* sorted, distinct */
    uint16_t *owner;    /* node owning points[p] */
    gw_md5 md5;
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Decimal digits of v into buf (no terminator); returns the length. */
static size_t put_decimal(char *buf, uint32_t v)
{
    char tmp[10];
    size_t len = 0;
    do {
        tmp[len++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t j = 0; j < len; j++)
        buf[j] = tmp[len - 1 - j];
    return len;
}

/* Digest every "<name>-<k>" into (point << 32 | node) entries, sort them, and keep one entry
 * per point: the highest node index, which is the last writer in uhashring's build order. */
static int ketama_fill(gw_ketama *k, const gw_ring_node *nodes, uint32_t n)
{
    uint64_t wsum = 0;
    size_t name_max = 0;
    for (uint32_t i = 0; i < n; i++) {
        wsum += nodes[i].weight;
        if (nodes[i].name_len > name_max)
            name_max = nodes[i].name_len;
    }
    if (name_max > SIZE_MAX - 16)
        return GW_RING_E_NOMEM;
    uint64_t digests = 0;
    for (uint32_t i = 0; i < n; i++)
        digests += (uint64_t)GW_RING_KETAMA_DIGESTS * n * nodes[i].weight / wsum;
    /* Sum of floors <= 40 n <= 40 * 65535: 4 points each fit easily. */
    size_t count = (size_t)digests * 4;
    uint64_t *entries = malloc((count > 0 ? count : 1) * sizeof(uint64_t));
    char *buf = malloc(name_max + 16);
    if (entries == NULL || buf == NULL) {
        free(entries);
        free(buf);
        return GW_RING_E_NOMEM;
    }
    size_t e = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t ks = (uint32_t)((uint64_t)GW_RING_KETAMA_DIGESTS * n * nodes[i].weight / wsum);
        if (nodes[i].name_len > 0)
            memcpy(buf, nodes[i].name, nodes[i].name_len);
        buf[nodes[i].name_len] = '-';
        for (uint32_t d = 0; d < ks; d++) {
            size_t len = nodes[i].name_len + 1 + put_decimal(buf + nodes[i].name_len + 1, d);
            uint8_t md[16];
            md5_digest(&k->md5, buf, len, md);
            for (int r = 0; r < 4; r++)
                entries[e++] = (uint64_t)le32(md + 4 * r) << 32 | i;
        }
    }
    free(buf);
    qsort(entries, count, sizeof(uint64_t), cmp_u64);
    size_t distinct = 0;
    for (size_t j = 0; j < count; j++)
        if (j + 1 == count || (entries[j] >> 32) != (entries[j + 1] >> 32))
            distinct++;
    k->points = malloc((distinct > 0 ? distinct : 1) * sizeof(uint32_t));
    k->owner = malloc((distinct > 0 ? distinct : 1) * sizeof(uint16_t));
    if (k->points == NULL || k->owner == NULL) {
        free(entries);
        return GW_RING_E_NOMEM;
    }
    size_t p = 0;
    for (size_t j = 0; j < count; j++) {
        if (j + 1 == count || (entries[j] >> 32) != (entries[j + 1] >> 32)) {
            k->points[p] = (uint32_t)(entries[j] >> 32);
            k->owner[p] = (uint16_t)(entries[j] & 0xFFFFu);
            p++;
        }
    }
    free(entries);
    k->npoints = (uint32_t)distinct;
    return GW_RING_OK;
}

gw_ketama *gw_ketama_new(const gw_ring_node *nodes, uint32_t n, int *err)
{
    gw_ketama *k = calloc(1, sizeof(*k));
    int rc = GW_RING_E_NOMEM;
    if (k == NULL)
        goto fail;
    rc = load_init(&k->load, nodes, n);
    if (rc != GW_RING_OK)
        goto fail;
    if (md5_open(&k->md5) != 0) {
        rc = GW_RING_E_DIGEST;
        goto fail;
    }
    rc = ketama_fill(k, nodes, n);
    if (rc != GW_RING_OK)
        goto fail;
    load_finish(&k->load, k->owner, k->npoints);
    if (err != NULL)
        *err = GW_RING_OK;
    return k;
fail:
    gw_ketama_free(k);
    if (err != NULL)
        *err = rc;
    return NULL;
}

void gw_ketama_free(gw_ketama *k)
{
    if (k == NULL)
        return;
    md5_close(&k->md5);
    load_free(&k->load);
    free(k->points);
    free(k->owner);
    free(k);
}

gw_ring_load *gw_ketama_load(gw_ketama *k) { return &k->load; }

uint32_t gw_ketama_points(const gw_ketama *k) { return k->npoints; }

int64_t gw_ketama_point(gw_ketama *k, uint32_t p, uint32_t *owner)
{
    if (p >= k->npoints) {
        k->load.error = GW_RING_E_INDEX;
        return -1;
    }
    *owner = k->owner[p];
    return k->points[p];
}

uint32_t gw_ketama_hash(gw_ketama *k, const void *key, size_t len)
{
    uint8_t md[16];
    md5_digest(&k->md5, key, len, md);
    return le32(md);
}

/* Index of the first point > h, wrapping to 0 (npoints >= 1). Branch-free halving: everything
 * before base is <= h and everything from base + len on is > h. */
static inline uint32_t ketama_position(const gw_ketama *k, uint32_t h)
{
    const uint32_t *base = k->points;
    uint32_t len = k->npoints;
    while (len > 1) {
        uint32_t half = len >> 1;
        base = base[half] <= h ? base + half : base;
        len -= half;
    }
    uint32_t pos = (uint32_t)(base - k->points) + (*base <= h);
    return pos == k->npoints ? 0 : pos;
}

static inline int ketama_pick(gw_ketama *k, uint32_t h, int bounded)
{
    if (GW_UNLIKELY(k->npoints == 0)) {
        k->load.error = GW_RING_E_EMPTY;
        return -1;
    }
    uint32_t pos = ketama_position(k, h);
    if (GW_LIKELY(k->load.n_down == 0 && !bounded))
        return k->owner[pos];
    return walk_first(&k->load, k->owner, k->npoints, pos, bounded);
}

int gw_ketama_lookup_hash(gw_ketama *k, uint32_t hash) { return ketama_pick(k, hash, 0); }

int gw_ketama_lookup(gw_ketama *k, const void *key, size_t len)
{
    return ketama_pick(k, gw_ketama_hash(k, key, len), 0);
}

int gw_ketama_lookup_bounded(gw_ketama *k, const void *key, size_t len)
{
    return ketama_pick(k, gw_ketama_hash(k, key, len), k->load.factor_pct != 0);
}

int gw_ketama_range(gw_ketama *k, const void *key, size_t len, uint32_t *out, uint32_t max)
{
    if (k->npoints == 0)
        return 0;
    uint32_t pos = ketama_position(k, gw_ketama_hash(k, key, len));
    return walk_range(&k->load, k->owner, k->npoints, pos, out, max);
}

/* ---- Maglev ------------------------------------------------------------------------------ */

#define GW_MAGLEV_SEED_OFFSET 0x6f66667365745f31ull  /* two fixed, different seeds */
#define GW_MAGLEV_SEED_SKIP 0x736b69705f5f5f32ull

struct gw_maglev {
    gw_ring_load load;
    uint32_t m;
    uint16_t *table;    /* [m] node per slot; NULL when there is no node */
};

int gw_is_prime(uint32_t m)
{
    if (m < 2)
        return 0;
    if (m % 2 == 0)
        return m == 2;
    for (uint64_t d = 3; d * d <= m; d += 2)
        if (m % d == 0)
            return 0;
    return 1;
}

uint32_t gw_maglev_default_size(uint32_t n)
{
    uint64_t need = (uint64_t)GW_MAGLEV_MIN_SLOTS_PER_NODE * n;
    if (need <= GW_MAGLEV_DEFAULT_SIZE)
        return GW_MAGLEV_DEFAULT_SIZE;
    for (uint64_t m = need; m <= GW_MAGLEV_MAX_SIZE; m++)
        if (gw_is_prime((uint32_t)m))
            return (uint32_t)m;
    return 0;
}

/* Population loop of the paper (Pseudocode 1) with weighted turns. */
static int maglev_fill(gw_maglev *g, const gw_ring_node *nodes, uint32_t n)
{
    uint32_t m = g->m;
    uint32_t *pos = malloc((size_t)n * sizeof(uint32_t));
    uint32_t *skip = malloc((size_t)n * sizeof(uint32_t));
    uint64_t *credit = calloc(n, sizeof(uint64_t));
    g->table = malloc((size_t)m * sizeof(uint16_t));
    if (pos == NULL || skip == NULL || credit == NULL || g->table == NULL) {
        free(pos);
        free(skip);
        free(credit);
        return GW_RING_E_NOMEM;
    }
    uint32_t wmax = 0;
    for (uint32_t i = 0; i < n; i++) {
        pos[i] = (uint32_t)(gw_xxh64(nodes[i].name, nodes[i].name_len, GW_MAGLEV_SEED_OFFSET) % m);
        skip[i] = (uint32_t)(gw_xxh64(nodes[i].name, nodes[i].name_len, GW_MAGLEV_SEED_SKIP) %
                             (m - 1)) + 1;
        if (nodes[i].weight > wmax)
            wmax = nodes[i].weight;
    }
    for (uint32_t s = 0; s < m; s++)
        g->table[s] = GW_RING_NONE;
    /* The heaviest node takes a turn every round and each turn fills a slot (its permutation
     * visits every slot since m is prime), so the loop ends after at most m rounds. */
    uint32_t filled = 0;
    while (filled < m) {
        for (uint32_t i = 0; i < n && filled < m; i++) {
            credit[i] += nodes[i].weight;
            if (credit[i] < wmax)
                continue;
            credit[i] -= wmax;
            while (g->table[pos[i]] != GW_RING_NONE)
                pos[i] = pos[i] + skip[i] >= m ? pos[i] + skip[i] - m : pos[i] + skip[i];
            g->table[pos[i]] = (uint16_t)i;
            filled++;
        }
    }
    free(pos);
    free(skip);
    free(credit);
    return GW_RING_OK;
}

gw_maglev *gw_maglev_new(const gw_ring_node *nodes, uint32_t n, uint32_t m, int *err)
{
    gw_maglev *g = calloc(1, sizeof(*g));
    int rc = GW_RING_E_NOMEM;
    if (g == NULL)
        goto fail;
    rc = load_init(&g->load, nodes, n);
    if (rc != GW_RING_OK)
        goto fail;
    if (!gw_is_prime(m) || m > GW_MAGLEV_MAX_SIZE ||
        (uint64_t)m < (uint64_t)GW_MAGLEV_MIN_SLOTS_PER_NODE * n) {
        rc = GW_RING_E_TABLE_SIZE;
        goto fail;
    }
    g->m = m;
    if (n > 0) {
        rc = maglev_fill(g, nodes, n);
        if (rc != GW_RING_OK)
            goto fail;
        load_finish(&g->load, g->table, m);
    }
    if (err != NULL)
        *err = GW_RING_OK;
    return g;
fail:
    gw_maglev_free(g);
    if (err != NULL)
        *err = rc;
    return NULL;
}

void gw_maglev_free(gw_maglev *g)
{
    if (g == NULL)
        return;
    load_free(&g->load);
    free(g->table);
    free(g);
}

gw_ring_load *gw_maglev_load(gw_maglev *g) { return &g->load; }

uint32_t gw_maglev_size(const gw_maglev *g) { return g->m; }

uint32_t gw_maglev_slot(const gw_maglev *g, uint32_t s)
{
    if (g->table == NULL || s >= g->m)
        return GW_RING_NONE;
    return g->table[s];
}

/* Lemire's multiply-shift maps the high 32 hash bits onto [0, m) without a division. */
static inline uint32_t maglev_slot_of(const gw_maglev *g, uint64_t h)
{
    return (uint32_t)(((h >> 32) * (uint64_t)g->m) >> 32);
}

static inline int maglev_pick(gw_maglev *g, uint64_t h, int bounded)
{
    if (GW_UNLIKELY(g->table == NULL)) {
        g->load.error = GW_RING_E_EMPTY;
        return -1;
    }
    uint32_t s = maglev_slot_of(g, h);
    if (GW_LIKELY(g->load.n_down == 0 && !bounded))
        return g->table[s];
    return walk_first(&g->load, g->table, g->m, s, bounded);
}

int gw_maglev_lookup_hash(gw_maglev *g, uint64_t hash) { return maglev_pick(g, hash, 0); }

int gw_maglev_lookup(gw_maglev *g, const void *key, size_t len)
{
    return maglev_pick(g, gw_xxh64(key, len, 0), 0);
}

int gw_maglev_lookup_bounded(gw_maglev *g, const void *key, size_t len)
{
    return maglev_pick(g, gw_xxh64(key, len, 0), g->load.factor_pct != 0);
}

int gw_maglev_range(gw_maglev *g, const void *key, size_t len, uint32_t *out, uint32_t max)
{
    if (g->table == NULL)
        return 0;
    uint32_t s = maglev_slot_of(g, gw_xxh64(key, len, 0));
    return walk_range(&g->load, g->table, g->m, s, out, max);
}
