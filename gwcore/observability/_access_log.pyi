"""The access log (gwcore/observability/_access_log.pyx): one line per request, written by a
thread of its own so the event loop never waits for a disk.

``Downstream._finish`` calls ``record(exchange)`` (a C-level call) once per request, after
the route's on_log phases. The line is formatted in C into the worker's current batch; a
batch goes to the writer thread when it holds ``batch_bytes`` (at most a quarter of
``buffer_bytes``) or is ``flush_interval`` seconds old (a loop timer), and the thread does
the ``write(2)`` calls without the GIL. Bytes handed over and not yet written never exceed
``buffer_bytes`` (or one batch, when nothing else waits): a batch that would go beyond is
dropped and its lines counted (``lines_dropped``; a warning at most every 10 s).
A batch goes to a regular file in one ``write`` (``O_APPEND``: never interleaved with another
worker's); to a pipe or socket (stdout, which every worker shares) in writes of whole lines
of at most PIPE_BUF (4096) bytes, which the kernel keeps whole, so workers' lines never mix.

JSON format, one object per line, fields in this order (times in seconds as floats with
microseconds, sizes in bytes, strings escaped so that any bytes make valid JSON: well-formed
UTF-8 is kept, other bytes become ``\\u00XX``)::

    {"ts": "2026-12-07T06:05:39.123Z",     # UTC, RFC 3339, milliseconds; when it ended
     "request_id": "9f1c2ab34d5e-1a",       # the X-Request-Id sent upstream; null when the
                                            # request never got that far (a local answer)
     "trace_id": null,                      # W3C trace id, when tracing sets one
     "client": "192.0.2.7",
     "method": "GET",
     "path": "/v1/videos/7",                # normalised (what routes match); null when
                                            # refused before normalisation
     "query": "quality=hd&token=REDACTED",  # as received, redacted; "" when none
     "status": 200,                         # 0: no response was sent
     "request_bytes": 0,                    # request body bytes received
     "response_bytes": 1834,                # bytes written to the client, head included
     "duration": 0.000412,                  # head parsed → end
     "upstream_duration": 0.000301,         # handed upstream → response head; null if none
     "endpoint": "10.0.0.5:9001",           # the last try's, or null
     "route": "videos", "cluster": "video", # null when none matched / was chosen
     "tries": 1,
     "end": "ok",                           # ok, local, client_abort, upstream_error,
                                            # timeout, overflow, draining
     "cache": null, "auth": "ok"}           # outcomes; null when nothing decided them

Combined format (NGINX's ``combined``; ``escape=default``: ``"``, ``\\`` and bytes outside
0x20-0x7E as ``\\xXX``)::

    192.0.2.7 - - [07/Dec/2026:06:05:39 +0000] "GET /v1/videos/7?token=REDACTED HTTP/1.1" \
        200 1834 "https://ref.example/?code=REDACTED" "curl/8.5.0"      (one line)

The request line is the method, the target as received (its query redacted) and the HTTP
version; the size is every response byte written, head included (NGINX's ``$bytes_sent``,
not ``$body_bytes_sent``); the time is local, with its UTC offset; an absent Referer or
User-Agent is ``-``. The Referer's query is redacted too.

Never logged: any request field but Referer and User-Agent (so never Authorization or
Cookie), and the values of the query parameters named by ``redact_query`` (compared
case-insensitively, percent-escapes in the name decoded: ``%74oken`` is ``token``).
"""

from collections.abc import Iterable
from typing import Any

from gwcore.proxy._exchange import Exchange

DEFAULT_REDACT: tuple[str, ...]
"""The parameters redacted by default (gwcore.config's ``access_log.redact_query``)."""

JOIN_TIMEOUT: float
"""Seconds ``close`` waits by default for the writer to write what is left (5)."""

class AccessLog:
    """One worker's access log.

    ``path``: a file, appended to (created 0644), or ``"-"`` for file descriptor 1 (stdout).
    ``format``: ``"json"`` or ``"combined"``. ``sample_2xx``: the share of 2xx responses
    logged, 0..1 (other statuses always are). ``buffer_bytes``: the bound of bytes waiting
    for the writer thread. ``redact_query``: parameter names whose values are written as
    ``REDACTED``. ``loop``: the event loop whose timer hands a batch over ``flush_interval``
    seconds after its first line (None: only full batches, ``flush`` and ``close`` do).
    ``batch_bytes``: a batch this big goes to the writer at once (at most a quarter of
    ``buffer_bytes``).

    The file is opened here (OSError if it cannot be), except a FIFO that has no reader
    yet: the writer thread opens that one, blocking only itself. ValueError for a format
    other than json/combined, sample_2xx outside 0..1, or a size <= 0. The writer thread
    (a daemon) starts here; ``close`` stops it.
    """

    path: str
    combined: bool
    sample_2xx: float
    buffer_bytes: int

    def __init__(self, path: str, format: str = "json", sample_2xx: float = 1.0,
                 buffer_bytes: int = 4194304, redact_query: Iterable[str] = ...,
                 loop: Any = None, batch_bytes: int = 65536,
                 flush_interval: float = 0.1) -> None: ...
    def record(self, ex: Exchange) -> None:
        """Logs the exchange that just ended (2xx sampled), appending its line to the
        current batch; a no-op after ``close``. Never raises: a line that cannot be
        formatted is logged as an error and lost."""
    def line(self, ex: Exchange, now: float | None = None) -> bytes:
        """The line ``record`` would write for ``ex`` at ``now`` (seconds since the epoch,
        default the current time), newline included: neither sampled nor buffered."""
    def flush(self) -> None:
        """Hands the lines buffered so far to the writer thread now (does not wait)."""
    def reopen(self) -> None:
        """Has the writer thread open ``path`` again before its next write (SIGUSR1, after
        logrotate renamed the file); if that fails the old file stays in use (logged). A
        no-op for ``"-"``."""
    def close(self, timeout: float = 5.0) -> bool:
        """Hands over what is buffered, tells the writer to stop once everything is written
        and waits at most ``timeout`` seconds for it; ``record`` does nothing afterwards.
        True when the writer finished in time."""
    @property
    def lines_written(self) -> int:
        """Lines written since the start (gwcore_access_log_lines_total)."""
    @property
    def lines_dropped(self) -> int:
        """Lines lost since the start: the buffer for a slow writer was full, or writing
        failed (gwcore_access_log_dropped_lines_total)."""
    @property
    def waiting_bytes(self) -> int:
        """Bytes handed to the writer thread and not written yet (at most buffer_bytes)."""
