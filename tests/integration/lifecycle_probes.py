"""Filters that test_lifecycle.py loads into a real gateway by import path
(``lifecycle_probes:Stream`` ...): this directory is on the gateway's PYTHONPATH there."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any
from urllib.parse import parse_qsl

from gwcore.filters import Filter, Response

BLOCK = 1 << 20


def _query(exchange) -> dict[str, str]:
    return dict(parse_qsl(exchange.query.decode()))


class Stream(Filter):
    """``on_request`` answers ``/stream/sync?n=N&size=S`` (a generator of N chunks of S bytes
    "a", "b", ...), ``/stream/async?n=N&size=S`` (the same from an async generator that
    yields to the loop between chunks), ``/stream/big?mib=M`` (M MiB of 1 MiB blocks, a
    generator: memory must not grow with M) and ``/stream/fail`` (a generator that raises
    after one chunk) and ``/bad-async`` (an awaitable of 42, a wrong type); other paths go
    on."""

    def on_request(self, exchange) -> Response | None:
        path, q = exchange.path, _query(exchange)
        n, size = int(q.get("n", "3")), int(q.get("size", "10"))
        headers = [(b"content-type", b"application/octet-stream")]
        if path == b"/stream/sync":
            return Response(200, headers, (bytes([97 + i % 26]) * size for i in range(n)))
        if path == b"/stream/async":
            return Response(200, headers, _chunks_async(n, size))
        if path == b"/stream/big":
            block = b"z" * BLOCK
            return Response(200, headers + [(b"content-length",
                                             str(int(q["mib"]) * BLOCK).encode())],
                            (block for _ in range(int(q["mib"]))))
        if path == b"/stream/fail":
            return Response(200, headers, _failing())
        if path == b"/bad-async":
            return _not_a_response()
        return None


async def _not_a_response():
    await asyncio.sleep(0)
    return 42           # neither None nor a Response: the gateway answers 500


async def _chunks_async(n: int, size: int):
    for i in range(n):
        await asyncio.sleep(0)
        yield bytes([97 + i % 26]) * size


def _failing():
    yield b"first"
    raise RuntimeError("the body source broke")


class Rewrite(Filter):
    """``on_response_head``: ``/teapot`` is replaced by a 418 of the filter's own;
    ``/restatus`` gets status 299; every response gets ``X-Rewritten: 1``, and a
    ``Content-Length: 999`` the gateway must ignore (it frames responses itself)."""

    def on_response_head(self, exchange, response) -> Response | None:
        if exchange.path.startswith(b"/teapot"):
            return Response(418, [(b"x-teapot", b"1")], b"short and stout")
        if exchange.path.startswith(b"/restatus"):
            response.status = 299
        response.headers.set(b"X-Rewritten", b"1")
        response.headers.set(b"Content-Length", b"999")
        return None


class Tap(Filter):
    """``on_response_body``: counts body bytes and end marks into ``exchange.state``."""

    def on_response_body(self, exchange, chunk: memoryview, end: bool) -> None:
        state = exchange.state
        state["tapped"] = state.get("tapped", 0) + len(chunk)
        if end:
            state["ends"] = state.get("ends", 0) + 1


class Log(Filter):
    """config ``{path}``: ``on_log`` appends one JSON line per exchange (one write of an
    O_APPEND file): the request's ``id`` query parameter, status, end, bytes sent, taps."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.path = config["path"]

    def on_log(self, exchange) -> None:
        record = {"id": _query(exchange).get("id"), "status": exchange.status,
                  "bytes_received": exchange.bytes_received,
                  "end": exchange.end, "bytes_sent": exchange.bytes_sent,
                  "tapped": exchange.state.get("tapped"), "ends": exchange.state.get("ends")}
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(record) + "\n").encode())
        finally:
            os.close(fd)
