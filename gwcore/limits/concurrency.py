"""Concurrency limits with a bounded queue and priority load shedding (``concurrency:`` on a
route or a cluster), per worker process.

A limiter admits at most ``max`` requests at once. Beyond that a request waits in the queue
— ordered by its route's ``priority`` (0 the most important, then 1, 2...), then by arrival —
for at most ``queue_timeout``, then gets ``503`` with ``Retry-After: 1``. A full queue sheds: a
request more important than the least important waiting one takes that one's place (which
gets the 503), any other is refused at once. A place is released when the exchange ends (``on_log``) and handed
straight to the first waiter, so none is lost between a release and a wake-up.

A route's concurrency filter runs after its cache lookup (a hit takes no place), taking the
route's limiter, then its cluster's (shared by every route to that cluster). Only a request
that has to wait makes ``on_request`` return an awaitable.

Load shedding (a cluster's ``shedding:``, ``Shedder``) watches a signal instead of a count:
the cluster's requests under way in this worker and the p99 of its last upstream times to
first byte. While the signal is over its bound, new requests of the least important routes
(the highest ``priority``) get 503 + Retry-After; every ``step`` it stays over, the next
priority level is shed too (never priority 0); once it is under ``resume`` × the bound, one
level comes back every ``step`` — hysteresis, so shedding neither flaps nor stops at once.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import itertools
import time
from typing import Any

from gwcore.config import Concurrency, Shedding
from gwcore.filters.base import Exchange, Response

QUEUE_FULL = Response.error(503, "too many requests under way", [(b"Retry-After", b"1")])
QUEUE_TIMEOUT = Response.error(503, "queued too long", [(b"Retry-After", b"1")])
SHED = Response.error(503, "shed for a request of higher priority", [(b"Retry-After", b"1")])
OVERLOAD = Response.error(503, "shed: the cluster is overloaded", [(b"Retry-After", b"1")])


class Shedder:
    """A cluster's load shedding in one worker (module docstring). ``level``: requests of
    routes with ``priority >= level`` are shed (None: none is); ``shed`` counts them."""

    def __init__(self, cfg: Shedding, lowest: int) -> None:
        self.cfg = cfg
        self.lowest = lowest                  # the least important priority of its routes
        self.samples: collections.deque[float] = collections.deque(maxlen=cfg.samples)
        self.level: int | None = None
        self.next_step = 0.0
        self.shed = 0

    def p99(self) -> float:
        if not self.samples:
            return 0.0
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    def signal(self, in_flight: int) -> float:
        """How far over its bounds the cluster is: the larger of in_flight / max_in_flight
        and p99 / p99 bound (≥ 1: over)."""
        over = 0.0
        if self.cfg.max_in_flight is not None:
            over = in_flight / self.cfg.max_in_flight
        if self.cfg.p99 is not None:
            over = max(over, self.p99() / self.cfg.p99)
        return over

    def update(self, in_flight: int, now: float) -> None:
        """At most once a ``step``: shed one more level, or give one back."""
        if now < self.next_step:
            return
        self.next_step = now + self.cfg.step
        over = self.signal(in_flight)
        if over >= 1.0:
            if self.level is None:
                self.level = self.lowest if self.lowest > 0 else None
            elif self.level > 1:
                self.level -= 1
        elif over < self.cfg.resume and self.level is not None:
            self.level = self.level + 1 if self.level < self.lowest else None

    def admits(self, priority: int, in_flight: int) -> bool:
        self.update(in_flight, time.monotonic())
        if self.level is not None and priority >= self.level:
            self.shed += 1
            return False
        return True

    def observe(self, exchange: Exchange) -> None:
        if exchange.t_response and exchange.t_upstream:
            self.samples.append((exchange.t_response - exchange.t_upstream) / 1e9)


class Limiter:
    """One concurrency limit. ``in_flight``, ``queued`` (now); ``refused``, ``shed``,
    ``timed_out`` (counts, this worker)."""

    def __init__(self, name: str, cfg: Concurrency) -> None:
        self.name, self.max, self.queue_max = name, cfg.max, cfg.queue
        self.queue_timeout = cfg.queue_timeout
        self.in_flight = 0
        self.waiters: list[tuple[int, int, asyncio.Future, Exchange]] = []   # sorted
        self._seq = itertools.count()
        self.refused = self.shed = self.timed_out = 0

    @property
    def queued(self) -> int:
        return len(self.waiters)

    def _grant(self, exchange: Exchange) -> None:
        self.in_flight += 1
        held = exchange.state.get("concurrency")
        if held is None:
            exchange.state["concurrency"] = [self]
        else:
            held.append(self)

    def acquire(self, exchange: Exchange, priority: int) -> Any:
        """None (a place taken), a Response (refused), or an awaitable of either."""
        if self.in_flight < self.max and not self.waiters:
            self._grant(exchange)
            return None
        if len(self.waiters) >= self.queue_max:
            if not self.waiters or self.waiters[-1][0] <= priority:
                self.refused += 1
                return QUEUE_FULL
            _, _, fut, _ = self.waiters.pop()          # the least important, latest arrival
            self.shed += 1
            fut.set_result(SHED)
        fut = asyncio.get_running_loop().create_future()
        entry = (priority, next(self._seq), fut, exchange)
        bisect.insort(self.waiters, entry, key=lambda e: (e[0], e[1]))
        return self._wait(entry)

    async def _wait(self, entry: tuple[int, int, asyncio.Future, Exchange]) -> Response | None:
        fut = entry[2]
        try:
            done, _ = await asyncio.wait((fut,), timeout=self.queue_timeout)
        except asyncio.CancelledError:
            # the request went away (client gone, filter timeout) after a place was handed
            # to it but before it could see it: give the place back now
            if fut.done() and not fut.cancelled() and fut.result() is None:
                self._ungrant(entry[3])
            raise
        finally:
            if not fut.done():                          # timed out, or the task cancelled
                self.waiters.remove(entry)
                fut.cancel()
        if not done:
            self.timed_out += 1
            return QUEUE_TIMEOUT
        return fut.result()

    def _ungrant(self, exchange: Exchange) -> None:
        held = exchange.state.get("concurrency")
        if held and self in held:
            held.remove(self)
            self.release()

    def release(self) -> None:
        """An exchange holding a place ended: the place goes to the first waiter (not to
        one whose exchange already ended: its wait is being cancelled)."""
        while self.waiters:
            _, _, fut, exchange = self.waiters.pop(0)
            if exchange.state.get("concurrency_ended"):
                fut.cancel()
                continue
            if not fut.done():
                self._grant(exchange)
                fut.set_result(None)
                self.in_flight -= 1                    # handed over: the count is unchanged
                return
        self.in_flight -= 1


class ConcurrencyFilter:
    """A route's concurrency limits (its own, then its cluster's) at its priority, and its
    cluster's load shedding (``shedder``, or None)."""

    def __init__(self, limiters: list[Limiter], priority: int,
                 shedder: Shedder | None = None) -> None:
        self.limiters, self.priority, self.shedder = limiters, priority, shedder

    def on_request(self, exchange: Exchange) -> Any:
        if self.shedder is not None and not self.shedder.admits(
                self.priority, exchange.cluster.in_flight if exchange.cluster else 0):
            return OVERLOAD
        for i, limiter in enumerate(self.limiters):
            got = limiter.acquire(exchange, self.priority)
            if got is None:
                continue
            if isinstance(got, Response):
                return got
            return self._rest(got, i + 1, exchange)
        return None

    async def _rest(self, waiting: Any, start: int, exchange: Exchange) -> Response | None:
        got = await waiting
        if got is not None:
            return got
        for limiter in self.limiters[start:]:
            got = limiter.acquire(exchange, self.priority)
            if got is not None and not isinstance(got, Response):
                got = await got
            if got is not None:
                return got
        return None

    def on_log(self, exchange: Exchange) -> None:
        if self.shedder is not None:
            self.shedder.observe(exchange)
        state = exchange.state
        state["concurrency_ended"] = True       # a place handed to it now is not taken
        for limiter in state.pop("concurrency", None) or ():
            limiter.release()
