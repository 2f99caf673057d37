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
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from typing import Any

from gwcore.config import Concurrency
from gwcore.filters.base import Exchange, Response

QUEUE_FULL = Response.error(503, "too many requests under way", [(b"Retry-After", b"1")])
QUEUE_TIMEOUT = Response.error(503, "queued too long", [(b"Retry-After", b"1")])
SHED = Response.error(503, "shed for a request of higher priority", [(b"Retry-After", b"1")])


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
    """A route's concurrency limits (its own, then its cluster's) at its priority."""

    def __init__(self, limiters: list[Limiter], priority: int) -> None:
        self.limiters, self.priority = limiters, priority

    def on_request(self, exchange: Exchange) -> Any:
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
        state = exchange.state
        state["concurrency_ended"] = True       # a place handed to it now is not taken
        for limiter in state.pop("concurrency", None) or ():
            limiter.release()
