"""Bounded in-process key -> value store with S3-FIFO or LRU eviction, entry and byte budgets
and per-entry TTL (cachetools' spirit: ``get``/``set``/``pop``, ``in``, ``len``, ``[]``).

Keys are any hashable (``str``, ``bytes``, ``int``, ...) with Python's dict equality (``1``,
``1.0`` and ``True`` are one key); their ``__hash__`` and ``__eq__`` must not change or raise
once stored. Values are any object, returned as stored (the same object, not a copy).

Budgets: ``max_entries`` bounds the number of entries; ``max_bytes`` bounds the sum of exactly
the ``size`` each ``set`` passed (the store adds nothing of its own: a caller that wants memory
bounded counts its own per-entry overhead in ``size``; about 400 bytes covers the store's entry,
index slot and ghost slot plus a path-sized key). With both, both hold after every call.

A hit allocates nothing: ``get``, ``[]`` and ``in`` on a present key create no Python object.
Not thread-safe beyond what the GIL gives: use one store per worker or lock around it.
"""

from collections.abc import Callable, Hashable
from typing import Any, Literal, TypeVar

_T = TypeVar("_T")

MAX_BYTES: int  # 2**62: the largest max_bytes, and the implicit byte budget without one

class Store:
    """A bounded key -> value store.

    ``policy="s3fifo"`` (the default) is S3-FIFO as Yang et al. give it (SOSP 2023): a small
    FIFO queue S of about 10% of the capacity that new keys enter, a main FIFO queue M with a
    2-bit frequency counter per entry (a hit adds one, up to 3, and moves nothing), and a ghost
    queue of the keys evicted from S (as many as M holds; 64-bit hashes, no values). A key found
    in the ghost enters M. Eviction takes from S while S holds its share: an entry hit more
    than once while in S moves to M, any other leaves (its key to the ghost); from M, an entry
    with a non-zero counter goes back to M's head with the counter minus one, one with zero
    leaves. One-hit keys (a scan) therefore pass through S without displacing M.
    ``policy="lru"`` evicts the least recently used entry (a hit or a replace makes an entry
    the most recently used).

    Expiry: ``set(..., ttl=seconds)`` gives an entry a lifetime on the monotonic clock
    (``time.monotonic``, or the ``timer`` given). An expired entry is never returned: the
    lookups that meet it remove it, eviction removes expired entries it meets before live
    ones, and ``expire()`` removes all of them. Removals of expired entries are counted as
    ``expirations``, not ``evictions``.
    """

    def __init__(
        self,
        max_entries: int | None = None,
        max_bytes: int | None = None,
        policy: Literal["s3fifo", "lru"] = "s3fifo",
        *,
        timer: Callable[[], float] | None = None,
    ) -> None:
        """``max_entries`` (>= 1) and/or ``max_bytes`` (1 to 2**62, in the unit of ``size``,
        normally bytes) bound the store; ``timer`` replaces the monotonic clock (seconds as a
        float; for tests and simulated time).

        ValueError: neither bound, a bound out of range, or a policy other than "s3fifo" and
        "lru". TypeError: a bound that is not an int, or a timer that is not callable.
        """
    def get(self, key: Hashable, default: _T | None = None) -> Any | _T | None:
        """The value stored for ``key``, or ``default`` if absent or expired (an expired entry
        is removed). A hit counts in ``hits``, anything else in ``misses``; a hit is an access
        (LRU: most recently used; S3-FIFO: counter + 1). TypeError for an unhashable key."""
    def __getitem__(self, key: Hashable) -> Any:
        """As ``get``, but KeyError when absent or expired."""
    def set(self, key: Hashable, value: object, size: int = 1, ttl: float | None = None) -> bool:
        """Store ``value`` under ``key``, evicting entries until it fits; True if stored.

        ``size``: the entry's share of ``max_bytes`` (an int >= 0; bytes, normally). ``ttl``:
        seconds until the entry expires (int or float), or None for never; ``math.inf`` is
        never too.

        Not stored, returning False (and nothing evicted for it), when ``size`` exceeds
        ``max_bytes`` (2**62 without one) or ``ttl <= 0``; a value already stored under
        ``key`` is then removed, since it must not outlive the replace that failed. Setting an
        existing key replaces its value, size and TTL in place and counts as an access; room
        is made without evicting the entry itself.

        ValueError: ``size < 0`` or a NaN ``ttl``. TypeError: a ``size`` that is not an int
        (floats included), a ``ttl`` that is not a number, an unhashable key."""
    def __setitem__(self, key: Hashable, value: object) -> None:
        """``set(key, value)``: size 1, no TTL."""
    def pop(self, key: Hashable, default: _T | None = None) -> Any | _T | None:
        """Remove ``key`` and return its value; ``default`` if absent or expired. Not counted
        in hits or misses."""
    def __delitem__(self, key: Hashable) -> None:
        """Remove ``key``; KeyError if absent or expired."""
    def __contains__(self, key: Hashable) -> bool:
        """True if ``key`` is stored and not expired (an expired entry is removed). Not an
        access and not counted in hits or misses."""
    def keys(self) -> list[Hashable]:
        """A snapshot list of the keys held now (expired ones included until they are met):
        for scans such as purges by prefix."""
    def __len__(self) -> int:
        """Entries held, expired ones not yet removed included (``expire()`` removes them)."""
    def clear(self) -> None:
        """Remove every entry and forget the ghost; the counters of ``stats()`` are kept."""
    def expire(self) -> int:
        """Remove every expired entry now (O(entries)); returns how many."""
    def stats(self) -> dict[str, int]:
        """Counters since construction: ``hits``, ``misses`` (get/[] only), ``evictions``
        (entries removed to make room), ``expirations`` (expired entries removed), and the
        current ``entries`` and ``bytes`` (sum of the sizes held, <= max_bytes)."""
    @property
    def max_entries(self) -> int | None:
        """The entry bound, or None."""
    @property
    def max_bytes(self) -> int | None:
        """The byte bound, or None."""
    @property
    def policy(self) -> str:
        """"s3fifo" or "lru"."""
    @property
    def bytes(self) -> int:
        """Sum of the sizes held (as ``stats()["bytes"]``)."""
    def _debug_queues(self) -> tuple[list[Any], list[Any], int]:
        """For tests: keys of S (LRU: the list) head to tail, keys of M head to tail, and the
        number of keys in the ghost."""
