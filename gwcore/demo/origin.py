"""The demo's sample origin: a few JSON routes and a 10 MiB "video segment", served by the
standard library's threading HTTP/1.1 server. Not part of the proxy path."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SEGMENT = bytes(range(256)) * (10 * 1024 * 1024 // 256)
ITEMS = [{"id": i, "name": f"item {i}", "price_cents": 100 * i} for i in range(1, 6)]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gwcore-sample-origin"

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: object) -> None:
        self._send(status, json.dumps(obj).encode() + b"\n", "application/json")

    def do_GET(self) -> None:
        path = self.path.partition("?")[0]
        if path == "/":
            self._json(200, {"service": "gwcore sample origin",
                             "routes": ["/api/items", "/api/items/{id}", "/video/segment0.ts",
                                        "/headers"]})
        elif path == "/api/items":
            self._json(200, ITEMS)
        elif path.startswith("/api/items/") and path[11:].isdigit():
            item = next((i for i in ITEMS if i["id"] == int(path[11:])), None)
            self._json(200 if item else 404, item or {"error": "no such item"})
        elif path == "/video/segment0.ts":
            self._send(200, SEGMENT, "video/mp2t")
        elif path == "/headers":
            self._json(200, dict(self.headers.items()))
        else:
            self._json(404, {"error": "not found", "path": path})

    do_HEAD = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


def make_server(port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """The sample origin bound and listening on host:port (OSError when it cannot be)."""
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def main() -> None:
    """``python -m gwcore.demo.origin [--port N]``: the sample origin alone, in the foreground."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=9001)
    args = ap.parse_args()
    server = make_server(args.port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"READY {args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
