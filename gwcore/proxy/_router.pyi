"""Router: (host, request-target, method) → route, first match in config order (compiled:
it runs on every request)."""

from collections.abc import Callable, Sequence
from typing import Any

from gwcore.config import Route as RouteConfig

class Route:
    """A matched route: its config, the runtime cluster its requests go to, and its request
    filters in order (gwcore.filters.Filter; empty for the fast path)."""

    config: RouteConfig
    cluster: Any
    filters: tuple[Any, ...]
    def __init__(self, config: RouteConfig, cluster: Any, filters: tuple[Any, ...] = ()) -> None: ...

class Router:
    """Matches requests against routes in order. ``host`` matches exactly or as ``*.suffix``
    (one or more labels before the suffix), case-insensitively and without the port; ``path``
    exactly and ``path_prefix`` as a prefix of the target's path (before ``?``)."""

    def __init__(self, routes: Sequence[RouteConfig], clusters: dict[str, Any],
                 filters: Callable[[RouteConfig], tuple[Any, ...]] | None = None) -> None:
        """``filters(route_config)`` gives each route's request filters (default: none).
        KeyError if a route names a cluster not in ``clusters``."""
    def match(self, host: bytes, target: bytes, method: bytes) -> Route | None:
        """host: the Host field value (b"" if none); target: the request-target as received
        (origin-form or absolute-form, RFC 9112 §3.2); method: the method token. Bytes."""

def split_absolute(target: bytes, host: bytes) -> tuple[bytes, bytes]:
    """absolute-form → (origin-form target, authority); the authority replaces Host
    (RFC 9112 §3.2.2). The authority ends at the first "/", "?" or "#" (RFC 3986 §3.2);
    b"http://h?x=1" → (b"/?x=1", b"h"). Other forms come back unchanged."""
