# distutils: sources = src_c/gcra.c
"""GCRA rate limits with their state in shared memory (src_c/gcra.h): a ``Table`` mapped
MAP_SHARED by the master before it forks, and the ``Limit`` objects a worker checks requests
against. Every process of the host that inherited the mapping updates the same cells with
compare-and-swap: limits are exact across workers, survive a reload (the master keeps the
table for its whole life) and a worker's death (no lock to leave held)."""

import ipaddress
import mmap
import os

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport int64_t, uint64_t

from gwcore.limits._cgcra cimport (
    GW_GCRA_OVERFLOW, GW_GCRA_WAYS, gw_gcra_buckets, gw_gcra_bytes, gw_gcra_hash,
    gw_gcra_init, gw_gcra_now, gw_gcra_peek, gw_gcra_result, gw_gcra_take, gw_gcra_usage,
)

WAYS = GW_GCRA_WAYS
# tat = now + burst * T stays an int64 (gcra.h); gwcore.config checks the same bound
cdef int64_t GCRA_MAX_NS = 1LL << 62


cdef inline const char *_key_data(object key, Py_ssize_t *n) except NULL:
    if isinstance(key, str):
        return PyUnicode_AsUTF8AndSize(key, n)
    if isinstance(key, bytes):
        n[0] = PyBytes_GET_SIZE(key)
        return PyBytes_AS_STRING(key)
    raise TypeError(f"a rate limit key is str or bytes, not {type(key).__name__}")


cdef dict _SOURCE_KEYS = {}        # ipv6 prefix → {client address: its key}, IPv6 only
DEF SOURCE_KEYS_MAX = 4096


cpdef str source_key(str address, int ipv6_prefix=64):
    """The ``source_ip`` key of a client address: an IPv4 address itself; an IPv4-mapped IPv6
    address (``::ffff:192.0.2.7``, from a dual-stack listener) as its IPv4 address; any other
    IPv6 address as its ``ipv6_prefix`` network (``2001:db8:1:2::/64``: one client commonly
    holds a whole /64), so that a client cannot dodge a limit by changing addresses in its
    prefix. A zone (``%eth0``) is dropped; a string that is no IP address stays as it is."""
    if ":" not in address:
        return address                  # IPv4 (or not an address): the fast path
    cdef dict cache = _SOURCE_KEYS.get(ipv6_prefix)
    if cache is None:
        cache = _SOURCE_KEYS[ipv6_prefix] = {}
    key = cache.get(address)
    if key is None:
        try:
            ip = ipaddress.IPv6Address(address.partition("%")[0])
        except ValueError:
            key = address
        else:
            if ip.ipv4_mapped is not None:
                key = str(ip.ipv4_mapped)
            else:
                key = str(ipaddress.IPv6Network((ip, ipv6_prefix), strict=False))
        if len(cache) >= SOURCE_KEYS_MAX:
            cache.clear()
        cache[address] = key
    return key


def now_ns() -> int:
    """CLOCK_MONOTONIC in nanoseconds (the table's clock; time.monotonic_ns() is the same)."""
    return gw_gcra_now()


cdef class Table:
    """At least ``slots`` slots (rounded up to a power of two of 8-slot buckets) in a
    MAP_SHARED anonymous mapping: made before fork(), every process shares the cells.
    ``seed``: the key hash seed (random by default)."""

    def __cinit__(self, Py_ssize_t slots, seed=None):
        cdef unsigned char[::1] view
        if slots < 1:
            raise ValueError("a table has at least 1 slot")
        cdef Py_ssize_t buckets = 1
        while buckets * GW_GCRA_WAYS < slots:
            buckets *= 2
        self.buckets = buckets
        self.mem = mmap.mmap(-1, gw_gcra_bytes(buckets))
        view = self.mem
        self.view = view
        self.base = <void *>&view[0]
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "little")
        gw_gcra_init(self.base, buckets, <uint64_t>seed)

    @property
    def slots(self) -> int:
        return self.buckets * GW_GCRA_WAYS

    @property
    def nbytes(self) -> int:
        return gw_gcra_bytes(self.buckets)

    def usage(self, int64_t now=-1):
        """(slots holding an active key, slots ever used) at ``now`` (ns; -1: now)."""
        cdef uint64_t active = 0, used = 0
        gw_gcra_usage(self.base, gw_gcra_now() if now < 0 else now, &active, &used)
        return active, used

    def limit(self, str name, double rate, double period, Py_ssize_t burst) -> Limit:
        """A Limit of ``rate`` requests per ``period`` seconds with ``burst`` on this table;
        its keys are its own (salted with ``name``)."""
        return Limit(self, name, rate, period, burst)


cdef class Limit:
    """One limit: emission interval T = period / rate, tolerance (burst - 1) * T. ``take``
    returns ``(admitted, remaining, reset_ns, retry_after_ns)``: remaining requests that
    would conform now, ns until the key's whole burst is back, ns until a request would
    conform (0 when admitted). ``overflows``: requests charged to this limit's overflow cell of
    a full bucket (gcra.h)."""

    def __cinit__(self, Table table, str name, double rate, double period, Py_ssize_t burst):
        if not rate > 0 or not period > 0:
            raise ValueError("rate and period must be more than 0")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.table, self.base, self.name, self.burst = table, table.base, name, burst
        cdef double interval = period * 1e9 / rate
        if not interval < GCRA_MAX_NS:            # also NaN: the cast below would be UB
            raise ValueError(f"rate limit {name!r}: emission interval {interval:.3g} ns is "
                             f"not below 2^62 ns")
        cdef int64_t T = max(1, <int64_t>(interval + 0.5))
        if burst > GCRA_MAX_NS // T:
            raise ValueError(f"rate limit {name!r}: burst {burst} * {T} ns is not below "
                             f"2^62 ns")
        self.T = T
        self.tau = (burst - 1) * self.T
        encoded = name.encode()
        self.salt = gw_gcra_hash(self.base, 0, PyBytes_AS_STRING(encoded),
                                 PyBytes_GET_SIZE(encoded))
        self.overflows = 0

    def take(self, object key, int64_t now=-1):
        cdef Py_ssize_t n = 0
        cdef const char *data = _key_data(key, &n)
        cdef gw_gcra_result r
        cdef uint64_t h = gw_gcra_hash(self.base, self.salt, data, n)
        cdef int ok = gw_gcra_take(self.base, self.salt, h, now, self.T, self.tau, &r)
        if r.flags & GW_GCRA_OVERFLOW:
            self.overflows += 1
        return (ok == 1, r.remaining, r.tat - r.now, r.retry_after)

    cdef int take_c(self, const char *data, Py_ssize_t n, int64_t *retry):
        """1 admitted, 0 refused (*retry: ns until a request would conform)."""
        cdef gw_gcra_result r
        cdef uint64_t h = gw_gcra_hash(self.base, self.salt, data, n)
        cdef int ok = gw_gcra_take(self.base, self.salt, h, -1, self.T, self.tau, &r)
        if r.flags & GW_GCRA_OVERFLOW:
            self.overflows += 1
        retry[0] = r.retry_after
        return ok

    def peek(self, object key) -> int:
        """The key's tat (ns), 0 when the table has none."""
        cdef Py_ssize_t n = 0
        cdef const char *data = _key_data(key, &n)
        return gw_gcra_peek(self.base, gw_gcra_hash(self.base, self.salt, data, n))


cdef class RouteLimits:
    """A route's local limits keyed by ``source_ip`` or ``route`` alone, which the proxy
    session checks itself before the route's filters (no request view, no Python call for an
    IPv4 client): ``limits`` (Limit objects), ``kinds`` (per limit ``s`` or ``r``),
    ``refusers`` (per limit, a callable of the retry time in ns returning the 429 Response),
    ``prefixes`` (per limit, the IPv6 prefix length of its ``source_ip`` keys, default 64:
    ``source_key``)."""

    def __init__(self, limits, str kinds, refusers, prefixes=None):
        self.limits = tuple(limits)
        self.kinds = kinds.encode()
        self.refusers = tuple(refusers)
        self.prefixes = tuple(prefixes) if prefixes is not None else (64,) * len(self.limits)
        if not len(self.limits) == len(self.kinds) == len(self.refusers) == len(
                self.prefixes) or not all(isinstance(x, Limit) for x in self.limits) or \
                self.kinds.strip(b"sr") or not all(0 <= p <= 128 for p in self.prefixes):
            raise ValueError("one kind (s or r), one refuser and one IPv6 prefix per Limit")

    cdef int check(self, str client, str route) except -2:
        """The index of the first limit that refuses (its retry time in ``retry``), or -1.
        ``client``: the client's address as the connection has it; keyed by ``source_key``
        (an IPv4-mapped address as IPv4, IPv6 by its prefix)."""
        cdef Py_ssize_t i, n
        cdef const char *data
        cdef Limit lim
        cdef str key
        cdef const unsigned char *kinds = self.kinds
        for i in range(len(self.limits)):
            lim = <Limit>self.limits[i]
            if kinds[i] == 115:
                key = source_key(client, <int>self.prefixes[i])
            else:
                key = route
            data = PyUnicode_AsUTF8AndSize(key, &n)
            if not lim.take_c(data, n, &self.retry):
                return i
        return -1

    def check_py(self, str client, str route):
        """``check`` from Python (tests): the refusing limit's 429 Response, or None."""
        cdef int i = self.check(client, route)
        return None if i < 0 else self.refusers[i](self.retry)
