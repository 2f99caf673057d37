"""The uvloop TLS floor for bench/macro/tls.py (``--floor``): a server that terminates TLS exactly
as a gwcore worker does (uvloop ``create_server`` with the listener context built by
``gwcore.tls``) and answers every request itself with a fixed response, 1 KiB body, no proxying,
no HTTP parsing beyond finding the end of the head. What it costs per new connection is what
uvloop's TLS transport and OpenSSL cost without any of gwcore's code.

    python bench/macro/tls_floor.py --cert C --key K --port P --plain-port Q

Runs until SIGTERM or SIGINT. Not a server for anything but this benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import uvloop

from gwcore import tls
from gwcore.config import parse

BODY = b"x" * 1024
KEEP = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1024\r\n\r\n" + BODY)
CLOSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1024\r\n"
         b"Connection: close\r\n\r\n" + BODY)


class Answer(asyncio.Protocol):
    """Answers each request head with the fixed 1 KiB response; closes after it when the
    request asked for ``Connection: close``."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head, self.buf = self.buf[:end], self.buf[end + 4:]
            assert self.transport is not None
            if b"connection: close" in head.lower():
                self.transport.write(CLOSE)
                self.transport.close()
                return
            self.transport.write(KEEP)

    def eof_received(self) -> bool:
        return False


def main() -> int:
    """Serve until told to stop (module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--port", type=int, required=True, help="the TLS port")
    ap.add_argument("--plain-port", type=int, required=True, help="the plain-HTTP port")
    args = ap.parse_args()
    cfg = parse(f"""
listeners:
  - name: bench
    address: 127.0.0.1:{args.port}
    tls: {{certificates: [{{cert: "{args.cert}", key: "{args.key}"}}], min_version: TLSv1.3}}
clusters: [{{name: origin, endpoints: ["127.0.0.1:9"]}}]
routes: [{{match: {{path_prefix: /}}, cluster: origin}}]
""")
    ctx = tls.build_listeners(cfg)["bench"].default
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    servers = [
        loop.run_until_complete(loop.create_server(Answer, "127.0.0.1", args.port, ssl=ctx,
                                                   ssl_handshake_timeout=10.0, backlog=4096)),
        loop.run_until_complete(loop.create_server(Answer, "127.0.0.1", args.plain_port,
                                                   backlog=4096)),
    ]
    loop.run_until_complete(stop)
    for s in servers:
        s.close()
    loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
