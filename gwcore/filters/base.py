"""Filter phases and the exchange a filter works on (DESIGN.md §6; Pingora's phases with
Envoy's explicit status).

A filter implements ``on_request(exchange)``, which returns:
- ``None`` to continue with the next filter (and then the upstream);
- a :class:`LocalResponse` to answer at once (401, 429, a cache hit...);
- an awaitable (slow path only: a key fetch, a Redis round trip) resolving to either of the
  above; the downstream connection stops reading until it resolves.
Routes without filters never build an Exchange: the proxy's fast path stays untouched.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol

from gwcore.http import Request


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


@dataclass(slots=True)
class LocalResponse:
    """A response the gateway answers itself. ``headers``: (name, value) str pairs; ``body``
    bytes (Content-Type text/plain unless a header says otherwise)."""

    status: int
    body: bytes = b""
    headers: Sequence[tuple[str, str]] = ()

    @classmethod
    def error(cls, status: int, detail: str) -> LocalResponse:
        """A gateway error: stable status, body ``"<status> <reason>: <detail>\n"``."""
        return cls(status, f"{status} {_reason(status)}: {detail}\n".encode())

    def encode(self, close: bool) -> bytes:
        """The whole HTTP/1.1 message; ``close`` adds ``Connection: close``."""
        lines = [f"HTTP/1.1 {self.status} {_reason(self.status)}"]
        names = {n.lower() for n, _ in self.headers}
        if "content-type" not in names and self.body:
            lines.append("Content-Type: text/plain")
        lines += [f"{n}: {v}" for n, v in self.headers]
        lines.append(f"Content-Length: {len(self.body)}")
        if close:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass(slots=True, eq=False)
class Exchange:
    """One request on a filtered route: what filters read and the one object they write.

    ``request``: the parsed head (gwcore.http.Request: method, target, get(name) -> bytes).
    ``route``: the matched gwcore.proxy._router.Route. ``client_ip``: str.
    ``request.path`` is the normalised path routes matched (RFC 3986 §6.2.2);
    ``request.target`` the request-target as received.
    ``state``: per-request scratch space shared by the filters (e.g. verified JWT claims).
    """

    request: Request
    route: Any
    client_ip: str
    state: dict[str, Any] = field(default_factory=dict)
    upstream_fields: list[tuple[bytes, bytes]] = field(default_factory=list)
    removed_fields: set[bytes] = field(default_factory=set)

    def set_upstream_field(self, name: bytes, value: bytes) -> None:
        """Send ``name: value`` upstream, replacing any field of that name the client sent
        (so a client can never forge it). name and value are bytes without CR/LF."""
        if b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name:
            raise ValueError("field name and value must not contain CR or LF")
        self.removed_fields.add(name.lower())
        self.upstream_fields.append((name, value))

    def remove_upstream_field(self, name: bytes) -> None:
        """Do not forward the client's ``name`` field(s) upstream."""
        self.removed_fields.add(name.lower())


FilterResult = None | LocalResponse | Awaitable[None | LocalResponse]


class Filter(Protocol):
    def on_request(self, exchange: Exchange) -> FilterResult: ...


def run_request_filters(exchange: Exchange, filters: Sequence[Filter]
                        ) -> None | LocalResponse | asyncio.Future[Any]:
    """Run the filters in order. Returns None (go upstream), a LocalResponse, or a Future
    resolving to one of those when a filter had to wait (the rest then run after it)."""
    for i, f in enumerate(filters):
        result = f.on_request(exchange)
        if result is None:
            continue
        if isinstance(result, LocalResponse):
            return result
        if inspect.isawaitable(result):
            return asyncio.ensure_future(_finish(result, exchange, filters[i + 1:]))
        raise TypeError(f"{type(f).__name__}.on_request returned {type(result).__name__}")
    return None


async def _finish(pending: Awaitable[Any], exchange: Exchange, rest: Sequence[Filter]) -> Any:
    result = await pending
    if result is not None:
        return result
    later = run_request_filters(exchange, rest)
    return await later if isinstance(later, asyncio.Future) else later
