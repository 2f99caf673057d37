"""Filters that test_trace_context.py loads into a real gateway by import path
(``trace_probes:SeeTrace``): this directory is on the gateway's PYTHONPATH there."""

from __future__ import annotations

import asyncio

from gwcore.filters import Filter


def _seen(exchange) -> bytes:
    return (f"{exchange.trace_id} {exchange.parent_id} {exchange.span_id} "
            f"{int(exchange.sampled)}").encode()


class SeeTrace(Filter):
    """``on_request`` sends the exchange's trace context upstream as ``X-Seen-Trace:
    <trace_id> <parent_id> <span_id> <sampled 0/1>`` (what a filter reads)."""

    def on_request(self, exchange) -> None:
        exchange.add_upstream_header(b"X-Seen-Trace", _seen(exchange))


class AwaitTrace(Filter):
    """The same from an awaitable that yields to the loop first: the request goes on from
    the restored head (the session's slow path)."""

    def on_request(self, exchange):
        return self._later(exchange)

    async def _later(self, exchange) -> None:
        await asyncio.sleep(0)
        exchange.add_upstream_header(b"X-Seen-Trace", _seen(exchange))


class OwnTraceparent(Filter):
    """``on_request`` sets its own traceparent upstream (``set_upstream_field``): it must be
    the only one the upstream gets."""

    def on_request(self, exchange) -> None:
        exchange.set_upstream_field(
            b"traceparent", b"00-0123456789abcdef0123456789abcdef-0123456789abcdef-01")
