"""One worker: builds the runtime from a Config on a fresh uvloop loop and serves it.

The loop is created here, inside the process that runs it (DESIGN.md §4: never before a fork).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import uvloop

from gwcore import runtime, tls
from gwcore.cache.purge import POLL_INTERVAL, PurgeBoard
from gwcore.config import Cluster as ClusterConfig
from gwcore.config import Config, Listener
from gwcore.config import Route as RouteConfig
from gwcore.filters.jwt_auth import Provider
from gwcore.http._wire import Clock
from gwcore.observability._access_log import AccessLog
from gwcore.observability.metrics import SYNC_INTERVAL, Recorder
from gwcore.proxy._router import Router
from gwcore.proxy._session import ListenerRuntime
from gwcore.proxy._upstream import Cluster
from gwcore.proxy.health import HealthBoard, maintain, resolve

log = logging.getLogger("gwcore")


def bind(listener: Listener, reuseport: bool = False, listen: bool = True) -> socket.socket:
    """A listening, non-blocking TCP socket for the listener (IPv4 or IPv6). OSError.
    ``reuseport``: SO_REUSEPORT, so several sockets (one per worker slot) share the address
    and the kernel spreads connections across them. ``listen=False`` only binds (a probe
    that the address is free)."""
    host, port = listener.host, listener.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(listener.backlog)
    sock.setblocking(False)
    return sock


@dataclass
class Runtime:
    """What a worker builds from the config besides its listeners."""

    clusters: dict[str, Cluster]
    providers: dict[str, Provider]
    access_log: AccessLog | None = None
    spans: Any = None       # gwcore.observability.tracing.OtlpSpans (tracing.otlp), or None
    cache: Any = None       # gwcore.filters.cache.CacheRuntime (a route caches), or None
    rate_limits: Any = None     # name → gwcore.filters.ratelimit.Policy (this worker's)
    models: Any = None          # name → gwcore.inference.models.ModelRuntime


def make_cluster(c: ClusterConfig, clock: Clock, loop: asyncio.AbstractEventLoop) -> Cluster:
    """The runtime cluster (balancer, pools, outlier detection, retries, TLS) for its
    config."""
    b, od, rt = c.balancer, c.outlier_detection, c.retries
    hash_on, hash_name = (b.hash_on, "") if isinstance(b.hash_on, str) else next(
        (k, v) for k, v in (("header", b.hash_on.header), ("cookie", b.hash_on.cookie),
                            ("jwt_claim", b.hash_on.jwt_claim)) if v is not None)
    response = c.timeouts.response
    if rt.per_try_timeout is not None:
        response = min(response, rt.per_try_timeout)
    cluster = Cluster(
        c.name, [(ep.host, ep.port, ep.weight) for ep in c.endpoints], clock, loop,
        connect_timeout=c.timeouts.connect, response_timeout=response,
        max_idle=c.pool.max_idle, idle_timeout=c.pool.idle_timeout,
        policy=b.policy, balance_factor=b.balance_factor, table_size=b.table_size,
        hash_on=hash_on, hash_name=hash_name,
        attempts=rt.attempts, retry_on=[str(x) for x in rt.on], budget=rt.budget_ratio,
        retry_after_max=rt.retry_after_max, od_failures=od.consecutive_failures,
        od_base=od.base_ejection_time, od_max=od.max_ejection_time,
        od_max_percent=od.max_ejection_percent,
        max_connections=c.circuit_breakers.max_connections,
        max_pending_requests=c.circuit_breakers.max_pending_requests,
        max_requests=c.circuit_breakers.max_requests,
        max_retries=c.circuit_breakers.max_retries,
        pending_timeout=c.circuit_breakers.pending_timeout)
    for ep, ep_cfg in zip(cluster.endpoints, c.endpoints):
        ep.connect_host = resolve(ep_cfg.host, ep_cfg.port)
    if c.tls is not None:
        cluster.set_tls(tls.client_context(c.tls, f"clusters[{c.name}].tls"),
                        c.tls.server_name)
    return cluster


def build_runtime(cfg: Config, loop: asyncio.AbstractEventLoop, clock: Clock,
                  metrics: Recorder | None = None, limits: Any = None
                  ) -> tuple[Runtime, list[tuple[Listener, ListenerRuntime]]]:
    """Clusters and JWT providers by name, and a ListenerRuntime per listener. Each route
    gets its filters in order (global, the jwt shorthand, its own; gwcore.runtime), each
    built once in this worker; the global filters' on_log also serves requests refused
    before routing. One AccessLog (its writer thread started) serves every listener when
    ``access_log`` is configured. With ``tracing``, every listener makes trace context; with
    ``tracing.otlp``, one span exporter (its export thread started here, after the fork)
    serves them all. ``limits``: the host's shared rate limit table (gwcore.limits.Table; None:
    one of this process's own, made if a route has a local limit)."""
    clusters = {c.name: make_cluster(c, clock, loop) for c in cfg.clusters}
    providers = {name: Provider(name, p) for name, p in cfg.jwt_providers.items()}
    context = runtime.FilterContext(providers, cfg.cache, limits, cfg.rate_limit_table,
                                    cfg.redis)
    shared, built = runtime.filter_chains(cfg, context)
    by_route = {id(route): filters for route, filters in zip(cfg.routes, built)}
    global_on_log = tuple(f.on_log for f in shared if callable(getattr(f, "on_log", None)))

    def filters(route: RouteConfig) -> tuple[Any, ...]:
        return by_route[id(route)]

    router = Router(cfg.routes, clusters, filters)
    for route in router.routes():
        route.limits = context.route_limits.get(route.name)
    sample_ratio = cfg.tracing.sample_ratio if cfg.tracing is not None else None
    spans = None
    if cfg.tracing is not None and cfg.tracing.otlp is not None:
        from gwcore.observability import tracing

        spans = tracing.build(cfg.tracing)
    listeners = [
        (lst, ListenerRuntime(clock, router,
                              max_head_bytes=lst.limits.max_head_bytes,
                              max_headers=lst.limits.max_headers,
                              max_target_bytes=lst.limits.max_target_bytes,
                              max_body_bytes=lst.limits.max_body_bytes,
                              buffer_body_bytes=lst.limits.buffer_body_bytes,
                              max_connections=lst.limits.max_connections or 0,
                              max_connections_per_client=(
                                  lst.limits.max_connections_per_client or 0),
                              header_timeout=lst.timeouts.header,
                              idle_timeout=lst.timeouts.idle,
                              filter_timeout=lst.timeouts.filter,
                              merge_slashes=lst.path_normalization.merge_slashes,
                              escaped_slashes=lst.path_normalization.escaped_slashes,
                              trace_sample_ratio=sample_ratio,
                              scheme="http" if lst.tls is None else "https",
                              client_cert_fields=_cert_fields(lst),
                              redirect_https=lst.redirect_http))
        for lst in cfg.listeners
    ]
    al = cfg.access_log
    access_log = None if al is None else AccessLog(
        al.path, al.format, sample_2xx=al.sample_2xx, buffer_bytes=al.buffer_bytes,
        redact_query=al.redact_query, loop=loop)
    for _, lr in listeners:
        lr.global_on_log = global_on_log
        lr.access_log = access_log
        lr.spans = spans
    models = _route_choices(cfg, router, clusters, access_log)
    if metrics is not None:
        _record_into(metrics, router, clusters, [lr for _, lr in listeners])
    return Runtime(clusters, providers, access_log, spans, context.cached(),
                   context.policies(), models), listeners


def _route_choices(cfg: Config, router: Router, clusters: dict[str, Cluster],
                   access_log: AccessLog | None) -> dict[str, Any]:
    """Routes whose cluster is chosen per request: a weighted split between clusters, or a
    model route (gwcore/inference), built only when the config has one. Returns the models'
    runtimes by name."""
    if not cfg.models and all(isinstance(r.cluster, str) for r in cfg.routes):
        return {}
    from gwcore.inference import models

    runtimes = models.build(cfg, clusters, access_log)
    for route, rc in zip(router.routes(), cfg.routes):
        if isinstance(rc.cluster, list):
            route.split = models.ClusterSplit([clusters[c.name] for c in rc.cluster],
                                              [c.weight for c in rc.cluster])
        elif rc.model_from is not None:
            route.model = models.ModelRoute(rc, runtimes, access_log)
    return runtimes


def _cert_fields(lst: Listener) -> tuple[str, str] | None:
    if lst.tls is None or lst.tls.client_auth is None:
        return None
    return lst.tls.client_auth.subject_field, lst.tls.client_auth.san_field


def _record_into(metrics: Recorder, router: Router, clusters: dict[str, Cluster],
                 listeners: list[ListenerRuntime]) -> None:
    """Points the compiled objects at this worker's metrics row and their columns."""
    lay, row = metrics.layout, metrics.row
    for route in router.routes():
        route.m_base = lay.routes[route.name]
        route.m_jwt = lay.route_provider.get(route.name, -1)
    for name, cluster in clusters.items():
        cluster.set_metrics(row, lay.clusters[name],
                            [lay.endpoints[(name, ep.address)] for ep in cluster.endpoints])
    for lr in listeners:
        lr.set_metrics(row, lay.no_route)


HEARTBEAT_INTERVAL = 1.0     # seconds between heartbeats to the master
IDLE_GRACE = 1.0             # a draining connection with no request is closed after this


def serve(cfg: Config, sockets: list[list[socket.socket]] | None = None, *,
          control: int | None = None, board: HealthBoard | None = None,
          prober: bool = True, metrics: Recorder | None = None,
          purges: tuple[PurgeBoard, int] | None = None, limits: Any = None,
          contexts: dict[str, tls.ListenerContexts] | None = None) -> int:
    """Serve cfg on this process until told to stop; returns the exit status (0).

    ``sockets``: per listener (in config order), the already-bound listening sockets this
    worker accepts on (bound here if None).
    ``control``: write end of the pipe to the master; ``b"H"`` is written every second as a
    heartbeat, from the start, and ``b"R"`` once serving: when the listeners accept and every
    JWT provider with a ``jwks.url`` has finished its first key fetch (succeeded or failed),
    or after that provider's ``jwks.timeout`` at most (the master tells systemd READY=1 when
    every worker has said ``R``, and a reload retires the old workers only then).
    SIGTERM drains (stop accepting, finish in-flight requests, ``Connection: close``, exit by
    ``drain_timeout``), then writes what the access log still buffers; SIGINT does the same
    when there is no master (under a master, the master handles Ctrl-C); SIGQUIT exits at
    once; SIGUSR1 reopens the log file and the access log.
    ``board``: the generation's shared health board (made here if None); ``prober``: this
    worker runs the active health checks (gwcore.proxy.health).
    ``metrics``: this worker's row and the generation's layout (gwcore.observability.metrics;
    None: nothing recorded).
    ``limits``: the master's shared rate limit table (gwcore.limits.Table), None: this
    process makes its own if it needs one.
    ``contexts``: each TLS listener's SSL contexts by name (gwcore.tls), built by the master
    before the fork so that every worker shares the session ticket keys (built here if
    None).
    """
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    clock = Clock(loop)
    stop = loop.create_future()

    def request_stop(sig: int) -> None:
        if not stop.done():
            stop.set_result(sig)

    loop.add_signal_handler(signal.SIGTERM, request_stop, signal.SIGTERM)
    if control is None:
        loop.add_signal_handler(signal.SIGINT, request_stop, signal.SIGINT)
    else:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    loop.add_signal_handler(signal.SIGQUIT, os._exit, 0)
    access_logs: list[AccessLog] = []       # filled once built; SIGUSR1 may come earlier
    loop.add_signal_handler(signal.SIGUSR1, reopen_log_files, access_logs)
    socks = sockets if sockets is not None else [[bind(lst)] for lst in cfg.listeners]
    servers = []
    rt, runtimes = build_runtime(cfg, loop, clock, metrics, limits)
    if rt.access_log is not None:
        access_logs.append(rt.access_log)
    upkeep = [loop.create_task(maintain(cfg, rt.clusters, board or HealthBoard(cfg), prober))]
    sync = None
    if metrics is not None:
        named = [(lst.name, lr) for lst, lr in runtimes]
        access_log = rt.access_log

        def sync() -> None:
            metrics.sync(named, rt.clusters, rt.providers, access_log, rt.cache,
                         rt.rate_limits, rt.models)

        upkeep.append(loop.create_task(_every(SYNC_INTERVAL, sync)))
    if purges is not None:
        upkeep.append(loop.create_task(_every(POLL_INTERVAL, _Purger(*purges, rt.cache))))
    fetching = [p for p in rt.providers.values() if p.cfg.jwks.url is not None]
    upkeep += [loop.create_task(p.refresh_forever()) for p in fetching]
    announce = None
    if contexts is None:
        contexts = tls.build_listeners(cfg)
    try:
        for group, (lst, runtime) in zip(socks, runtimes):
            factory, ssl_args = _accept(lst, runtime, loop, contexts)
            for sock in group:
                servers.append(loop.run_until_complete(loop.create_server(
                    factory, sock=sock, backlog=lst.backlog, **ssl_args)))
            if control is None:
                log.info("listener %s on %s", lst.name, lst.address)
        if control is not None:
            loop.call_soon(_heartbeat, loop, control)
            # "ready" goes out from the running loop: a signal the master sends on seeing it
            # then always finds the loop running (uvloop may miss one between run calls)
            announce = loop.create_task(_report_ready(loop, control, fetching))
            upkeep.append(announce)
        sig = loop.run_until_complete(stop)
        if announce is not None:
            announce.cancel()       # told to stop before being ready: never say ready now
        log.info("received %s: draining", signal.Signals(sig).name)
        for server in servers:
            server.close()
        loop.run_until_complete(_drain([rt for _, rt in runtimes], cfg.drain_timeout))
        for task in upkeep:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*upkeep, return_exceptions=True))
        if sync is not None:
            sync()          # the last word: the master folds this row once we exit
        if rt.spans is not None and not rt.spans.shutdown():
            log.warning("tracing: spans still queued after %gs were dropped", rt.spans.timeout)
    finally:
        if rt.access_log is not None:
            rt.access_log.close()       # the lines still buffered are written
        clock.close()
        loop.close()
    return 0


def _accept(lst: Listener, runtime: ListenerRuntime, loop: asyncio.AbstractEventLoop,
            contexts: dict[str, tls.ListenerContexts]) -> tuple[Any, dict[str, Any]]:
    """The protocol factory and create_server's TLS arguments for a listener. With
    ``proxy_protocol`` or ``tls.max_handshakes``, connections are accepted plain and
    ProxyAccept reads the header, then does the TLS handshake itself (loop.start_tls)."""
    ctx = contexts[lst.name].default if lst.tls is not None else None
    bound = lst.tls.max_handshakes if lst.tls is not None else None
    if lst.proxy_protocol is not None or bound is not None:
        from gwcore.proxy._proxyproto import ProxySettings

        pp = ProxySettings(runtime.protocol, loop,
                           lst.proxy_protocol.trusted if lst.proxy_protocol else [],
                           lst.timeouts.header, ctx, lst.timeouts.tls_handshake,
                           expect_header=lst.proxy_protocol is not None,
                           max_handshakes=bound or 0)
        return pp.protocol, {}
    if ctx is None:
        return runtime.protocol, {}
    return runtime.protocol, {"ssl": ctx, "ssl_handshake_timeout": lst.timeouts.tls_handshake}


async def _drain(runtimes: list[ListenerRuntime], timeout: float) -> None:
    for rt in runtimes:
        rt.start_drain(IDLE_GRACE)
    deadline = asyncio.get_running_loop().time() + timeout
    while sum(rt.open_connections for rt in runtimes):
        if asyncio.get_running_loop().time() >= deadline:
            log.warning("drain timeout: closing %d connections",
                        sum(rt.open_connections for rt in runtimes))
            for rt in runtimes:
                rt.abort_all()
            return
        await asyncio.sleep(0.05)


class _Purger:
    """Applies the purges the master posts (gwcore.cache.purge) to this worker's store."""

    def __init__(self, board: PurgeBoard, index: int, cache: Any) -> None:
        self.board, self.index, self.cache = board, index, cache
        self.seen = board.acked(index)[0]

    def __call__(self) -> None:
        pending = self.board.pending(self.seen)
        if pending == []:
            return
        if pending is None:             # fell behind the board: nothing stale may stay
            if self.cache is not None:
                self.cache.store.clear()
            self.seen = self.board.last
            self.board.ack(self.index, self.seen, 0)
            return
        for seq, kind, url in pending:
            removed = self.cache.purge(kind, url) if self.cache is not None else 0
            self.seen = seq
            self.board.ack(self.index, seq, removed)


async def _every(interval: float, fn: Any) -> None:
    while True:
        try:
            fn()
        except Exception:
            log.exception("periodic %s failed", getattr(fn, "__qualname__", fn))
        await asyncio.sleep(interval)


async def _report_ready(loop: asyncio.AbstractEventLoop, fd: int,
                        providers: list[Provider]) -> None:
    """Writes b"R" once each provider's first key fetch has finished (at most its
    ``jwks.timeout``: a fetch still running then does not keep the worker unready; requests
    wait for it themselves, within the same bound)."""
    done = await asyncio.gather(*(p.wait_for_keys() for p in providers))
    for p, ok in zip(providers, done):
        if not ok:
            log.warning("jwt %s: first JWKS fetch from %s unfinished after %gs; serving "
                        "without its keys meanwhile", p.name, p.cfg.jwks.url, p.cfg.jwks.timeout)
    _write_control(loop, fd, b"R")


def _heartbeat(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    _write_control(loop, fd, b"H")
    loop.call_later(HEARTBEAT_INTERVAL, _heartbeat, loop, fd)


def _write_control(loop: asyncio.AbstractEventLoop, fd: int, msg: bytes) -> None:
    try:
        os.write(fd, msg)
    except BlockingIOError:
        if msg != b"H":         # a heartbeat can wait for the next one; "ready" cannot
            loop.call_later(0.05, _write_control, loop, fd, msg)
    except OSError:
        os._exit(0)             # the master is gone: nothing supervises us any more


_log_file: str | None = None


def setup_logging(path: str | None) -> None:
    """Log lines to stderr, or to ``path`` (reopened by reopen_log_files on SIGUSR1)."""
    global _log_file
    _log_file = path
    handler: logging.Handler = (logging.FileHandler(path) if path
                                else logging.StreamHandler(sys.stderr))
    handler.setFormatter(logging.Formatter(
        "%(asctime)s gwcore[%(process)d] %(levelname)s %(message)s"))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def reopen_log_files(access_logs: Sequence[AccessLog] = ()) -> None:
    """logrotate support: reopen the log file (a no-op when logging to stderr), and have each
    access log reopen its file (by its writer thread, between two writes)."""
    if _log_file:
        setup_logging(_log_file)
    for access_log in access_logs:
        access_log.reopen()
