"""Load-balancing policies over one cluster's endpoints, by index 0..n-1. A pick allocates
nothing. The proxy engine calls the C-level ``pick``/``acquire``/``release``; ``choose``,
``begin`` and ``end`` are their Python entries (tests, benchmarks).

Policies:

- ``round_robin``: smooth weighted round robin as in NGINX (ngx_http_upstream_round_robin):
  on every pick each eligible endpoint's credit grows by its weight, the highest credit wins
  (ties: the lowest index) and is charged the total weight of the eligible endpoints. Over
  sum(w) picks endpoint i gets exactly w_i, interleaved (5, 1, 1 gives a a b a c a a).
- ``least_request``: power of two random choices (Mitzenmacher, "The Power of Two Choices in
  Randomized Load Balancing", IEEE TPDS 2001; Envoy's default policy): two distinct eligible
  endpoints are drawn uniformly, and the one with fewer exchanges in flight per unit of weight,
  counting the request being placed, wins ((in_flight + 1) / weight; ties: the first draw), so
  heavier endpoints also win more often while nothing is in flight.
- ``random``: weighted random (xorshift64*, not for anything secret).
- ``ring_hash``: ketama continuum over the endpoint names (gwcore.proxy._ring.HashRing,
  uhashring-compatible); ``maglev``: Maglev lookup table (Eisenbud et al., NSDI 2016, §3.4;
  gwcore.proxy._ring.Maglev). Both optionally with bounded load (Mirrokni, Thorup,
  Zadimoghaddam, SODA 2018). An unavailable endpoint's keys go to the next available node in
  ring / table order, so keys owned by available endpoints never move. Without a key they
  pick as ``random``.

Eligible: available (``set_up``) and not the ``exclude`` index of the pick. When no endpoint
is eligible, availability is ignored (Envoy's panic mode: sending to a possibly unhealthy
endpoint beats failing every request); in panic a hash policy picks as ``random`` rather than
by key. Not thread-safe; one Balancer per cluster per worker.
"""

_POLICIES: dict[str, int]  # policy name -> Balancer.policy code

class Balancer:
    """Picks endpoint indexes 0..n-1 for one cluster in one worker."""

    def __init__(
        self,
        policy: str,
        names: list[str],
        weights: list[int],
        balance_factor: float | None = None,
        table_size: int | None = None,
        seed: int = 0x9E3779B97F4A7C15,
    ) -> None:
        """``policy``: ``"round_robin"``, ``"least_request"``, ``"random"``, ``"ring_hash"`` or
        ``"maglev"``. ``names``: endpoint names, e.g. ``"10.0.0.1:80"`` (only hash policies
        use them: they are what the ring hashes). ``weights``: one int >= 1 per name.
        ``balance_factor``: bounded-load factor c >= 1.0 for hash policies (None: no bound;
        ignored by other policies). ``table_size``: Maglev table size, a prime (None: the
        default; ignored by other policies). ``seed``: 64-bit seed of the random draws (made
        odd).

        ValueError: unknown policy; ``names`` empty or not as long as ``weights``; a weight
        < 1; for hash policies also what HashRing / Maglev reject (weight above 2**32 - 1,
        bad balance_factor or table_size). TypeError / OverflowError: a weight that is not an
        int or does not fit a C long, a seed outside [0, 2**64). MemoryError. ValueError
        when two names are equal."""
    @property
    def policy(self) -> int:
        """Policy code: 0 round_robin, 1 least_request, 2 random, 3 ring_hash, 4 maglev."""
    @property
    def n(self) -> int:
        """Number of endpoints."""
    def set_up(self, i: int, up: bool) -> None:
        """Mark endpoint ``i`` available (healthy and not ejected) or not; for hash policies
        also on the ring. IndexError if ``i`` is not in range(n)."""
    def is_up(self, i: int) -> bool:
        """Whether endpoint ``i`` is available. ``i`` must be in range(n): it is not checked."""
    def in_flight(self, i: int) -> int:
        """Exchanges under way on endpoint ``i`` (begin minus end). ``i`` must be in range(n):
        it is not checked."""
    def choose(self, key: bytes | None = None, exclude: int = -1) -> int:
        """Python entry to the pick: an endpoint index other than ``exclude`` (-1: none
        excluded), or -1 when there is no other endpoint. ``key``: the hash key (bytes, as
        hashed) for ring_hash / maglev; None picks at random; other policies ignore it.
        With a key, the owner among available endpoints (skipping endpoints at their bounded
        load); when the owner is ``exclude``, the next available endpoint in ring / table
        order (without the load bound). TypeError if key is neither bytes nor None."""
    def begin(self, i: int) -> None:
        """Count one more exchange in flight on endpoint ``i`` (Python entry to acquire;
        with a balance_factor also on the ring's bounded-load counts). ``i`` must be in
        range(n): it is not checked."""
    def end(self, i: int) -> None:
        """Count one exchange fewer on endpoint ``i`` (Python entry to release); nothing
        happens when none is in flight. ``i`` must be in range(n): it is not checked."""
