/* gcra.c - GCRA rate limits in a table shared across processes (contract: gcra.h).
 *
 * A slot is 16 bytes, {key, tat}, changed only by a 16-byte compare-and-swap (x86-64
 * cmpxchg16b, hence the cx16 target below; GCC inlines __sync_val_compare_and_swap on
 * unsigned __int128 there). Reads are two 8-byte acquire loads (C11 memory model through
 * GCC's __atomic builtins) and the key is read again after the tat: a slot replaced between
 * the loads is read again, so a decision is always made on one slot state. */
#if defined(__x86_64__)
#pragma GCC target("cx16")
#endif

#include "gcra.h"

#include <string.h>
#include <time.h>

#define GW_GCRA_MAGIC 0x6777677261763032ULL     /* "gwgrav02" */
#define HEADER_BYTES 64

typedef struct {
    uint64_t magic, buckets, seed;
} header;

typedef unsigned __int128 u128;

typedef union {
    u128 word;
    struct {
        uint64_t key;                /* low half on little-endian */
        int64_t tat;
    } s;
} __attribute__((aligned(16))) slot;

_Static_assert(sizeof(slot) == 16, "a slot is 16 bytes");

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

static inline slot *slots_of(void *table)
{
    return (slot *)((char *)table + HEADER_BYTES);
}

static inline slot *overflow_of(void *table, uint64_t buckets)
{
    return slots_of(table) + buckets * GW_GCRA_WAYS;
}

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static inline u128 pack(uint64_t key, int64_t tat)
{
    return ((u128)(uint64_t)tat << 64) | key;
}

static inline u128 cas16(slot *s, u128 expected, u128 desired)
{
    return __sync_val_compare_and_swap(&s->word, expected, desired);
}

/* One consistent {key, tat} of a slot (see the top). */
static inline void read_slot(const slot *s, uint64_t *key, int64_t *tat)
{
    for (;;) {
        uint64_t k = __atomic_load_n(&s->s.key, __ATOMIC_ACQUIRE);
        int64_t t = __atomic_load_n(&s->s.tat, __ATOMIC_ACQUIRE);
        if (LIKELY(__atomic_load_n(&s->s.key, __ATOMIC_ACQUIRE) == k)) {
            *key = k;
            *tat = t;
            return;
        }
    }
}

static inline int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static inline void admitted(gw_gcra_result *out, int64_t now, int64_t tat, int64_t T,
                            int64_t tau, int flags)
{
    out->now = now;
    out->tat = tat;
    out->retry_after = 0;
    out->remaining = floor_div(tau - (tat - now), T) + 1;
    out->flags = flags | GW_GCRA_ADMITTED;
}

static inline void refused(gw_gcra_result *out, int64_t now, int64_t eff, int64_t tau,
                           int flags)
{
    out->now = now;
    out->tat = eff;
    out->retry_after = eff - tau - now;
    out->remaining = 0;
    out->flags = flags;
}

size_t gw_gcra_bytes(uint64_t buckets)
{
    return HEADER_BYTES + buckets * GW_GCRA_WAYS * sizeof(slot) + buckets * sizeof(slot);
}

int gw_gcra_init(void *table, uint64_t buckets, uint64_t seed)
{
    if (buckets == 0 || (buckets & (buckets - 1)) != 0)
        return -1;
    header *h = table;
    h->buckets = buckets;
    h->seed = seed;
    __atomic_store_n(&h->magic, GW_GCRA_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

uint64_t gw_gcra_buckets(const void *table)
{
    return ((const header *)table)->buckets;
}

uint64_t gw_gcra_seed(const void *table)
{
    return ((const header *)table)->seed;
}

uint64_t gw_gcra_hash(const void *table, uint64_t salt, const void *data, size_t len)
{
    /* FNV-1a over the bytes from a secret per-table start, then murmur3's fmix64: cheap for
     * the short keys of rate limits (an address, a claim), and the seed keeps a client from
     * choosing keys that all land in one bucket. */
    uint64_t x = 0xcbf29ce484222325ULL ^ ((const header *)table)->seed ^
                 (salt * 0x9e3779b97f4a7c15ULL);
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        x ^= p[i];
        x *= 0x100000001b3ULL;
    }
    x = mix64(x);
    return x ? x : 1;
}

int64_t gw_gcra_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Request on the slot holding `key`: 1 admitted, 0 refused, -1 the slot no longer holds it. */
static int update(slot *s, uint64_t key, int64_t now, int64_t T, int64_t tau,
                  gw_gcra_result *out)
{
    uint64_t k;
    int64_t tat;
    read_slot(s, &k, &tat);
    for (;;) {
        if (UNLIKELY(k != key))
            return -1;
        int64_t eff = tat > now ? tat : now;
        if (eff - now > tau) {
            refused(out, now, eff, tau, 0);
            return 0;
        }
        u128 old = pack(k, tat);
        u128 got = cas16(s, old, pack(key, eff + T));
        if (LIKELY(got == old)) {
            admitted(out, now, eff + T, T, tau, 0);
            return 1;
        }
        k = (uint64_t)got;
        tat = (int64_t)(got >> 64);
    }
}

/* Request charged to the limit's overflow cell for a full bucket (gcra.h: a full bucket).
 * The cell is {salt, tat}: one of two cells picked by a hash of (salt, bucket), the first
 * that holds this limit's salt or is free (never used, or its tat not in the future); a cell
 * is claimed, like a slot, by one 16-byte CAS, so two limits never share one GCRA state. */
static int update_overflow(void *table, uint64_t buckets, uint64_t salt, uint64_t bi,
                           int64_t now, int64_t T, int64_t tau, gw_gcra_result *out)
{
    slot *cells = overflow_of(table, buckets);
    uint64_t key = salt ? salt : 1;
    uint64_t h = mix64(key ^ mix64(bi + 0x9e3779b97f4a7c15ULL));
    slot *probe[2] = {&cells[h & (buckets - 1)], &cells[(h >> 32 | h << 32) & (buckets - 1)]};
    for (int p = 0; p < 2; p++) {
        slot *c = probe[p];
        uint64_t k;
        int64_t tat;
        read_slot(c, &k, &tat);
        for (;;) {
            if (k != key && k != 0 && tat > now)
                break;                              /* another limit's active cell */
            int64_t eff = (k == key && tat > now) ? tat : now;
            if (eff - now > tau) {
                refused(out, now, eff, tau, GW_GCRA_OVERFLOW);
                return 0;
            }
            u128 old = pack(k, tat);
            u128 got = cas16(c, old, pack(key, eff + T));
            if (LIKELY(got == old)) {
                admitted(out, now, eff + T, T, tau, GW_GCRA_OVERFLOW);
                return 1;
            }
            k = (uint64_t)got;
            tat = (int64_t)(got >> 64);
        }
    }
    /* both cells held by other limits: refused (a flood of new keys stays limited), asked to
     * retry after the limit's own emission interval, never another limit's tat */
    out->now = now;
    out->tat = now + T;
    out->retry_after = T;
    out->remaining = 0;
    out->flags = GW_GCRA_OVERFLOW;
    return 0;
}

static inline int find(slot *b, uint64_t key)
{
    for (int i = 0; i < GW_GCRA_WAYS; i++)
        if (__atomic_load_n(&b[i].s.key, __ATOMIC_ACQUIRE) == key)
            return i;
    return -1;
}

int gw_gcra_take(void *table, uint64_t salt, uint64_t hash, int64_t now, int64_t T,
                 int64_t tau, gw_gcra_result *out)
{
    if (now < 0)
        now = gw_gcra_now();
    uint64_t buckets = ((header *)table)->buckets;
    uint64_t bi = hash & (buckets - 1);
    slot *b = slots_of(table) + bi * GW_GCRA_WAYS;
    for (int attempt = 0;; attempt++) {
        int i = find(b, hash);
        if (LIKELY(i >= 0)) {
            int r = update(&b[i], hash, now, T, tau, out);
            if (LIKELY(r >= 0))
                return r;
            continue;                               /* recycled meanwhile: look again */
        }
        /* not there: the first free slot (never used, or its key's tat not in the future) */
        int placed = -1, seen = 0;
        for (int j = 0; j < GW_GCRA_WAYS && placed < 0 && !seen; j++) {
            for (;;) {
                uint64_t k;
                int64_t tat;
                read_slot(&b[j], &k, &tat);
                if (k == hash) {
                    seen = 1;                       /* inserted by another process */
                    break;
                }
                if (k != 0 && tat > now)
                    break;                          /* an active key: never evicted */
                u128 old = pack(k, tat);
                if (cas16(&b[j], old, pack(hash, now + T)) == old) {
                    placed = j;
                    break;
                }
            }
        }
        if (seen)
            continue;
        if (placed < 0)
            return update_overflow(table, buckets, salt, bi, now, T, tau, out);
        /* another process may have inserted the same key into another slot at once */
        for (int j = 0; j < GW_GCRA_WAYS; j++) {
            if (j == placed || __atomic_load_n(&b[j].s.key, __ATOMIC_ACQUIRE) != hash)
                continue;
            u128 mine = pack(hash, now + T);
            if (attempt < 4 && cas16(&b[placed], mine, pack(0, 0)) == mine)
                goto again;                         /* took ours back: start over */
            break;                                  /* ours is in use: keep both */
        }
        admitted(out, now, now + T, T, tau, 0);
        return 1;
    again:;
    }
}

int64_t gw_gcra_peek(const void *table, uint64_t hash)
{
    uint64_t buckets = ((const header *)table)->buckets;
    const slot *b = (const slot *)((const char *)table + HEADER_BYTES) +
                    (hash & (buckets - 1)) * GW_GCRA_WAYS;
    for (int i = 0; i < GW_GCRA_WAYS; i++) {
        uint64_t k;
        int64_t tat;
        read_slot(&b[i], &k, &tat);
        if (k == hash)
            return tat;
    }
    return 0;
}

void gw_gcra_usage(const void *table, int64_t now, uint64_t *active, uint64_t *used)
{
    uint64_t n = ((const header *)table)->buckets * GW_GCRA_WAYS, a = 0, u = 0;
    const slot *s = (const slot *)((const char *)table + HEADER_BYTES);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t k;
        int64_t tat;
        read_slot(&s[i], &k, &tat);
        u += k != 0;
        a += k != 0 && tat > now;
    }
    *active = a;
    *used = u;
}
