"""Miss ratios of gwcore's Store (s3fifo, lru) and of a reference S3-FIFO on Zipf traces.

The traces are generated here: 1,000,000 requests over 100,000 keys whose popularity follows
Zipf's law with exponent alpha (key of rank r is requested with probability proportional to
r ** -alpha), drawn independently with a fixed seed by inverse-CDF sampling
(``random.choices`` with cumulative weights), for alpha 0.8 and 1.0; the cache holds 1% or 10%
of the keys (1,000 or 10,000 entries). A request is a ``get``; a miss is followed by a ``set``.

``S3FIFOReference`` is Algorithm 1 of Yang et al., "FIFO queues are all you need for cache
eviction" (SOSP 2023), written from the paper as plainly as possible and kept out of the
product: the yardstick for gwcore's S3-FIFO (the target is within 0.5 percentage point).

    PYTHONPATH=. python bench/micro/cache_miss_ratio.py          # prints the table (~15 s)
"""

from __future__ import annotations

import itertools
import random
import sys
import time
from collections import OrderedDict, deque

from gwcore.cache import Store

N_KEYS = 100_000
N_REQUESTS = 1_000_000
ALPHAS = (0.8, 1.0)
CACHE_FRACTIONS = (0.01, 0.10)
SEED = 20231023  # SOSP 2023's first day


def zipf_trace(alpha: float, n_keys: int = N_KEYS, n_requests: int = N_REQUESTS,
               seed: int = SEED) -> list[int]:
    """Keys 0..n_keys-1 (key k has rank k + 1), n_requests independent Zipf(alpha) draws."""
    cum = list(itertools.accumulate(r**-alpha for r in range(1, n_keys + 1)))
    return random.Random(seed).choices(range(n_keys), cum_weights=cum, k=n_requests)


class S3FIFOReference:
    """S3-FIFO as Algorithm 1 of the paper gives it, for unit-size objects.

    S is 10% of the cache size, M the rest, G remembers as many keys as M holds. READ: a hit
    raises freq by one, capped at 3; a miss inserts. INSERT: evict while the cache is full, then
    put the key at M's head if G holds it (it leaves G), else at S's head, with freq 0. EVICT:
    from S if S holds at least 10% of the cache size, else from M. EVICTS: until one object
    leaves, take S's tail: freq > 1 moves it to M (freq cleared; then, if M is full, EVICTM),
    else it goes to G and leaves. EVICTM: until one object leaves, take M's tail: freq > 0 puts
    it back at M's head with freq - 1, else it leaves.

    ``gwcore_schedule=True`` changes two scheduling details to those gwcore (and libCacheSim's
    S3FIFO) use: a move from S into a full M evicts nothing from M at once (the next evictions
    do, S being under its share), and a missed key is looked up in G before evicting, not
    after. The tests compare gwcore's Store with that variant request by request.
    """

    def __init__(self, size: int, gwcore_schedule: bool = False) -> None:
        self.gwcore_schedule = gwcore_schedule
        self.size = size
        self.s_cap = max(1, size // 10)
        self.m_cap = size - self.s_cap
        self.small: deque = deque()  # left = head (newest), right = tail
        self.main: deque = deque()
        self.ghost: OrderedDict = OrderedDict()  # first = oldest
        self.freq: dict = {}  # key -> freq for keys in S or M

    def read(self, key) -> bool:
        """True on a hit; on a miss the key is inserted."""
        f = self.freq.get(key)
        if f is not None:
            if f < 3:
                self.freq[key] = f + 1
            return True
        self._insert(key)
        return False

    def _insert(self, key) -> None:
        in_ghost = self.gwcore_schedule and self.ghost.pop(key, False) is None
        while len(self.small) + len(self.main) >= self.size:
            self._evict()
        if in_ghost or key in self.ghost:
            self.ghost.pop(key, None)
            self.main.appendleft(key)
        else:
            self.small.appendleft(key)
        self.freq[key] = 0

    def _evict(self) -> None:
        if len(self.small) >= self.s_cap:
            self._evict_small()
        else:
            self._evict_main()

    def _evict_small(self) -> None:
        while self.small:
            t = self.small.pop()
            if self.freq[t] > 1:
                self.freq[t] = 0
                self.main.appendleft(t)
                if len(self.main) >= self.m_cap and not self.gwcore_schedule:
                    self._evict_main()
            else:
                del self.freq[t]
                self.ghost[t] = None
                if len(self.ghost) > self.m_cap:
                    self.ghost.popitem(last=False)
                return

    def _evict_main(self) -> None:
        while self.main:
            t = self.main.pop()
            f = self.freq[t]
            if f > 0:
                self.freq[t] = f - 1
                self.main.appendleft(t)
            else:
                del self.freq[t]
                return


def misses_store(store: Store, trace: list) -> int:
    get, put = store.get, store.set
    misses = 0
    for key in trace:
        if get(key) is None:
            misses += 1
            put(key, True)
    return misses


def misses_reference(size: int, trace: list) -> int:
    read = S3FIFOReference(size).read
    return sum(1 for key in trace if not read(key))


def miss_ratios(alpha: float, fraction: float, trace: list | None = None,
                n_keys: int = N_KEYS) -> dict[str, float]:
    """Miss ratio of each policy on one trace: {'s3fifo', 's3fifo_reference', 'lru'}."""
    trace = zipf_trace(alpha, n_keys) if trace is None else trace
    size = round(n_keys * fraction)
    n = len(trace)
    return {
        "s3fifo": misses_store(Store(max_entries=size), trace) / n,
        "s3fifo_reference": misses_reference(size, trace) / n,
        "lru": misses_store(Store(max_entries=size, policy="lru"), trace) / n,
    }


def main() -> int:
    print(f"Zipf traces: {N_REQUESTS:,} requests over {N_KEYS:,} keys, seed {SEED}")
    print(f"{'alpha':>5} {'cache':>6} | {'s3fifo (gwcore)':>15} {'s3fifo (paper)':>14} "
          f"{'lru (gwcore)':>12} | {'gw - paper':>10} {'lru - gw':>9}")
    ok = True
    start = time.perf_counter()
    for alpha in ALPHAS:
        trace = zipf_trace(alpha)
        for fraction in CACHE_FRACTIONS:
            r = miss_ratios(alpha, fraction, trace)
            gap = (r["s3fifo"] - r["s3fifo_reference"]) * 100
            win = (r["lru"] - r["s3fifo"]) * 100
            ok &= win > 0 and abs(gap) <= 0.5
            print(f"{alpha:5.1f} {fraction:6.0%} | {r['s3fifo']:15.2%} "
                  f"{r['s3fifo_reference']:14.2%} {r['lru']:12.2%} | {gap:+8.2f}pp "
                  f"{win:+7.2f}pp")
    print(f"({time.perf_counter() - start:.1f} s) targets "
          f"{'met' if ok else 'NOT met'}: s3fifo below lru, within 0.5 pp of the paper's")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
