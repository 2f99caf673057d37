"""The edge cache: RFC 9111 caching as a built-in filter (a route's ``cache: {...}``), over the
worker's compiled store (gwcore.cache.Store, sized by the top-level ``cache:``).

Per request, in the route's ``on_request`` (after JWT, before user filters):

- GET and HEAD only (HEAD is answered from a GET's entry); any other method bypasses the cache
  (``BYPASS``), and a successful unsafe one (POST, PUT, DELETE, PATCH) invalidates the stored
  responses of its target (RFC 9111 §4.4). A request ``Cache-Control: no-store`` bypasses too.
- The key: scheme, host and the normalised path, the query as the route's ``key`` says, named
  request fields, a verified JWT claim; then the response's ``Vary`` fields select one of the
  stored variants (``Vary: *`` is never served).
- A fresh entry is a ``HIT``: answered at once, with ``Age``; a conditional request whose
  validators match gets 304. A large body goes out as memoryview slices of the stored bytes,
  with back-pressure, never copied per hit.
- A stale entry within its ``stale-while-revalidate`` window is answered at once
  (``UPDATING``) while exactly one background request refreshes it. Otherwise it is
  revalidated first, with its validators: 304 refreshes it (``REVALIDATED``), a new response
  replaces it (``MISS``); when the origin fails (no connection, 5xx) within the entry's
  ``stale-if-error`` window the stale entry is served (``STALE``). A client's ``no-cache`` or
  ``max-age=0`` forces that revalidation when the route says ``client_no_cache: honour``.
  Revalidations and refreshes are the cache's own requests to an endpoint of the route's
  cluster (the request's fields minus hop-by-hop and conditional ones, ``Connection: close``).
- A miss goes upstream through the proxy. Concurrent misses of one key in one worker are
  coalesced: the first goes upstream; the others wait (at most ``lock_timeout``) for its
  response head and are served from it as it streams, or go upstream themselves if it turns
  out not storable. Workers coalesce each on their own: at most one upstream request per key
  per worker at a time.
- Stored per §3 (status understood, no ``no-store``/``private``, ``Authorization`` only as
  §3.5 allows, no ``Set-Cookie`` unless ``store_set_cookie``, explicit freshness or a
  heuristic §4.2.2 allows, or the route's ``default_ttl``), when its body is at most
  ``max_object_bytes``: a larger one streams through uncached, and the store never holds a
  partial body.

The outcome is in the response's status field (``X-Cache`` by default) and in
``Exchange.cache`` for logs and metrics.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

from gwcore.cache import Store
from gwcore.cache import http_cache as hc
from gwcore.cache.purge import matches
from gwcore.config import CacheSettings, RouteCache
from gwcore.filters.base import Exchange, Fields, Response
from gwcore.http import ChunkedDecoder, ParseError, parse_response

log = logging.getLogger("gwcore")

ENTRY_OVERHEAD = 512          # bytes accounted per stored response besides body and fields
SLICE = 256 << 10             # a large cached body is written in slices of this
UNSAFE = frozenset((b"POST", b"PUT", b"DELETE", b"PATCH"))
# fields never stored: connection-specific, framing, and what the cache computes itself
_NOT_STORED = frozenset((b"connection", b"keep-alive", b"transfer-encoding", b"content-length",
                         b"te", b"trailer", b"upgrade", b"proxy-connection", b"age"))
# fields a 304 carries (RFC 9110 §15.4.5), besides Age and the cache's status field
_IN_304 = frozenset((b"cache-control", b"content-location", b"date", b"etag", b"expires",
                     b"vary", b"last-modified", b"age"))
# fields of a request not copied to the cache's own upstream requests
_NOT_FORWARDED = _NOT_STORED | frozenset((b"if-none-match", b"if-modified-since", b"if-match",
                                          b"if-unmodified-since", b"if-range", b"range",
                                          b"expect", b"host"))


class CacheRuntime:
    """A worker's cache: the store (``cache:`` settings) and the misses under way."""

    def __init__(self, settings: CacheSettings) -> None:
        self.store = Store(max_bytes=settings.max_bytes, policy=settings.policy)
        self.max_object = settings.max_object_bytes
        self.fills: dict[bytes, Fill] = {}
        self.refreshing: set[bytes] = set()
        self.tasks: set[asyncio.Task[Any]] = set()

    def purge(self, kind: int, url: bytes) -> int:
        """Removes the stored responses whose URL is ``url`` (or starts with it: gwcore.cache
        .purge.PREFIX); a miss under way for one is not stored. Returns how many keys went."""
        removed = 0
        for key in self.store.keys():      # noqa: SIM118 (a snapshot list: we pop)
            if matches(key, kind, url) and self.store.pop(key, None) is not None:
                removed += 1
        for key, fill in self.fills.items():
            if matches(key, kind, url):
                fill.keep = False
        return removed


class Entry:
    """One stored response: status, fields (without framing ones), body, freshness."""

    __slots__ = ("body", "headers", "meta", "size", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes,
                 meta: hc.Stored) -> None:
        self.status, self.headers, self.body, self.meta = status, headers, body, meta
        self.size = len(body) + sum(len(n) + len(v) for n, v in headers) + ENTRY_OVERHEAD


class Variants:
    """The stored responses of one primary key, by the values of the fields they vary on."""

    __slots__ = ("entries", "names")

    def __init__(self, names: tuple[bytes, ...] | None) -> None:
        self.names = names
        self.entries: dict[tuple[bytes, ...], Entry] = {}

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries.values()) + ENTRY_OVERHEAD


class Fill:
    """A miss under way: the first request's response, which the concurrent ones for the same
    key are served from as it arrives."""

    def __init__(self, key: bytes, vary_key_of: Any) -> None:
        self.key = key
        self.vary_key_of = vary_key_of      # the leader's request, for its Vary fields
        self.head: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.meta: hc.Stored | None = None
        self.vary: tuple[bytes, ...] | None = ()
        self.chunks: list[bytes] = []
        self.size = 0
        self.done = False
        self.failed = False
        self.keep = True            # False once purged while under way: not stored
        self.changed: asyncio.Future[None] | None = None

    def accept(self, status: int, headers: list[tuple[bytes, bytes]], meta: hc.Stored,
               vary: tuple[bytes, ...] | None) -> None:
        self.status, self.headers, self.meta, self.vary = status, headers, meta, vary
        if not self.head.done():
            self.head.set_result(True)

    def reject(self) -> None:
        if not self.head.done():
            self.head.set_result(False)

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
        self.reject()
        self._wake()

    async def stream(self) -> AsyncIterator[bytes]:
        """The body for a coalesced request, as the leader receives it; raises if the
        leader's response was cut (the gateway then cuts this one too)."""
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


class FetchError(Exception):
    """The cache's own upstream request failed (no connection, timeout, bad response)."""


class CacheFilter:
    """The cache of one route (``RouteCache``) over the worker's ``CacheRuntime``."""

    def __init__(self, cfg: RouteCache, rt: CacheRuntime) -> None:
        self.cfg = cfg
        self.rt = rt
        self.header = cfg.status_header.encode()
        self.honour = cfg.client_no_cache == "honour"
        self.keep = {k.lower() for k in cfg.key.keep_query} if cfg.key.keep_query else None
        self.drop = {k.lower() for k in cfg.key.drop_query}
        self.fields = [f.lower().encode() for f in cfg.key.fields]
        self.turn = itertools.count()

    # -- the key ---------------------------------------------------------------------------

    def key(self, ex: Exchange) -> bytes | None:
        """The primary key, or None when the request cannot be cached (no JWT claim)."""
        req = ex.request
        query = ex.query
        if self.cfg.key.query == "none":
            query = b""
        elif query and (self.keep is not None or self.drop):
            pairs = [(k, v) for k, v in parse_qsl(query.decode("latin-1"),
                                                  keep_blank_values=True)
                     if (self.keep is None or k.lower() in self.keep)
                     and k.lower() not in self.drop]
            query = urlencode(sorted(pairs)).encode("latin-1")
        parts = [b"http://", (req.header(b"host") or b"").lower(), ex.path, b"?", query]
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
    def values(req: Any, name: bytes) -> list[bytes]:
        return [v for n, v in req.headers if n.lower() == name]

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
        if variants is not None and variants.names is not None:
            entry = variants.entries.get(hc.vary_key(variants.names,
                                                      lambda n: self.values(req, n)))
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
        fill = self.rt.fills.get(key)
        if fill is not None:
            return self.follow(ex, fill)
        ex.cache = "MISS"
        if method == b"HEAD":
            return None         # a HEAD response has no body to keep
        fill = Fill(key, [(n.lower(), v) for n, v in req.headers])
        self.rt.fills[key] = fill
        ex.state["cache_fill"] = fill
        return None

    def answer(self, ex: Exchange, entry: Entry, now: float, outcome: str) -> Response:
        """The stored response (or 304 for a matching conditional request)."""
        req = ex.request
        ex.cache = outcome
        age = b"%d" % max(0, int(entry.meta.current_age(now)))
        headers = [*entry.headers, (b"Age", age), (self.header, outcome.encode())]
        inm, ims = req.header(b"if-none-match"), req.header(b"if-modified-since")
        if (inm is not None or ims is not None) and hc.not_modified(inm, ims, entry.meta):
            return _response(304, [(n, v) for n, v in headers
                                   if n.lower() in _IN_304 or n is self.header], b"")
        body = entry.body
        if len(body) > SLICE:
            headers.append((b"Content-Length", b"%d" % len(body)))
            return _response(entry.status, headers, _slices(body))
        return _response(entry.status, headers, body)

    async def follow(self, ex: Exchange, fill: Fill) -> Response | None:
        """A concurrent miss: wait for the first one's response head, then stream it."""
        try:
            accepted = await asyncio.wait_for(asyncio.shield(fill.head), self.cfg.lock_timeout)
        except TimeoutError:
            accepted = False
        if not accepted or fill.failed or fill.meta is None:
            ex.cache = "MISS"
            return None
        if fill.vary is None or hc.vary_key(fill.vary, lambda n: self.values(ex.request, n)) \
                != hc.vary_key(fill.vary, lambda n: [v for k, v in fill.vary_key_of if k == n]):
            ex.cache = "MISS"
            return None         # it varies on a field this request has otherwise
        ex.cache = "HIT"
        headers = [*fill.headers, (b"Age", b"0"), (self.header, b"HIT")]
        if fill.done:
            return _response(fill.status, [(n, v) for n, v in headers
                                           if n.lower() != b"content-length"],
                             b"".join(fill.chunks))
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
                self.rt.store.pop(key, None)
            return
        fill: Fill | None = ex.state.get("cache_fill") if outcome == "MISS" else None
        if fill is None:
            return
        started = ex.t_upstream / 1e9 if ex.t_upstream else time.monotonic()
        prepared = self.prepare(ex, response.status, response.headers.items,
                                time.time() - (time.monotonic() - started))
        if prepared is None:
            self.abandon(ex, fill)
            return
        headers, meta, vary = prepared
        length = response.headers.get(b"content-length")
        if length is not None and length.isdigit():
            headers = [*headers, (b"Content-Length", length)]
        fill.accept(response.status, headers, meta, vary)
        return

    def prepare(self, ex: Exchange, status: int, items: list[tuple[bytes, bytes]],
                request_time: float) -> tuple[list[tuple[bytes, bytes]], hc.Stored,
                                              tuple[bytes, ...] | None] | None:
        """(fields to store, freshness, Vary names) of a response that may be stored, or
        None."""
        def values(name: bytes) -> list[bytes]:
            return [v for n, v in items if n.lower() == name]

        length = values(b"content-length")
        if length and (not length[0].isdigit() or int(length[0]) > self.rt.max_object):
            return None
        rcc_value = ex.request.header(b"cache-control")
        reason = hc.storable(
            ex.method, status, hc.parse_cache_control([rcc_value] if rcc_value else []),
            hc.parse_cache_control(values(b"cache-control")),
            authorization=ex.request.header(b"authorization") is not None,
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
        explicit = any(k in hc.parse_cache_control(values(b"cache-control"))
                       for k in ("max-age", "s-maxage")) or bool(values(b"expires"))
        if not explicit and self.cfg.default_ttl is not None:
            meta = _with_lifetime(meta, self.cfg.default_ttl)
        if meta.lifetime <= 0 and meta.etag is None and meta.last_modified is None \
                and meta.stale_if_error <= 0:
            return None             # never fresh and nothing to revalidate with
        kept = [(n, v) for n, v in items
                if n.lower() not in _NOT_STORED and n.lower() != self.header.lower()]
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
                # more than announced, or no length given: stop keeping it (coalesced
                # requests already streaming get what the leader gets, then are cut)
                self.abandon(ex, fill)
                return
        if end:
            fill.finish(True)
            if self.rt.fills.get(fill.key) is fill:
                del self.rt.fills[fill.key]
            ex.state.pop("cache_fill", None)
            if not fill.keep:
                return
            self.store(fill.key, fill.vary, fill.vary_key_of, Entry(
                fill.status, [(n, v) for n, v in fill.headers
                              if n.lower() != b"content-length"],
                b"".join(fill.chunks), fill.meta))

    def on_log(self, ex: Exchange) -> None:
        if ex.cache == "MISS":
            fill = ex.state.get("cache_fill")
            if fill is not None:
                self.abandon(ex, fill)      # the response never ended whole

    def store(self, key: bytes, vary: tuple[bytes, ...] | None,
              request_fields: list[tuple[bytes, bytes]], entry: Entry) -> None:
        if vary is None or entry.size > self.rt.max_object + ENTRY_OVERHEAD * 4:
            return
        variants = self.rt.store.get(key)
        if variants is None or variants.names != vary:
            variants = Variants(vary)
        variants.entries[hc.vary_key(vary, lambda n: [v for k, v in request_fields
                                                      if k == n])] = entry
        self.rt.store.set(key, variants, size=variants.size)

    # -- stale entries ---------------------------------------------------------------------

    def refresh_later(self, ex: Exchange, key: bytes, entry: Entry) -> None:
        """stale-while-revalidate: one background revalidation per key at a time."""
        if key in self.rt.refreshing:
            return
        self.rt.refreshing.add(key)
        fields = [(n.lower(), v) for n, v in ex.request.headers]
        task = asyncio.get_running_loop().create_task(
            self._refresh(ex.cluster, ex.target, fields, key, entry))
        self.rt.tasks.add(task)
        task.add_done_callback(self.rt.tasks.discard)

    async def _refresh(self, cluster: Any, target: bytes,
                       fields: list[tuple[bytes, bytes]], key: bytes, entry: Entry) -> None:
        try:
            await self._renew(cluster, target, fields, key, entry)
        except FetchError as e:
            log.info("cache: background refresh of %s failed: %s", key.decode("latin-1"), e)
        except Exception:
            log.exception("cache: background refresh failed")
        finally:
            self.rt.refreshing.discard(key)

    async def revalidate(self, ex: Exchange, key: bytes, entry: Entry) -> Response | None:
        fields = [(n.lower(), v) for n, v in ex.request.headers]
        now = time.time()
        try:
            renewed = await self._renew(ex.cluster, ex.target, fields, key, entry)
        except FetchError as e:
            if entry.meta.staleness(now) <= entry.meta.stale_if_error \
                    and not entry.meta.must_revalidate:
                return self.answer(ex, entry, time.time(), "STALE")
            ex.cache = "MISS"
            return Response.error(504 if isinstance(e.__cause__, TimeoutError) else 502,
                                  f"cache revalidation failed: {e}")
        if renewed is None:
            ex.cache = "MISS"
            return None             # not cacheable (too large...): the proxy serves it
        outcome, status, headers, body, stored = renewed
        if status >= 500 and entry.meta.staleness(now) <= entry.meta.stale_if_error \
                and not entry.meta.must_revalidate:
            return self.answer(ex, entry, time.time(), "STALE")
        if stored is not None:
            return self.answer(ex, stored, time.time(), outcome)
        ex.cache = "MISS"
        return _response(status, [*headers, (self.header, b"MISS")], body)

    async def _renew(self, cluster: Any, target: bytes, fields: list[tuple[bytes, bytes]],
                     key: bytes, entry: Entry) -> tuple[str, int, list, bytes, Entry | None] | None:
        """Revalidates entry upstream: (outcome, status, fields, body, the entry now stored
        or None). None when the response is too large to keep."""
        conditional = []
        if entry.meta.etag is not None:
            conditional.append((b"If-None-Match", entry.meta.etag))
        if entry.meta.last_modified is not None:
            conditional.append((b"If-Modified-Since",
                                hc.format_http_date(entry.meta.last_modified)))
        request_time = time.time()
        status, items, body = await self.fetch(cluster, target, fields, conditional)
        if status == 304:
            merged = {n.lower(): (n, v) for n, v in entry.headers}
            for n, v in items:         # §4.3.4: the 304's fields replace the stored ones
                if n.lower() not in _NOT_STORED and n.lower() != self.header.lower():
                    merged[n.lower()] = (n, v)
            headers = list(merged.values())
            meta = hc.stored(entry.status, lambda n: [v for k, (_, v) in merged.items()
                                                      if k == n],
                             request_time=request_time, response_time=time.time(),
                             heuristic_max=self.cfg.heuristic_max,
                             swr_default=self.cfg.stale_while_revalidate,
                             sie_default=self.cfg.stale_if_error)
            if self.cfg.default_ttl is not None and meta.lifetime <= 0 \
                    and entry.meta.lifetime > 0:
                meta = _with_lifetime(meta, self.cfg.default_ttl)
            fresh = Entry(entry.status, headers, entry.body, meta)
            self.store(key, self._vary_of(key), fields, fresh)
            return "REVALIDATED", 304, headers, entry.body, fresh
        fake = _FakeExchange(fields)
        prepared = self.prepare(fake, status, items, request_time)  # type: ignore[arg-type]
        if prepared is None:
            self.rt.store.pop(key, None)
            kept = [(n, v) for n, v in items if n.lower() not in _NOT_STORED]
            return "MISS", status, kept, body, None
        headers, meta, vary = prepared
        fresh = Entry(status, headers, body, meta)
        self.store(key, vary, fields, fresh)
        return "MISS", status, headers, body, fresh

    def _vary_of(self, key: bytes) -> tuple[bytes, ...] | None:
        variants = self.rt.store.get(key)
        return variants.names if variants is not None else ()

    async def fetch(self, cluster: Any, target: bytes, fields: list[tuple[bytes, bytes]],
                    extra: list[tuple[bytes, bytes]]) -> tuple[int, list, bytes]:
        """GET target from an endpoint of cluster (one not ejected and healthy, in turn):
        (status, fields, body). FetchError; a body over max_object_bytes is one too."""
        eps = [ep for ep in cluster.endpoints if ep.healthy and not ep.ejected_until] \
            or list(cluster.endpoints)
        ep = eps[next(self.turn) % len(eps)]
        host = next((v for n, v in fields if n == b"host"), ep.authority)
        lines = [b"GET " + target + b" HTTP/1.1\r\n", b"Host: " + host + b"\r\n"]
        lines += [n + b": " + v + b"\r\n" for n, v in fields if n not in _NOT_FORWARDED]
        lines += [n + b": " + v + b"\r\n" for n, v in extra]
        lines.append(b"Via: 1.1 gwcore\r\nConnection: close\r\n\r\n")
        writer = None
        try:
            async with asyncio.timeout(cluster.connect_timeout + cluster.response_timeout):
                reader, writer = await asyncio.open_connection(ep.connect_host, ep.port)
                writer.write(b"".join(lines))
                return await _read_response(reader, self.rt.max_object)
        except (OSError, TimeoutError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError, ParseError) as e:
            raise FetchError(f"{ep.address}: {e!r}") from e
        finally:
            if writer is not None:
                writer.close()


class _FakeExchange:
    """What ``prepare`` reads of an exchange, for the cache's own requests."""

    method = b"GET"

    def __init__(self, fields: list[tuple[bytes, bytes]]) -> None:
        self.request = _FieldsView(fields)


class _FieldsView:
    def __init__(self, fields: list[tuple[bytes, bytes]]) -> None:
        self.fields = fields

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.fields if n == name), None)


async def _read_response(reader: asyncio.StreamReader, limit: int
                         ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    resp = parse_response(head)
    if resp is None:
        raise ParseError("incomplete", 502, len(head))
    items = resp.headers
    if resp.status == 304 or resp.status == 204 or 100 <= resp.status < 200:
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
                    raise OSError("body over max_object_bytes")
                parts.append(part)
        return resp.status, items, b"".join(parts)
    length = resp.content_length
    if length is not None:
        if length > limit:
            raise OSError("body over max_object_bytes")
        return resp.status, items, await reader.readexactly(length)
    body = await reader.read(limit + 1)
    if len(body) > limit:
        raise OSError("body over max_object_bytes")
    return resp.status, items, body


def _with_lifetime(meta: hc.Stored, lifetime: float) -> hc.Stored:
    return dataclasses.replace(meta, lifetime=lifetime)


def _response(status: int, items: list[tuple[bytes, bytes]], body: Any) -> Response:
    """A Response over fields known to be valid (stored from the parser, or ours): no
    per-field check on the hit path."""
    response = Response.__new__(Response)
    fields = Fields.__new__(Fields)
    fields.items = items
    response.status, response.headers, response.body = status, fields, body
    return response


def build(cfg: RouteCache, rt: CacheRuntime) -> CacheFilter:
    return CacheFilter(cfg, rt)


__all__ = ["CacheFilter", "CacheRuntime", "Entry", "build"]
