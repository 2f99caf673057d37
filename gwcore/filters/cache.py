"""The edge cache: RFC 9111 caching as a built-in filter (a route's ``cache: {...}``), over the
worker's compiled store (gwcore.cache.Store, sized by the top-level ``cache:``).

Per request, in the route's ``on_request`` (after JWT, before user filters):

- GET and HEAD only (HEAD is answered from a GET's entry); any other method bypasses the cache
  (``BYPASS``), and a successful unsafe one (POST, PUT, DELETE, PATCH) invalidates the stored
  responses of its target (RFC 9111 §4.4). A request ``Cache-Control: no-store`` bypasses too.
- The key is what goes upstream: the authority (Host, or an absolute-form target's), the path
  as forwarded (as received, or normalised with ``forward_normalized_path``), the query as the
  route's ``key`` says (parameters kept or dropped by name, compared byte-wise, the rest in
  sorted order), named request fields, a verified JWT claim; the response's ``Vary`` fields
  then select one of the stored variants (``Vary: *`` is never served).
- A fresh entry is a ``HIT``: answered at once, with ``Age``; a conditional request whose
  validators match a 2xx entry gets 304. A large body goes out as memoryview slices of the
  stored bytes, with back-pressure, never copied per hit.
- A stale entry within its ``stale-while-revalidate`` window is answered at once
  (``UPDATING``) while exactly one background request refreshes it. Otherwise it is
  revalidated first, with its validators, one request per key at a time whatever the number
  of clients asking: 304 refreshes it (``REVALIDATED``), a new response replaces it
  (``MISS``); when the origin fails (no connection, 5xx, ``revalidate_timeout``) within the
  entry's ``stale-if-error`` window the stale entry is served (``STALE``). A client's
  ``no-cache`` or ``max-age=0`` forces that revalidation with ``client_no_cache: honour``.
  Revalidations and refreshes are the cache's own requests to an endpoint of the route's
  cluster, with the fields the proxy would send (hop-by-hop and conditional fields out, the
  filters' changes applied, X-Forwarded-*, Via and a request id set, ``Connection: close``); a
  new representation over ``max_object_bytes`` drops the entry and the request is proxied.
- A miss goes upstream through the proxy. Concurrent misses of one key in one worker are
  coalesced: the first goes upstream; the others wait (at most ``lock_timeout``) for its
  response head and are served from it as it streams (a body of unknown length: once it is
  whole), or go upstream themselves if it is not storable — and for the next 10 s misses of
  that key go straight upstream. Workers coalesce each on their own: at most one upstream
  request per key per worker at a time.
- Stored per §3 (status understood, no ``no-store``/``private``, ``Authorization`` only as
  §3.5 allows, no ``Set-Cookie`` unless ``store_set_cookie``, explicit freshness or a
  heuristic §4.2.2 allows, or the route's ``default_ttl``), when its body is at most
  ``max_object_bytes``: a larger one streams through uncached, and the store never holds a
  partial body. A purge or an invalidation while a response is on its way keeps it out.

The outcome is in the response's status field (``X-Cache`` by default) and in
``Exchange.cache`` for logs and metrics.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

from gwcore.cache import Store
from gwcore.cache import http_cache as hc
from gwcore.cache.purge import matches
from gwcore.config import CacheSettings, RouteCache
from gwcore.filters.base import Exchange, Fields, Response
from gwcore.http import ChunkedDecoder, ParseError, parse_response
from gwcore.proxy._router import split_absolute

log = logging.getLogger("gwcore")

ENTRY_OVERHEAD = 512          # bytes accounted per stored response besides body and fields
SLICE = 256 << 10             # a large cached body is written in slices of this
PASS_TTL = 10.0               # seconds a key whose response was not storable is not coalesced
MAX_PASSES = 10000
UNSAFE = frozenset((b"POST", b"PUT", b"DELETE", b"PATCH"))
_HOP = frozenset((b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer",
                  b"upgrade", b"proxy-connection", b"proxy-authorization",
                  b"proxy-authenticate"))
# fields never stored: connection-specific, framing, and what the cache computes itself
_NOT_STORED = _HOP | frozenset((b"content-length", b"age"))
# fields a 304 carries (RFC 9110 §15.4.5), besides Age and the cache's status field
_IN_304 = frozenset((b"cache-control", b"content-location", b"date", b"etag", b"expires",
                     b"vary", b"last-modified", b"age"))
# request fields the cache's own requests never copy (the proxy drops or sets them too)
_NOT_FORWARDED = _HOP | frozenset((
    b"content-length", b"host", b"expect", b"if-none-match", b"if-modified-since", b"if-match",
    b"if-unmodified-since", b"if-range", b"range", b"x-forwarded-for", b"x-forwarded-proto",
    b"x-forwarded-host", b"x-request-id", b"via"))


class TooLarge(Exception):
    """A response body over max_object_bytes (the cache's own request gives up on it)."""


class FetchError(Exception):
    """The cache's own upstream request failed (no connection, timeout, bad response)."""


class CacheRuntime:
    """A worker's cache: the store (``cache:`` settings), the misses and revalidations under
    way, the keys recently not storable, and an epoch that purges and invalidations advance
    (a response fetched across one is not stored)."""

    def __init__(self, settings: CacheSettings) -> None:
        self.store = Store(max_bytes=settings.max_bytes, policy=settings.policy)
        self.max_object = settings.max_object_bytes
        self.fills: dict[bytes, Fill] = {}
        self.revalidations: dict[bytes, asyncio.Task[Any]] = {}
        self.refreshing: set[bytes] = set()
        self.passes: dict[bytes, float] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.epoch = 0

    def purge(self, kind: int, url: bytes) -> int:
        """Removes the stored responses whose URL is ``url`` (or starts with it: gwcore.cache
        .purge.PREFIX); responses on their way are not stored. Returns how many keys went."""
        self.epoch += 1
        removed = 0
        for key in self.store.keys():      # noqa: SIM118 (a snapshot list: we pop)
            if matches(key, kind, url) and self.store.pop(key, None) is not None:
                removed += 1
        return removed

    def invalidate(self, key: bytes) -> None:
        self.epoch += 1
        self.store.pop(key, None)

    def not_storable(self, key: bytes) -> None:
        if len(self.passes) >= MAX_PASSES:
            self.passes.clear()
        self.passes[key] = time.monotonic() + PASS_TTL

    def passing(self, key: bytes) -> bool:
        until = self.passes.get(key)
        if until is None:
            return False
        if until < time.monotonic():
            del self.passes[key]
            return False
        return True


class Entry:
    """One stored response: status, fields (without framing ones), body, freshness, and the
    request fields it varies on."""

    __slots__ = ("body", "headers", "meta", "size", "status", "vary")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes,
                 meta: hc.Stored, vary: tuple[bytes, ...]) -> None:
        self.status, self.headers, self.body, self.meta = status, headers, body, meta
        self.vary = vary
        self.size = len(body) + sum(len(n) + len(v) for n, v in headers) + ENTRY_OVERHEAD


class Variants:
    """The stored responses of one primary key, by the values of the fields they vary on."""

    __slots__ = ("entries", "names")

    def __init__(self, names: tuple[bytes, ...]) -> None:
        self.names = names
        self.entries: dict[tuple[bytes, ...], Entry] = {}

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries.values()) + ENTRY_OVERHEAD


class Fill:
    """A miss under way: the first request's response, which the concurrent ones for the same
    key are served from as it arrives."""

    def __init__(self, key: bytes, fields: list[tuple[bytes, bytes]], epoch: int) -> None:
        loop = asyncio.get_running_loop()
        self.key = key
        self.fields = fields                # the leader's request fields, lower-case names
        self.epoch = epoch
        self.head: asyncio.Future[bool] = loop.create_future()
        self.ended: asyncio.Future[bool] = loop.create_future()
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.meta: hc.Stored | None = None
        self.vary: tuple[bytes, ...] = ()
        self.length: int | None = None      # the body's announced length
        self.chunks: list[bytes] = []
        self.size = 0
        self.done = False
        self.failed = False
        self.changed: asyncio.Future[None] | None = None

    def accept(self, status: int, headers: list[tuple[bytes, bytes]], meta: hc.Stored,
               vary: tuple[bytes, ...], length: int | None) -> None:
        self.status, self.headers, self.meta, self.vary = status, headers, meta, vary
        self.length = length
        if not self.head.done():
            self.head.set_result(True)

    def _wake(self) -> None:
        if self.changed is not None and not self.changed.done():
            self.changed.set_result(None)
        self.changed = None

    def append(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self.size += len(chunk)
        self._wake()

    def finish(self, ok: bool) -> None:
        self.done, self.failed = True, not ok
        if not self.head.done():
            self.head.set_result(False)
        if not self.ended.done():
            self.ended.set_result(ok)
        self._wake()

    async def stream(self) -> AsyncIterator[bytes]:
        """The body for a coalesced request, as the leader receives it; raises if the
        leader's response was cut (the gateway then cuts this one too: never a partial body
        passed off as whole)."""
        i = 0
        while True:
            while i < len(self.chunks):
                yield self.chunks[i]
                i += 1
            if self.done:
                if self.failed:
                    raise ConnectionError("the coalesced upstream response was cut")
                return
            if self.changed is None:
                self.changed = asyncio.get_running_loop().create_future()
            await self.changed


def _slices(body: bytes) -> Iterator[memoryview]:
    view = memoryview(body)
    for i in range(0, len(body), SLICE):
        yield view[i:i + SLICE]


def _response(status: int, items: list[tuple[bytes, bytes]], body: Any) -> Response:
    """A Response over fields known to be valid (stored from the parser, or ours): no
    per-field check on the hit path."""
    response = Response.__new__(Response)
    fields = Fields.__new__(Fields)
    fields.items = items
    response.status, response.headers, response.body = status, fields, body
    return response


def _param_name(pair: bytes) -> bytes:
    return unquote_to_bytes(pair.split(b"=", 1)[0].replace(b"+", b" ")).lower()


class CacheFilter:
    """The cache of one route (``RouteCache``) over the worker's ``CacheRuntime``."""

    def __init__(self, cfg: RouteCache, rt: CacheRuntime) -> None:
        self.cfg = cfg
        self.rt = rt
        self.header = cfg.status_header.encode()
        self.header_low = self.header.lower()
        self.honour = cfg.client_no_cache == "honour"
        self.keep = ({k.lower().encode() for k in cfg.key.keep_query}
                     if cfg.key.keep_query is not None else None)
        self.drop = {k.lower().encode() for k in cfg.key.drop_query}
        self.fields = [f.lower().encode() for f in cfg.key.fields]
        self.turn = itertools.count()

    # -- the key ---------------------------------------------------------------------------

    def key(self, ex: Exchange) -> bytes | None:
        """The primary key (module docstring), or None when the request cannot be cached
        (no JWT claim to key on)."""
        req = ex.request
        target, host = ex.target, req.header(b"host") or b""
        if target[:1] != b"/":
            target, host = split_absolute(target, host)     # as the proxy forwards it
        path, _, query = target.partition(b"?")
        if ex.route is not None and ex.route.forward_normalized_path:
            path = ex.path
        if self.cfg.key.query == "none":
            query = b""
        elif query and (self.keep is not None or self.drop):
            query = b"&".join(sorted(
                p for p in query.split(b"&") if p
                and (self.keep is None or _param_name(p) in self.keep)
                and _param_name(p) not in self.drop))
        parts = [b"http://", host.lower(), path, b"?", query]
        for name in self.fields:
            parts += [b"\n", name, b":", req.header(name) or b""]
        if self.cfg.key.jwt_claim is not None:
            claims = ex.state.get("jwt_claims")
            value = claims.get(self.cfg.key.jwt_claim) if claims else None
            if value is None:
                return None
            parts += [b"\njwt:", str(value).encode()]
        return b"".join(parts)

    @staticmethod
    def values(fields: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
        return [v for n, v in fields if n == name]

    # -- on_request ------------------------------------------------------------------------

    def on_request(self, ex: Exchange) -> Any:
        method = ex.method
        if method != b"GET" and method != b"HEAD":
            ex.cache = "BYPASS"
            if method in UNSAFE:
                key = self.key(ex)
                if key is not None:
                    ex.state["cache_invalidate"] = key
            return None
        req = ex.request
        rcc = req.header(b"cache-control")
        rcc = hc.parse_cache_control([rcc]) if rcc is not None else {}
        key = self.key(ex)
        if key is None or "no-store" in rcc:
            ex.cache = "BYPASS"
            return None
        variants = self.rt.store.get(key)
        entry = None
        if variants is not None:
            fields = None
            if variants.names:
                fields = [(n.lower(), v) for n, v in req.headers]
            entry = variants.entries.get(hc.vary_key(
                variants.names, lambda n: self.values(fields, n)))
        if entry is not None:
            now = time.time()
            meta = entry.meta
            forced = self.honour and ("no-cache" in rcc or rcc.get("max-age") == "0"
                                      or req.header(b"pragma") == b"no-cache")
            if not forced and meta.fresh(now):
                return self.answer(ex, entry, now, "HIT")
            if (not forced and not meta.must_revalidate
                    and meta.staleness(now) <= meta.stale_while_revalidate):
                self.refresh_later(ex, key, entry)
                return self.answer(ex, entry, now, "UPDATING")
            return self.revalidate(ex, key, entry)
        ex.cache = "MISS"
        fill = self.rt.fills.get(key)
        if fill is not None:
            return self.follow(ex, fill)
        if method == b"HEAD" or self.rt.passing(key):
            return None         # no body to keep, or recently not storable: straight upstream
        fill = Fill(key, [(n.lower(), v) for n, v in req.headers], self.rt.epoch)
        self.rt.fills[key] = fill
        ex.state["cache_fill"] = fill
        return None

    def answer(self, ex: Exchange, entry: Entry, now: float, outcome: str) -> Response:
        """The stored response (or 304 for a matching conditional request, RFC 9110 §13.2.1:
        only for a 2xx entry)."""
        req = ex.request
        ex.cache = outcome
        age = b"%d" % max(0, int(entry.meta.current_age(now)))
        headers = [*entry.headers, (b"Age", age), (self.header, outcome.encode())]
        inm, ims = req.header(b"if-none-match"), req.header(b"if-modified-since")
        if (inm is not None or ims is not None) and 200 <= entry.status < 300 \
                and hc.not_modified(inm, ims, entry.meta):
            return _response(304, [(n, v) for n, v in headers
                                   if n.lower() in _IN_304 or n is self.header], b"")
        body = entry.body
        if len(body) > SLICE:
            headers.append((b"Content-Length", b"%d" % len(body)))
            return _response(entry.status, headers, _slices(body))
        return _response(entry.status, headers, body)

    async def follow(self, ex: Exchange, fill: Fill) -> Response | None:
        """A concurrent miss: wait for the first one's response head, then stream it (or,
        when its length is unknown, wait for all of it: a body that turns out too large is
        never served cut)."""
        deadline = asyncio.get_running_loop().time() + self.cfg.lock_timeout
        try:
            async with asyncio.timeout_at(deadline):
                accepted = await asyncio.shield(fill.head)
                if accepted and fill.length is None:
                    accepted = await asyncio.shield(fill.ended)
        except TimeoutError:
            accepted = False
        if not accepted or fill.failed or fill.meta is None:
            return None
        mine = [(n.lower(), v) for n, v in ex.request.headers] if fill.vary else []
        if hc.vary_key(fill.vary, lambda n: self.values(mine, n)) != \
                hc.vary_key(fill.vary, lambda n: self.values(fill.fields, n)):
            return None         # it varies on a field this request has otherwise
        ex.cache = "HIT"
        headers = [*fill.headers, (b"Age", b"0"), (self.header, b"HIT")]
        if fill.done:
            return _response(fill.status, headers, b"".join(fill.chunks))
        headers.append((b"Content-Length", b"%d" % fill.length))
        return _response(fill.status, headers, fill.stream())

    # -- the upstream's response (a miss) --------------------------------------------------

    def on_response_head(self, ex: Exchange, response: Response) -> None:
        outcome = ex.cache
        if outcome is None:
            return
        response.headers.set(self.header, outcome.encode())
        if outcome == "BYPASS":
            key = ex.state.get("cache_invalidate")
            if key is not None and response.status < 400:
                self.rt.invalidate(key)
            return
        fill: Fill | None = ex.state.get("cache_fill") if outcome == "MISS" else None
        if fill is None:
            return
        started = ex.t_upstream / 1e9 if ex.t_upstream else time.monotonic()
        length = ex.response_length if ex.response_length >= 0 else None
        prepared = None
        if length is None or length <= self.rt.max_object:
            prepared = self.prepare(ex.method, ex.request.header, response.status,
                                    response.headers.items,
                                    time.time() - (time.monotonic() - started))
        if prepared is None:
            self.rt.not_storable(fill.key)
            self.abandon(ex, fill)
            return
        headers, meta, vary = prepared
        fill.accept(response.status, headers, meta, vary, length)

    def prepare(self, method: bytes, request_header: Any, status: int,
                items: list[tuple[bytes, bytes]], request_time: float
                ) -> tuple[list[tuple[bytes, bytes]], hc.Stored, tuple[bytes, ...]] | None:
        """(fields to store, freshness, Vary names) of a response that may be stored, or
        None. ``request_header(name)``: the request's field value."""
        def values(name: bytes) -> list[bytes]:
            return [v for n, v in items if n.lower() == name]

        rcc_value = request_header(b"cache-control")
        response_cc = hc.parse_cache_control(values(b"cache-control"))
        reason = hc.storable(
            method, status, hc.parse_cache_control([rcc_value] if rcc_value else []),
            response_cc, authorization=request_header(b"authorization") is not None,
            set_cookie=bool(values(b"set-cookie")), store_set_cookie=self.cfg.store_set_cookie,
            expires=bool(values(b"expires")) or self.cfg.default_ttl is not None,
            last_modified=bool(values(b"last-modified")))
        if reason is not None:
            return None
        vary = hc.vary_names(values(b"vary"))
        if vary is None:
            return None             # Vary: * is never served from a cache
        meta = hc.stored(status, values, request_time=request_time, response_time=time.time(),
                         heuristic_max=self.cfg.heuristic_max,
                         swr_default=self.cfg.stale_while_revalidate,
                         sie_default=self.cfg.stale_if_error)
        explicit = "max-age" in response_cc or "s-maxage" in response_cc \
            or bool(values(b"expires"))
        if not explicit and self.cfg.default_ttl is not None:
            meta = dataclasses.replace(meta, lifetime=self.cfg.default_ttl)
        if meta.lifetime <= 0 and meta.etag is None and meta.last_modified is None \
                and meta.stale_if_error <= 0:
            return None             # never fresh and nothing to revalidate with
        kept = [(n, v) for n, v in items
                if n.lower() not in _NOT_STORED and n.lower() != self.header_low]
        return kept, meta, vary

    def abandon(self, ex: Exchange, fill: Fill) -> None:
        fill.finish(False)
        if self.rt.fills.get(fill.key) is fill:
            del self.rt.fills[fill.key]
        ex.state.pop("cache_fill", None)

    def on_response_body(self, ex: Exchange, chunk: memoryview, end: bool) -> None:
        if ex.cache != "MISS":
            return
        fill: Fill | None = ex.state.get("cache_fill")
        if fill is None or fill.meta is None:
            return
        if len(chunk):
            fill.append(bytes(chunk))
            if fill.size > self.rt.max_object:
                # no length was announced and it grew too large: nothing is kept, and
                # nobody was served from it (followers wait for a whole body of this kind)
                self.rt.not_storable(fill.key)
                self.abandon(ex, fill)
                return
        if end:
            fill.finish(True)
            if self.rt.fills.get(fill.key) is fill:
                del self.rt.fills[fill.key]
            ex.state.pop("cache_fill", None)
            if fill.epoch == self.rt.epoch:     # no purge meanwhile
                self.store(fill.key, fill.fields, Entry(
                    fill.status, fill.headers, b"".join(fill.chunks), fill.meta, fill.vary))

    def on_log(self, ex: Exchange) -> None:
        if ex.cache == "MISS":
            fill = ex.state.get("cache_fill")
            if fill is not None:
                self.abandon(ex, fill)      # the response never ended whole

    def store(self, key: bytes, request_fields: list[tuple[bytes, bytes]],
              entry: Entry) -> None:
        """Keeps entry as the variant of key that request_fields select. An entry without
        validators is kept only as long as it can be served (fresh or stale-if-error)."""
        variants = self.rt.store.get(key)
        if variants is None or variants.names != entry.vary:
            variants = Variants(entry.vary)
        variants.entries[hc.vary_key(entry.vary, lambda n: self.values(request_fields, n))] = \
            entry
        meta = entry.meta
        ttl = None
        if meta.etag is None and meta.last_modified is None:
            ttl = max(meta.lifetime - meta.current_age(time.time()), 0.0) + max(
                meta.stale_while_revalidate, meta.stale_if_error) + 1.0
        self.rt.store.set(key, variants, size=variants.size, ttl=ttl)

    # -- stale entries ---------------------------------------------------------------------

    def refresh_later(self, ex: Exchange, key: bytes, entry: Entry) -> None:
        """stale-while-revalidate: one background revalidation per key at a time."""
        if key in self.rt.refreshing or key in self.rt.revalidations:
            return
        self.rt.refreshing.add(key)
        task = asyncio.get_running_loop().create_task(self._refresh(
            ex.cluster, self.upstream_target(ex), self.forwarded(ex), key, entry))
        self.rt.tasks.add(task)
        task.add_done_callback(self.rt.tasks.discard)

    async def _refresh(self, cluster: Any, target: bytes, fields: list[tuple[bytes, bytes]],
                       key: bytes, entry: Entry) -> None:
        try:
            await self._renew(cluster, target, fields, key, entry)
        except (FetchError, TooLarge) as e:
            log.info("cache: background refresh of %s failed: %s", key.decode("latin-1"), e)
        except Exception:
            log.exception("cache: background refresh failed")
        finally:
            self.rt.refreshing.discard(key)

    async def revalidate(self, ex: Exchange, key: bytes, entry: Entry) -> Response | None:
        """A stale entry, revalidated before it is served; concurrent requests for the key
        share one revalidation."""
        now = time.time()
        task = self.rt.revalidations.get(key)
        mine = task is None
        if task is None:
            task = asyncio.get_running_loop().create_task(self._renew(
                ex.cluster, self.upstream_target(ex), self.forwarded(ex), key, entry))
            self.rt.revalidations[key] = task

            def done(t: asyncio.Task[Any]) -> None:
                self.rt.revalidations.pop(key, None)
                if not t.cancelled():
                    t.exception()       # retrieved: its waiters may all have gone

            task.add_done_callback(done)
        try:
            renewed = await asyncio.shield(task)
        except TooLarge:
            ex.cache = "MISS"
            return None             # the proxy serves it (not stored)
        except FetchError as e:
            if entry.meta.staleness(now) <= entry.meta.stale_if_error \
                    and not entry.meta.must_revalidate:
                return self.answer(ex, entry, time.time(), "STALE")
            ex.cache = "MISS"
            return Response.error(504 if isinstance(e.__cause__, TimeoutError) else 502,
                                  f"cache revalidation failed: {e}",
                                  [(self.header, b"MISS")])
        outcome, status, headers, body, stored = renewed
        if status >= 500 and entry.meta.staleness(now) <= entry.meta.stale_if_error \
                and not entry.meta.must_revalidate:
            return self.answer(ex, entry, time.time(), "STALE")
        if stored is not None:
            return self.answer(ex, stored, time.time(), outcome)
        ex.cache = "MISS"
        if not mine:
            return None             # not storable: it was for the request that asked
        return _response(status, [*headers, (self.header, b"MISS")], body)

    async def _renew(self, cluster: Any, target: bytes, fields: list[tuple[bytes, bytes]],
                     key: bytes, entry: Entry
                     ) -> tuple[str, int, list[tuple[bytes, bytes]], bytes, Entry | None]:
        """Revalidates entry upstream: (outcome, status, fields, body, the entry now stored
        or None). FetchError; TooLarge after dropping the entry."""
        epoch = self.rt.epoch
        conditional = []
        if entry.meta.etag is not None:
            conditional.append((b"If-None-Match", entry.meta.etag))
        if entry.meta.last_modified is not None:
            conditional.append((b"If-Modified-Since",
                                hc.format_http_date(entry.meta.last_modified)))
        request_time = time.time()
        try:
            status, items, body = await self.fetch(cluster, target, fields, conditional)
        except TooLarge:
            self.rt.invalidate(key)
            raise
        lowered = [(n.lower(), v) for n, v in fields]
        if status == 304:
            merged = {n.lower(): (n, v) for n, v in entry.headers}
            for n, v in items:         # §4.3.4: the 304's fields replace the stored ones
                if n.lower() not in _NOT_STORED and n.lower() != self.header_low:
                    merged[n.lower()] = (n, v)
            headers = list(merged.values())
            meta = hc.stored(entry.status, lambda n: [v for k, (_, v) in merged.items()
                                                      if k == n],
                             request_time=request_time, response_time=time.time(),
                             heuristic_max=self.cfg.heuristic_max,
                             swr_default=self.cfg.stale_while_revalidate,
                             sie_default=self.cfg.stale_if_error)
            if self.cfg.default_ttl is not None and entry.meta.lifetime > 0 \
                    and meta.lifetime <= 0:
                meta = dataclasses.replace(meta, lifetime=self.cfg.default_ttl)
            fresh = Entry(entry.status, headers, entry.body, meta, entry.vary)
            if epoch == self.rt.epoch:
                self.store(key, lowered, fresh)
            return "REVALIDATED", 304, headers, entry.body, fresh
        prepared = self.prepare(b"GET", lambda n: next((v for k, v in lowered if k == n), None),
                                status, items, request_time)
        if prepared is None:
            self.rt.invalidate(key)
            kept = [(n, v) for n, v in items if n.lower() not in _NOT_STORED]
            return "MISS", status, kept, body, None
        headers, meta, vary = prepared
        fresh = Entry(status, headers, body, meta, vary)
        if epoch == self.rt.epoch:
            self.store(key, lowered, fresh)
        return "MISS", status, headers, body, fresh

    @staticmethod
    def upstream_target(ex: Exchange) -> bytes:
        target = ex.target
        if target[:1] != b"/":
            target = split_absolute(target, b"")[0]
        if ex.route is not None and ex.route.forward_normalized_path:
            target = ex.path + target[len(target.partition(b"?")[0]):]
        return target

    @staticmethod
    def forwarded(ex: Exchange) -> list[tuple[bytes, bytes]]:
        """The fields of the cache's own request for ex: what the proxy would send — the
        client's fields without hop-by-hop ones (and those its Connection names), conditional
        and gateway-set ones, the filters' changes (Exchange.set_upstream_field and
        friends), then Host, X-Forwarded-*, Via and a request id."""
        req = ex.request
        items = [(n.lower(), n, v) for n, v in req.headers]
        named = {o.strip().lower() for low, _, v in items if low == b"connection"
                 for o in v.split(b",")}
        removed = ex.removed_fields or set()
        host = req.header(b"host") or b""
        if ex.target[:1] != b"/":
            host = split_absolute(ex.target, host)[1]
        xff = [v for low, _, v in items if low == b"x-forwarded-for"]
        out = [(b"host", host)]
        out += [(low, v) for low, _, v in items
                if low not in _NOT_FORWARDED and low not in named and low not in removed]
        out += [(n.lower(), v) for n, v in ex.upstream_fields or ()]
        out += [(b"x-forwarded-for", b", ".join([*xff, ex.client_address.encode()])),
                (b"x-forwarded-proto", b"http"), (b"x-forwarded-host", host),
                (b"x-request-id", os.urandom(8).hex().encode()), (b"via", b"1.1 gwcore")]
        return out

    async def fetch(self, cluster: Any, target: bytes, fields: list[tuple[bytes, bytes]],
                    extra: list[tuple[bytes, bytes]]) -> tuple[int, list, bytes]:
        """GET target from an endpoint of cluster (one not ejected and healthy, in turn) with
        these fields (``host`` first): (status, fields, body). FetchError; TooLarge."""
        eps = [ep for ep in cluster.endpoints if ep.healthy and not ep.ejected_until] \
            or list(cluster.endpoints)
        ep = eps[next(self.turn) % len(eps)]
        lines = [b"GET " + target + b" HTTP/1.1\r\n"]
        lines += [n + b": " + v + b"\r\n" for n, v in fields]
        lines += [n + b": " + v + b"\r\n" for n, v in extra]
        lines.append(b"Connection: close\r\n\r\n")
        writer = None
        try:
            async with asyncio.timeout(self.cfg.revalidate_timeout):
                reader, writer = await asyncio.open_connection(ep.connect_host, ep.port)
                writer.write(b"".join(lines))
                return await _read_response(reader, self.rt.max_object)
        except (OSError, TimeoutError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError, ParseError) as e:
            raise FetchError(f"{ep.address}: {e!r}") from e
        finally:
            if writer is not None:
                writer.close()


async def _read_response(reader: asyncio.StreamReader, limit: int
                         ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One response (interim 1xx heads skipped), its body read whole: by Content-Length,
    chunked, or until the close. TooLarge beyond ``limit`` bytes; IncompleteReadError when
    it ends early."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        resp = parse_response(head)
        if resp is None:
            raise ParseError("incomplete", 502, len(head))
        if not 100 <= resp.status < 200:
            break
    items = resp.headers
    if resp.status in (204, 304):
        return resp.status, items, b""
    if resp.chunked:
        decoder, parts, size = ChunkedDecoder(), [], 0
        while not decoder.done:
            data = await reader.read(65536)
            if not data:
                raise asyncio.IncompleteReadError(b"", None)
            for part in decoder.feed(data):
                size += len(part)
                if size > limit:
                    raise TooLarge(f"body over {limit} bytes")
                parts.append(part)
        return resp.status, items, b"".join(parts)
    length = resp.content_length
    if length is not None:
        if length > limit:
            raise TooLarge(f"body of {length} bytes over {limit}")
        return resp.status, items, await reader.readexactly(length)
    parts, size = [], 0
    while data := await reader.read(65536):
        size += len(data)
        if size > limit:
            raise TooLarge(f"body over {limit} bytes")
        parts.append(data)
    return resp.status, items, b"".join(parts)


__all__ = ["CacheFilter", "CacheRuntime", "Entry", "FetchError", "TooLarge"]
