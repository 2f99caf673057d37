/* gcra.h - GCRA rate limits (the generic cell rate algorithm: a token bucket with burst) with
 * their state in a table shared by the processes of one host.
 *
 * Contract
 * - A table is a caller-owned block of gw_gcra_bytes(buckets) bytes, zero-initialised, 16-byte
 *   aligned, normally a MAP_SHARED anonymous mapping made by the master before it forks (so
 *   every worker, of this and of later generations, updates the same cells). gw_gcra_init
 *   writes its header once; nothing else ever allocates or frees.
 * - The table is `buckets` (a power of two) buckets of GW_GCRA_WAYS slots; a slot is
 *   {key, tat}: a 64-bit key hash (0: never used) and the key's theoretical arrival time in
 *   nanoseconds of CLOCK_MONOTONIC (one clock for every process of the host). A key lives in
 *   the bucket its hash picks, in the lowest-index slot that holds it.
 * - Every change of a slot is one 16-byte compare-and-swap of {key, tat} (cmpxchg16b): no
 *   lock, nothing waits on another process, so a worker killed at any instruction leaves
 *   every slot consistent and blocks nobody.
 * - Recycling: a slot whose tat is not in the future (tat <= now) holds a key whose bucket is
 *   full again: that state is indistinguishable from a key never seen, so the slot is free
 *   for another key and nothing is lost. A key whose tat is in the future is active and is
 *   never evicted.
 * - A full bucket (all GW_GCRA_WAYS slots active with other keys): the new key is charged to
 *   the limit's overflow cell for that bucket, one GCRA state shared by every key of that
 *   limit that finds that bucket full, with the limit's own rate and burst. So a full table
 *   never blocks and never drops an active key's limit, and a flood of new keys stays limited
 *   (as one key): the price is that keys placed there may be refused early. GW_GCRA_OVERFLOW
 *   tells the caller, to count it; size the table for the active keys expected (slots =
 *   buckets * GW_GCRA_WAYS).
 * - Overflow cells are per limit: `buckets` cells {salt, tat} after the slots, apart from
 *   them. A (limit salt, bucket) pair has two candidate cells (a hash of both); it uses the
 *   first that holds its salt or is free (never used, or tat not in the future), claimed and
 *   updated by the same 16-byte CAS as a slot, so two limits never share one GCRA state (a
 *   slow limit's tat never refuses a fast limit's keys). When both candidates are active
 *   with other limits the request is refused (conservative: a flood stays limited) with
 *   retry_after = the limit's own T, and GW_GCRA_OVERFLOW set.
 * - Arithmetic (per limit): emission interval T = period / rate (ns per request), burst B >=
 *   1, tolerance tau = (B - 1) * T. A request at `now` conforms when max(tat, now) - now <=
 *   tau; it then sets tat = max(tat, now) + T. A clock that steps backwards (now < an earlier
 *   now) only makes max(tat, now) - now larger: it never admits more.
 * - Two processes inserting the same new key at the same moment into two slots: each checks
 *   the bucket after its insert, and a process that sees another copy takes its own back (if
 *   no request used it meanwhile) and starts over; requests always use the lowest copy.
 */
#ifndef GW_GCRA_H
#define GW_GCRA_H

#include <stddef.h>
#include <stdint.h>

#define GW_GCRA_WAYS 8               /* slots per bucket: the probe bound */

enum {
    GW_GCRA_ADMITTED = 1,            /* result flags */
    GW_GCRA_OVERFLOW = 2,            /* charged to the limit's overflow cell of a full bucket */
};

typedef struct {
    int64_t now;                     /* the time used (ns) */
    int64_t tat;                     /* the key's tat after this request */
    int64_t retry_after;             /* ns until a request would conform (0 when admitted) */
    int64_t remaining;               /* requests that would conform right now, after this one */
    int flags;
} gw_gcra_result;

/* Bytes of a table of `buckets` buckets (a power of two, >= 1). */
size_t gw_gcra_bytes(uint64_t buckets);

/* Writes the header of a zeroed table: its bucket count and the hash seed every process
 * uses. Returns 0, or -1 when buckets is not a power of two. */
int gw_gcra_init(void *table, uint64_t buckets, uint64_t seed);

/* The table's buckets and seed (as given to gw_gcra_init). */
uint64_t gw_gcra_buckets(const void *table);
uint64_t gw_gcra_seed(const void *table);

/* 64-bit key hash of len bytes under the table's seed and a per-limit salt; never 0. */
uint64_t gw_gcra_hash(const void *table, uint64_t salt, const void *data, size_t len);

/* CLOCK_MONOTONIC in ns. */
int64_t gw_gcra_now(void);

/* One request of key `hash` (gw_gcra_hash under the limit's `salt`) at time now (ns; < 0:
 * gw_gcra_now()) against the limit (salt: the limit's identity, which picks and keys its
 * overflow cells; T = emission interval ns > 0, tau = (burst - 1) * T >= 0; T + tau stays
 * below 2^62 so tat never overflows). Fills *out; returns 1 when admitted, 0 when refused. */
int gw_gcra_take(void *table, uint64_t salt, uint64_t hash, int64_t now, int64_t T,
                 int64_t tau, gw_gcra_result *out);

/* The state of key `hash` without a request: its tat, or 0 when the table has none. */
int64_t gw_gcra_peek(const void *table, uint64_t hash);

/* Slots holding an active key (tat > now) and slots ever used, for gauges and tests. */
void gw_gcra_usage(const void *table, int64_t now, uint64_t *active, uint64_t *used);

#endif
