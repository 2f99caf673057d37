"""The HTTP/1.1 side of a client connection (gwcore/http/_connection.pyx, RFC 9112): request
framing (heads parsed in C by src_c/http1.c, bodies buffered up to buffer_body_bytes or
streamed, chunked decoding), limits, timeouts, keep-alive and pipelining (requests handled one
at a time, pipelined ones waiting in the buffer, reads paused past 64 KiB of them, RFC 9112
§9.3.2), response framing, local answers (gwcore.filters.Response, also streamed bodies) and
lingering close. What a request means is the proxy session's: gwcore.proxy._session.Downstream
subclasses Http1Connection and fills in its hooks.
"""

from typing import Any

from gwcore.http._wire import Clock
from gwcore.proxy._upstream import ResponseSink

class Http1Settings:
    """What every connection of one listener shares on the HTTP/1 side, in one worker."""

    def __init__(
        self,
        clock: Clock,
        *args: Any,
        max_head_bytes: int,
        max_headers: int,
        max_target_bytes: int,
        max_body_bytes: int,
        header_timeout: float,
        idle_timeout: float,
        buffer_body_bytes: int = 65536,
        **kwargs: Any,
    ) -> None:
        """Limits: ``max_head_bytes`` bytes of a request head (over: 431); ``max_headers``
        field lines (1..1000, over: 431); ``max_target_bytes`` bytes of request-target (over:
        414); ``max_body_bytes`` bytes of request body (over: 413, connection closed);
        ``buffer_body_bytes``: bodies up to this many bytes are received whole before the
        request goes on. ``header_timeout``: seconds from the accept, or from the first bytes
        of a later head, to a complete head (then 408, or a silent close with no bytes).
        ``idle_timeout``: seconds a keep-alive connection may wait for its next request, the
        longest gap between reads of a request body (408) and the longest a client may stop
        reading a response. Extra arguments are for subclasses. ValueError: ``max_headers``
        outside 1..1000."""
    @property
    def draining(self) -> bool:
        """True once start_drain was called."""
    @property
    def open_connections(self) -> int:
        """Client connections currently open on this listener (in this worker)."""
    def start_drain(self, grace: float = 1.0) -> None:
        """Graceful shutdown of this listener's connections: every response from now on
        carries ``Connection: close`` and ends its connection; a connection with no request
        under way is closed once idle for ``grace`` seconds. Stopping accepts is the
        caller's job (server.close())."""
    def abort_all(self) -> None:
        """The drain ran out of time: cut every connection; the requests under way end as
        ``draining``."""

class Http1Connection(ResponseSink):
    """asyncio protocol of one client connection, HTTP/1 side (see the module docstring)."""

    def __init__(self, settings: Http1Settings, *args: Any) -> None: ...
    def connection_made(self, transport: Any) -> None:
        """Start the head timeout; record the peer address (``"unknown"`` without one)."""
    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection; the exchange under way ends as ``client_abort``."""
    def eof_received(self) -> bool:
        """False (close) when idle or when the request can no longer complete; True
        (half-close: still answer) when the request was complete."""
    def pause_writing(self) -> None:
        """Client send buffer full: stop reading what feeds it; idle_timeout to resume."""
    def resume_writing(self) -> None:
        """Client send buffer drained."""
    def data_received(self, data: bytes) -> None:
        """Request bytes (heads, bodies, pipelined requests). TypeError if not bytes."""
