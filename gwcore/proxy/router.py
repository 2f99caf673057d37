"""Router: (host, request-target, method) → route, first match in config order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gwcore.config import Route as RouteConfig


@dataclass(frozen=True, slots=True)
class Route:
    """A matched route: its config, the runtime cluster its requests go to, and its request
    filters in order (gwcore.filters.Filter; empty for the fast path)."""

    config: RouteConfig
    cluster: Any  # gwcore.proxy._upstream.Cluster
    filters: tuple[Any, ...] = ()


class _Matcher:
    __slots__ = ("host", "host_suffix", "methods", "path", "prefix", "route")

    def __init__(self, route: Route) -> None:
        m = route.config.match
        self.route = route
        host = m.host.lower().encode() if m.host else None
        self.host_suffix = host[1:] if host and host.startswith(b"*.") else None
        self.host = None if self.host_suffix else host
        self.path = m.path.encode() if m.path is not None else None
        self.prefix = m.path_prefix.encode() if m.path_prefix is not None else None
        self.methods = frozenset(x.encode() for x in m.methods) if m.methods else None


class Router:
    """Matches requests against routes in order. ``host`` matches exactly or as ``*.suffix``
    (one or more labels before the suffix), case-insensitively and without the port."""

    def __init__(self, routes: Sequence[RouteConfig], clusters: dict[str, Any],
                 filters: Callable[[RouteConfig], tuple[Any, ...]] = lambda r: ()) -> None:
        """``filters(route_config)`` gives each route's request filters."""
        self._matchers = [_Matcher(Route(r, clusters[r.cluster], filters(r))) for r in routes]

    def match(self, host: bytes, target: bytes, method: bytes) -> Route | None:
        """host: the Host field value (b"" if none); target: the request-target as received
        (origin-form or absolute-form, RFC 9112 §3.2); method: the method token. Bytes."""
        if target[:1] != b"/":
            target, host = split_absolute(target, host)
        path = target.partition(b"?")[0]
        if host:
            host = _host_only(host)
        for m in self._matchers:
            if m.methods is not None and method not in m.methods:
                continue
            if m.host is not None and host != m.host:
                continue
            if m.host_suffix is not None and not (
                    host.endswith(m.host_suffix) and len(host) > len(m.host_suffix)):
                continue
            if m.path is not None and path != m.path:
                continue
            if m.prefix is not None and not path.startswith(m.prefix):
                continue
            return m.route
        return None


def _host_only(host: bytes) -> bytes:
    """b"Example.COM:8080" → b"example.com"; b"[::1]:80" → b"[::1]"."""
    host = host.lower()
    if host.startswith(b"["):
        return host.partition(b"]")[0] + b"]"
    return host.partition(b":")[0]


def split_absolute(target: bytes, host: bytes) -> tuple[bytes, bytes]:
    """absolute-form → (origin-form target, authority); the authority replaces Host
    (RFC 9112 §3.2.2). The authority ends at the first "/", "?" or "#" (RFC 3986 §3.2);
    b"http://h?x=1" → (b"/?x=1", b"h"). Other forms come back unchanged."""
    _scheme, sep, rest = target.partition(b"://")
    if not sep:
        return target, host     # asterisk-form or authority-form: routed by Host only
    end = next((i for i, c in enumerate(rest) if c in b"/?#"), len(rest))
    authority, tail = rest[:end], rest[end:].partition(b"#")[0]
    if not tail.startswith(b"/"):
        tail = b"/" + tail
    return tail, authority
