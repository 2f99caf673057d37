"""Endpoint health, per worker: active HTTP health checks, the end of outlier ejections, and
DNS re-resolution of endpoints given by name.

Sharing across workers: active checks run in worker 0 of each generation only, so N workers
never send N× the probes. Results go to a ``HealthBoard``: a shared memory page (one byte per
endpoint, all clusters in config order) that the master maps before forking the generation;
every worker reads it every ``SYNC_INTERVAL`` and applies changes to its balancers. Outlier
ejection stays per worker: it reacts to the traffic that worker sees (as Envoy's does).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import mmap
import socket
from collections.abc import Sequence
from typing import Any

from gwcore.config import Config, HealthCheck
from gwcore.http import ParseError, parse_response

log = logging.getLogger("gwcore")

SYNC_INTERVAL = 0.25         # seconds between board reads and ejection checks
UNHEALTHY = 1                # board byte; 0 = healthy (endpoints start healthy)


class HealthBoard:
    """One byte per endpoint of a config, in a MAP_SHARED anonymous mapping: create it
    before fork() and every process of the generation sees the same bytes."""

    def __init__(self, cfg: Config, previous: HealthBoard | None = None) -> None:
        """``previous``: the board of the generation being replaced; endpoints it knew (same
        cluster name and address) keep their state, so a reload does not revive dead ones."""
        self.offsets: dict[str, int] = {}
        self.addresses: dict[tuple[str, str], int] = {}
        n = 0
        for c in cfg.clusters:
            self.offsets[c.name] = n
            for i, ep in enumerate(c.endpoints):
                self.addresses[(c.name, ep.address)] = n + i
            n += len(c.endpoints)
        self._mem = mmap.mmap(-1, max(n, 1))
        if previous is not None:
            for key, at in self.addresses.items():
                old = previous.addresses.get(key)
                if old is not None:
                    self._mem[at] = previous._mem[old]

    def healthy(self, cluster: str, index: int) -> bool:
        return self._mem[self.offsets[cluster] + index] != UNHEALTHY

    def set(self, cluster: str, index: int, healthy: bool) -> None:
        self._mem[self.offsets[cluster] + index] = 0 if healthy else UNHEALTHY


def _first(infos: list) -> str:
    """IPv4 first (an origin bound to 127.0.0.1 is not reachable as ::1), then IPv6."""
    return min(infos, key=lambda i: i[0] != socket.AF_INET)[4][0]


def resolve(host: str, port: int) -> str:
    """An address of host (blocking getaddrinfo; used at start). A name that does not
    resolve is returned unchanged (connects will try again)."""
    if _is_ip(host):
        return host
    try:
        return _first(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    except OSError as e:
        log.warning("endpoint %s:%d does not resolve yet: %s", host, port, e)
        return host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


async def probe(host: str, port: int, authority: str, hc: HealthCheck,
                ssl_context: Any = None, server_name: str | None = None) -> bool:
    """One active check: ``GET hc.path`` on a new connection (TLS with ``ssl_context``,
    verifying ``server_name``); True if the status is expected and arrived within
    hc.timeout seconds."""
    writer = None
    try:
        async with asyncio.timeout(hc.timeout):
            if ssl_context is None:
                reader, writer = await asyncio.open_connection(host, port)
            else:
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=ssl_context, server_hostname=server_name)
            writer.write(f"GET {hc.path} HTTP/1.1\r\nHost: {authority}\r\n"
                         "User-Agent: gwcore-health-check\r\nConnection: close\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
        resp = parse_response(head)
        return resp is not None and any(lo <= resp.status <= hi
                                        for lo, hi in hc.expected_statuses)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
            ParseError):
        return False
    finally:
        if writer is not None:
            writer.close()


async def _check_cluster(cluster, hc: HealthCheck, board: HealthBoard) -> None:
    """Probe every endpoint each interval; flip after the thresholds (consecutive)."""
    n = len(cluster.endpoints)
    streak = [0] * n                 # >0: successes in a row, <0: failures in a row
    while True:
        results = await asyncio.gather(*(probe(ep.connect_host, ep.port,
                                               ep.authority.decode(), hc, cluster.ssl_context,
                                               cluster.server_name or ep.host)
                                         for ep in cluster.endpoints))
        for i, ok in enumerate(results):
            streak[i] = max(streak[i], 0) + 1 if ok else min(streak[i], 0) - 1
            healthy = board.healthy(cluster.name, i)
            if healthy and streak[i] <= -hc.unhealthy_threshold:
                board.set(cluster.name, i, False)
            elif not healthy and streak[i] >= hc.healthy_threshold:
                board.set(cluster.name, i, True)
        await asyncio.sleep(hc.interval)


async def _refresh_dns(cluster, interval: float) -> None:
    loop = asyncio.get_running_loop()
    named = [ep for ep in cluster.endpoints if not _is_ip(ep.host)]
    while named:
        await asyncio.sleep(interval)
        for ep in named:
            try:
                infos = await loop.getaddrinfo(ep.host, ep.port, type=socket.SOCK_STREAM)
            except OSError as e:
                log.warning("cluster %s: %s did not resolve, keeping %s: %s", cluster.name,
                            ep.host, ep.connect_host, e)
                continue
            if infos and ep.connect_host not in [info[4][0] for info in infos]:
                ep.connect_host = _first(infos)
                log.info("cluster %s: %s now resolves to %s", cluster.name, ep.host,
                         ep.connect_host)


async def maintain(cfg: Config, clusters: dict, board: HealthBoard, prober: bool) -> None:
    """Per worker, forever: apply the board and end ejections every SYNC_INTERVAL; in the
    prober worker also run the active checks; re-resolve DNS names every dns_refresh."""
    loop = asyncio.get_running_loop()
    tasks: Sequence[asyncio.Task] = [
        *(loop.create_task(_check_cluster(clusters[c.name], c.health_check, board))
          for c in cfg.clusters if prober and c.health_check is not None),
        *(loop.create_task(_refresh_dns(clusters[c.name], c.dns_refresh))
          for c in cfg.clusters),
    ]
    try:
        while True:
            now = loop.time()
            for c in cfg.clusters:
                cluster = clusters[c.name]
                cluster.refresh(now)
                for i in range(len(c.endpoints)):
                    cluster.set_healthy(i, board.healthy(c.name, i))
            await asyncio.sleep(SYNC_INTERVAL)
    finally:
        for t in tasks:
            t.cancel()
