/* ring.h - consistent hashing for upstream selection: ketama continuum, Maglev table,
 * bounded load, down-marking.
 *
 * Contract
 * - ketama: bit-for-bit the weighted libketama continuum as uhashring builds it with
 *   HashRing(nodes, hash_fn="ketama"): node i gets floor(40 * n * w_i / sum(w)) MD5 digests of
 *   "<name>-<k>" (k = 0, 1, ...), each digest giving 4 points (bytes 4r..4r+3 read little-endian);
 *   a key hashes to the first 4 digest bytes of MD5(key), little-endian, and belongs to the
 *   first point strictly greater than that hash, wrapping to the first point. Where two nodes
 *   produce the same point, the node that comes later in the node array owns it. MD5 comes from
 *   OpenSSL libcrypto (fetched once per ring; see ring.c for how lookups avoid allocation).
 * - Maglev (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer",
 *   NSDI 2016, section 3.4): table of prime size M; node i walks the permutation
 *   offset_i + j * skip_i (mod M) with offset = h1(name) mod M, skip = h2(name) mod (M-1) + 1,
 *   h1/h2 = XXH64 of the name with two fixed seeds. Weights: in each population round a node
 *   takes a turn when its credit (+= w_i per round) reaches max(w); so after R rounds node i has
 *   had floor(R * w_i / max(w)) turns and owns about M * w_i / sum(w) slots. A key's slot is
 *   (hi32(XXH64(key, 0)) * M) >> 32.
 * - Down-marking: a node marked down is skipped deterministically: ketama walks on to the next
 *   point owned by an up node, Maglev to the next slot (mod M) owned by an up node, so keys
 *   owned by up nodes never move when another node goes down or comes back.
 * - Bounded load (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with Bounded Loads",
 *   SODA 2018; HAProxy hash-balance-factor): with factor f = factor_pct / 100 (>= 1), an up node
 *   i is eligible iff   inflight_i < f * (total + 1) * w_i / W,
 *   total = sum of every node's in-flight count, W = sum of the weights of the up nodes that the
 *   lookup can reach (ketama: nodes that own at least one point). Equivalently inflight_i + 1 <=
 *   ceil(f * (total + 1) * w_i / W): after the caller acquires the chosen node, no node holds
 *   more than ceil(factor x its weighted share of the in-flight total, this request included).
 *   The bounded lookup returns the first eligible node in ring / table order from the key's
 *   position. One always exists when any reachable node is up: summed over those nodes the
 *   right-hand side is f * (total + 1) > total >= the sum of their in-flight counts.
 * - In-flight counts live here; the caller brackets each request with gw_ring_acquire and
 *   gw_ring_release on the index a lookup returned. Indices are positions in the node array
 *   given to the constructor: valid until that structure is freed.
 * - Lookups allocate nothing. Ketama lookup is O(log points), Maglev O(1); both become a walk
 *   (at most one full turn) only when nodes are down or bounded load is on.
 * - A gw_ketama / gw_maglev is NOT safe for concurrent use: lookups use a per-structure MD5
 *   context and scratch marks. Serialise calls (the Python binding holds the GIL).
 * - Return values: >= 0 a node index or a count; -1 error, with the gw_ring_error code in
 *   the structure's load.error (constructors: in *err).
 */
#ifndef GW_RING_H
#define GW_RING_H

#include <stddef.h>
#include <stdint.h>

#define GW_RING_MAX_NODES 65535u          /* node indices fit uint16_t; 0xFFFF = none */
#define GW_RING_KETAMA_DIGESTS 40u         /* digests per node at equal weights (libketama) */
#define GW_MAGLEV_DEFAULT_SIZE 65537u      /* prime */
#define GW_MAGLEV_MIN_SLOTS_PER_NODE 100u  /* M >= 100 n keeps every share within ~1% */
#define GW_MAGLEV_MAX_SIZE (1u << 26)      /* 128 MiB of uint16_t: a bound on memory */
#define GW_RING_MIN_FACTOR_PCT 100u
#define GW_RING_MAX_FACTOR_PCT 65535u      /* HAProxy's hash-balance-factor range */

enum gw_ring_error {
    GW_RING_OK = 0,
    GW_RING_E_NOMEM,        /* allocation failed */
    GW_RING_E_COUNT,        /* more than GW_RING_MAX_NODES nodes */
    GW_RING_E_WEIGHT,       /* a weight of 0 */
    GW_RING_E_TABLE_SIZE,   /* Maglev size not prime, < 100 * nodes, or > GW_MAGLEV_MAX_SIZE */
    GW_RING_E_DIGEST,       /* libcrypto has no usable MD5 (e.g. FIPS-only configuration) */
    GW_RING_E_EMPTY,        /* lookup on a structure with no node */
    GW_RING_E_ALL_DOWN,     /* every node is marked down */
    GW_RING_E_INDEX,        /* node index out of range */
    GW_RING_E_UNDERFLOW,    /* release of a node whose in-flight count is 0 */
    GW_RING_E_FACTOR,       /* factor_pct not 0 and not within [100, 65535] */
    GW_RING_E_ARG,          /* NULL node array, or NULL name with a non-zero length */
    GW_RING_E__COUNT
};

/* One node as given to a constructor. The name bytes are copied (hashed) during construction;
 * the caller keeps ownership. Names should be distinct (not checked: equal names hash alike). */
typedef struct gw_ring_node {
    const char *name;
    size_t name_len;
    uint32_t weight;        /* >= 1 */
} gw_ring_node;

/* Per-node state shared by both structures. Read freely; change only through gw_ring_*. */
typedef struct gw_ring_load {
    uint32_t n;             /* number of nodes */
    uint32_t n_down;        /* nodes marked down */
    uint32_t factor_pct;    /* 0: no bound; else 100..65535 (125 = 1.25 x average) */
    int error;              /* gw_ring_error of the last failed call */
    uint64_t total;         /* sum of inflight[] */
    uint64_t up_weight;     /* sum of weight[] over reachable up nodes */
    uint32_t *weight;       /* [n] */
    uint32_t *inflight;     /* [n] */
    uint8_t *up;            /* [n] 1 up, 0 down */
    uint8_t *reachable;     /* [n] 1 if a lookup can land on the node */
    uint32_t *seen;         /* [n] scratch marks for distinct walks */
    uint32_t epoch;         /* current mark value in seen[] */
} gw_ring_load;

typedef struct gw_ketama gw_ketama;
typedef struct gw_maglev gw_maglev;

/* ---- shared per-node state ------------------------------------------------------------- */

/* In-flight bookkeeping: 0 ok; -1 with GW_RING_E_INDEX, or GW_RING_E_UNDERFLOW for a release
 * with nothing in flight (the count stays 0). An acquire saturates at UINT32_MAX. */
int gw_ring_acquire(gw_ring_load *l, uint32_t index);
int gw_ring_release(gw_ring_load *l, uint32_t index);
/* Mark a node up (1) or down (0): 0 ok; -1 GW_RING_E_INDEX. */
int gw_ring_set_up(gw_ring_load *l, uint32_t index, int up);
/* Set the bounded-load factor in percent (0 turns the bound off): 0 ok; -1 GW_RING_E_FACTOR. */
int gw_ring_set_factor(gw_ring_load *l, uint32_t factor_pct);
/* Copy node src_index's in-flight count and up flag from src into dst's dst_index, keeping
 * dst's totals right (used to carry state across a rebuild): 0 ok; -1 GW_RING_E_INDEX. */
int gw_ring_carry(gw_ring_load *dst, uint32_t dst_index, const gw_ring_load *src,
                  uint32_t src_index);
/* Static name of an error code ("" for an unknown code). */
const char *gw_ring_error_name(int code);

/* XXH64 (xxHash specification, Yann Collet) of len bytes: the key hash of Maglev. */
uint64_t gw_xxh64(const void *data, size_t len, uint64_t seed);

/* ---- ketama ------------------------------------------------------------------------------ */

/* Build a continuum from n nodes (n may be 0: every lookup then fails with GW_RING_E_EMPTY).
 * Returns a structure to free with gw_ketama_free, or NULL with *err set (GW_RING_E_COUNT,
 * GW_RING_E_ARG, GW_RING_E_WEIGHT, GW_RING_E_NOMEM, GW_RING_E_DIGEST).
 * All nodes start up and idle. */
gw_ketama *gw_ketama_new(const gw_ring_node *nodes, uint32_t n, int *err);
void gw_ketama_free(gw_ketama *k);                  /* NULL is a no-op */
gw_ring_load *gw_ketama_load(gw_ketama *k);
uint32_t gw_ketama_points(const gw_ketama *k);      /* distinct points on the continuum */
/* Point p < gw_ketama_points (ascending) and its owner in *owner; -1 GW_RING_E_INDEX. */
int64_t gw_ketama_point(gw_ketama *k, uint32_t p, uint32_t *owner);
/* The ketama hash of a key (uhashring's hashi): little-endian first word of MD5(key). */
uint32_t gw_ketama_hash(gw_ketama *k, const void *key, size_t len);
/* Owner of the key among up nodes: index >= 0; -1 GW_RING_E_EMPTY or GW_RING_E_ALL_DOWN. */
int gw_ketama_lookup(gw_ketama *k, const void *key, size_t len);
/* Same, from a hash gw_ketama_hash returned. */
int gw_ketama_lookup_hash(gw_ketama *k, uint32_t hash);
/* Bounded-load pick (see the contract); the plain lookup when factor_pct is 0. Does not
 * acquire: the caller calls gw_ring_acquire on the result. */
int gw_ketama_lookup_bounded(gw_ketama *k, const void *key, size_t len);
/* Up to max distinct up nodes in continuum order from the key's position into out[]; returns
 * how many (0 when empty or all down; never an error). out[0] is gw_ketama_lookup's answer. */
int gw_ketama_range(gw_ketama *k, const void *key, size_t len, uint32_t *out, uint32_t max);

/* ---- Maglev ------------------------------------------------------------------------------ */

/* 1 if m is prime, else 0. */
int gw_is_prime(uint32_t m);
/* The table size to use by default for n nodes: GW_MAGLEV_DEFAULT_SIZE, or the smallest prime
 * >= 100 n when that is larger; 0 when no prime <= GW_MAGLEV_MAX_SIZE fits. */
uint32_t gw_maglev_default_size(uint32_t n);
/* Build a table of m slots (m prime, 100 n <= m <= GW_MAGLEV_MAX_SIZE). n may be 0. Returns a
 * structure to free with gw_maglev_free, or NULL with *err set (GW_RING_E_COUNT,
 * GW_RING_E_ARG, GW_RING_E_WEIGHT, GW_RING_E_TABLE_SIZE, GW_RING_E_NOMEM).
 * All nodes start up and idle. */
gw_maglev *gw_maglev_new(const gw_ring_node *nodes, uint32_t n, uint32_t m, int *err);
void gw_maglev_free(gw_maglev *g);                  /* NULL is a no-op */
gw_ring_load *gw_maglev_load(gw_maglev *g);
uint32_t gw_maglev_size(const gw_maglev *g);
/* Node index in slot s < size (0xFFFF when the table is empty or s is out of range). */
uint32_t gw_maglev_slot(const gw_maglev *g, uint32_t s);
/* As the ketama functions, with XXH64 as the key hash. */
int gw_maglev_lookup(gw_maglev *g, const void *key, size_t len);
int gw_maglev_lookup_hash(gw_maglev *g, uint64_t hash);
int gw_maglev_lookup_bounded(gw_maglev *g, const void *key, size_t len);
int gw_maglev_range(gw_maglev *g, const void *key, size_t len, uint32_t *out, uint32_t max);

#endif
