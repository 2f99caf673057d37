/* ghost.c - the ghost FIFO of S3-FIFO (contract in ghost.h).
 *
 * Implementation notes
 * - Entries are nodes in one array, chained oldest -> newest by index (a doubly linked list, so
 *   gw_ghost_take can unlink from the middle); freed node slots go on a free-list threaded
 *   through `older`.
 * - The index is an open-addressing table, linear probing from mix(fp) & mask, at most half
 *   full. A slot is 64 bits: node index + 1 in the low half (0 = empty), the low 32 bits of
 *   mix(fp) in the high half. So a probe compares those bits in the table and reads a node (a
 *   likely cache miss) only when they match, and the home slot of a member (needed to shift a
 *   probe run back on deletion, and to rehash) comes from the table alone: table_cap <= 2^31.
 *   Deletion shifts later members of the probe run back (no tombstones), so a lookup stops at
 *   the first empty slot.
 * - A push first drops what the bounds will not keep (oldest first), then links the new entry:
 *   in the steady state the node slot it takes is the one the oldest entry just left.
 * - Growth happens before anything changes, so a push that runs out of memory leaves the
 *   structure as it was. Sizes are checked before they are multiplied: node_cap <= 2^30 and
 *   table_cap <= 2^31, so every byte count fits size_t on 64-bit and 32-bit targets alike
 *   (24 * 2^30 needs 64 bits: on a 32-bit size_t the multiplication is checked).
 */
#include "ghost.h"

#include <stdlib.h>
#include <string.h>

#ifndef GW_LIKELY
#define GW_LIKELY(x) __builtin_expect(!!(x), 1)
#define GW_UNLIKELY(x) __builtin_expect(!!(x), 0)
#endif

/* splitmix64's finaliser: spreads sequential fingerprints (Python's int hashes) over the table. */
static inline uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return x;
}

gw_ghost *gw_ghost_new(void)
{
    gw_ghost *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->newest = g->oldest = g->free_head = GW_GHOST_NIL;
    return g;
}

void gw_ghost_clear(gw_ghost *g)
{
    free(g->nodes);
    free(g->table);
    g->nodes = NULL;
    g->table = NULL;
    g->node_cap = g->table_cap = g->count = g->node_used = 0;
    g->newest = g->oldest = g->free_head = GW_GHOST_NIL;
    g->weight = 0;
}

void gw_ghost_free(gw_ghost *g)
{
    if (g == NULL)
        return;
    gw_ghost_clear(g);
    free(g);
}

#define SLOT_NODE(t) ((uint32_t)(t))           /* node index + 1; 0 = empty */
#define SLOT_HASH(t) ((uint32_t)((t) >> 32))   /* low 32 bits of mix(fp) */
#define SLOT(node, h) ((uint64_t)((node) + 1) | ((uint64_t)(uint32_t)(h) << 32))

/* Slot of fp in the table, or the empty slot where the probe ended. table_cap must be > 0. */
static inline uint32_t slot_of(const gw_ghost *g, uint64_t fp, int *found)
{
    uint32_t h = (uint32_t)mix(fp);
    uint32_t mask = g->table_cap - 1;
    uint32_t i = h & mask;
    for (;;) {
        uint64_t t = g->table[i];
        if (SLOT_NODE(t) == 0) {
            *found = 0;
            return i;
        }
        if (SLOT_HASH(t) == h && g->nodes[SLOT_NODE(t) - 1].fp == fp) {
            *found = 1;
            return i;
        }
        i = (i + 1) & mask;
    }
}

/* Empty table slot i and shift the rest of its probe run back. */
static void table_delete(gw_ghost *g, uint32_t i)
{
    uint32_t mask = g->table_cap - 1;
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        uint64_t t = g->table[j];
        if (SLOT_NODE(t) == 0)
            break;
        uint32_t home = SLOT_HASH(t) & mask;
        /* The member at j may stay iff its home lies cyclically in (i, j]. */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            g->table[i] = t;
            i = j;
        }
    }
    g->table[i] = 0;
}

/* Make room for one more entry: node slot and table at most half full afterwards. */
static int reserve_one(gw_ghost *g)
{
    uint32_t need = g->count + 1;   /* count <= GW_GHOST_MAX_ENTRIES - 1 by the clamp */
    if (g->free_head == GW_GHOST_NIL && g->node_used == g->node_cap) {
        uint32_t cap = g->node_cap ? g->node_cap * 2 : 16;
        if (cap > GW_GHOST_MAX_ENTRIES)
            cap = GW_GHOST_MAX_ENTRIES;
        if (cap <= g->node_used || (size_t)cap > SIZE_MAX / sizeof(gw_ghost_node)) {
            g->error = GW_GHOST_E_NOMEM;
            return -1;
        }
        gw_ghost_node *nodes = realloc(g->nodes, (size_t)cap * sizeof(gw_ghost_node));
        if (nodes == NULL) {
            g->error = GW_GHOST_E_NOMEM;
            return -1;
        }
        g->nodes = nodes;
        g->node_cap = cap;
    }
    if ((uint64_t)need * 2 > g->table_cap) {
        uint64_t cap64 = g->table_cap ? (uint64_t)g->table_cap * 2 : 32;
        while (cap64 < (uint64_t)need * 2)
            cap64 *= 2;
        if (cap64 > ((uint64_t)GW_GHOST_MAX_ENTRIES << 1) ||
            cap64 > SIZE_MAX / sizeof(uint64_t)) {
            g->error = GW_GHOST_E_NOMEM;
            return -1;
        }
        uint64_t *table = calloc((size_t)cap64, sizeof(uint64_t));
        if (table == NULL) {
            g->error = GW_GHOST_E_NOMEM;
            return -1;
        }
        free(g->table);
        g->table = table;
        g->table_cap = (uint32_t)cap64;
        for (uint32_t n = g->oldest; n != GW_GHOST_NIL; n = g->nodes[n].newer) {
            int found;
            uint32_t s = slot_of(g, g->nodes[n].fp, &found);
            g->table[s] = SLOT(n, mix(g->nodes[n].fp));
        }
    }
    return 0;
}

/* Unlink node n from the list and put its slot on the free-list (the table is not touched). */
static void unlink_node(gw_ghost *g, uint32_t n)
{
    gw_ghost_node *e = &g->nodes[n];
    if (e->newer != GW_GHOST_NIL)
        g->nodes[e->newer].older = e->older;
    else
        g->newest = e->older;
    if (e->older != GW_GHOST_NIL)
        g->nodes[e->older].newer = e->newer;
    else
        g->oldest = e->newer;
    g->count--;
    g->weight -= e->weight;
    e->newer = GW_GHOST_NIL;
    e->older = g->free_head;
    g->free_head = n;
}

/* Remove the entry in table slot s. */
static void remove_at(gw_ghost *g, uint32_t s)
{
    uint32_t n = SLOT_NODE(g->table[s]) - 1;
    table_delete(g, s);
    unlink_node(g, n);
}

/* Drop oldest entries until `extra` more entries of total weight `extra_weight` would fit. */
static uint64_t trim_for(gw_ghost *g, uint64_t max_count, uint64_t max_weight, uint64_t extra,
                         uint64_t extra_weight)
{
    if (max_count > GW_GHOST_MAX_ENTRIES - 1)
        max_count = GW_GHOST_MAX_ENTRIES - 1;
    if (max_weight > GW_GHOST_MAX_WEIGHT)
        max_weight = GW_GHOST_MAX_WEIGHT;
    uint64_t dropped = 0;
    /* weights <= 2^62 each and held weight <= 2^62: the sums below cannot overflow */
    while (g->count > 0 &&
           (g->count + extra > max_count || g->weight + extra_weight > max_weight)) {
        int found;
        uint32_t s = slot_of(g, g->nodes[g->oldest].fp, &found);
        /* every held node is in the table: found is 1 */
        remove_at(g, s);
        dropped++;
    }
    return dropped;
}

uint64_t gw_ghost_trim(gw_ghost *g, uint64_t max_count, uint64_t max_weight)
{
    return trim_for(g, max_count, max_weight, 0, 0);
}

int gw_ghost_push(gw_ghost *g, uint64_t fp, uint64_t weight, uint64_t max_count,
                  uint64_t max_weight)
{
    if (GW_UNLIKELY(weight > GW_GHOST_MAX_WEIGHT)) {
        g->error = GW_GHOST_E_ARG;
        return -1;
    }
    if (reserve_one(g) < 0)
        return -1;
    int found;
    uint32_t s = slot_of(g, fp, &found);
    if (found)
        remove_at(g, s);
    uint64_t clamped_count = max_count > GW_GHOST_MAX_ENTRIES - 1 ? GW_GHOST_MAX_ENTRIES - 1
                                                                   : max_count;
    uint64_t clamped_weight = max_weight > GW_GHOST_MAX_WEIGHT ? GW_GHOST_MAX_WEIGHT : max_weight;
    trim_for(g, clamped_count, clamped_weight, 1, weight);
    if (clamped_count == 0 || weight > clamped_weight)
        return 0;                     /* the bounds do not keep the new entry either */
    s = slot_of(g, fp, &found);       /* removals may have moved the probe run's end */
    uint32_t n;
    if (g->free_head != GW_GHOST_NIL) {
        n = g->free_head;
        g->free_head = g->nodes[n].older;
    } else {
        n = g->node_used++;
    }
    gw_ghost_node *e = &g->nodes[n];
    e->fp = fp;
    e->weight = weight;
    e->newer = GW_GHOST_NIL;
    e->older = g->newest;
    if (g->newest != GW_GHOST_NIL)
        g->nodes[g->newest].newer = n;
    else
        g->oldest = n;
    g->newest = n;
    g->table[s] = SLOT(n, mix(fp));
    g->count++;
    g->weight += weight;
    return 0;
}

int gw_ghost_take(gw_ghost *g, uint64_t fp)
{
    if (g->count == 0)
        return 0;
    int found;
    uint32_t s = slot_of(g, fp, &found);
    if (!found)
        return 0;
    remove_at(g, s);
    return 1;
}

int gw_ghost_contains(const gw_ghost *g, uint64_t fp)
{
    if (g->count == 0)
        return 0;
    int found;
    slot_of(g, fp, &found);
    return found;
}
