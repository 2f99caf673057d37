"""One worker: builds the runtime from a Config on a fresh uvloop loop and serves it.

The loop is created here, inside the process that runs it (DESIGN.md §4: never before a fork).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket

import uvloop

from gwcore.config import Config, Listener
from gwcore.http._connection import ListenerRuntime
from gwcore.http._wire import Clock
from gwcore.proxy._upstream import Cluster
from gwcore.proxy.router import Router

log = logging.getLogger("gwcore")


def bind(listener: Listener) -> socket.socket:
    """A listening, non-blocking TCP socket for the listener (IPv4 or IPv6). OSError."""
    host, port = listener.host, listener.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((host, port))
    sock.listen(listener.backlog)
    sock.setblocking(False)
    return sock


def build_runtime(cfg: Config, loop: asyncio.AbstractEventLoop, clock: Clock
                  ) -> list[tuple[Listener, ListenerRuntime]]:
    """Clusters, router and one ListenerRuntime per listener, all bound to this loop."""
    clusters = {
        c.name: Cluster(c.name, c.addresses, clock, loop,
                        connect_timeout=c.timeouts.connect, response_timeout=c.timeouts.response,
                        max_idle=c.pool.max_idle, idle_timeout=c.pool.idle_timeout)
        for c in cfg.clusters
    }
    router = Router(cfg.routes, clusters)
    return [
        (lst, ListenerRuntime(router, clock,
                              max_head_bytes=lst.limits.max_head_bytes,
                              max_headers=lst.limits.max_headers,
                              max_target_bytes=lst.limits.max_target_bytes,
                              max_body_bytes=lst.limits.max_body_bytes,
                              header_timeout=lst.timeouts.header,
                              idle_timeout=lst.timeouts.idle))
        for lst in cfg.listeners
    ]


def serve(cfg: Config, sockets: list[socket.socket] | None = None) -> int:
    """Serve cfg until SIGTERM or SIGINT; returns the exit status (0).
    ``sockets``: already-bound listening sockets in listener order (bound here if None)."""
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    clock = Clock(loop)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda s=sig: stop.done() or stop.set_result(s))
    socks = sockets if sockets is not None else [bind(lst) for lst in cfg.listeners]
    servers = []
    try:
        for sock, (lst, runtime) in zip(socks, build_runtime(cfg, loop, clock)):
            server = loop.run_until_complete(
                loop.create_server(runtime.protocol, sock=sock, backlog=lst.backlog))
            servers.append(server)
            log.info("listener %s on %s", lst.name, lst.address)
        sig = loop.run_until_complete(stop)
        log.info("received %s, stopping", signal.Signals(sig).name)
        for server in servers:
            server.close()
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        clock.close()
        loop.close()
    return 0
