"""Weighted splits between model versions (or canary clusters): per request or sticky per key.

``pick()`` is NGINX's smooth weighted round-robin (``ngx_http_upstream_get_peer`` in
src/http/ngx_http_upstream_round_robin.c; NGINX commit 27e94984, "Upstream: smooth weighted
round-robin balancing", whose example 5/1/1 gives a, a, b, a, c, a, a): every entry keeps a
current value; each pick adds every entry's weight to its current value, chooses the largest
(the first on a tie) and subtracts the sum of the weights from it. The sequence repeats every
``sum(weights)`` picks and each entry gets exactly its weight in every window of that length
(95/5: 9,500 and 500 in any 10,000 consecutive picks), with the minority spread out (95/5: one
in every 20) instead of bunched.

``pick_sticky(key)`` maps a key (a JWT claim, a header, the client address) to the same entry
for as long as the weights are unchanged, in every worker and across restarts: a seedless
64-bit BLAKE2b hash of the key, modulo the sum of the weights, falls into one entry's slice of
the cumulative weights. Over many distinct keys the shares follow the weights.

Zero-weight entries are never picked. The state is per instance and not locked (one per worker
event loop).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from hashlib import blake2b
from itertools import accumulate

__all__ = ["WeightedSplit"]


class WeightedSplit:
    """Indices into ``weights`` (non-negative ints, at least one above 0)."""

    __slots__ = ("_bounds", "_current", "_live", "_total", "weights")

    def __init__(self, weights: Sequence[int]) -> None:
        weights = tuple(weights)
        for w in weights:
            if not isinstance(w, int) or isinstance(w, bool) or w < 0:
                raise ValueError(f"weights must be non-negative ints, got {w!r}")
        total = sum(weights)
        if total == 0:
            raise ValueError("at least one weight must be above 0")
        self.weights = weights
        self._total = total
        # The entries that can be picked, as (index, weight); their current values.
        self._live = [(i, w) for i, w in enumerate(weights) if w > 0]
        self._current = [0] * len(self._live)
        # End of each entry's slice of [0, total); a zero weight has an empty slice.
        self._bounds = list(accumulate(weights))

    def pick(self) -> int:
        """The next index by smooth weighted round-robin."""
        current = self._current
        best = 0
        best_value = None
        for n, (_, w) in enumerate(self._live):
            value = current[n] + w
            current[n] = value
            if best_value is None or value > best_value:
                best, best_value = n, value
        current[best] -= self._total
        return self._live[best][0]

    def pick_sticky(self, key: bytes) -> int:
        """The index for ``key``: the same for the same key while the weights are unchanged."""
        h = int.from_bytes(blake2b(key, digest_size=8).digest(), "big")
        return bisect_right(self._bounds, h % self._total)
