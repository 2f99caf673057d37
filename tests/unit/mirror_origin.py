"""A tiny HTTP/1.1 origin for tests/unit/test_inference_mirror.py (stdlib only).

Run as its own process: ``python tests/unit/mirror_origin.py [--port N]``; it prints
``READY <port>`` on stdout once listening on 127.0.0.1 and exits on SIGTERM/SIGINT. Keep-alive
connections; request bodies are read by Content-Length. Request-targets:

  /stats                 JSON counters (a control request: neither it nor a connection whose
                         first request it is counts): connections (accepted), requests,
                         body_bytes (request body bytes read), in_flight (requests being
                         answered now), max_in_flight (the most at once), heads (HEAD requests)
  /drop                  closes every other connection (a control request), then answers
  /sleep?s=S[&status=C]  waits S seconds (float), then answers status C (default 200)
  /status/C              answers status C with a short body
  /bytes?n=N[&chunked=1] N bytes of body, with Content-Length (or chunked, in 64 KiB chunks)
  /close                 closes the connection without answering
  /garbage               answers bytes that are not an HTTP response, then closes
  anything else          200 "ok"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from urllib.parse import parse_qs, urlsplit

REASONS = {200: "OK", 204: "No Content", 404: "Not Found", 500: "Internal Server Error",
           503: "Service Unavailable"}


class Stats:
    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0
        self.body_bytes = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.heads = 0


STATS = Stats()
WRITERS: set[asyncio.StreamWriter] = set()      # open connections but control ones


def head_bytes(status: int, length: int | None, extra: str = "") -> bytes:
    """A response head; ``length`` None: chunked."""
    framing = ("Transfer-Encoding: chunked\r\n" if length is None
               else f"Content-Length: {length}\r\n")
    return (f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n{framing}{extra}\r\n"
            .encode())


async def answer(method: str, target: str, writer: asyncio.StreamWriter) -> None:
    """Writes the response to one request."""
    url = urlsplit(target)
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    status = int(query.get("status", "200"))
    body = b"ok"
    chunked = False
    if url.path in ("/close", "/garbage"):
        if url.path == "/garbage":
            writer.write(b"garbage\r\n\r\n")
            await writer.drain()
        raise ConnectionResetError("closed on purpose")
    if url.path == "/sleep":
        await asyncio.sleep(float(query.get("s", "1")))
    elif url.path.startswith("/status/"):
        status = int(url.path[8:])
        body = b"status %d" % status
    elif url.path == "/bytes":
        body = b"x" * int(query.get("n", "0"))
        chunked = query.get("chunked") == "1"
    if status in (204, 304):
        body = b""
    if chunked:
        writer.write(head_bytes(status, None))
        for i in range(0, len(body), 65536):
            piece = body[i:i + 65536]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
    else:
        writer.write(head_bytes(status, len(body)))
        if method != "HEAD" and body:
            writer.write(body)
    await writer.drain()


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    counted = False
    try:
        while True:
            try:
                raw = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return
            lines = raw.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length:
                STATS.body_bytes += len(await reader.readexactly(length))
            if target in ("/stats", "/drop"):
                if target == "/drop":
                    for other in list(WRITERS):
                        other.transport.abort()
                out = json.dumps(vars(STATS)).encode()
                writer.write(head_bytes(200, len(out), "Content-Type: application/json\r\n")
                             + out)
                await writer.drain()
                continue
            if not counted:
                counted = True
                STATS.connections += 1
                WRITERS.add(writer)
            STATS.requests += 1
            STATS.heads += method == "HEAD"
            STATS.in_flight += 1
            STATS.max_in_flight = max(STATS.max_in_flight, STATS.in_flight)
            try:
                await answer(method, target, writer)
            finally:
                STATS.in_flight -= 1
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
        pass        # (cancelled: the origin is stopping)
    finally:
        WRITERS.discard(writer)
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    print("READY", server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: a free one)")
    asyncio.run(main(parser.parse_args().port))
