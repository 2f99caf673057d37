"""Wire helpers shared by the downstream and upstream protocols (gwcore.http._connection,
gwcore.proxy._upstream).

From Python only the coarse clock is reachable. The head writer that re-emits a parsed head
without its hop-by-hop fields (RFC 9110 §7.6.1: Connection, the fields it names, Keep-Alive,
Proxy-Connection, TE, Trailer, Upgrade, plus Transfer-Encoding, which a proxy re-frames) is
C-level only (``cimport`` from the .pxd).
"""

import asyncio

class Timed:
    """A connection with one deadline (monotonic seconds on the loop's clock, 0 = none),
    checked by a Clock. Base class of the connection protocols; the deadline and its callback
    are C-level only, so a Timed made from Python has no behaviour."""

    def __init__(self) -> None: ...

class Clock:
    """Per-worker coarse clock (NGINX caches its time the same way): one periodic callback
    replaces a timer per request.

    Every ``tick`` seconds it reads ``loop.time()`` into ``now`` and calls ``on_deadline``
    (C level) on every watched connection whose deadline (seconds on the same clock) has
    passed, after resetting that deadline to 0. So a deadline fires up to ``tick`` seconds
    late, and ``now`` lags ``loop.time()`` by up to ``tick`` seconds. The first sweep is
    scheduled from the constructor with ``loop.call_later``; ``tick`` is not validated (a
    value <= 0 reschedules the sweep on every loop iteration).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float = 0.1) -> None:
        """``loop``: the worker's event loop (``time()`` and ``call_later`` are used).
        ``tick``: seconds between sweeps."""
    @property
    def now(self) -> float:
        """``loop.time()`` in seconds as of the last sweep (or construction)."""
    def close(self) -> None:
        """Stop the periodic sweep; ``now`` stops advancing. Calling it again does nothing."""
    def _sweep(self) -> None:
        """Internal ``call_later`` callback: refresh ``now``, reschedule, fire deadlines."""
