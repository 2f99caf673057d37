# distutils: sources = src_c/ghost.c
"""Bounded in-process key -> value store: S3-FIFO or LRU eviction, an entry and a byte budget, TTL.

Design
- Index: a Python dict mapping each key to an ``_Entry`` (a final cdef class of 80 bytes: the
  value, the expiry time, a 2-bit frequency, queue links, the key, its hash and its size). A
  hit is one dict lookup (the key is hashed once; str and bytes cache their hash) and a few
  field reads and writes: it creates no Python object and returns the stored value with a new
  reference. A set of a new key is one dict lookup too (``PyDict_SetDefault``).
- Queues: intrusive doubly linked lists threaded through the entries by borrowed pointers
  (``PyObject *prev, *next``); the dict holds the only strong reference to an entry, and an
  entry is unlinked before it leaves the dict. ``lru`` uses one list (a hit moves the entry to
  the head); ``s3fifo`` uses two, the small queue S and the main queue M.
- S3-FIFO (Yang, Zhang, Qiu, Yue, Vinayak, "FIFO queues are all you need for cache eviction",
  SOSP 2023), as the paper gives it: S holds about 10% of the capacity, M the rest; a ghost
  queue G remembers keys evicted from S (64-bit hashes only: src_c/ghost.c) up to M's
  capacity. A hit raises the entry's frequency by one, capped at 3, and moves nothing. A new
  key enters M if G holds it (and leaves G), else S. Eviction takes from S while S holds its
  share (or M is empty), else from M. From S: the tail moves to M's head with its frequency
  cleared if it was hit more than once while in S (freq > 1, the paper's rule), else it is
  evicted and its key goes to G. From M: the tail goes back to M's head with freq - 1 if
  freq > 0, else it is evicted. With ``max_bytes`` the shares are in bytes (S: 10% of
  ``max_bytes``, G: keys of up to 90% of it by size, and no more keys than the store holds),
  with ``max_entries`` in entries (S: max(1, max_entries // 10), G: the rest); with both, S is
  over its share when it is over either. Two scheduling details differ from the paper's
  pseudocode, as in libCacheSim's S3FIFO: a move from S into a full M does not evict from M at
  once (the next evictions do, S being under its share), and a new key is looked up in G
  before evicting rather than after. The tests check the store against the paper's algorithm
  with exactly these two changes, request by request; the miss ratios below differ from the
  unchanged algorithm by less than 0.01 percentage point.
- Expiry: per-entry TTL against CLOCK_MONOTONIC (``time.monotonic``), or a ``timer`` callable.
  An expired entry is never returned: get/[]/in/pop check it and remove it, and eviction removes
  expired entries it meets at a queue's tail before evicting live ones; ``expire()`` sweeps.
- Sizes: ``max_bytes`` bounds the sum of exactly the ``size`` arguments of the entries held.
  Memory the store itself uses per entry (the _Entry, the dict slot, up to 40 bytes of ghost) is
  the caller's to count in ``size``.
- Re-entrancy and GC: entries evicted by a ``set`` are released only when the store is
  consistent again, so finalisers of keys and values may use the store. Entries are not GC
  objects (a young collection never walks a cache); the store's tp_traverse visits every held
  key and value, so reference cycles through a store are still collected.

Figures (this machine, Python 3.11, 2 vCPUs shared, so minima of many rounds;
bench/micro/test_cache_bench.py and bench/micro/cache_miss_ratio.py):
- per hit at 100,000 entries (str keys, 1,000 lookups a round): ``get`` 28 ns (s3fifo) and
  29 ns (lru); lru-dict's ``get`` 46 ns, ``functools.lru_cache`` 37 ns, cachetools 166 ns, a
  plain ``dict.get`` 20 ns. Subscript ``c[k]``: 28 / 30 ns; lru-dict 29 ns, cachetools 112 ns.
- per set of a new key into the full store (one eviction each): 128 ns (lru), 234 ns (s3fifo:
  two ghost look-ups, a push and a trim, mostly cache misses); lru-dict 126 ns,
  ``lru_cache`` (a miss, calling a trivial function) 112 ns, cachetools 717 ns.
- miss ratio, Zipf traces of 1,000,000 requests over 100,000 keys (cache of 1% / 10% of the
  keys), s3fifo | the paper's algorithm (bench/micro/cache_miss_ratio.py) | lru:
  alpha 0.8:  68.39% | 68.39% | 79.51%   and  45.41% | 45.41% | 53.21%
  alpha 1.0:  40.12% | 40.12% | 49.31%   and  22.19% | 22.19% | 26.39%
"""
cimport cython

from operator import index as _as_int

from cpython.dict cimport (
    PyDict_DelItem,
    PyDict_GetItemWithError,
    PyDict_SetDefault,
    PyDict_SetItem,
)
from cpython.long cimport PyLong_Check
from cpython.object cimport PyObject_Hash
from cpython.ref cimport PyObject
from libc.math cimport INFINITY, isnan
from libc.stdint cimport int64_t, uint8_t, uint64_t
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from gwcore.cache._cghost cimport (
    gw_ghost,
    gw_ghost_clear,
    gw_ghost_count,
    gw_ghost_free,
    gw_ghost_new,
    gw_ghost_push,
    gw_ghost_take,
)

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX
    # The lookup of the hit path, on borrowed pointers (no reference taken on the dict or key).
    PyObject *_dict_lookup "PyDict_GetItemWithError"(PyObject *mp, PyObject *key) except? NULL
    ctypedef int (*_visitproc "visitproc")(PyObject *, void *) noexcept
    ctypedef int (*_traverseproc "traverseproc")(PyObject *, _visitproc, void *) noexcept
    ctypedef int (*_inquiry "inquiry")(PyObject *) noexcept
    ctypedef struct _TypeSlots "PyTypeObject":
        _traverseproc tp_traverse
        _inquiry tp_clear

MAX_BYTES = 1 << 62
cdef int64_t _MAX_BYTES = 1 << 62      # the byte budget when max_bytes is None
cdef int64_t _TOO_BIG = (1 << 62) + 1  # a size no budget admits
cdef uint64_t _NO_WEIGHT_BOUND = 0xFFFFFFFFFFFFFFFF
cdef uint8_t _SMALL = 0                # S, or the one LRU list
cdef uint8_t _MAIN = 1                 # M
cdef uint8_t _UNLINKED = 255
cdef uint8_t _FREQ_MAX = 3             # the 2-bit counter
cdef object _POLICIES = ("s3fifo", "lru")


@cython.final
@cython.freelist(64)
@cython.no_gc
cdef class _Entry:
    """One cached value. Owned by the store's dict; linked into one queue by borrowed pointers.

    Not a GC object: the store's tp_traverse visits the key and value of each linked entry, so
    cycles through a store are still found, while a young collection never walks a cache.
    """
    # What a hit reads or writes first, within the object's first 64 bytes.
    cdef object value
    cdef double expires          # monotonic seconds; INFINITY = never
    cdef uint8_t freq
    cdef uint8_t queue
    cdef PyObject *prev          # toward the head (newer)
    cdef PyObject *next          # toward the tail (older)
    cdef object key
    cdef Py_hash_t hash
    cdef int64_t size


@cython.final
cdef class Store:
    """A bounded key -> value store (see the module docstring and _store.pyi)."""

    cdef dict _map
    cdef list _graveyard             # entries evicted by the running set(), released at its end
    cdef PyObject *_head[2]
    cdef PyObject *_tail[2]
    cdef Py_ssize_t _count[2]
    cdef int64_t _bytes[2]
    cdef Py_ssize_t _max_entries     # PY_SSIZE_T_MAX when unbounded
    cdef int64_t _max_bytes          # _MAX_BYTES when unbounded
    cdef Py_ssize_t _small_entries   # S's share; PY_SSIZE_T_MAX when entries are unbounded
    cdef int64_t _small_bytes        # S's share; _TOO_BIG when bytes are unbounded
    cdef bint _entries_bounded
    cdef bint _bytes_bounded
    cdef bint _lru
    cdef bint _any_ttl               # an entry with a finite TTL was stored since the last clear
    cdef gw_ghost *_ghost
    cdef object _timer
    cdef object _policy
    cdef uint64_t _hits, _misses, _evictions, _expirations

    def __cinit__(self, *args, **kwargs):
        self._map = {}
        self._graveyard = []
        self._ghost = NULL
        self._reset_queues()
        # Until __init__ runs (Store.__new__(Store)): a store that holds one size-0 entry at
        # most and never touches the ghost.
        self._lru = True
        self._max_entries = 1
        self._max_bytes = 0
        self._small_entries = 1
        self._small_bytes = _TOO_BIG

    def __dealloc__(self):
        gw_ghost_free(self._ghost)
        self._ghost = NULL

    def __init__(self, max_entries=None, max_bytes=None, policy="s3fifo", *, timer=None):
        if policy not in _POLICIES:
            raise ValueError(f"policy must be 's3fifo' or 'lru', got {policy!r}")
        if max_entries is None and max_bytes is None:
            raise ValueError("give max_entries, max_bytes or both: a store needs a bound")
        if timer is not None and not callable(timer):
            raise TypeError("timer must be None or a callable returning seconds as a float")
        n = PY_SSIZE_T_MAX
        if max_entries is not None:
            n = _as_int(max_entries)
            if not 1 <= n <= PY_SSIZE_T_MAX:
                raise ValueError(f"max_entries must be >= 1, got {n}")
        b = _MAX_BYTES
        if max_bytes is not None:
            b = _as_int(max_bytes)
            if not 1 <= b <= _MAX_BYTES:
                raise ValueError(f"max_bytes must be within [1, 2**62], got {b}")
        self.clear()
        self._lru = policy == "lru"
        self._policy = policy
        self._timer = timer
        self._entries_bounded = max_entries is not None
        self._bytes_bounded = max_bytes is not None
        self._max_entries = n
        self._max_bytes = b
        self._small_entries = max(1, n // 10) if self._entries_bounded else PY_SSIZE_T_MAX
        self._small_bytes = max(1, b // 10) if self._bytes_bounded else _TOO_BIG
        self._hits = self._misses = self._evictions = self._expirations = 0
        if not self._lru and self._ghost == NULL:
            self._ghost = gw_ghost_new()
            if self._ghost == NULL:
                raise MemoryError()

    # ---- queues --------------------------------------------------------------------------

    cdef inline void _reset_queues(self) noexcept:
        self._head[0] = self._head[1] = NULL
        self._tail[0] = self._tail[1] = NULL
        self._count[0] = self._count[1] = 0
        self._bytes[0] = self._bytes[1] = 0

    cdef inline void _link(self, _Entry e, uint8_t q) noexcept:
        """Put e at the head of queue q."""
        e.queue = q
        e.prev = NULL
        e.next = self._head[q]
        if self._head[q] != NULL:
            (<_Entry>self._head[q]).prev = <PyObject *>e
        else:
            self._tail[q] = <PyObject *>e
        self._head[q] = <PyObject *>e
        self._count[q] += 1
        self._bytes[q] += e.size

    cdef inline void _unlink(self, _Entry e) noexcept:
        cdef uint8_t q = e.queue
        if e.prev != NULL:
            (<_Entry>e.prev).next = e.next
        else:
            self._head[q] = e.next
        if e.next != NULL:
            (<_Entry>e.next).prev = e.prev
        else:
            self._tail[q] = e.prev
        e.prev = e.next = NULL
        e.queue = _UNLINKED
        self._count[q] -= 1
        self._bytes[q] -= e.size

    cdef inline void _to_head(self, _Entry e) noexcept:
        cdef uint8_t q = e.queue
        if self._head[q] != <PyObject *>e:
            self._unlink(e)
            self._link(e, q)

    cdef int _drop(self, _Entry e) except -1:
        """Unlink e and remove it from the index (the caller holds a reference to e)."""
        self._unlink(e)
        PyDict_DelItem(self._map, e.key)
        return 0

    cdef int _bury(self, _Entry e) except -1:
        """_drop for eviction: e is kept in the graveyard until set() is done, so no finaliser
        of an evicted key or value runs while set() has an entry out of its queue."""
        self._graveyard.append(e)
        self._unlink(e)
        PyDict_DelItem(self._map, e.key)
        return 0

    cdef double _now(self) except? -1.0:
        cdef timespec ts
        if self._timer is None:
            clock_gettime(CLOCK_MONOTONIC, &ts)
            return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9
        return float(self._timer())

    # ---- eviction ------------------------------------------------------------------------

    cdef inline uint64_t _ghost_max_count(self) noexcept:
        if self._entries_bounded:
            return <uint64_t>(self._max_entries - self._small_entries)
        return <uint64_t>(self._count[0] + self._count[1])

    cdef inline uint64_t _ghost_max_weight(self) noexcept:
        if self._bytes_bounded:
            return <uint64_t>(self._max_bytes - self._small_bytes)
        return _NO_WEIGHT_BOUND

    cdef int _evict_small(self, double now) except -1:
        """Evict from S per S3-FIFO: 1 when an entry left the store, 0 when S emptied into M."""
        cdef _Entry e
        while self._tail[_SMALL] != NULL:
            e = <_Entry>self._tail[_SMALL]
            if e.expires <= now:
                self._expirations += 1
                self._bury(e)
                return 1
            if e.freq > 1:
                self._unlink(e)
                e.freq = 0
                self._link(e, _MAIN)
                continue
            # A ghost that cannot grow (out of memory) forgets the key: only admission changes.
            gw_ghost_push(self._ghost, <uint64_t>e.hash, <uint64_t>e.size,
                          self._ghost_max_count(), self._ghost_max_weight())
            self._evictions += 1
            self._bury(e)
            return 1
        return 0

    cdef int _evict_main(self, double now) except -1:
        cdef _Entry e
        while self._tail[_MAIN] != NULL:
            e = <_Entry>self._tail[_MAIN]
            if e.expires <= now:
                self._expirations += 1
                self._bury(e)
                return 1
            if e.freq > 0:
                e.freq -= 1
                self._to_head(e)
                continue
            self._evictions += 1
            self._bury(e)
            return 1
        return 0

    cdef int _evict_one(self, double now) except -1:
        cdef _Entry e
        if self._lru:
            e = <_Entry>self._tail[_SMALL]
            if e.expires <= now:
                self._expirations += 1
            else:
                self._evictions += 1
            self._bury(e)
            return 1
        if self._count[_SMALL] > 0 and (
                self._count[_MAIN] == 0
                or self._count[_SMALL] >= self._small_entries
                or self._bytes[_SMALL] >= self._small_bytes):
            return self._evict_small(now)
        return self._evict_main(now)

    cdef int _make_room(self, int64_t size, double now) except -1:
        """Evict until one more entry of this size fits (size <= max_bytes)."""
        while (self._count[0] + self._count[1] >= self._max_entries
               or self._bytes[0] + self._bytes[1] > self._max_bytes - size):
            if self._count[0] + self._count[1] == 0:
                break
            self._evict_one(now)
        return 0

    # ---- Python API ----------------------------------------------------------------------

    cdef inline PyObject *_hit(self, object key) except? NULL:
        """Borrowed pointer to the value of key's live entry, counted as a hit and an access; or
        NULL for a miss (counted; an expired entry is removed). Creates no Python object."""
        cdef PyObject *p = _dict_lookup(<PyObject *>self._map, <PyObject *>key)
        if p == NULL:
            self._misses += 1
            return NULL
        if (<_Entry>p).expires != INFINITY and (<_Entry>p).expires <= self._now():
            self._expire_entry(<_Entry>p)
            self._misses += 1
            return NULL
        self._hits += 1
        if self._lru:
            if self._head[_SMALL] != p:
                self._unlink(<_Entry>p)
                self._link(<_Entry>p, _SMALL)
        elif (<_Entry>p).freq < _FREQ_MAX:
            (<_Entry>p).freq += 1
        return <PyObject *>(<_Entry>p).value

    cdef int _expire_entry(self, _Entry e) except -1:
        """Remove an expired entry; e may be borrowed from the dict, so hold it till the end."""
        cdef _Entry keep = e
        self._expirations += 1
        self._drop(keep)
        return 0

    def get(self, key, default=None):
        cdef PyObject *v = self._hit(key)
        if v == NULL:
            return default
        return <object>v

    def __getitem__(self, key):
        cdef PyObject *v = self._hit(key)
        if v == NULL:
            raise KeyError(key)
        return <object>v

    def set(self, key, value, size=1, ttl=None):
        return self._set_api(key, value, size, ttl)

    def __setitem__(self, key, value):
        self._set_api(key, value, 1, None)

    cdef object _set_api(self, object key, object value, object size, object ttl):
        cdef int64_t sz
        cdef double t = INFINITY
        cdef double now = -INFINITY
        cdef double expires = INFINITY
        if not PyLong_Check(size):
            size = _as_int(size)           # TypeError for a float, a str, None
        try:
            sz = size
        except OverflowError:
            if size < 0:
                raise ValueError(f"size must be >= 0, got {size}") from None
            sz = _TOO_BIG
        if sz < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        if ttl is not None:
            t = ttl
            if isnan(t):
                raise ValueError("ttl must be a number of seconds or None, got NaN")
            if t != INFINITY:
                self._any_ttl = True
        if self._any_ttl:
            now = self._now()
            if t != INFINITY:
                expires = now + t
        try:
            return self._set(key, value, sz, expires, now)
        finally:
            # Entries evicted or replaced by this call die here, once the store is consistent:
            # their finalisers may use the store.
            if len(self._graveyard):
                self._graveyard.clear()

    cdef bint _set(self, object key, object value, int64_t sz, double expires,
                   double now) except -1:
        cdef PyObject *p
        cdef _Entry e, fresh
        cdef uint8_t q
        if sz > self._max_bytes or expires <= now:
            # Not storable; an old value must not outlive a replace that failed.
            p = PyDict_GetItemWithError(self._map, key)
            if p != NULL:
                e = <_Entry>p
                if e.expires <= now:
                    self._expirations += 1
                self._bury(e)
            return False

        fresh = _Entry.__new__(_Entry)
        fresh.key = key
        fresh.value = value
        fresh.hash = PyObject_Hash(key)
        fresh.size = sz
        fresh.expires = expires
        fresh.freq = 0
        fresh.queue = _UNLINKED
        # One dict lookup for the common case, a new key: the entry is indexed at once and
        # linked once room is made (it is never a victim: eviction walks the queues).
        p = PyDict_SetDefault(self._map, key, fresh)
        if p == <PyObject *>fresh:
            return self._link_new(fresh, now)
        e = <_Entry>p
        if e.expires <= now:
            self._expirations += 1
            self._bury(e)
            PyDict_SetItem(self._map, key, fresh)
            return self._link_new(fresh, now)
        # Replace in place: the entry leaves its queue while room is made (so it is never its
        # own victim), then goes back to that queue's head. A set counts as an access: LRU's
        # move to the front, S3-FIFO's frequency + 1.
        q = e.queue
        self._graveyard.append(e.value)    # the old value dies with the graveyard
        self._unlink(e)
        e.value = value
        e.size = sz
        e.expires = expires
        if not self._lru and e.freq < _FREQ_MAX:
            e.freq += 1
        try:
            self._make_room(sz, now)
        finally:
            self._link(e, q)
        return True

    cdef bint _link_new(self, _Entry e, double now) except -1:
        """Make room for e (indexed, not yet linked) and link it: M if the ghost knew it."""
        cdef bint in_ghost = False
        if not self._lru:
            in_ghost = gw_ghost_take(self._ghost, <uint64_t>e.hash)
        try:
            self._make_room(e.size, now)
        finally:
            self._link(e, _MAIN if in_ghost else _SMALL)
        return True

    def pop(self, key, default=None):
        cdef PyObject *p = PyDict_GetItemWithError(self._map, key)
        cdef _Entry e
        if p == NULL:
            return default
        e = <_Entry>p
        self._drop(e)
        if e.expires != INFINITY and e.expires <= self._now():
            self._expirations += 1
            return default
        return e.value

    def __delitem__(self, key):
        cdef PyObject *p = PyDict_GetItemWithError(self._map, key)
        cdef _Entry e
        if p == NULL:
            raise KeyError(key)
        e = <_Entry>p
        self._drop(e)
        if e.expires != INFINITY and e.expires <= self._now():
            self._expirations += 1
            raise KeyError(key)

    def __contains__(self, key):
        cdef PyObject *p = _dict_lookup(<PyObject *>self._map, <PyObject *>key)
        if p == NULL:
            return False
        if (<_Entry>p).expires != INFINITY and (<_Entry>p).expires <= self._now():
            self._expire_entry(<_Entry>p)
            return False
        return True

    def __len__(self):
        return self._count[0] + self._count[1]

    def keys(self):
        """A list of the keys held now (expired ones included until they are met): a
        snapshot, for purges that scan."""
        return list(self._map)

    def __repr__(self):
        return (f"Store(max_entries={self.max_entries!r}, max_bytes={self.max_bytes!r}, "
                f"policy={self._policy!r}) with {len(self)} entries, "
                f"{self._bytes[0] + self._bytes[1]} bytes")

    def clear(self):
        old = self._map
        self._map = {}
        self._reset_queues()
        self._any_ttl = False
        if self._ghost != NULL:
            gw_ghost_clear(self._ghost)
        old.clear()                        # values are released once the store is consistent

    def expire(self):
        cdef PyObject *p
        cdef _Entry e
        cdef double now
        cdef int q
        if not self._any_ttl:
            return 0
        now = self._now()
        victims = []
        for q in range(2):
            p = self._head[q]
            while p != NULL:
                e = <_Entry>p
                p = e.next
                if e.expires <= now:
                    victims.append(e)
        removed = 0
        for e in victims:
            # A finaliser run by an earlier removal may have removed or replaced this one.
            if e.queue != _UNLINKED and e.expires <= now:
                self._drop(e)
                removed += 1
        self._expirations += removed
        return removed

    def stats(self):
        return {
            "hits": self._hits,
            "misses": self._misses,
            "evictions": self._evictions,
            "expirations": self._expirations,
            "entries": self._count[0] + self._count[1],
            "bytes": self._bytes[0] + self._bytes[1],
        }

    @property
    def max_entries(self):
        return self._max_entries if self._entries_bounded else None

    @property
    def max_bytes(self):
        return self._max_bytes if self._bytes_bounded else None

    @property
    def policy(self):
        return self._policy

    @property
    def bytes(self):
        return self._bytes[0] + self._bytes[1]

    def _debug_queues(self):
        """(keys of S head -> tail, keys of M head -> tail, ghost size): for the tests."""
        cdef PyObject *p
        out = []
        for q in range(2):
            keys = []
            p = self._head[q]
            while p != NULL:
                keys.append((<_Entry>p).key)
                p = (<_Entry>p).next
            out.append(keys)
        ghost = gw_ghost_count(self._ghost) if self._ghost != NULL else 0
        return out[0], out[1], ghost


# ---- garbage collection ------------------------------------------------------------------
# Store's own tp_traverse / tp_clear (Cython's) cover its fields; these wrap them to reach the
# keys and values held by the (untracked) entries, and to empty the queues before the fields
# are cleared. Visiting fewer references than exist is safe for the collector (an object looks
# referenced from outside); each linked entry holds exactly one reference to its key and one to
# its value, visited once.

cdef _traverseproc _store_base_traverse = NULL
cdef _inquiry _store_base_clear = NULL


cdef int _store_traverse(PyObject *o, _visitproc visit, void *arg) noexcept:
    cdef int r = _store_base_traverse(o, visit, arg) if _store_base_traverse != NULL else 0
    cdef PyObject *p
    cdef PyObject *k
    cdef PyObject *v
    cdef int q
    if r:
        return r
    for q in range(2):
        p = (<Store>o)._head[q]
        while p != NULL:
            k = <PyObject *>(<_Entry>p).key
            v = <PyObject *>(<_Entry>p).value
            r = visit(k, arg)
            if r:
                return r
            r = visit(v, arg)
            if r:
                return r
            p = (<_Entry>p).next
    return 0


cdef int _store_clear(PyObject *o) noexcept:
    (<Store>o)._reset_queues()             # no pointer into an entry survives the fields
    if (<Store>o)._ghost != NULL:
        gw_ghost_clear((<Store>o)._ghost)
    return _store_base_clear(o) if _store_base_clear != NULL else 0


cdef _TypeSlots *_store_type = <_TypeSlots *><void *>Store
_store_base_traverse = _store_type.tp_traverse
_store_base_clear = _store_type.tp_clear
_store_type.tp_traverse = _store_traverse
_store_type.tp_clear = _store_clear
