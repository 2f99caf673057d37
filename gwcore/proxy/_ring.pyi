"""Consistent hashing for upstream selection: ketama ring, Maglev table, bounded load.

Keys are ``str`` (hashed as UTF-8) or ``bytes`` (hashed as is). Node indices are positions in
``nodes``: ``add_node`` appends, ``remove_node`` shifts later indices down; in-flight counts and
availability follow their node. Objects are not thread-safe without the GIL.
"""

from collections.abc import Iterable, Mapping

DEFAULT_TABLE_SIZE: int  # 65537
MAX_NODES: int  # 65535

class RingBase:
    """Node bookkeeping, in-flight counts and availability shared by HashRing and Maglev."""

    def __len__(self) -> int: ...
    def __contains__(self, name: object) -> bool: ...
    @property
    def nodes(self) -> list[str]:
        """Node names in index order (a copy)."""
    @property
    def weights(self) -> dict[str, int]:
        """Node name -> weight."""
    def index(self, name: str) -> int:
        """Index of a node name; KeyError if absent."""
    def get_node(self, key: str | bytes, /) -> str | None:
        """Name of the node owning ``key`` among available nodes; None when the ring is empty
        or no node is available. TypeError for another key type."""
    def get_index(self, key: str | bytes, /) -> int:
        """Index of the node owning ``key``; -1 when empty or no node is available."""
    def get_node_bounded(self, key: str | bytes, /) -> str | None:
        """As get_node, skipping nodes at their bounded-load capacity (see balance_factor)."""
    def get_index_bounded(self, key: str | bytes, /) -> int:
        """As get_index, skipping nodes at their bounded-load capacity (see balance_factor)."""
    def range(self, key: str | bytes, n: int | None = None) -> list[str]:
        """Up to ``n`` (default: all) distinct available nodes for ``key`` in ring / table
        order, the owner first: the fallbacks for replication or retries. ValueError if n < 0."""
    def add_node(self, name: str, weight: int = 1) -> None:
        """Add a node at the end, or change the weight of an existing one (keeping its index),
        and rebuild. ValueError for a weight outside [1, 2**32 - 1]; TypeError for a non-str
        name."""
    def remove_node(self, name: str) -> None:
        """Remove a node and rebuild; later indices shift down by one. KeyError if absent."""
    @property
    def balance_factor(self) -> float | None:
        """Bounded-load factor c >= 1.0 (e.g. 1.25) in steps of 0.01, or None for no bound.

        A bounded pick skips node i while inflight_i >= c * (total + 1) * w_i / W, where total
        is the in-flight count over all nodes and W the total weight of the available nodes a
        lookup can reach; so after acquiring the pick, no node holds more than
        ceil(c x its weighted share of all in-flight requests). Mirrokni, Thorup, Zadimoghaddam,
        "Consistent Hashing with Bounded Loads" (SODA 2018); HAProxy hash-balance-factor.
        ValueError outside [1.0, 655.35] or off the 0.01 grid."""
    @balance_factor.setter
    def balance_factor(self, value: float | None) -> None: ...
    def acquire(self, index: int) -> None:
        """Count one more request in flight on node ``index``. IndexError if out of range."""
    def release(self, index: int) -> None:
        """Count one request fewer on node ``index``. IndexError if out of range; ValueError if
        it has none in flight."""
    def inflight(self, index: int) -> int:
        """Requests in flight on node ``index``. IndexError if out of range."""
    @property
    def total_inflight(self) -> int:
        """Requests in flight over all nodes."""
    def set_available(self, index: int, available: bool) -> None:
        """Mark node ``index`` available or not. Lookups skip an unavailable node
        deterministically: its keys go to the next available node in ring / table order and no
        other key moves. IndexError if out of range."""
    def is_available(self, index: int) -> bool:
        """Whether node ``index`` is available. IndexError if out of range."""

class HashRing(RingBase):
    """Ketama consistent-hash ring, bit-for-bit compatible with uhashring's
    ``HashRing(nodes, hash_fn="ketama")``.

    Node i owns floor(40 * len(nodes) * w_i / sum(w)) MD5 digests of "<name>-<k>", 4 points
    each; a key belongs to the first point above the first 32 bits (little-endian) of its MD5.
    Lookups are O(log points) and allocate nothing. TypeError for a non-str name; ValueError
    for duplicate names, weights outside [1, 2**32 - 1], more than MAX_NODES nodes, a bad
    balance_factor or hash_fn other than "ketama"; RuntimeError if libcrypto offers no MD5.
    """

    def __init__(
        self,
        nodes: Iterable[str] | Mapping[str, int] = (),
        weights: Mapping[str, int] | None = None,
        *,
        hash_fn: str = "ketama",
        balance_factor: float | None = None,
    ) -> None: ...
    def hash(self, key: str | bytes) -> int:
        """uhashring's ``hashi``: the little-endian first 32 bits of MD5(key bytes)."""
    def get_points(self) -> list[tuple[int, str]]:
        """(point, node name) in ascending order, one entry per distinct point."""

class Maglev(RingBase):
    """Maglev lookup table (Eisenbud et al., NSDI 2016, section 3.4), weighted.

    ``table_size`` must be a prime in [100 x len(nodes), 2**26]; by default 65537, or the
    smallest prime >= 100 x len(nodes) when larger, re-chosen when nodes change. Keys hash
    with XXH64 (seed 0). Lookups are O(1) and allocate nothing. Errors as for HashRing, plus
    ValueError for a table size that is not such a prime.
    """

    def __init__(
        self,
        nodes: Iterable[str] | Mapping[str, int] = (),
        weights: Mapping[str, int] | None = None,
        *,
        table_size: int | None = None,
        balance_factor: float | None = None,
    ) -> None: ...
    @property
    def table_size(self) -> int:
        """Number of slots M (a prime)."""
    def hash(self, key: str | bytes) -> int:
        """The 64-bit key hash: XXH64 with seed 0."""
    def slot_counts(self) -> dict[str, int]:
        """Node name -> slots owned (its share of keys is count / table_size)."""

def xxh64(data: str | bytes, seed: int = 0) -> int:
    """XXH64 (xxHash specification) of ``data`` (str as UTF-8) with a 64-bit seed."""
