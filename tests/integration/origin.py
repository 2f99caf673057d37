"""Origin HTTP/1.1 server for the integration tests: the oracle behind the gateway.

Run as its own process: ``python tests/integration/origin.py --port N`` (``--port 0`` picks a
free port). It prints ``READY <port>`` on stdout once listening and exits on SIGTERM/SIGINT.
``--tls-cert C --tls-key K`` serve TLS (Python's ssl); ``--tls-client-ca CA`` requires client
certificates signed by CA.

Requests are parsed with h11, an implementation independent of gwcore's parser, so whatever
the gateway forwards is checked by a strict third party: a request h11 rejects is answered with
400 and counted in ``/stats`` as a protocol error. Large bodies are written as 1 MiB slices of
a pre-built pattern so that a 1 GiB stream is cheap for the origin.

Endpoints (method-agnostic unless noted; HEAD gets the GET head without a body):
  /hello                         small JSON
  /headers                       JSON: method, target, http_version, fields as received
                                 (raw names, in order), body_length
  /echo, /expect                 the request body back with Content-Length; answers
                                 ``100 Continue`` when the request asked for it
  /discard[?pause=S]             reads and counts the body (after waiting S seconds before
                                 reading any of it); JSON {"received": N}
  /chunked?n=K&size=S            chunked response: chunk i is S bytes of chunk_byte(i)
  /big?size=N                    N bytes of pattern() with Content-Length, streamed
  /slow?delay=S[&head=1][&status=C][&retry_after=R]  waits S seconds, then answers (status C,
                                 default 200; a Retry-After field R);
                                 with head=1 the head is sent
                                 first and only the 4-byte body waits
  /abort?size=N&sent=M[&rst=1]   Content-Length N, then M < N bytes of pattern(), then close
                                 (with rst=1: an abortive close, RST)
  /close-delimited?size=N        no Content-Length nor Transfer-Encoding: body then close
  /status/CODE                   that status; body "status CODE" when allowed; 304 carries
                                 "Content-Length: 5" as RFC 9110 §8.6 allows, with no body
  /hop                           200 whose Connection field names X-Hop, with X-Hop and
                                 Keep-Alive fields (all hop-by-hop, RFC 9110 §7.6.1)
  /bad-response?kind=K           an invalid response, then close: K = garbage | double-cl |
                                 conn-cl | conn-te (Connection names a framing field) |
                                 cl-te | bad-chunk (an invalid chunk size after a chunk)
  /reset                         reads the request, then closes with RST and no response
  /early-hints                   103 Early Hints, then 200 "hints"
  /hold?key=K[&timeout=S]        answers 200 "released K" once /release?key=K was asked (before
                                 or after), or 504 after S seconds (default 30): a response
                                 the test lets go when a condition holds
  /release?key=K                 releases the holds of K (a control request, like /stats)
  /cacheable?key=K&...           a response for the cache tests; its body is "K #N" padded to
                                 size=S bytes, N counting this origin's responses for K (so a
                                 test can tell a cached answer from a new one). Options: cc
                                 (Cache-Control), etag (ETag "E": If-None-Match with it gets
                                 304), lm=S (Last-Modified S seconds ago), expires=S (seconds
                                 from now; "bad" for an invalid date), vary, status, set_cookie=1,
                                 delay=S (before the head), chunked=1, close=1 (close-delimited
                                 body, then close), hints=1 (a 103 first), show=1 (the body
                                 shows the X-Forwarded-For, X-Request-Id, X-User and
                                 Proxy-Authorization it got: "KEY #N xff=... rid=... ...")
  any endpoint ?pad=N            adds an X-Pad response field of N bytes
  any endpoint ?conn_close=1     answers with "Connection: close" and closes afterwards
  any endpoint ?close_idle=S      after the response, close the connection if no new request
                                 starts within S seconds (a keep-alive peer going away)
  /stats[?targets=1]             JSON: connections (accepted), open (open now), requests,
                                 protocol_errors (requests h11 rejected), aborted (peer closed
                                 mid-message), idle_closed (connections closed by close_idle),
                                 idle_closed_peers (their peers' [host, port], the last 100),
                                 in_flight (targets of the requests being answered now),
                                 targets (the last 2000 request-targets). Connections whose
                                 first request is /stats or /release are control connections
                                 and are not counted; neither are those requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import ssl
import struct
import sys
import time
from collections import deque
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11

BLOCK = 1 << 20
READ_SIZE = 256 * 1024
_PATTERN = bytes(range(256)) * (BLOCK // 256)


def pattern(offset: int, length: int) -> bytes:
    """Bytes ``offset .. offset+length`` of the infinite pattern 00 01 .. ff 00 01 .."""
    out = bytearray()
    while length > 0:
        start = offset % BLOCK
        piece = _PATTERN[start : start + length]
        out += piece
        offset += len(piece)
        length -= len(piece)
    return bytes(out)


def chunk_byte(index: int) -> bytes:
    """The byte that fills chunk ``index`` of /chunked."""
    return bytes([97 + index % 26])


class Stats:
    def __init__(self) -> None:
        self.accepted = 0
        self.control = 0
        self.requests = 0
        self.protocol_errors = 0
        self.aborted = 0
        self.idle_closed = 0
        self.idle_closed_peers: deque[list] = deque(maxlen=100)
        self.open: set[Exchange] = set()
        self.targets: deque[str] = deque(maxlen=2000)

    def as_dict(self, with_targets: bool) -> dict:
        out = {
            "connections": self.accepted - self.control,
            "open": sum(1 for ex in self.open if not ex.control),
            "requests": self.requests,
            "protocol_errors": self.protocol_errors,
            "aborted": self.aborted,
            "idle_closed": self.idle_closed,
            "idle_closed_peers": list(self.idle_closed_peers),
            "in_flight": [ex.request.target.decode("latin-1") for ex in self.open
                          if not ex.control and ex.request is not None],
        }
        if with_targets:
            out["targets"] = list(self.targets)
        return out


STATS = Stats()
HOLDS: dict[str, asyncio.Event] = {}      # /hold and /release, by key
CONTROL_PATHS = ("/stats", "/release")


def _hold(key: str) -> asyncio.Event:
    return HOLDS.setdefault(key, asyncio.Event())


class ClientGone(Exception):
    """The peer closed the connection; stop serving it."""


class Exchange:
    """One server-side HTTP/1.1 connection driven by h11."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        self.request: h11.Request | None = None
        self.close_idle: float | None = None
        self.eof = False
        self.control = False

    async def next_event(self) -> object:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await self.reader.read(READ_SIZE)
            self.eof = not data
            self.conn.receive_data(data)

    async def send(self, event: object) -> None:
        if type(event) is h11.Response and self.request is not None:
            q = _query(self.request.target.decode("latin-1"))
            headers = list(event.headers)
            if "pad" in q:
                headers.append((b"x-pad", b"p" * int(q["pad"])))
            if q.get("conn_close") == "1":
                headers.append((b"connection", b"close"))
            event = h11.Response(status_code=event.status_code, headers=headers,
                                 reason=event.reason)
        if type(event) in (h11.Response, h11.InformationalResponse) and not event.reason:
            event = type(event)(
                status_code=event.status_code, headers=event.headers, reason=_reason(event)
            )
        for piece in self.conn.send_with_data_passthrough(event):
            self.writer.write(piece)
        await self.writer.drain()

    async def body_chunks(self):
        """Yield the request body as it arrives (after ``100 Continue`` if it was asked)."""
        if self.conn.they_are_waiting_for_100_continue:
            await self.send(h11.InformationalResponse(status_code=100, headers=[]))
        while True:
            event = await self.next_event()
            if type(event) is h11.Data:
                yield event.data
            elif type(event) is h11.EndOfMessage:
                return
            elif type(event) is h11.ConnectionClosed:
                raise ClientGone

    async def read_body(self) -> bytes:
        parts = [chunk async for chunk in self.body_chunks()]
        return b"".join(parts)

    async def respond(
        self,
        status: int,
        body: bytes = b"",
        content_type: bytes = b"application/json",
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        headers += extra or []
        await self.send(h11.Response(status_code=status, headers=headers))
        if body and not (self.request is not None and self.request.method == b"HEAD"):
            await self.send(h11.Data(data=body))
        await self.send(h11.EndOfMessage())

    async def stream_pattern(self, size: int) -> None:
        sent = 0
        while sent < size:
            n = min(BLOCK, size - sent)
            await self.send(h11.Data(data=_PATTERN if n == BLOCK else _PATTERN[:n]))
            sent += n


CACHE_SERIALS: dict[str, int] = {}


async def _cacheable(ex: Exchange, req: h11.Request, q: dict[str, str]) -> bool:
    key = q.get("key", "default")
    if q.get("hints") == "1":
        await ex.send(h11.InformationalResponse(status_code=103, headers=[
            (b"link", b"</a.css>; rel=preload")]))
    if "delay" in q:
        await asyncio.sleep(float(q["delay"]))
    headers: list[tuple[bytes, bytes]] = []
    if "cc" in q:
        headers.append((b"cache-control", q["cc"].encode()))
    etag = f'"{q["etag"]}"'.encode() if "etag" in q else None
    if etag is not None:
        headers.append((b"etag", etag))
    now = time.time()
    if "lm" in q:
        headers.append((b"last-modified", formatdate(now - float(q["lm"]), usegmt=True).encode()))
    if "expires" in q:
        headers.append((b"expires", b"0" if q["expires"] == "bad"
                        else formatdate(now + float(q["expires"]), usegmt=True).encode()))
    if "vary" in q:
        headers.append((b"vary", q["vary"].encode()))
    if q.get("set_cookie") == "1":
        headers.append((b"set-cookie", b"session=abc"))
    headers.append((b"date", formatdate(now, usegmt=True).encode()))
    inm = dict(req.headers).get(b"if-none-match")
    if etag is not None and inm is not None and etag in [t.strip() for t in inm.split(b",")]:
        CACHE_SERIALS[key] = CACHE_SERIALS.get(key, 0)      # a 304 is a request, no new body
        await ex.send(h11.Response(status_code=304, headers=headers))
        await ex.send(h11.EndOfMessage())
        return True
    n = CACHE_SERIALS[key] = CACHE_SERIALS.get(key, 0) + 1
    body = f"{key} #{n} ".encode()
    if q.get("show") == "1":
        got = dict(req.headers)
        body += b" ".join(b"%s=%s" % (name, got.get(name, b"-").replace(b" ", b"_"))
                          for name in (b"x-forwarded-for", b"x-request-id", b"x-user",
                                       b"proxy-authorization")) + b" "
    body += b"." * max(0, int(q.get("size", "0")) - len(body))
    status = int(q.get("status", "200"))
    if q.get("close") == "1":
        # bypasses h11, which would frame it: a close-delimited body (RFC 9112 §6.3)
        ex.writer.write(b"HTTP/1.1 %d OK\r\n" % status + b"".join(
            n + b": " + v + b"\r\n" for n, v in headers) + b"\r\n")
        if req.method != b"HEAD":
            for i in range(0, len(body), 1000):     # in pieces: a reader must wait for EOF
                ex.writer.write(body[i:i + 1000])
                await ex.writer.drain()
        return False
    if q.get("chunked") == "1":
        await ex.send(h11.Response(status_code=status, headers=[
            *headers, (b"transfer-encoding", b"chunked")]))
        if req.method != b"HEAD":
            for i in range(0, len(body), 65536):
                await ex.send(h11.Data(data=body[i:i + 65536]))
        await ex.send(h11.EndOfMessage())
        return True
    await ex.respond(status, body, b"text/plain", headers)
    return True


def _reason(event: h11.Response | h11.InformationalResponse) -> bytes:
    try:
        return HTTPStatus(event.status_code).phrase.encode()
    except ValueError:
        return b"Unknown"


def _query(target: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(target).query).items()}


def _json(obj: object) -> bytes:
    return json.dumps(obj).encode()


async def handle_request(ex: Exchange, req: h11.Request) -> bool:
    """Answer one request. Returns False when the connection must be closed afterwards."""
    target = req.target.decode("latin-1")
    path = urlsplit(target).path
    q = _query(target)
    is_head = req.method == b"HEAD"

    if path == "/hello":
        await ex.respond(200, _json({"hello": "world"}))
    elif path == "/headers":
        body = await ex.read_body()
        info = {
            "method": req.method.decode("latin-1"),
            "target": target,
            "http_version": req.http_version.decode("latin-1"),
            "headers": [
                [name.decode("latin-1"), value.decode("latin-1")]
                for name, value in req.headers.raw_items()
            ],
            "body_length": len(body),
        }
        await ex.respond(200, _json(info))
    elif path in ("/echo", "/expect"):
        saw_expect = b"100-continue" in [v.lower() for k, v in req.headers if k == b"expect"]
        body = await ex.read_body()
        extra = [(b"x-saw-expect", b"1" if saw_expect else b"0")]
        await ex.respond(200, body, b"application/octet-stream", extra)
    elif path == "/discard":
        await asyncio.sleep(float(q.get("pause", "0")))
        received = 0
        async for chunk in ex.body_chunks():
            received += len(chunk)
        await ex.respond(200, _json({"received": received}))
    elif path == "/chunked":
        n, size = int(q.get("n", "3")), int(q.get("size", "10"))
        await ex.send(
            h11.Response(
                status_code=200,
                headers=[(b"content-type", b"text/plain"), (b"transfer-encoding", b"chunked")],
            )
        )
        if not is_head:
            for i in range(n):
                await ex.send(h11.Data(data=chunk_byte(i) * size))
        await ex.send(h11.EndOfMessage())
    elif path == "/big":
        size = int(q.get("size", str(BLOCK)))
        headers = [(b"content-type", b"application/octet-stream"),
                   (b"content-length", str(size).encode())]
        await ex.send(h11.Response(status_code=200, headers=headers))
        if not is_head:
            await ex.stream_pattern(size)
        await ex.send(h11.EndOfMessage())
    elif path == "/slow":
        delay = float(q.get("delay", "1"))
        if q.get("head") == "1":
            headers = [(b"content-type", b"text/plain"), (b"content-length", b"4")]
            await ex.send(h11.Response(status_code=200, headers=headers))
            await asyncio.sleep(delay)
            await ex.send(h11.Data(data=b"slow"))
            await ex.send(h11.EndOfMessage())
        else:
            await asyncio.sleep(delay)
            extra = [(b"retry-after", q["retry_after"].encode())] if "retry_after" in q else []
            await ex.respond(int(q.get("status", "200")), b"slow", b"text/plain", extra)
    elif path == "/abort":
        size, sent = int(q.get("size", "100000")), int(q.get("sent", "50000"))
        headers = [(b"content-type", b"application/octet-stream"),
                   (b"content-length", str(size).encode())]
        await ex.send(h11.Response(status_code=200, headers=headers))
        await ex.stream_pattern(min(sent, size - 1))
        if q.get("rst") == "1":
            sock = ex.writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False
    elif path == "/close-delimited":
        size = int(q.get("size", "100000"))
        # Bypasses h11 on purpose: h11 would add chunked framing for an HTTP/1.1 peer.
        ex.writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
        sent = 0
        while sent < size and not is_head:
            n = min(BLOCK, size - sent)
            ex.writer.write(_PATTERN[:n])
            await ex.writer.drain()
            sent += n
        await ex.writer.drain()
        return False
    elif path == "/early-hints":
        hint = [(b"link", b"</style.css>; rel=preload; as=style")]
        await ex.send(h11.InformationalResponse(status_code=103, headers=hint))
        await ex.respond(200, b"hints", b"text/plain")
    elif path == "/hold":
        key = q.get("key", "")
        try:
            await asyncio.wait_for(_hold(key).wait(), float(q.get("timeout", "30")))
        except TimeoutError:
            await ex.respond(504, f"never released {key}".encode(), b"text/plain")
        else:
            await ex.respond(200, f"released {key}".encode(), b"text/plain")
    elif path == "/hop":
        extra = [(b"connection", b"X-Hop"), (b"x-hop", b"secret"), (b"keep-alive", b"timeout=1")]
        await ex.respond(200, b"hop", b"text/plain", extra)
    elif path == "/bad-response":
        await ex.read_body()
        ex.writer.write({
            "garbage": b"HTTP/1.1 2x0 Bad\r\nContent-Length: 2\r\n\r\nhi",
            "double-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi!",
            "conn-cl": b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5"
                       b"\r\n\r\nhello",
            "conn-te": b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Transfer-Encoding\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\nhello\r\n0\r\n\r\n",
            "bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
                         b"0x5\r\nworld\r\n0\r\n\r\n",
        }[q.get("kind", "garbage")])
        await ex.writer.drain()
        return False
    elif path == "/reset":
        await ex.read_body()
        sock = ex.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False
    elif path == "/cacheable":
        return await _cacheable(ex, req, q)
    elif path.startswith("/status/"):
        code = int(path.rsplit("/", 1)[1])
        if code in (204, 304):
            extra = [(b"etag", b'"v1"')]
            if code == 304:
                extra.append((b"content-length", b"5"))
            await ex.send(h11.Response(status_code=code, headers=extra))
            await ex.send(h11.EndOfMessage())
        else:
            await ex.respond(code, f"status {code}".encode(), b"text/plain")
    else:
        await ex.respond(404, b"origin: no such endpoint", b"text/plain")
    return True


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    STATS.accepted += 1
    ex = Exchange(reader, writer)
    STATS.open.add(ex)
    first = True
    try:
        while True:
            if ex.close_idle is None:
                event = await ex.next_event()
            else:
                try:
                    event = await asyncio.wait_for(ex.next_event(), ex.close_idle)
                except TimeoutError:
                    STATS.idle_closed += 1
                    peer = writer.get_extra_info("peername")
                    STATS.idle_closed_peers.append(list(peer[:2]) if peer else None)
                    break
            if type(event) is h11.ConnectionClosed or event is h11.PAUSED:
                break
            if type(event) is not h11.Request:
                break
            ex.request = event
            target = event.target.decode("latin-1")
            path = urlsplit(target).path
            if path in CONTROL_PATHS:
                if first:
                    STATS.control += 1
                    ex.control = True
                await ex.read_body()
                if path == "/stats":
                    await ex.respond(200, _json(STATS.as_dict("targets=1" in target)))
                else:
                    _hold(_query(target).get("key", "")).set()
                    await ex.respond(200, b"released", b"text/plain")
            else:
                STATS.requests += 1
                STATS.targets.append(target)
                close_idle = _query(target).get("close_idle")
                ex.close_idle = float(close_idle) if close_idle else None
                if not await handle_request(ex, event):
                    break
            first = False
            # Drain any body the handler did not read so the next cycle can start.
            while ex.conn.their_state is h11.SEND_BODY:
                async for _ in ex.body_chunks():
                    pass
            if ex.conn.our_state is h11.MUST_CLOSE or ex.conn.their_state is h11.MUST_CLOSE:
                break
            ex.conn.start_next_cycle()
            ex.request = None
    except h11.RemoteProtocolError as exc:
        if ex.eof:  # the peer went away mid-message: an abort, not a malformed message
            STATS.aborted += 1
            return
        STATS.protocol_errors += 1
        print(f"origin: protocol error: {exc}", file=sys.stderr, flush=True)
        if ex.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            try:
                await ex.respond(400, f"origin: {exc}".encode(), b"text/plain")
            except (h11.LocalProtocolError, ConnectionError):
                pass
    except (ClientGone, ConnectionError):
        pass
    finally:
        STATS.open.discard(ex)
        writer.close()


async def serve_until_stopped(handler: Any, host: str, port: int,
                              tls: ssl.SSLContext | None = None) -> None:
    """Serves connections with ``handler`` on host:port, prints ``READY <port>`` once
    listening (what the tests' start_origin waits for), until SIGTERM or SIGINT. The other
    origins of this directory (sse_origin.py) use it too."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await asyncio.start_server(handler, host, port, backlog=1024, ssl=tls)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    server.close()


def run_loop(coro: Any) -> None:
    """Runs coro on uvloop when it is installed, else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls-cert", help="serve TLS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="... and this key (PEM)")
    parser.add_argument("--tls-client-ca", help="require client certificates of this CA")
    args = parser.parse_args()
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_client_ca:
            tls.load_verify_locations(args.tls_client_ca)
            tls.verify_mode = ssl.CERT_REQUIRED
    run_loop(serve_until_stopped(serve_connection, args.host, args.port, tls))


if __name__ == "__main__":
    run()
