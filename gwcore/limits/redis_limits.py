"""Global rate limits (``scope: global``): GCRA with its state in Redis, shared by every
gateway that uses the same Redis (redis-py's asyncio client over hiredis).

One request is one round trip: ``EVALSHA`` of a Lua script (loaded once per Redis process by
redis-py's ``Script``: a Redis that restarted answers NOSCRIPT once and the script is loaded
again) that reads the key's theoretical arrival time, decides and writes it back atomically,
with Redis's own clock (``TIME``), so the gateways' clocks do not matter. Keys are
``gwcore:rl:<limit>:<key>`` and expire once their whole burst is back.

Redis unreachable, refusing, or slower than ``redis.timeout`` (default 50 ms): the request
waits at most that long (the round trip runs as a task that is abandoned, cancelled, at the
timeout; connects have the same bound), then the limit's ``on_error`` decides: ``allow`` lets
it through, ``deny`` answers 503 with ``Retry-After: 1``. Failures are counted
(``RedisLimits.errors``) and logged at most once per ``redis.log_interval``, with the count
since the last line.

``sync: 100ms`` (local batching): a key that Redis has just answered for may be admitted
locally, without a round trip, up to ``min(remaining, rate × sync)`` requests until the next
sync; the requests admitted that way are sent to Redis, summed per key, every ``sync`` (all keys'
round trips at once, at most half of the ``redis.max_connections`` pool in flight, the pass
bounded by max(sync, timeout)). The price: all hosts together may admit up to hosts × rate ×
sync more than the limit.

Each worker's connection pool is bounded (``redis.max_connections``, 32): when every
connection is busy, a request's round trip fails at once and its limit's ``on_error``
decides, as for any Redis failure.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

import redis.asyncio as aioredis

from gwcore.config import RateLimit, Redis
from gwcore.filters.base import Exchange, Response

log = logging.getLogger("gwcore")

# KEYS[1]: the key; ARGV: T and tau in microseconds, n requests, 1 to record them even if
# they do not conform (a batch already admitted locally). Returns {admitted, remaining,
# microseconds until the burst is whole, microseconds until n would conform}.
GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local T, tau, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new = tat + T * n
if new - now > tau + T and ARGV[4] ~= '1' then
  return {0, 0, tat - now, new - tau - T - now}
end
redis.call('SET', KEYS[1], string.format('%d', new), 'PX', math.ceil((new - now) / 1000) + 1)
return {1, math.max(0, math.floor((tau + T - (new - now)) / T)), new - now, 0}
"""

UNAVAILABLE = Response.error(503, "rate limit store unavailable", [(b"Retry-After", b"1")])


def _consume(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()            # retrieved: never "exception was never retrieved"


class RedisLimits:
    """A worker's connection to the Redis of its global limits (made on first use, in the
    worker's loop)."""

    def __init__(self, cfg: Redis) -> None:
        self.cfg = cfg
        self.errors = 0                 # round trips that failed or timed out (this worker)
        # no I/O here: connections are made by the first round trip, in the worker's loop
        # a bounded pool: when every connection is busy a round trip fails at once
        # (MaxConnectionsError) and the limit's on_error decides, instead of the worker
        # opening a connection per request waiting on a slow Redis
        self._client = aioredis.Redis.from_url(
            cfg.url, socket_timeout=cfg.timeout, socket_connect_timeout=cfg.timeout,
            retry_on_timeout=False, max_connections=cfg.max_connections)
        # flushes of sync batches use at most half the pool, the rest stays for requests
        self.flush_slots = asyncio.Semaphore(max(1, cfg.max_connections // 2))
        self._script = self._client.register_script(GCRA_LUA)
        self._last_log = -math.inf
        self._unlogged = 0

    def script(self) -> Any:
        return self._script

    def limit(self, name: str, spec: RateLimit) -> RemoteLimit:
        return RemoteLimit(self, name, spec)

    def check_for(self, policies: list[Any]) -> RemoteCheck:
        return RemoteCheck(self, policies)

    def failed(self, name: str, e: BaseException, limit: Any = None) -> None:
        self.errors += 1
        if limit is not None:
            limit.errors += 1
        self._unlogged += 1
        now = time.monotonic()
        if now - self._last_log >= self.cfg.log_interval:
            what = "timed out" if isinstance(e, TimeoutError) else f"{type(e).__name__}: {e}"
            log.error("rate limit %s: redis %s %s (%d failures since the last line, %d in "
                      "all)", name, self.cfg.url, what, self._unlogged, self.errors)
            self._last_log, self._unlogged = now, 0


class RemoteLimit:
    """One global limit: ``take(key, n)`` → (admitted, remaining, reset_ns, retry_ns)."""

    def __init__(self, owner: RedisLimits, name: str, spec: RateLimit) -> None:
        self.owner, self.name, self.spec = owner, name, spec
        self.T = max(1, round(spec.period * 1e6 / spec.requests))        # microseconds
        self.tau = (spec.burst_size - 1) * self.T
        self.prefix = f"gwcore:rl:{name}:".encode()
        self.sync = spec.sync
        self.errors = 0                 # failed or timed-out round trips of this limit
        self.local: dict[bytes, list[Any]] = {}   # key → [budget, pending, fresh until]
        self._flusher: asyncio.Task | None = None

    async def take(self, key: str | bytes, n: int = 1, record: bool = False
                   ) -> tuple[bool, int, int, int]:
        k = self.prefix + (key.encode() if isinstance(key, str) else key)
        call = asyncio.ensure_future(self.owner.script()(
            keys=[k], args=[self.T, self.tau, n, 1 if record else 0]))
        # not asyncio.timeout: that would also wait for the cancelled call to clean up (its
        # connection closing), so the wait would have no hard bound
        done, _ = await asyncio.wait((call,), timeout=self.owner.cfg.timeout)
        if not done:
            call.cancel()
            call.add_done_callback(_consume)
            raise TimeoutError
        ok, remaining, reset, retry = call.result()
        return bool(ok), int(remaining), int(reset) * 1000, int(retry) * 1000

    # -- local batching (sync) ---------------------------------------------------------

    def take_local(self, key: str | bytes) -> bool:
        """Admit from this worker's budget for key (sync only); False: ask Redis."""
        entry = self.local.get(key.encode() if isinstance(key, str) else key)
        if entry is None or entry[0] <= 0 or time.monotonic() > entry[2]:
            return False
        entry[0] -= 1
        entry[1] += 1
        return True

    def learn(self, key: str | bytes, remaining: int) -> None:
        """After a round trip: the budget this worker may spend until the next sync."""
        assert self.sync is not None
        k = key.encode() if isinstance(key, str) else key
        share = max(0, min(remaining, math.floor(self.spec.requests / self.spec.period
                                                 * self.sync)))
        entry = self.local.setdefault(k, [0, 0, 0.0])
        entry[0], entry[2] = share, time.monotonic() + self.sync
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        assert self.sync is not None
        while True:
            await asyncio.sleep(self.sync)
            await self.flush()

    async def flush(self) -> None:
        """Sends the requests admitted locally since the last flush, summed per key: every
        key's round trip at once (at most half the pool's connections in flight), the whole
        pass bounded by max(sync, redis timeout); a key whose round trip fails or is not done
        by then keeps its count for the next pass."""
        assert self.sync is not None
        now = time.monotonic()
        batch = []
        for k, entry in list(self.local.items()):
            pending, entry[1] = entry[1], 0
            if pending:
                batch.append((k, entry, pending))
            elif now > entry[2]:
                del self.local[k]
        if not batch:
            return
        tasks = [asyncio.ensure_future(self._flush_one(k, entry, pending))
                 for k, entry, pending in batch]
        try:
            _, late = await asyncio.wait(tasks,
                                         timeout=max(self.sync, self.owner.cfg.timeout))
        except asyncio.CancelledError:      # the flusher stops: so do its round trips
            for task in tasks:
                task.cancel()
            raise
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)        # each puts its count back (CancelledError)

    async def _flush_one(self, k: bytes, entry: list[Any], pending: int) -> None:
        try:
            async with self.owner.flush_slots:
                _, remaining, _, _ = await self.take(k, pending, record=True)
        except asyncio.CancelledError:
            entry[1] += pending
            return
        except Exception as e:      # noqa: BLE001 (counted, logged, retried)
            entry[1] += pending
            self.owner.failed(self.name, e, self)
            return
        self.learn(k, remaining)


class RemoteCheck:
    """The global limits of one route, checked after its local ones (RateLimitFilter)."""

    def __init__(self, owner: RedisLimits, policies: list[Any]) -> None:
        self.owner, self.policies = owner, policies

    def check(self, flt: Any, exchange: Exchange, best: Any) -> Any:
        todo = []
        for p in self.policies:
            key = p.key(exchange)
            if key is None:
                continue
            if p.limit.sync is not None and p.limit.take_local(key):
                continue
            todo.append((p, key))
        if not todo:
            if best is not None:
                exchange.state["rate_limit"] = best
            return None
        return self._ask(flt, exchange, best, todo)

    async def _ask(self, flt: Any, exchange: Exchange, best: Any,
                   todo: list[tuple[Any, str | bytes]]) -> Response | None:
        for p, key in todo:
            try:
                ok, remaining, reset, retry = await p.limit.take(key)
            except Exception as e:      # noqa: BLE001 (redis errors, OSError, TimeoutError)
                self.owner.failed(p.name, e, p.limit)
                if p.cfg.on_error == "deny":
                    return UNAVAILABLE
                continue
            if not ok:
                return flt.refuse(p, retry)
            if p.limit.sync is not None:
                p.limit.learn(key, remaining)
            if flt.always and (best is None or remaining < best[0]):
                best = (remaining, p, reset)
        if best is not None:
            exchange.state["rate_limit"] = best
        return None
