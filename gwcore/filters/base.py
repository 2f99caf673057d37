"""Filters and their phases (DESIGN.md §6; Pingora's phases, Envoy's explicit status, Kong's
plugin phases). The phases and their return rules are in docs/filters.md.

A filter is any object with some of these methods, in the order a request meets them:

- ``on_request(exchange)`` → ``None`` (continue), a :class:`Response` (answer at once), or an
  awaitable of either (slow path: it runs as a task only when a filter returns one);
- ``on_response_head(exchange, response)`` → ``None`` (``response.status`` and
  ``response.headers`` may have been changed in place), or a :class:`Response` that replaces
  the upstream's;
- ``on_response_body(exchange, chunk: memoryview, end: bool)`` → ``None``: observes the body as
  it streams (the chunk is only valid during the call);
- ``on_log(exchange)``: called exactly once per request, however it ended.

The gateway looks the phases up once per route, so a phase no filter of a route implements
costs nothing on that route.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from http import HTTPStatus
from typing import Any

from gwcore.proxy._exchange import Exchange

__all__ = ["PHASES", "Exchange", "Fields", "Filter", "Response", "run_request_filters"]

PHASES = ("on_request", "on_response_head", "on_response_body", "on_log")


class Filter:
    """Optional base class of a filter: keeps the filter's ``config`` (the dict given in the
    YAML ``config:`` key). A filter loaded by import path is built once per worker as
    ``Class(config)``; it implements any subset of the phases (module docstring)."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config = config or {}


_REASONS = {s.value: s.phrase for s in HTTPStatus}


def reason(status: int) -> str:
    """The standard reason phrase of a status code (RFC 9110 §15), or ``Status``."""
    return _REASONS.get(status, "Status")


_BAD_NAME = re.compile(rb"[\r\n\0: \t]")
_BAD_VALUE = re.compile(rb"[\r\n\0]")


class Fields:
    """A message's fields as an ordered list of (name, value) bytes pairs; names compare
    case-insensitively (RFC 9110 §5.1)."""

    __slots__ = ("items",)

    def __init__(self, items: Iterable[tuple[bytes, bytes]] = ()) -> None:
        self.items: list[tuple[bytes, bytes]] = []
        for name, value in items:
            self.add(name, value)

    def get(self, name: bytes, default: bytes | None = None) -> bytes | None:
        """The first value of ``name``, or ``default``."""
        low = name.lower()
        for n, v in self.items:
            if n.lower() == low:
                return v
        return default

    def set(self, name: bytes, value: bytes) -> None:
        """Replace every ``name`` field by one ``name: value``. ValueError for CR, LF, NUL."""
        self.remove(name)
        self.add(name, value)

    def add(self, name: bytes, value: bytes) -> None:
        """Append a ``name: value`` field. ValueError for a bad name or CR, LF, NUL."""
        if (not isinstance(name, bytes) or not isinstance(value, bytes) or not name
                or _BAD_NAME.search(name) or _BAD_VALUE.search(value)):
            raise ValueError("a field name is a non-empty token and its value bytes without "
                             "CR, LF or NUL")
        self.items.append((name, value))

    def remove(self, name: bytes) -> None:
        """Drop every ``name`` field."""
        low = name.lower()
        self.items = [(n, v) for n, v in self.items if n.lower() != low]

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"Fields({self.items!r})"


class Response:
    """A response: one a filter answers with, or the upstream's in ``on_response_head``.

    ``status``: int; ``headers``: :class:`Fields` (built from a list of (name, value) bytes
    pairs); ``body``: bytes, or an iterable of bytes, or an async iterator of bytes (streamed
    with back-pressure; chunked for HTTP/1.1 unless a Content-Length is given). In
    ``on_response_head`` the upstream's response has ``body`` None: its body follows."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: Iterable[tuple[bytes, bytes]] = (),
                 body: Any = b"") -> None:
        if not 100 <= status <= 999 or status in (101,):
            raise ValueError(f"status {status} cannot be answered")
        self.status = status
        self.headers = headers if isinstance(headers, Fields) else Fields(headers)
        self.body = body

    @classmethod
    def received(cls, status: int, items: list[tuple[bytes, bytes]]) -> Response:
        """The upstream's response head as on_response_head sees it (body None): ``items``
        come from the parser, so they are taken as they are."""
        response = cls.__new__(cls)
        fields = Fields.__new__(Fields)
        fields.items = items
        response.status, response.headers, response.body = status, fields, None
        return response

    @classmethod
    def error(cls, status: int, detail: str,
              headers: Iterable[tuple[bytes, bytes]] = ()) -> Response:
        """A gateway error: stable status, body ``"<status> <reason>: <detail>\\n"``."""
        return cls(status, headers, f"{status} {reason(status)}: {detail}\n".encode())

    def encode_head(self, close: bool, length: int | None) -> bytes:
        """The HTTP/1.1 head: the fields, ``Content-Type: text/plain`` for a body without one,
        ``Content-Length`` (when ``length`` is not None), else ``Transfer-Encoding: chunked``
        (``length`` None and not ``close``), and ``Connection: close`` when ``close``."""
        out = [b"HTTP/1.1 %d %s\r\n" % (self.status, reason(self.status).encode())]
        if length and self.headers.get(b"content-type") is None:
            out.append(b"Content-Type: text/plain\r\n")
        for name, value in self.headers.items:
            low = name.lower()
            if low not in _FRAMING:
                out.append(name + b": " + value + b"\r\n")
        if self.status in (204, 304) or self.status < 200:
            pass            # never a body, so no framing (RFC 9110 §8.6, RFC 9112 §6.3)
        elif length is not None:
            out.append(b"Content-Length: %d\r\n" % length)
        elif not close:
            out.append(b"Transfer-Encoding: chunked\r\n")
        if close:
            out.append(b"Connection: close\r\n")
        out.append(b"\r\n")
        return b"".join(out)

    def encode(self, close: bool) -> bytes:
        """The whole message (``body`` must be bytes)."""
        return self.encode_head(close, len(self.body)) + self.body

    def __repr__(self) -> str:
        return f"Response({self.status}, {self.headers.items!r})"


# the gateway frames every response itself
_FRAMING = frozenset((b"content-length", b"transfer-encoding", b"connection"))

FilterResult = None | Response | Awaitable[None | Response]


def run_request_filters(exchange: Exchange, phases: Sequence[Callable[[Exchange], Any]]
                        ) -> None | Response | asyncio.Future[Any]:
    """Run ``on_request`` phases in order. Returns None (go upstream), a Response, or a Future
    resolving to one of those when a filter had to wait (the rest then run after it).
    TypeError for any other return value."""
    for i, phase in enumerate(phases):
        result = phase(exchange)
        if result is None:
            continue
        if isinstance(result, Response):
            return result
        if inspect.isawaitable(result):
            return asyncio.ensure_future(_finish(result, exchange, phases[i + 1:]))
        raise TypeError(f"{phase.__qualname__} returned {type(result).__name__}")
    return None


async def _finish(pending: Awaitable[Any], exchange: Exchange,
                  rest: Sequence[Callable[[Exchange], Any]]) -> Any:
    result = await pending
    if result is not None:
        return result
    later = run_request_filters(exchange, rest)
    return await later if isinstance(later, asyncio.Future) else later
