"""Streaming origin for the streamed-response tests and bench/macro/sse_latency.py: server-sent
events (``text/event-stream``) and chunked token streams, paced by the caller.

Run as its own process: ``python tests/integration/sse_origin.py --port N`` (``--port 0``
picks a free port). It prints ``READY <port>`` on stdout once listening and exits on
SIGTERM/SIGINT. Plain asyncio streams (uvloop when installed), no HTTP library: the request head
is read up to its blank line and only the request line's target is used.

Streams (each has a test-chosen ``id``; ids are reused at the caller's risk):
  /stream?id=K&framing=F&kind=T&count=N&pace=P[&gap=S][&gaps=S1,S2,...][&stamp=1]
      framing  chunked (HTTP/1.1, Transfer-Encoding: chunked, one event per chunk, then the
               last chunk; the connection stays open for another request) or close (an
               HTTP/1.0 response with neither Content-Length nor Transfer-Encoding, one write
               per event, delimited by closing the connection)
      kind     sse (``id: i`` / ``event: token`` / ``data: PAYLOAD`` and a blank line,
               text/event-stream) or tokens (one JSON line ``{"i": i, "token": PAYLOAD}``,
               application/x-ndjson)
      count    events in all (0: no end; the stream runs until the peer goes away)
      pace     step (event i is written once /next has released i + 1 events in all) or auto
               (event 0 at once, then event i after ``gaps[i - 1]`` seconds, or ``gap``
               seconds when there is no such entry; gap defaults to 0.05 s)
      stamp=1  PAYLOAD is time.monotonic_ns() read just before the write (CLOCK_MONOTONIC is
               system-wide on Linux, so another process on the machine can subtract it);
               otherwise it is ``tok<i>``
  /next?id=K[&n=1]    releases n more events of stream K (before or after it started)
  /state?id=K         JSON: started, sent (events written), peer_closed (the connection
                      carrying K was closed or reset by the peer), sent_at_close (events
                      written when that was seen), generating (its writer still runs),
                      finished (every event and the end of the body were written)
A control request (/next, /state) is answered with Content-Length and the connection closed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from origin import run_loop, serve_until_stopped  # this directory's origin.py


@dataclass
class Stream:
    """What the origin knows of one stream id (all counts in events)."""

    released: int = 0
    sent: int = 0
    started: bool = False
    peer_closed: bool = False
    sent_at_close: int | None = None
    generating: bool = False
    finished: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def state(self) -> dict:
        return {"started": self.started, "sent": self.sent, "peer_closed": self.peer_closed,
                "sent_at_close": self.sent_at_close, "generating": self.generating,
                "finished": self.finished}


STREAMS: dict[str, Stream] = {}


def stream(key: str) -> Stream:
    s = STREAMS.get(key)
    if s is None:
        s = STREAMS[key] = Stream()
    return s


def event_bytes(kind: str, i: int, stamp: bool) -> bytes:
    """Event ``i`` of a stream of ``kind`` (sse or tokens), its payload read at this moment."""
    payload = str(time.monotonic_ns()) if stamp else f"tok{i}"
    if kind == "sse":
        return f"id: {i}\nevent: token\ndata: {payload}\n\n".encode()
    return json.dumps({"i": i, "token": payload}).encode() + b"\n"


def answer(writer: asyncio.StreamWriter, status: str, body: bytes,
           ctype: str = "application/json") -> None:
    writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}"
                 f"\r\nConnection: close\r\n\r\n".encode() + body)


async def read_head(reader: asyncio.StreamReader) -> str | None:
    """The target of the next request on the connection, or None at its end."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    parts = head.split(b"\r\n", 1)[0].split()
    return parts[1].decode("latin-1") if len(parts) == 3 else None


async def watch_peer(reader: asyncio.StreamReader, s: Stream, writer_task: asyncio.Task) -> None:
    """Waits for the end of the connection while a stream is written (a GET sends nothing
    more): then the stream is marked closed by the peer and its writer is stopped."""
    try:
        while await reader.read(65536):
            pass
    except ConnectionError:
        pass
    if not writer_task.done():
        s.peer_closed = True
        s.sent_at_close = s.sent
        writer_task.cancel()


async def write_events(writer: asyncio.StreamWriter, s: Stream, q: dict[str, list[str]],
                       chunked: bool) -> None:
    """The events of one stream, paced as asked, then the end of its body (chunked)."""
    kind = q.get("kind", ["sse"])[0]
    count = int(q.get("count", ["0"])[0])
    step = q.get("pace", ["step"])[0] == "step"
    gap = float(q.get("gap", ["0.05"])[0])
    gaps = [float(g) for g in q["gaps"][0].split(",")] if "gaps" in q else []
    stamp = q.get("stamp", ["0"])[0] == "1"
    i = 0
    while count == 0 or i < count:
        if step:
            while s.released <= i:
                s.wake.clear()
                await s.wake.wait()
        elif i:
            await asyncio.sleep(gaps[i - 1] if i - 1 < len(gaps) else gap)
        data = event_bytes(kind, i, stamp)
        if chunked:
            writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            writer.write(data)
        s.sent = i = i + 1
        await writer.drain()
    if chunked:
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    s.finished = True


async def serve_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       q: dict[str, list[str]]) -> bool:
    """Answers /stream; True when the connection may carry another request."""
    s = stream(q.get("id", [""])[0])
    chunked = q.get("framing", ["chunked"])[0] == "chunked"
    ctype = "text/event-stream" if q.get("kind", ["sse"])[0] == "sse" else "application/x-ndjson"
    if chunked:
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nCache-Control: no-cache\r\n"
                     f"Transfer-Encoding: chunked\r\n\r\n".encode())
    else:
        writer.write(f"HTTP/1.0 200 OK\r\nContent-Type: {ctype}\r\nCache-Control: no-cache"
                     f"\r\n\r\n".encode())
    s.started = s.generating = True
    task = asyncio.current_task()
    assert task is not None
    gen = asyncio.ensure_future(write_events(writer, s, q, chunked))
    watcher = asyncio.ensure_future(watch_peer(reader, s, gen))
    try:
        await gen
    except (asyncio.CancelledError, ConnectionError):
        if not task.cancelling():
            return False        # the peer went away (watch_peer) or a write failed
        raise
    finally:
        s.generating = False
        if not s.finished and not s.peer_closed:
            s.peer_closed = True        # a write failed before the watcher saw the end
            s.sent_at_close = s.sent
        watcher.cancel()
        await asyncio.wait([watcher])   # it no longer reads: the next request is ours
    return chunked and s.finished


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while (target := await read_head(reader)) is not None:
            url = urlsplit(target)
            q = parse_qs(url.query)
            if url.path == "/stream":
                if not await serve_stream(reader, writer, q):
                    break
                continue
            if url.path == "/next":
                s = stream(q.get("id", [""])[0])
                s.released += int(q.get("n", ["1"])[0])
                s.wake.set()
                answer(writer, "200 OK", b'{"released": %d}' % s.released)
            elif url.path == "/state":
                answer(writer, "200 OK", json.dumps(stream(q.get("id", [""])[0]).state())
                       .encode())
            else:
                answer(writer, "404 Not Found", b"not found\n", "text/plain")
            await writer.drain()
            break
    except ConnectionError:
        pass
    finally:
        writer.close()


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    run_loop(serve_until_stopped(serve_connection, args.host, args.port))


if __name__ == "__main__":
    run()
