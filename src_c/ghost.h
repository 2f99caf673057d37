/* ghost.h - the ghost FIFO of S3-FIFO: a bounded queue of fingerprints of recently evicted keys,
 * with an O(1) membership test.
 *
 * Contract
 * - What it is for: S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction",
 *   SOSP 2023) keeps, next to its small and main queues, a ghost queue G of the keys it evicted
 *   from the small queue, without their values; a missed key found in G is admitted straight to
 *   the main queue. The cache (gwcore/cache/_store.pyx) hands this structure a 64-bit
 *   fingerprint of each such key (its Python hash) and a weight (the entry's size), and asks on
 *   each insertion of a new key whether its fingerprint is in G.
 * - Fingerprints only: two keys with the same fingerprint are one ghost entry. A false match
 *   only changes which queue a new key enters, never what the cache returns.
 * - FIFO with bounds: gw_ghost_push appends a fingerprint as the newest entry (an entry already
 *   present with that fingerprint is removed first, so each fingerprint is held at most once),
 *   then drops the oldest entries while count > max_count or weight > max_weight. So after a
 *   push the ghost holds at most max_count entries whose weights sum to at most max_weight, and
 *   an entry may be dropped by the very push that added it (a weight above max_weight, or a
 *   max_count of 0). gw_ghost_trim applies new bounds without pushing.
 * - gw_ghost_take removes the entry of a fingerprint, wherever it is in the queue: 1 if it was
 *   there, 0 if not. gw_ghost_contains tests without removing.
 * - Costs: push, take and contains are O(1) on average (open addressing on a mixed hash, load
 *   at most 1/2) except when the structure grows (amortised O(1)); trim is O(entries dropped).
 *   Memory: 24 bytes per node slot plus 8 bytes per table slot, grown by doubling to the
 *   largest number of entries held at once (at most GW_GHOST_MAX_ENTRIES), kept until
 *   gw_ghost_clear or gw_ghost_free.
 * - Bounds are clamped: a max_count above GW_GHOST_MAX_ENTRIES - 1 is taken as that, a
 *   max_weight above GW_GHOST_MAX_WEIGHT as that. A pushed weight above GW_GHOST_MAX_WEIGHT is
 *   refused (-1, GW_GHOST_E_ARG). So the weight held is at most 2^62 after every call and the
 *   64-bit sum cannot overflow during one.
 * - Return values: 0 (or a count / flag) on success; -1 on error with the error code in
 *   g->error (GW_GHOST_E_NOMEM: an allocation failed; GW_GHOST_E_ARG: a weight above
 *   GW_GHOST_MAX_WEIGHT); a failed push changes nothing. gw_ghost_new returns NULL when out of
 *   memory.
 * - Not thread-safe; plain C11, no allocation outside push (growth), clear and free.
 */
#ifndef GW_GHOST_H
#define GW_GHOST_H

#include <stddef.h>
#include <stdint.h>

#define GW_GHOST_MAX_ENTRIES (1u << 30)          /* table slots (2x entries) fit uint32_t */
#define GW_GHOST_MAX_WEIGHT (UINT64_C(1) << 62)  /* one weight; sums then stay < 2^63 */

enum gw_ghost_error {
    GW_GHOST_OK = 0,
    GW_GHOST_E_NOMEM,   /* allocation failed; nothing changed */
    GW_GHOST_E_ARG,     /* weight above GW_GHOST_MAX_WEIGHT; nothing changed */
};

typedef struct gw_ghost_node {
    uint64_t fp;        /* fingerprint as given */
    uint64_t weight;
    uint32_t newer;     /* toward the newest entry; GW_GHOST_NIL at the newest */
    uint32_t older;     /* toward the oldest entry; GW_GHOST_NIL at the oldest; free-list link */
} gw_ghost_node;

typedef struct gw_ghost {
    gw_ghost_node *nodes;   /* [node_cap] */
    uint64_t *table;        /* [table_cap] node index + 1 | low32(mix(fp)) << 32; 0 = empty */
    uint32_t node_cap;
    uint32_t table_cap;     /* power of two, >= 2 * count when not 0 */
    uint32_t count;         /* entries held */
    uint32_t newest, oldest;
    uint32_t free_head;     /* free-list of node slots below node_used */
    uint32_t node_used;     /* node slots ever handed out (high-water mark) */
    uint64_t weight;        /* sum of the weights held */
    int error;              /* gw_ghost_error of the last failed call */
} gw_ghost;

#define GW_GHOST_NIL UINT32_MAX

/* An empty ghost (allocates only the header); NULL when out of memory. */
gw_ghost *gw_ghost_new(void);
/* Free everything; NULL is a no-op. */
void gw_ghost_free(gw_ghost *g);
/* Drop every entry and release the arrays (the header stays usable). */
void gw_ghost_clear(gw_ghost *g);

/* Append fp as the newest entry with this weight, then trim to the bounds (see contract).
 * 0 ok; -1 GW_GHOST_E_NOMEM or GW_GHOST_E_ARG (nothing changed: neither the push nor the trim). */
int gw_ghost_push(gw_ghost *g, uint64_t fp, uint64_t weight, uint64_t max_count,
                  uint64_t max_weight);
/* Drop oldest entries while count > max_count or weight > max_weight; returns how many. */
uint64_t gw_ghost_trim(gw_ghost *g, uint64_t max_count, uint64_t max_weight);
/* 1 and remove the entry if fp is held; 0 otherwise. */
int gw_ghost_take(gw_ghost *g, uint64_t fp);
/* 1 if fp is held; 0 otherwise. */
int gw_ghost_contains(const gw_ghost *g, uint64_t fp);

static inline uint64_t gw_ghost_count(const gw_ghost *g) { return g->count; }
static inline uint64_t gw_ghost_weight(const gw_ghost *g) { return g->weight; }

#endif
