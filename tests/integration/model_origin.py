"""An inference origin for the model-routing tests: it says which version it is.

Run as its own process: ``python tests/integration/model_origin.py --name v7 --port 0``; prints
``READY <port>`` once listening, exits on SIGTERM. Every request (Content-Length bodies only:
the gateway sends a model route's body whole) is answered with JSON ``{"served_by": NAME,
"version_field": <X-Model-Version received or null>, "body_length": N, "body_sha256": HEX,
"path": PATH, "request_id": <X-Request-Id>}`` (``version_field`` joins every
X-Model-Version field received with ", ") — unless ``--status C`` (then that status, with ``Retry-After: R`` when
``--retry-after R``). Request fields steer one answer: ``X-Sleep: S`` waits S seconds first.
``GET /stats`` (on a connection of its own, not counted) gives ``{"requests", "in_flight",
"max_in_flight", "versions": {field value: count}, "closed_early", "request_ids": [the last
100 X-Request-Id received]}``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import signal
import sys

STATS = {"requests": 0, "in_flight": 0, "max_in_flight": 0, "versions": {},
         "closed_early": 0, "request_ids": []}


def answer(status: int, body: bytes, extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
            % (status, len(body), extra)) + body


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                args: argparse.Namespace) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            _method, target, _ = lines[0].split(" ", 2)
            fields: dict[str, str] = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    name, value = name.strip().lower(), value.strip()
                    fields[name] = f"{fields[name]}, {value}" if name in fields else value
            body = await reader.readexactly(int(fields.get("content-length", "0")))
            if target.startswith("/stats"):
                writer.write(answer(200, json.dumps(STATS).encode()))
                await writer.drain()
                continue
            STATS["requests"] += 1
            version = fields.get("x-model-version")
            STATS["versions"][str(version)] = STATS["versions"].get(str(version), 0) + 1
            STATS["request_ids"] = [*STATS["request_ids"][-99:], fields.get("x-request-id")]
            STATS["in_flight"] += 1
            STATS["max_in_flight"] = max(STATS["max_in_flight"], STATS["in_flight"])
            try:
                sleep = float(fields.get("x-sleep", args.sleep))
                if sleep:
                    await asyncio.sleep(sleep)
            finally:
                STATS["in_flight"] -= 1
            if args.status != 200:
                extra = b"Retry-After: %d\r\n" % args.retry_after if args.retry_after else b""
                writer.write(answer(args.status, b'{"error": "busy"}', extra))
            else:
                writer.write(answer(200, json.dumps({
                    "served_by": args.name, "version_field": version, "path": target,
                    "request_id": fields.get("x-request-id"),
                    "body_length": len(body),
                    "body_sha256": hashlib.sha256(body).hexdigest()}).encode()))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        STATS["closed_early"] += 1 if STATS["in_flight"] else 0
    finally:
        writer.close()


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--status", type=int, default=200)
    p.add_argument("--retry-after", type=int, default=0)
    p.add_argument("--sleep", type=float, default=0.0, help="seconds before each answer")
    args = p.parse_args()
    server = await asyncio.start_server(lambda r, w: serve(r, w, args), args.host, args.port)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"READY {port}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
