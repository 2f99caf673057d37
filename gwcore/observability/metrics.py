"""Metrics (docs/metrics.md): where each series lives in shared memory, how a worker records
it, and how the master sums and exposes it.

How it is kept: the master maps one ``Region`` (gwcore/observability/_metrics.pyx,
src_c/metrics.h) before its first fork and keeps it for its whole life. Each worker gets a row
of its own and writes there from the compiled request path: per request, at the one end of
the exchange, about ten plain 64-bit adds in its own row (no atomic read-modify-write, no
cache line shared with another worker, no Python object). Gauges and the counters kept by
Python objects (access log, JWKS fetches, accepted connections) are copied into the row by
``Recorder.sync`` every ``SYNC_INTERVAL``. When a worker exits (reload, crash, kill -9) the
master folds its counters into row 0 and frees the row, so a sum never goes backwards while
the master lives; a reload keeps every series' column (``Registry``), so counters of a route
go on across generations.

Why not prometheus-client's multiprocess mode, decided by measurement
(bench/micro/test_metrics_bench.py, 2026-12-07, this 2-CPU EPYC guest): one request's
recording (5 counters, 2 histograms) costs 11.7 µs there (label lookups, a lock and an mmap'd
file write per value) against 0.25 µs through ``Row`` called from Python, an upper bound of
the compiled path, which inlines the same stores; at ~40k req/s per core the former alone
would take half the core. prometheus-client still renders the exposition (text 0.0.4, or
OpenMetrics 1.0 when ``Accept`` asks for it): 13 ms (text) and 24 ms (OpenMetrics) for 100
routes × 10 clusters, in the master.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.exposition import choose_encoder

from gwcore.config import Config
from gwcore.jwt import exceptions as jwt_exceptions
from gwcore.observability._metrics import HIST_BOUNDS, Region, Row, signed

SYNC_INTERVAL = 0.25        # seconds between a worker's copies of its gauges into its row
COLUMNS = 1 << 16           # cells per row: 512 KiB of address space, touched only where used

# label values, in column order; METHODS follows enum gw_method (src_c/http1.h)
METHODS = ("OTHER", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT",
           "TRACE")
CODE_CLASSES = ("none", "1xx", "2xx", "3xx", "4xx", "5xx")
ENDS = ("ok", "local", "client_abort", "upstream_error", "timeout", "overflow", "draining")
UPSTREAM_ERRORS = ("connect_failure", "connect_timeout", "reset", "timeout", "bad_response")
OVERFLOW_LIMITS = ("max_requests", "max_pending_requests", "pending_timeout", "max_retries")
JWT_OUTCOMES = ("ok", "missing", *sorted(jwt_exceptions.CODES), "other")
CACHE_OUTCOMES = ("HIT", "MISS", "STALE", "UPDATING", "REVALIDATED", "BYPASS")  # Exchange.cache
HIST = len(HIST_BOUNDS) + 3      # buckets with +Inf, sum (ns), count

# a route's block: requests[method][class], ends, duration histogram, body bytes
R_REQUESTS = 0
R_ENDS = R_REQUESTS + len(METHODS) * len(CODE_CLASSES)
R_DURATION = R_ENDS + len(ENDS)
R_RX = R_DURATION + HIST
R_TX = R_RX + 1
R_CACHE = R_TX + 1
ROUTE_WIDTH = R_CACHE + len(CACHE_OUTCOMES)
# a cluster's block
C_TTFB = 0
C_ERRORS = C_TTFB + HIST
C_RETRIES = C_ERRORS + len(UPSTREAM_ERRORS)
C_BUDGET = C_RETRIES + 1
C_OVERFLOWS = C_BUDGET + 1
CLUSTER_WIDTH = C_OVERFLOWS + len(OVERFLOW_LIMITS)
# an endpoint's block: four gauges, then the ejections counter
E_CONNECTIONS, E_IDLE, E_IN_FLIGHT, E_EJECTED, E_EJECTIONS = range(5)
ENDPOINT_WIDTH = 5
# a listener's block
L_OPEN, L_ACCEPTED = 0, 1
# a JWT provider's block: outcomes, then JWKS fetches ok and error
J_FETCH_OK = len(JWT_OUTCOMES)
J_FETCH_ERROR = J_FETCH_OK + 1
# the access log's block
A_LINES, A_DROPPED = 0, 1
# the worker's cache store: two gauges, two counters
S_BYTES, S_ENTRIES, S_EVICTIONS, S_EXPIRATIONS = range(4)
# a rate limit's block: requests refused (429), keys counted in overflow cells, store errors
RL_REFUSED, RL_OVERFLOWS, RL_ERRORS = range(3)
# a model's block (gwcore/inference): requests refused by a version's queue (503), fallbacks
MD_REFUSED, MD_FALLBACKS = range(2)
# a mirror's block: copies by outcome (MIRROR_OUTCOMES), then the seconds they took, in ns
MIRROR_OUTCOMES = ("2xx", "3xx", "4xx", "5xx", "failed", "dropped")
MR_NS = len(MIRROR_OUTCOMES)


def endpoint_address(ep: Any) -> str:
    """An endpoint's ``host:port`` label as the runtime Endpoint spells it (``09001`` is
    ``9001``; IPv6 in brackets)."""
    host = ep.host.strip("[]")
    return f"[{host}]:{ep.port}" if ":" in host else f"{host}:{ep.port}"


def route_names(cfg: Config) -> list[str]:
    """The routes' names as gwcore.proxy.Router gives them."""
    return [r.name or f"route-{i}" for i, r in enumerate(cfg.routes)]


@dataclass
class Layout:
    """Column bases of one config's series (the same for every generation that has them)."""

    routes: dict[str, int]              # route name → route block
    no_route: int
    clusters: dict[str, int]
    endpoints: dict[tuple[str, str], int]   # (cluster, address) → endpoint block
    listeners: dict[str, int]
    providers: dict[str, int]           # JWT provider → block
    route_provider: dict[str, int]      # route name → its JWT provider's block
    access_log: int
    cache: int
    rate_limits: dict[str, int] = field(default_factory=dict)   # limit name → block
    models: dict[str, int] = field(default_factory=dict)        # model → block
    # (model, version or fallback cluster) → its served requests' column
    model_versions: dict[tuple[str, str], int] = field(default_factory=dict)
    mirrors: dict[str, int] = field(default_factory=dict)       # model → its mirror's block


@dataclass
class Registry:
    """Blocks of columns by series key, allocated once and never moved or freed."""

    columns: int = COLUMNS
    blocks: dict[tuple[str, ...], tuple[int, int]] = field(default_factory=dict)
    used: int = 0
    gauge: bytearray = field(default_factory=bytearray)

    def block(self, key: tuple[str, ...], width: int, gauges: range = range(0)) -> int:
        """The base column of key's block (allocated on first use). ValueError when the
        region is full."""
        have = self.blocks.get(key)
        if have is not None:
            return have[0]
        if self.used + width > self.columns:
            raise ValueError(f"metrics: {self.columns} columns are not enough for {key}")
        base = self.used
        self.blocks[key] = (base, width)
        self.used += width
        self.gauge.extend(1 if i in gauges else 0 for i in range(width))
        return base

    def layout(self, cfg: Config) -> Layout:
        names = route_names(cfg)
        routes = {n: self.block(("route", n, r.cluster_label), ROUTE_WIDTH)
                  for n, r in zip(names, cfg.routes)}
        providers = {p: self.block(("jwt", p), len(JWT_OUTCOMES) + 2)
                     for p in cfg.jwt_providers}
        return Layout(
            routes=routes,
            no_route=self.block(("route", "", ""), ROUTE_WIDTH),
            clusters={c.name: self.block(("cluster", c.name), CLUSTER_WIDTH)
                      for c in cfg.clusters},
            endpoints={(c.name, endpoint_address(ep)): self.block(
                ("endpoint", c.name, endpoint_address(ep)), ENDPOINT_WIDTH, range(E_EJECTIONS))
                for c in cfg.clusters for ep in c.endpoints},
            listeners={lst.name: self.block(("listener", lst.name), 2, range(1))
                       for lst in cfg.listeners},
            providers=providers,
            route_provider={n: providers[r.jwt_policy.provider]
                            for n, r in zip(names, cfg.routes) if r.jwt_policy is not None},
            access_log=self.block(("access_log",), 2),
            cache=self.block(("cache",), 4, range(S_EVICTIONS)),
            rate_limits={n: self.block(("rate_limit", n), 3) for n in cfg.rate_limits},
            models={n: self.block(("model", n), 2) for n in cfg.models},
            model_versions={(n, v): self.block(("model_version", n, v), 1)
                            for n, m in cfg.models.items()
                            for v in dict.fromkeys([x.name for x in m.versions] + m.fallback)},
            mirrors={n: self.block(("mirror", n, m.mirror.cluster), MR_NS + 1)
                     for n, m in cfg.models.items() if m.mirror is not None},
        )


class Recorder:
    """A worker's handle: its Row and the layout of its generation. ``sync`` copies the
    state Python objects keep (gauges, a few counters) into the row."""

    def __init__(self, row: Row, layout: Layout) -> None:
        self.row = row
        self.layout = layout

    def sync(self, listeners: list[tuple[str, Any]], clusters: dict[str, Any],
             providers: dict[str, Any], access_log: Any, cache: Any = None,
             rate_limits: dict[str, Any] | None = None,
             models: dict[str, Any] | None = None) -> None:
        row, lay = self.row, self.layout
        for name, lr in listeners:
            base = lay.listeners[name]
            row.set(base + L_OPEN, lr.open_connections)
            row.set(base + L_ACCEPTED, lr.accepted)
        for name, cluster in clusters.items():
            for ep in cluster.endpoints:
                base = lay.endpoints[(name, ep.address)]
                row.set(base + E_CONNECTIONS, ep.connections)
                row.set(base + E_IDLE, ep.idle_count)
                row.set(base + E_IN_FLIGHT, cluster.endpoint_in_flight(ep.index))
                row.set(base + E_EJECTED, 1 if ep.ejected_until else 0)
        for name, p in providers.items():
            base = lay.providers[name]
            row.set(base + J_FETCH_OK, p.fetches)
            row.set(base + J_FETCH_ERROR, p.fetch_failures)
        if access_log is not None:
            row.set(lay.access_log + A_LINES, access_log.lines_written)
            row.set(lay.access_log + A_DROPPED, access_log.lines_dropped)
        if cache is not None:
            stats = cache.store.stats()
            row.set(lay.cache + S_BYTES, stats["bytes"])
            row.set(lay.cache + S_ENTRIES, stats["entries"])
            row.set(lay.cache + S_EVICTIONS, stats["evictions"])
            row.set(lay.cache + S_EXPIRATIONS, stats["expirations"])
        for name, policy in (rate_limits or {}).items():
            base = lay.rate_limits.get(name)
            if base is not None:
                row.set(base + RL_REFUSED, policy.refused)
                row.set(base + RL_OVERFLOWS, getattr(policy.limit, "overflows", 0))
                row.set(base + RL_ERRORS, getattr(policy.limit, "errors", 0))
        for name, model in (models or {}).items():
            self._sync_model(name, model)

    def _sync_model(self, name: str, model: Any) -> None:
        """A gwcore.inference.models.ModelRuntime's counters."""
        row, lay = self.row, self.layout
        base = lay.models.get(name)
        if base is None:
            return
        row.set(base + MD_REFUSED, model.refused)
        row.set(base + MD_FALLBACKS, model.fallbacks_taken)
        for v in (*model.versions, *model.fallbacks):
            col = lay.model_versions.get((name, v.label))
            if col is not None:
                row.set(col, v.requests)
        mirror, base = model.mirror, lay.mirrors.get(name)
        if mirror is not None and base is not None:
            statuses = mirror.statuses
            for i, outcome in enumerate(MIRROR_OUTCOMES[:4]):
                row.set(base + i, statuses.get(outcome, 0))
            row.set(base + 4, mirror.failed)
            row.set(base + 5, mirror.dropped)
            row.set(base + MR_NS, int(mirror.seconds * 1e9))


@dataclass
class MasterState:
    """What only the master knows, for the process metrics."""

    restarts: int = 0
    reloads_accepted: int = 0
    reloads_rejected: int = 0
    last_reload_ok: bool = True
    last_success: float = field(default_factory=time.time)
    draining: bool = False
    workers: dict[str, int] = field(default_factory=dict)     # state → count
    healthy: dict[tuple[str, str], bool] = field(default_factory=dict)


class Hub:
    """The master's side: the region, the rows handed to workers, and the exposition."""

    def __init__(self, workers: int, registry: Registry | None = None) -> None:
        self.registry = registry or Registry()
        # two overlapping generations and respawns, also after a reload raises `workers`
        # (up to the CPUs here); pages are touched only where written
        self.rows = 1 + 4 * max(workers, os.cpu_count() or 1, 4)
        self.region = Region(self.rows, self.registry.columns)
        self.live = bytearray(self.rows)
        self.free = list(range(self.rows - 1, 0, -1))
        self.layout: Layout | None = None
        self.state = MasterState()

    def set_config(self, cfg: Config) -> Layout:
        """The layout for cfg (call before forking its generation)."""
        self.layout = self.registry.layout(cfg)
        return self.layout

    def acquire(self) -> tuple[int, Row] | None:
        """A free row for a worker about to be forked, or None when all are taken (that
        worker then records nothing; the master logs it)."""
        if not self.free:
            return None
        r = self.free.pop()
        self.live[r] = 1
        return r, self.region.row(r)

    def release(self, r: int) -> None:
        """Row r's worker has exited (reaped): fold its counters into row 0."""
        self.region.fold(r, bytes(self.registry.gauge))
        self.live[r] = 0
        self.free.append(r)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition for a scrape: (body, Content-Type), in the format ``accept``
        asks for (text 0.0.4 unless it names application/openmetrics-text)."""
        encoder, content_type = choose_encoder(accept or "")
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self))
        return encoder(registry), content_type


def _hist(values: list[int], base: int) -> tuple[list[tuple[str, float]], float, int]:
    cum, buckets = 0, []
    for i, bound in enumerate((*HIST_BOUNDS, float("inf"))):
        cum += values[base + i]
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), cum))
    return buckets, values[base + HIST - 2] / 1e9, values[base + HIST - 1]


class _Collector:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Any]:
        hub = self.hub
        reg = hub.registry
        v = hub.region.sum(bytes(hub.live), reg.used)
        current = _current_keys(hub.layout)
        by_kind: dict[str, list[tuple[tuple[str, ...], int]]] = {}
        for key, (base, _) in reg.blocks.items():
            by_kind.setdefault(key[0], []).append((key, base))
        yield from _route_families(v, by_kind.get("route", []))
        yield from _cluster_families(v, by_kind.get("cluster", []))
        yield from _endpoint_families(v, by_kind.get("endpoint", []), current, hub.state)
        yield from _other_families(v, by_kind, current)
        yield from _master_families(hub.state)


def _current_keys(layout: Layout | None) -> set[tuple[str, ...]]:
    if layout is None:
        return set()
    return ({("listener", n) for n in layout.listeners}
            | {("endpoint", c, a) for c, a in layout.endpoints})


def _family(kind: Callable[..., Any], name: str, doc: str, labels: list[str]) -> Any:
    return kind(name, doc, labels=labels)


def _route_families(v: list[int], blocks: list[tuple[tuple[str, ...], int]]) -> Iterator[Any]:
    req = _family(CounterMetricFamily, "gwcore_requests",
                  "Requests that ended, by route, cluster, method and status class.",
                  ["route", "cluster", "method", "code_class"])
    ends = _family(CounterMetricFamily, "gwcore_request_ends",
                   "Requests by how they ended.", ["route", "end"])
    dur = _family(HistogramMetricFamily, "gwcore_request_duration_seconds",
                  "Request duration, head parsed to response end.", ["route"])
    rx = _family(CounterMetricFamily, "gwcore_request_bytes",
                 "Request body bytes received from clients.", ["route"])
    tx = _family(CounterMetricFamily, "gwcore_response_bytes",
                 "Response bytes written to clients, heads included.", ["route"])
    cache = _family(CounterMetricFamily, "gwcore_cache_requests",
                    "Requests of cached routes by cache outcome.", ["route", "outcome"])
    for (_, route, cluster), base in blocks:
        for m, method in enumerate(METHODS):
            for c, code_class in enumerate(CODE_CLASSES):
                n = v[base + R_REQUESTS + m * len(CODE_CLASSES) + c]
                if n:
                    req.add_metric([route, cluster, method, code_class], n)
        for e, end in enumerate(ENDS):
            if v[base + R_ENDS + e]:
                ends.add_metric([route, end], v[base + R_ENDS + e])
        buckets, total, count = _hist(v, base + R_DURATION)
        if count:
            dur.add_metric([route], buckets, total)
            rx.add_metric([route], v[base + R_RX])
            tx.add_metric([route], v[base + R_TX])
        for i, outcome in enumerate(CACHE_OUTCOMES):
            if v[base + R_CACHE + i]:
                cache.add_metric([route, outcome.lower()], v[base + R_CACHE + i])
    yield from (req, ends, dur, rx, tx, cache)


def _cluster_families(v: list[int], blocks: list[tuple[tuple[str, ...], int]]
                      ) -> Iterator[Any]:
    ttfb = _family(HistogramMetricFamily, "gwcore_upstream_ttfb_seconds",
                   "Request handed to the upstream to response head received.", ["cluster"])
    errors = _family(CounterMetricFamily, "gwcore_upstream_errors",
                     "Failed upstream tries by kind.", ["cluster", "kind"])
    retries = _family(CounterMetricFamily, "gwcore_upstream_retries",
                      "Upstream tries after the first.", ["cluster"])
    budget = _family(CounterMetricFamily, "gwcore_upstream_retry_budget_exhausted",
                     "Retries refused by the retry budget or max_retries.", ["cluster"])
    overflows = _family(CounterMetricFamily, "gwcore_upstream_overflows",
                        "503s of a circuit breaker, by limit.", ["cluster", "limit"])
    for (_, cluster), base in blocks:
        buckets, total, _ = _hist(v, base + C_TTFB)
        ttfb.add_metric([cluster], buckets, total)
        for i, kind in enumerate(UPSTREAM_ERRORS):
            errors.add_metric([cluster, kind], v[base + C_ERRORS + i])
        retries.add_metric([cluster], v[base + C_RETRIES])
        budget.add_metric([cluster], v[base + C_BUDGET])
        for i, limit in enumerate(OVERFLOW_LIMITS):
            overflows.add_metric([cluster, limit], v[base + C_OVERFLOWS + i])
    yield from (ttfb, errors, retries, budget, overflows)


def _endpoint_families(v: list[int], blocks: list[tuple[tuple[str, ...], int]],
                       current: set[tuple[str, ...]], state: MasterState) -> Iterator[Any]:
    labels = ["cluster", "endpoint"]
    gauges = [
        (_family(GaugeMetricFamily, "gwcore_upstream_connections",
                 "Upstream connections open now (busy and idle).", labels), E_CONNECTIONS),
        (_family(GaugeMetricFamily, "gwcore_upstream_idle_connections",
                 "Upstream connections idle in the keep-alive pool.", labels), E_IDLE),
        (_family(GaugeMetricFamily, "gwcore_upstream_requests_in_flight",
                 "Requests sent to the endpoint and not yet answered.", labels), E_IN_FLIGHT),
        (_family(GaugeMetricFamily, "gwcore_upstream_endpoint_ejected",
                 "Workers that have the endpoint ejected now.", labels), E_EJECTED),
    ]
    ejections = _family(CounterMetricFamily, "gwcore_upstream_ejections",
                        "Outlier ejections (per worker).", labels)
    healthy = _family(GaugeMetricFamily, "gwcore_upstream_endpoint_healthy",
                      "Active health check state: 1 healthy, 0 unhealthy.", labels)
    for key, base in blocks:
        labels_ = list(key[1:])
        ejections.add_metric(labels_, v[base + E_EJECTIONS])
        if key in current:
            for fam, off in gauges:
                fam.add_metric(labels_, signed(v[base + off]))
            healthy.add_metric(labels_, 1 if state.healthy.get((key[1], key[2]), True) else 0)
    yield from (fam for fam, _ in gauges)
    yield from (ejections, healthy)


def _other_families(v: list[int], by_kind: dict[str, list[tuple[tuple[str, ...], int]]],
                    current: set[tuple[str, ...]]) -> Iterator[Any]:
    open_ = _family(GaugeMetricFamily, "gwcore_downstream_connections",
                    "Client connections open now.", ["listener"])
    accepted = _family(CounterMetricFamily, "gwcore_downstream_connections_accepted",
                       "Client connections accepted.", ["listener"])
    for key, base in by_kind.get("listener", []):
        accepted.add_metric([key[1]], v[base + L_ACCEPTED])
        if key in current:
            open_.add_metric([key[1]], signed(v[base + L_OPEN]))
    jwt = _family(CounterMetricFamily, "gwcore_jwt_requests",
                  "JWT checks by outcome (ok or the rejection reason).", ["provider", "outcome"])
    jwks = _family(CounterMetricFamily, "gwcore_jwks_fetches",
                   "JWKS URL fetches by outcome.", ["provider", "outcome"])
    for (_, provider), base in by_kind.get("jwt", []):
        for i, outcome in enumerate(JWT_OUTCOMES):
            if v[base + i]:
                jwt.add_metric([provider, outcome], v[base + i])
        jwks.add_metric([provider, "ok"], v[base + J_FETCH_OK])
        jwks.add_metric([provider, "error"], v[base + J_FETCH_ERROR])
    lines = CounterMetricFamily("gwcore_access_log_lines", "Access log lines written.")
    dropped = CounterMetricFamily("gwcore_access_log_dropped_lines",
                                  "Access log lines dropped: the buffer for a slow disk was full.")
    for _, base in by_kind.get("access_log", []):
        lines.add_metric([], v[base + A_LINES])
        dropped.add_metric([], v[base + A_DROPPED])
    store = [
        GaugeMetricFamily("gwcore_cache_bytes", "Bytes held by the workers' cache stores."),
        GaugeMetricFamily("gwcore_cache_entries", "Keys held by the workers' cache stores."),
        CounterMetricFamily("gwcore_cache_evictions", "Entries evicted to make room."),
        CounterMetricFamily("gwcore_cache_expirations", "Entries removed once expired."),
    ]
    for _, base in by_kind.get("cache", []):
        for i, fam in enumerate(store):
            fam.add_metric([], signed(v[base + i]) if i < S_EVICTIONS else v[base + i])
    limits = [
        _family(CounterMetricFamily, "gwcore_rate_limit_refused",
                "Requests a rate limit refused (429).", ["limit"]),
        _family(CounterMetricFamily, "gwcore_rate_limit_overflow",
                "Requests of local keys counted in a full bucket's shared overflow cell.",
                ["limit"]),
        _family(CounterMetricFamily, "gwcore_rate_limit_store_errors",
                "Global limit round trips to Redis that failed or timed out.", ["limit"]),
    ]
    for (_, name), base in by_kind.get("rate_limit", []):
        for i, fam in enumerate(limits):
            fam.add_metric([name], v[base + i])
    yield from (open_, accepted, jwt, jwks, lines, dropped, *store, *limits)
    yield from _model_families(v, by_kind)


def _model_families(v: list[int], by_kind: dict[str, list[tuple[tuple[str, ...], int]]]
                    ) -> Iterator[Any]:
    served = _family(CounterMetricFamily, "gwcore_model_requests",
                     "Model requests by the version (or fallback cluster) sent to.",
                     ["model", "version"])
    for (_, model, version), base in by_kind.get("model_version", []):
        served.add_metric([model, version], v[base])
    refused = _family(CounterMetricFamily, "gwcore_model_refused",
                      "Model requests refused (503): a version's queue full or waited on "
                      "too long.", ["model"])
    fallbacks = _family(CounterMetricFamily, "gwcore_model_fallbacks",
                        "Model requests sent on to a fallback.", ["model"])
    for (_, model), base in by_kind.get("model", []):
        refused.add_metric([model], v[base + MD_REFUSED])
        fallbacks.add_metric([model], v[base + MD_FALLBACKS])
    copies = _family(CounterMetricFamily, "gwcore_mirror_requests",
                     "Mirrored copies by outcome: the status class of the candidate's "
                     "answer, failed (no whole answer) or dropped (max_in_flight reached).",
                     ["model", "cluster", "outcome"])
    seconds = _family(CounterMetricFamily, "gwcore_mirror_seconds",
                      "Seconds the mirrored copies took, from sending to their end.",
                      ["model", "cluster"])
    for (_, model, cluster), base in by_kind.get("mirror", []):
        for i, outcome in enumerate(MIRROR_OUTCOMES):
            copies.add_metric([model, cluster, outcome], v[base + i])
        seconds.add_metric([model, cluster], v[base + MR_NS] / 1e9)
    yield from (served, refused, fallbacks, copies, seconds)


def _master_families(state: MasterState) -> Iterator[Any]:
    from gwcore import __version__

    workers = GaugeMetricFamily("gwcore_workers", "Worker processes by state.",
                                labels=["state"])
    for s in ("starting", "serving", "draining"):
        workers.add_metric([s], state.workers.get(s, 0))
    reloads = CounterMetricFamily("gwcore_reloads", "Config reloads by outcome.",
                                  labels=["outcome"])
    reloads.add_metric(["accepted"], state.reloads_accepted)
    reloads.add_metric(["rejected"], state.reloads_rejected)
    info = GaugeMetricFamily("gwcore_build_info", "gwcore's version; always 1.",
                             labels=["version", "python"])
    info.add_metric([__version__, platform.python_version()], 1)
    yield from (
        workers,
        CounterMetricFamily("gwcore_worker_restarts",
                            "Workers that exited unexpectedly and were respawned.",
                            value=state.restarts),
        reloads,
        GaugeMetricFamily("gwcore_config_last_reload_successful",
                          "1 if the last reload was accepted (or none happened).",
                          value=1 if state.last_reload_ok else 0),
        GaugeMetricFamily("gwcore_config_last_reload_success_timestamp_seconds",
                          "Unix time of the last config load that was accepted.",
                          value=state.last_success),
        GaugeMetricFamily("gwcore_draining", "1 while the master drains.",
                          value=1 if state.draining else 0),
        info,
    )
