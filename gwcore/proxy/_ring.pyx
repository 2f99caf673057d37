# distutils: sources = src_c/ring.c
# distutils: libraries = crypto
"""Consistent hashing for upstream selection: ketama ring, Maglev table, bounded load.

``HashRing`` is the weighted ketama continuum of libketama, bit for bit as uhashring builds it
with ``HashRing(nodes, hash_fn="ketama")``. ``Maglev`` is the lookup table of Eisenbud et al.,
NSDI 2016. Both skip nodes marked unavailable without moving any other key, and both offer
bounded-load picks (Mirrokni, Thorup, Zadimoghaddam, SODA 2018; HAProxy hash-balance-factor)
over in-flight counts kept in C. The algorithms, the exact bound and the C-level API are
documented in ``src_c/ring.h`` and ``_ring.pxd``.
"""
cimport cython

from collections.abc import Mapping
from operator import index as _as_int

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.unicode cimport PyUnicode_Check
from libc.stdint cimport int64_t, uint32_t, uint64_t

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object s, Py_ssize_t *size) except NULL

DEFAULT_TABLE_SIZE = GW_MAGLEV_DEFAULT_SIZE
MAX_NODES = GW_RING_MAX_NODES
cdef uint32_t _MAX_WEIGHT = 0xFFFFFFFF


cdef inline const char *_key_bytes(object key, Py_ssize_t *length) except NULL:
    """The bytes a key hashes as: UTF-8 of a str (cached by CPython), a bytes object as is."""
    if PyUnicode_Check(key):
        return PyUnicode_AsUTF8AndSize(key, length)
    if PyBytes_Check(key):
        length[0] = PyBytes_GET_SIZE(key)
        return PyBytes_AS_STRING(key)
    raise TypeError(f"key must be str or bytes, not {type(key).__name__}")


cdef int _raise(int code) except -1:
    message = gw_ring_error_name(code).decode()
    if code == GW_RING_E_NOMEM:
        raise MemoryError(message)
    if code == GW_RING_E_DIGEST:
        raise RuntimeError(message)
    raise ValueError(message)


def _factor_pct(balance_factor) -> int:
    if balance_factor is None:
        return 0
    scaled = float(balance_factor) * 100.0
    pct = round(scaled)
    if abs(scaled - pct) > 1e-6 or not 100 <= pct <= 65535:
        raise ValueError("balance_factor must be None or within [1.0, 655.35] in steps of 0.01,"
                         f" got {balance_factor!r}")
    return pct


def _weight(name: str, weight) -> int:
    w = _as_int(weight)
    if not 1 <= w <= _MAX_WEIGHT:
        raise ValueError(f"weight of node {name!r} must be within [1, 2**32 - 1], got {w}")
    return w


def _parse_nodes(nodes, weights) -> tuple:
    """(names, weights) from a list of names (+ optional mapping of weights) or a mapping."""
    if isinstance(nodes, (str, bytes)):
        raise TypeError("nodes must be an iterable of names or a mapping of name -> weight")
    if isinstance(nodes, Mapping):
        if weights is not None:
            raise TypeError("weights cannot be given when nodes is a mapping")
        weights = nodes
    elif weights is None:
        weights = {}
    elif not isinstance(weights, Mapping):
        raise TypeError("weights must be a mapping of node name -> int weight")
    names = list(nodes)
    if len(set(names)) != len(names):
        raise ValueError("node names must be distinct")
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"node names must be str, not {type(name).__name__}")
    unknown = set(weights) - set(names)
    if unknown:
        raise ValueError(f"weights given for unknown nodes: {sorted(unknown)!r}")
    return names, [_weight(name, weights.get(name, 1)) for name in names]


cdef class RingBase:
    """Node bookkeeping, in-flight counts and availability shared by HashRing and Maglev.

    Node indices are positions in ``nodes``; ``add_node`` appends, ``remove_node`` shifts the
    later ones down. In-flight counts and availability follow their node across both.
    """

    def __cinit__(self):
        self._load = NULL
        self._names = []
        self._index = {}
        self._weights = []

    # ---- C-level API (see _ring.pxd) ---------------------------------------------------

    cdef int lookup_index(self, const char *key, size_t length) noexcept:
        return -1

    cdef int lookup_index_bounded(self, const char *key, size_t length) noexcept:
        return -1

    cdef int range_indices(self, const char *key, size_t length, uint32_t *out,
                           uint32_t max) noexcept:
        return 0

    cdef int acquire_index(self, uint32_t index) noexcept:
        if self._load == NULL:
            return -1
        return gw_ring_acquire(self._load, index)

    cdef int release_index(self, uint32_t index) noexcept:
        if self._load == NULL:
            return -1
        return gw_ring_release(self._load, index)

    cdef int _install(self, const gw_ring_node *nodes, uint32_t n, list names) except -1:
        """Build the subclass's C structure for these nodes, carry state, swap it in."""
        raise NotImplementedError

    cdef int _carry_into(self, gw_ring_load *dst, list names) except -1:
        """Give the new structure the old one's factor and per-node state, matched by name."""
        if self._load == NULL:
            return 0
        gw_ring_set_factor(dst, self._load.factor_pct)
        for j, name in enumerate(names):
            i = self._index.get(name)
            if i is not None:
                gw_ring_carry(dst, j, self._load, i)
        return 0

    cdef int _rebuild(self, list names, list weights) except -1:
        cdef uint32_t n = len(names)
        if len(names) > GW_RING_MAX_NODES:
            raise ValueError(f"at most {GW_RING_MAX_NODES} nodes, got {len(names)}")
        encoded = [name.encode("utf-8") for name in names]
        cdef gw_ring_node *nodes = <gw_ring_node *>PyMem_Malloc(max(n, 1) * sizeof(gw_ring_node))
        if nodes == NULL:
            raise MemoryError()
        try:
            for j in range(n):
                nodes[j].name = PyBytes_AS_STRING(encoded[j])
                nodes[j].name_len = PyBytes_GET_SIZE(encoded[j])
                nodes[j].weight = weights[j]
            self._install(nodes, n, names)
        finally:
            PyMem_Free(nodes)
        self._names = names
        self._index = {name: j for j, name in enumerate(names)}
        self._weights = weights
        return 0

    cdef int _ready(self) except -1:
        if self._load == NULL:
            raise ValueError(f"{type(self).__name__} used before __init__")
        return 0

    cdef uint32_t _checked_index(self, index) except? 0xFFFFFFFF:
        i = _as_int(index)
        if not 0 <= i < len(self._names):
            raise IndexError(f"node index {i} out of range for {len(self._names)} nodes")
        return i

    # ---- Python API ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name) -> bool:
        return name in self._index

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(zip(self._names, self._weights))!r})"

    @property
    def nodes(self) -> list:
        """Node names in index order (a copy)."""
        return list(self._names)

    @property
    def weights(self) -> dict:
        """Node name -> weight."""
        return dict(zip(self._names, self._weights))

    def index(self, name: str) -> int:
        """Index of a node name; KeyError if absent."""
        return self._index[name]

    @cython.always_allow_keywords(False)
    def get_node(self, key):
        """Name of the node owning ``key`` (str as UTF-8, or bytes) among available nodes;
        None when the ring is empty or no node is available."""
        cdef Py_ssize_t length
        cdef const char *buf = _key_bytes(key, &length)
        cdef int i = self.lookup_index(buf, length)
        return self._names[i] if i >= 0 else None

    @cython.always_allow_keywords(False)
    def get_index(self, key) -> int:
        """Index of the node owning ``key``; -1 when empty or no node is available."""
        cdef Py_ssize_t length
        cdef const char *buf = _key_bytes(key, &length)
        return self.lookup_index(buf, length)

    @cython.always_allow_keywords(False)
    def get_node_bounded(self, key):
        """As get_node, skipping nodes at their bounded-load capacity (see balance_factor)."""
        cdef Py_ssize_t length
        cdef const char *buf = _key_bytes(key, &length)
        cdef int i = self.lookup_index_bounded(buf, length)
        return self._names[i] if i >= 0 else None

    @cython.always_allow_keywords(False)
    def get_index_bounded(self, key) -> int:
        """As get_index, skipping nodes at their bounded-load capacity (see balance_factor)."""
        cdef Py_ssize_t length
        cdef const char *buf = _key_bytes(key, &length)
        return self.lookup_index_bounded(buf, length)

    def range(self, key, n=None) -> list:
        """Up to ``n`` (default: all) distinct available nodes for ``key`` in ring / table
        order, the owner first: the fallbacks for replication or retries."""
        cdef Py_ssize_t length
        cdef const char *buf = _key_bytes(key, &length)
        cdef Py_ssize_t want = len(self._names) if n is None else _as_int(n)
        if want < 0:
            raise ValueError("n must be >= 0")
        want = min(want, len(self._names))
        if want == 0:
            return []
        cdef uint32_t *out = <uint32_t *>PyMem_Malloc(want * sizeof(uint32_t))
        if out == NULL:
            raise MemoryError()
        try:
            got = self.range_indices(buf, length, out, want)
            return [self._names[out[j]] for j in range(got)]
        finally:
            PyMem_Free(out)

    def add_node(self, name: str, weight: int = 1) -> None:
        """Add a node at the end, or change the weight of an existing one (keeping its
        index), and rebuild. ValueError for a weight outside [1, 2**32 - 1]."""
        if not isinstance(name, str):
            raise TypeError(f"node names must be str, not {type(name).__name__}")
        w = _weight(name, weight)
        names = list(self._names)
        weights = list(self._weights)
        if name in self._index:
            weights[self._index[name]] = w
        else:
            names.append(name)
            weights.append(w)
        self._rebuild(names, weights)

    def remove_node(self, name: str) -> None:
        """Remove a node and rebuild; later nodes' indices shift down by one. KeyError if
        absent."""
        i = self._index[name]
        self._rebuild(self._names[:i] + self._names[i + 1:],
                      self._weights[:i] + self._weights[i + 1:])

    @property
    def balance_factor(self):
        """Bounded-load factor c >= 1.0 (e.g. 1.25), or None for no bound. A bounded pick
        skips node i while inflight_i >= c * (total + 1) * w_i / W (W: total weight of the
        available, reachable nodes), i.e. after acquiring, no node holds more than
        ceil(c x its weighted share of all in-flight requests). Steps of 0.01."""
        pct = self._load.factor_pct if self._load != NULL else 0
        return pct / 100 if pct else None

    @balance_factor.setter
    def balance_factor(self, value) -> None:
        self._ready()
        gw_ring_set_factor(self._load, _factor_pct(value))

    def acquire(self, index: int) -> None:
        """Count one more request in flight on node ``index``. IndexError if out of range."""
        self.acquire_index(self._checked_index(index))

    def release(self, index: int) -> None:
        """Count one request fewer on node ``index``. IndexError if out of range; ValueError
        if it has none in flight."""
        if self.release_index(self._checked_index(index)) != 0:
            raise ValueError(f"node {index} has no request in flight")

    def inflight(self, index: int) -> int:
        """Requests in flight on node ``index``."""
        return self._load.inflight[self._checked_index(index)]

    @property
    def total_inflight(self) -> int:
        """Requests in flight over all nodes."""
        return self._load.total if self._load != NULL else 0

    def set_available(self, index: int, available: bool) -> None:
        """Mark node ``index`` available or not (e.g. failed health checks). Lookups skip an
        unavailable node deterministically: its keys go to the next available node in ring /
        table order, and no other key moves."""
        gw_ring_set_up(self._load, self._checked_index(index), 1 if available else 0)

    def is_available(self, index: int) -> bool:
        """Whether node ``index`` is available."""
        return self._load.up[self._checked_index(index)] != 0


cdef class HashRing(RingBase):
    """Ketama consistent-hash ring, compatible with uhashring's ``hash_fn="ketama"``.

    ``HashRing(nodes, weights=None, *, hash_fn="ketama", balance_factor=None)``: ``nodes`` is
    an iterable of names (str, hashed as UTF-8) or a mapping name -> weight; ``weights`` maps
    names to int weights (default 1). A str key hashes as its UTF-8 bytes, like uhashring; a
    bytes key hashes as is (uhashring would hash its repr). Node i owns
    floor(40 * len(nodes) * w_i / sum(w)) x 4 points. Lookups are O(log points) and allocate
    nothing. TypeError for a name that is not str; ValueError for duplicate names, a weight
    outside [1, 2**32 - 1] or a bad balance_factor; RuntimeError if libcrypto offers no MD5.
    """

    def __init__(self, nodes=(), weights=None, *, hash_fn="ketama", balance_factor=None):
        if hash_fn != "ketama":
            raise ValueError(f"only hash_fn='ketama' is supported, got {hash_fn!r}")
        pct = _factor_pct(balance_factor)
        names, ws = _parse_nodes(nodes, weights)
        self._rebuild(names, ws)
        gw_ring_set_factor(self._load, pct)

    def __dealloc__(self):
        gw_ketama_free(self._k)

    cdef int _install(self, const gw_ring_node *nodes, uint32_t n, list names) except -1:
        cdef int err = 0
        cdef gw_ketama *k = gw_ketama_new(nodes, n, &err)
        if k == NULL:
            return _raise(err)
        try:
            self._carry_into(gw_ketama_load(k), names)
        except BaseException:
            gw_ketama_free(k)
            raise
        gw_ketama_free(self._k)
        self._k = k
        self._load = gw_ketama_load(k)
        return 0

    cdef int lookup_index(self, const char *key, size_t length) noexcept:
        if self._k == NULL:
            return -1
        return gw_ketama_lookup(self._k, key, length)

    cdef int lookup_index_bounded(self, const char *key, size_t length) noexcept:
        if self._k == NULL:
            return -1
        return gw_ketama_lookup_bounded(self._k, key, length)

    cdef int range_indices(self, const char *key, size_t length, uint32_t *out,
                           uint32_t max) noexcept:
        if self._k == NULL:
            return 0
        return gw_ketama_range(self._k, key, length, out, max)

    def hash(self, key) -> int:
        """The ketama hash of ``key`` (uhashring's ``hashi``): the little-endian first 32 bits
        of MD5 of its bytes."""
        cdef Py_ssize_t length
        cdef const char *buf = _key_bytes(key, &length)
        self._ready()
        return gw_ketama_hash(self._k, buf, length)

    def get_points(self) -> list:
        """The continuum as (point, node name) in ascending order, one entry per distinct
        point (uhashring's ``get_points`` lists a repeated point once per repetition)."""
        cdef uint32_t owner = 0
        cdef uint32_t p
        cdef int64_t point
        self._ready()
        out = []
        for p in range(gw_ketama_points(self._k)):
            point = gw_ketama_point(self._k, p, &owner)
            out.append((point, self._names[owner]))
        return out


cdef class Maglev(RingBase):
    """Maglev lookup table (Eisenbud et al., NSDI 2016, section 3.4), weighted.

    ``Maglev(nodes, weights=None, *, table_size=None, balance_factor=None)``: nodes and
    weights as for HashRing. ``table_size`` must be a prime >= 100 x len(nodes) and
    <= 2**26; by default it is 65537, or the smallest prime >= 100 x len(nodes) when that is
    larger, re-chosen whenever nodes change. Keys hash with XXH64 (seed 0) of their bytes.
    Lookups are O(1) and allocate nothing. Removing one of N nodes moves about 1/N of the
    keys plus a small fraction (the paper's disruption); each node owns M * w_i / sum(w)
    slots to within one slot per population round. ValueError as for HashRing, or for a
    table size that is not a prime in range.
    """

    def __init__(self, nodes=(), weights=None, *, table_size=None, balance_factor=None):
        pct = _factor_pct(balance_factor)
        if table_size is not None:
            size = _as_int(table_size)
            if not 2 <= size <= GW_MAGLEV_MAX_SIZE:
                raise ValueError(f"table_size must be a prime within [100 x nodes, 2**26],"
                                 f" got {size}")
            self._fixed_size = size
        names, ws = _parse_nodes(nodes, weights)
        self._rebuild(names, ws)
        gw_ring_set_factor(self._load, pct)

    def __dealloc__(self):
        gw_maglev_free(self._g)

    cdef int _install(self, const gw_ring_node *nodes, uint32_t n, list names) except -1:
        cdef int err = 0
        cdef uint32_t m = self._fixed_size if self._fixed_size else gw_maglev_default_size(n)
        cdef gw_maglev *g = gw_maglev_new(nodes, n, m, &err)
        if g == NULL:
            return _raise(err)
        try:
            self._carry_into(gw_maglev_load(g), names)
        except BaseException:
            gw_maglev_free(g)
            raise
        gw_maglev_free(self._g)
        self._g = g
        self._load = gw_maglev_load(g)
        return 0

    cdef int lookup_index(self, const char *key, size_t length) noexcept:
        if self._g == NULL:
            return -1
        return gw_maglev_lookup(self._g, key, length)

    cdef int lookup_index_bounded(self, const char *key, size_t length) noexcept:
        if self._g == NULL:
            return -1
        return gw_maglev_lookup_bounded(self._g, key, length)

    cdef int range_indices(self, const char *key, size_t length, uint32_t *out,
                           uint32_t max) noexcept:
        if self._g == NULL:
            return 0
        return gw_maglev_range(self._g, key, length, out, max)

    @property
    def table_size(self) -> int:
        """Number of slots M (a prime)."""
        return gw_maglev_size(self._g) if self._g != NULL else 0

    def hash(self, key) -> int:
        """The 64-bit key hash: XXH64 with seed 0 of the key's bytes."""
        cdef Py_ssize_t length
        cdef const char *buf = _key_bytes(key, &length)
        return gw_xxh64(buf, length, 0)

    def slot_counts(self) -> dict:
        """Node name -> number of table slots it owns (its share of keys is count / M)."""
        counts = [0] * len(self._names)
        cdef uint32_t s
        if self._names:
            for s in range(gw_maglev_size(self._g)):
                counts[gw_maglev_slot(self._g, s)] += 1
        return dict(zip(self._names, counts))


def xxh64(data, seed: int = 0) -> int:
    """XXH64 (the xxHash specification) of ``data`` (bytes, or str as UTF-8) with a 64-bit
    ``seed``: Maglev's key hash with seed 0."""
    cdef Py_ssize_t length
    cdef const char *buf = _key_bytes(data, &length)
    return gw_xxh64(buf, length, <uint64_t>seed)
