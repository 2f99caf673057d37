"""Concurrency limits: places, the FIFO queue, its timeout, priority shedding, hand-over on
release (no place lost), a cancelled waiter leaving the queue, and route then cluster
limiters in one filter."""

from __future__ import annotations

import asyncio
import contextlib
import time

from gwcore.config import Concurrency
from gwcore.filters.base import Exchange, Response
from gwcore.http import parse_request
from gwcore.limits.concurrency import ConcurrencyFilter, Limiter


def ex() -> Exchange:
    return Exchange(parse_request(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"), None, "192.0.2.1")


def run(coro):
    return asyncio.run(coro)


def test_fifo_queue_and_hand_over() -> None:
    async def main() -> None:
        lim = Limiter("r", Concurrency(max=2, queue=2, queue_timeout=5.0))
        f = ConcurrencyFilter([lim], 0)
        a, b, c, d, e = ex(), ex(), ex(), ex(), ex()
        assert f.on_request(a) is None and f.on_request(b) is None
        wc, wd = f.on_request(c), f.on_request(d)
        tc, td = asyncio.ensure_future(wc), asyncio.ensure_future(wd)
        await asyncio.sleep(0)
        assert lim.queued == 2 and lim.in_flight == 2
        r = f.on_request(e)
        assert isinstance(r, Response) and r.status == 503 and lim.refused == 1
        f.on_log(a)                                  # a's place goes to c, first in line
        assert await tc is None and not td.done()
        assert lim.in_flight == 2 and lim.queued == 1
        f.on_log(b)
        assert await td is None
        for x in (c, d):
            f.on_log(x)
        f.on_log(e)                                  # refused: held nothing
        assert lim.in_flight == 0 and lim.queued == 0
    run(main())


def test_queue_timeout_and_cancel() -> None:
    async def main() -> None:
        lim = Limiter("r", Concurrency(max=1, queue=5, queue_timeout=0.05))
        f = ConcurrencyFilter([lim], 0)
        a, b, c = ex(), ex(), ex()
        assert f.on_request(a) is None
        r = await f.on_request(b)
        assert r.status == 503 and b"queued too long" in r.body and lim.timed_out == 1
        tc = asyncio.ensure_future(f.on_request(c))
        await asyncio.sleep(0)
        tc.cancel()                                  # the client went away
        await asyncio.gather(tc, return_exceptions=True)
        assert lim.queued == 0
        f.on_log(a)
        assert lim.in_flight == 0
    run(main())


def test_priority_order_and_shedding() -> None:
    async def main() -> None:
        lim = Limiter("c", Concurrency(max=1, queue=2, queue_timeout=5.0))
        low, high = ConcurrencyFilter([lim], 10), ConcurrencyFilter([lim], 0)
        first, l1, l2, h1, l3 = ex(), ex(), ex(), ex(), ex()
        assert low.on_request(first) is None
        t1 = asyncio.ensure_future(low.on_request(l1))
        t2 = asyncio.ensure_future(low.on_request(l2))
        await asyncio.sleep(0)
        th = asyncio.ensure_future(high.on_request(h1))   # full: sheds l2, the latest low
        await asyncio.sleep(0)
        assert (await t2).status == 503 and lim.shed == 1
        assert low.on_request(l3).status == 503           # not above the lowest waiting
        low.on_log(first)                                 # high goes first
        assert await th is None and not t1.done()
        high.on_log(h1)
        assert await t1 is None
        low.on_log(l1)
        assert lim.in_flight == 0
    run(main())


def test_route_then_cluster() -> None:
    async def main() -> None:
        route = Limiter("r", Concurrency(max=5))
        cluster = Limiter("c", Concurrency(max=1, queue=1, queue_timeout=5.0))
        f = ConcurrencyFilter([route, cluster], 0)
        a, b = ex(), ex()
        assert f.on_request(a) is None
        tb = asyncio.ensure_future(f.on_request(b))
        await asyncio.sleep(0)
        assert route.in_flight == 2 and cluster.queued == 1
        f.on_log(a)
        assert await tb is None
        f.on_log(b)
        assert route.in_flight == 0 and cluster.in_flight == 0
    run(main())


def test_a_place_handed_to_a_request_that_went_away_is_not_lost() -> None:
    """The session cancels a waiting request's filter task and runs its on_log at once; a
    place released before the cancellation reaches the task must not leak."""
    async def main() -> None:
        lim = Limiter("c", Concurrency(max=1, queue=1, queue_timeout=5.0))
        f = ConcurrencyFilter([lim], 0)
        a, b = ex(), ex()
        assert f.on_request(a) is None
        task = asyncio.ensure_future(f.on_request(b))
        await asyncio.sleep(0)
        task.cancel()               # b's client went away...
        f.on_log(b)                 # ...and its exchange ended, before the task saw it
        f.on_log(a)                 # a's place is released meanwhile
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert lim.in_flight == 0 and lim.queued == 0
        c = ex()
        assert f.on_request(c) is None      # the place is there
        f.on_log(c)
    run(main())


def test_shedding_by_signal_with_hysteresis() -> None:
    from gwcore.config import Shedding
    from gwcore.limits.concurrency import Shedder

    s = Shedder(Shedding(p99=0.1, max_in_flight=100, resume=0.5, step=1.0, samples=10),
                lowest=3)
    now = time.monotonic()          # admits() reads the clock itself
    s.update(0, now)
    assert s.level is None
    s.samples.extend([0.2] * 10)                    # p99 200 ms: twice the bound
    s.update(0, now + 0.5)
    assert s.level is None                          # not before a step has passed
    s.update(0, now + 1.0)
    assert s.level == 3                             # the least important level first
    s.update(0, now + 2.0)
    s.update(0, now + 3.0)
    assert s.level == 1
    s.update(0, now + 4.0)
    assert s.level == 1                             # priority 0 is never shed
    s.samples.extend([0.07] * 10)                   # under the bound, over resume × bound
    s.update(0, now + 5.0)
    assert s.level == 1                             # hysteresis: held
    s.samples.extend([0.01] * 10)
    for t, level in ((6.0, 2), (7.0, 3), (8.0, None)):
        s.update(0, now + t)
        assert s.level == level                     # one level back per step
    s.update(150, now + 9.0)                        # in-flight over its bound
    assert s.level == 3
    assert not s.admits(3, 150) and s.admits(2, 150) and s.shed == 1
