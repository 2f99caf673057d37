"""Load-balancing policies over a cluster's endpoints, by index. A pick allocates nothing.

- round_robin: smooth weighted round robin (NGINX's: each pick adds every weight to its
  endpoint's credit, takes the highest, and charges it the total).
- least_request: power of two random choices over in-flight counts relative to weight
  (Mitzenmacher 2001; Envoy's default).
- random: weighted random.
- ring_hash / maglev: gwcore.proxy._ring (ketama continuum / Maglev table), optionally with
  bounded load (balance_factor); unavailable endpoints are skipped deterministically, so keys
  owned by available endpoints never move.
When no endpoint is available, every endpoint is eligible again (Envoy's panic mode): sending
to a possibly-unhealthy endpoint beats failing every request.
"""

from cpython.mem cimport PyMem_Calloc, PyMem_Free
from libc.stdint cimport uint32_t, uint64_t

from gwcore.proxy._ring cimport RingBase
from gwcore.proxy._ring import HashRing, Maglev

_POLICIES = {"round_robin": ROUND_ROBIN, "least_request": LEAST_REQUEST, "random": RANDOM,
             "ring_hash": RING_HASH, "maglev": MAGLEV}


cdef inline uint64_t _next(uint64_t *s) noexcept:
    # xorshift64*: fast, good enough to choose endpoints (not for anything secret)
    cdef uint64_t x = s[0]
    x ^= x >> 12
    x ^= x << 25
    x ^= x >> 27
    s[0] = x
    return x * 0x2545F4914F6CDD1DULL


cdef class Balancer:
    """Picks endpoint indexes 0..n-1 for one cluster in one worker.

    ``policy``: one of round_robin, least_request, random, ring_hash, maglev. ``names``:
    endpoint names (hash policies hash them), distinct. ``weights``: positive ints.
    ``balance_factor``: bounded load for hash policies (None: off). ``table_size``: Maglev
    table size (prime). ``seed``: of the xorshift generator behind random choices. In panic
    mode (no endpoint available) hash policies pick at random, not by key."""

    def __cinit__(self, str policy, list names, list weights, balance_factor=None,
                  table_size=None, uint64_t seed=0x9E3779B97F4A7C15ULL):
        if policy not in _POLICIES:
            raise ValueError(f"unknown policy {policy!r}")
        self.policy = _POLICIES[policy]
        self.n = len(names)
        if self.n == 0 or len(weights) != self.n:
            raise ValueError("names and weights: same non-zero length")
        if len(set(names)) != self.n:
            raise ValueError("endpoint names must be distinct")
        self.weight = <long *>PyMem_Calloc(self.n, sizeof(long))
        self.active = <long *>PyMem_Calloc(self.n, sizeof(long))
        self.current = <long *>PyMem_Calloc(self.n, sizeof(long))
        self.up = <unsigned char *>PyMem_Calloc(self.n, 1)
        self.scratch = <uint32_t *>PyMem_Calloc(self.n, sizeof(uint32_t))
        if not (self.weight and self.active and self.current and self.up and self.scratch):
            raise MemoryError()
        for i in range(self.n):
            if weights[i] < 1:
                raise ValueError("weights must be >= 1")
            self.weight[i] = weights[i]
            self.up[i] = 1
        self.rng = seed | 1
        if self.policy == RING_HASH:
            self.ring = HashRing(dict(zip(names, weights)), hash_fn="ketama")
        elif self.policy == MAGLEV:
            self.ring = Maglev(dict(zip(names, weights)), table_size=table_size)
        if self.ring is not None and balance_factor is not None:
            self.ring.balance_factor = balance_factor
            self.bounded = True

    def __dealloc__(self):
        PyMem_Free(self.weight)
        PyMem_Free(self.active)
        PyMem_Free(self.current)
        PyMem_Free(self.up)
        PyMem_Free(self.scratch)

    cdef bint is_hash(self) noexcept:
        return self.ring is not None

    def set_up(self, int i, bint up):
        """Mark endpoint i available (healthy, not ejected) or not."""
        self.up[self._index(i)] = up
        if self.ring is not None:
            self.ring.set_available(i, up)

    cdef int _index(self, int i) except -1:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return i

    def is_up(self, int i) -> bool:
        """Whether endpoint i may be picked (IndexError out of range)."""
        return bool(self.up[self._index(i)])

    def in_flight(self, int i) -> int:
        """Exchanges under way on endpoint i."""
        return self.active[self._index(i)]

    def choose(self, key=None, int exclude=-1) -> int:
        """Python entry to pick (tests, benchmarks): key is bytes or None; -1 if none."""
        cdef bytes k = key if key is not None else None
        if k is None:
            return self.pick(NULL, 0, exclude)
        return self.pick(k, len(k), exclude)

    def begin(self, int i):
        """Count an exchange on endpoint i (Python entry to acquire)."""
        self.acquire(self._index(i))

    def end(self, int i):
        """Python entry to release; nothing happens when nothing is in flight on i."""
        self.release(self._index(i))

    cdef void acquire(self, int i) noexcept:
        self.active[i] += 1
        if self.bounded:
            self.ring.acquire_index(i)

    cdef void release(self, int i) noexcept:
        if self.active[i] > 0:
            self.active[i] -= 1
            if self.bounded:
                self.ring.release_index(i)

    cdef int pick(self, const char *key, Py_ssize_t key_len, int exclude) noexcept:
        """An endpoint index other than ``exclude`` (-1: none excluded), or -1 when the cluster
        has no other endpoint. key: the hash key for hash policies (NULL: random pick)."""
        cdef int i = self._pick(key, key_len, exclude, True)
        if i < 0:
            i = self._pick(key, key_len, exclude, False)     # panic: ignore availability
        return i

    cdef bint _eligible(self, int i, int exclude, bint need_up) noexcept:
        return i != exclude and (self.up[i] or not need_up)

    cdef int _pick(self, const char *key, Py_ssize_t key_len, int exclude,
                   bint need_up) noexcept:
        cdef int i, best = -1, a, b, tries, got
        cdef long total = 0
        cdef uint64_t r
        if self.ring is not None and key != NULL and need_up:
            i = (self.ring.lookup_index_bounded(key, key_len) if self.bounded
                 else self.ring.lookup_index(key, key_len))
            if i >= 0 and i != exclude:
                return i
            got = self.ring.range_indices(key, key_len, self.scratch, self.n)
            for a in range(got):
                if <int>self.scratch[a] != exclude:
                    return self.scratch[a]
            return -1
        if self.policy == ROUND_ROBIN:
            for i in range(self.n):
                if not self._eligible(i, exclude, need_up):
                    continue
                self.current[i] += self.weight[i]
                total += self.weight[i]
                if best < 0 or self.current[i] > self.current[best]:
                    best = i
            if best >= 0:
                self.current[best] -= total
            return best
        if self.policy == LEAST_REQUEST:
            a = self._random_eligible(exclude, need_up)
            if a < 0:
                return -1
            b = a
            tries = 0
            while b == a and tries < 4:
                b = self._random_eligible(exclude, need_up)
                tries += 1
            i = 1
            while b == a and i < self.n:            # the second choice must differ
                if self._eligible((a + i) % self.n, exclude, need_up):
                    b = (a + i) % self.n
                i += 1
            # fewer in flight per unit of weight, counting this request, wins:
            # (ab+1)/wb < (aa+1)/wa  <=>  (ab+1)*wa < (aa+1)*wb
            if (self.active[b] + 1) * self.weight[a] < (self.active[a] + 1) * self.weight[b]:
                return b
            return a
        # random, and hash policies without a key
        for i in range(self.n):
            if self._eligible(i, exclude, need_up):
                total += self.weight[i]
        if total == 0:
            return -1
        r = _next(&self.rng) % <uint64_t>total
        for i in range(self.n):
            if self._eligible(i, exclude, need_up):
                if r < <uint64_t>self.weight[i]:
                    return i
                r -= self.weight[i]
        return -1

    cdef int _random_eligible(self, int exclude, bint need_up) noexcept:
        cdef int i, tries
        for tries in range(2 * self.n):
            i = <int>(_next(&self.rng) % <uint64_t>self.n)
            if self._eligible(i, exclude, need_up):
                return i
        for i in range(self.n):
            if self._eligible(i, exclude, need_up):
                return i
        return -1
