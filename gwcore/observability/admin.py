"""The admin listener (``admin: {address: 127.0.0.1:9901}``): Envoy's admin API for gwcore,
served by the master process, never by a worker and never on a public listener.

Endpoints: ``GET /healthz`` (the master is alive: 200), ``GET /readyz`` (200 once every worker
of the current generation serves and every cluster has an endpoint that is healthy and not
ejected by every worker; 503 with the reasons otherwise, and while draining, so a load
balancer stops sending first), ``GET /metrics`` (docs/metrics.md), ``GET /config`` (the running
config as JSON, secrets redacted), ``GET /clusters`` (endpoints, health, ejections, in-flight,
pool sizes, as JSON), ``POST /reload`` (as SIGHUP; answers once the outcome is known: 200 when
the new generation serves, 400 with the reason when the config is rejected), cache purges
(``PURGE <url>``, ``POST /cache/purge?url=U`` or ``?prefix=P``: 200 with how many responses
went, once every worker has applied it; gwcore/cache/purge.py). With ``admin.token`` set, every
endpoint but the probes and ``/metrics`` needs ``Authorization: Bearer <token>`` (401
otherwise); ``/config`` never shows secret-looking keys, user filters' ``config`` or the
userinfo and query of URLs either way. At most 64 clients at once (the oldest is dropped).

The server is a few non-blocking sockets in the master's selector loop (one request per
connection, ``Connection: close``; heads parsed by gwcore's own parser): the master never
blocks on a client, and a scrape never takes time from a worker.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import selectors
import socket
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import parse_qs

import msgspec

from gwcore.cache.purge import EXACT, PREFIX, url_key
from gwcore.config import Config
from gwcore.filters.base import reason
from gwcore.http import ParseError, parse_request

log = logging.getLogger("gwcore")

MAX_CLIENTS = 64             # admin connections at once; beyond, the oldest is dropped
MAX_HEAD = 16 << 10          # bytes
MAX_BODY = 64 << 10
CLIENT_TIMEOUT = 10.0        # seconds a client has to send its request
RELOAD_TIMEOUT = 60.0        # seconds POST /reload waits for the new generation to serve

Reply = Callable[[int, bytes, str], None]

# config keys whose values are never shown by /config
_SECRET = re.compile(r"token|secret|password|passwd|credential|authorization|api_?key|"
                     r"private|headers", re.IGNORECASE)


class AdminApi(Protocol):
    """What the master provides to the admin endpoints."""

    cfg: Config

    def ready_problems(self) -> list[str]: ...
    def metrics(self, accept: str | None) -> tuple[bytes, str]: ...
    def clusters_status(self) -> dict[str, Any]: ...
    def admin_reload(self, reply: Reply) -> None: ...
    def admin_purge(self, kind: int, url: bytes, reply: Reply) -> None: ...


_URL_SECRETS = re.compile(r"^([a-z][a-z0-9+.-]*://)[^/@\s]*@", re.IGNORECASE)


def redact(value: Any, key: str = "") -> Any:
    """value (plain JSON-able data) with every entry under a secret-looking key, and every
    user filter's ``config``, replaced by ``"REDACTED"``; URLs lose their userinfo and query
    (where tokens travel)."""
    if value not in (None, {}, []) and (_SECRET.search(key) or key == "config"):
        return "REDACTED"
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str) and "://" in value:
        value = _URL_SECRETS.sub(r"\1REDACTED@", value)
        if "?" in value:
            value = value.split("?", 1)[0] + "?REDACTED"
    return value


def _plain(obj: Any) -> Any:
    """Config scalars msgspec does not know (Size, Duration) as plain numbers."""
    for kind in (int, float):
        if isinstance(obj, kind):
            return kind(obj)
    raise NotImplementedError(type(obj).__name__)


def bind(address: tuple[str, int]) -> socket.socket:
    """The admin listening socket (non-blocking). OSError."""
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class AdminServer:
    """The admin listener on ``sock``, driven by ``sel`` (the master's selector): register
    calls ``on_event`` for readiness, the master calls ``expire`` now and then."""

    def __init__(self, sock: socket.socket, sel: selectors.BaseSelector, api: AdminApi) -> None:
        self.sock = sock
        self.sel = sel
        self.api = api
        self.conns: set[_Conn] = set()
        sel.register(sock, selectors.EVENT_READ, self)

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2]

    def on_event(self, mask: int) -> None:
        for _ in range(64):
            if len(self.conns) >= MAX_CLIENTS:
                min(self.conns, key=lambda c: c.started).close()
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                # EMFILE and friends: drop the oldest client so the next accept can work
                # (the listener stays readable: returning alone would spin the loop)
                log.warning("admin: accept failed: %s", e)
                if self.conns:
                    min(self.conns, key=lambda c: c.started).close()
                return
            conn.setblocking(False)
            self.conns.add(_Conn(self, conn))

    def expire(self, now: float) -> None:
        for conn in [c for c in self.conns if c.deadline < now]:
            conn.timed_out()

    def close(self) -> None:
        """Stop listening and drop every client (the master exits or rebinds)."""
        for conn in list(self.conns):
            conn.close()
        self.sel.unregister(self.sock)
        self.sock.close()

    def close_in_child(self) -> None:
        """In a forked worker: let go of the master's admin sockets (never serve them)."""
        for conn in self.conns:
            conn.sock.close()
        self.sock.close()


class _Conn:
    def __init__(self, server: AdminServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.buf = bytearray()
        self.out = b""
        self.started = time.monotonic()
        self.deadline = self.started + CLIENT_TIMEOUT
        self.answered = False
        self.dispatched = False
        self.head_only = False
        server.sel.register(sock, selectors.EVENT_READ, self)

    # -- reading ---------------------------------------------------------------------------

    def on_event(self, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._send()
        elif mask & selectors.EVENT_READ:
            self._read()

    def _read(self) -> None:
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if not data:
            self.close()
            return
        self.buf += data
        try:
            req = parse_request(bytes(self.buf), max_head_bytes=MAX_HEAD)
        except ParseError as e:
            self.reply(e.status, f"{e.code}\n".encode(), "text/plain")
            return
        if req is None:
            if len(self.buf) > MAX_HEAD:
                self.reply(431, b"head too large\n", "text/plain")
            return
        if req.chunked:
            self.reply(411, b"send a Content-Length\n", "text/plain")
            return
        length = req.content_length or 0
        if length > MAX_BODY:
            self.reply(413, b"body too large\n", "text/plain")
            return
        if len(self.buf) - req.head_length < length:
            return
        self.server.sel.unregister(self.sock)       # nothing more to read: one request
        self.dispatched = True
        self._dispatch(req)

    def _dispatch(self, req: Any) -> None:
        api = self.server.api
        method, path = req.method, req.path
        routes: dict[bytes, tuple[bytes, Callable[[], None]]] = {
            b"/healthz": (b"GET", lambda: self.reply(200, b"ok\n", "text/plain")),
            b"/readyz": (b"GET", self._readyz),
            b"/metrics": (b"GET", lambda: self.reply(
                200, *api.metrics((req.get(b"accept") or b"").decode("latin-1")))),
            b"/config": (b"GET", lambda: self._json(200, redact(msgspec.to_builtins(
                api.cfg, enc_hook=_plain)))),
            b"/clusters": (b"GET", lambda: self._json(200, api.clusters_status())),
            b"/reload": (b"POST", lambda: api.admin_reload(self.reply)),
            b"/cache/purge": (b"POST", lambda: self._purge(req)),
        }
        if method == b"PURGE":      # NGINX's and Varnish's way: the target is what goes
            routes[path] = (b"PURGE", lambda: self._purge(req))
        route = routes.get(path)
        if route is None:
            self.reply(404, b"not found\n", "text/plain")
            return
        allowed, handler = route
        if method != allowed and not (allowed == b"GET" and method == b"HEAD"):
            self.reply(405, b"method not allowed\n", "text/plain",
                       [(b"Allow", allowed + (b", HEAD" if allowed == b"GET" else b""))])
            return
        # with a token, everything but the probes and the metrics needs it: the config and
        # the clusters tell an attacker too much
        if path not in (b"/healthz", b"/readyz", b"/metrics") and not self._authorized(req):
            self.reply(401, b"a bearer token is required\n", "text/plain",
                       [(b"WWW-Authenticate", b'Bearer realm="gwcore-admin"')])
            return
        self.head_only = method == b"HEAD"
        if allowed in (b"POST", b"PURGE"):
            self.deadline = time.monotonic() + RELOAD_TIMEOUT
        try:
            handler()
        except Exception:       # the master must outlive any bug behind an endpoint
            log.exception("admin: %s %s failed", method.decode(), path.decode("latin-1"))
            self.reply(500, b"internal error\n", "text/plain")

    def _purge(self, req: Any) -> None:
        """``PURGE <url>`` (absolute-form, or a path with the Host to purge), or ``POST
        /cache/purge?url=U`` / ``?prefix=P``: removes the cached responses of that URL (or
        under that prefix) from every worker."""
        if req.method == b"PURGE":
            target = req.target.decode("latin-1")
            url = target if "://" in target else \
                f"http://{(req.get(b'host') or b'').decode('latin-1')}{target}"
            kind = EXACT
        else:
            query = parse_qs(req.query.decode("latin-1"))
            if len(query) != 1 or not ({"url", "prefix"} & query.keys()):
                self.reply(400, b"give one of url=URL or prefix=URL\n", "text/plain")
                return
            kind = EXACT if "url" in query else PREFIX
            url = query.get("url", query.get("prefix", [""]))[0]
        try:
            key = url_key(url, prefix=kind == PREFIX)
        except ValueError as e:
            self.reply(400, f"{e}\n".encode(), "text/plain")
            return
        self.server.api.admin_purge(kind, key, self.reply)

    def _authorized(self, req: Any) -> bool:
        token = self.server.api.cfg.admin.token if self.server.api.cfg.admin else None
        if token is None:
            return True
        given = req.get(b"authorization") or b""
        return hmac.compare_digest(given, b"Bearer " + token.encode())

    def _readyz(self) -> None:
        problems = self.server.api.ready_problems()
        if problems:
            self.reply(503, "".join(p + "\n" for p in problems).encode(), "text/plain")
        else:
            self.reply(200, b"ready\n", "text/plain")

    def _json(self, status: int, data: Any) -> None:
        self.reply(status, json.dumps(data, indent=1).encode() + b"\n", "application/json")

    # -- writing ---------------------------------------------------------------------------

    def reply(self, status: int, body: bytes, content_type: str,
              headers: list[tuple[bytes, bytes]] | None = None) -> None:
        """Send the response and close (a second reply is ignored)."""
        if self.answered or self.sock.fileno() < 0:
            return
        self.answered = True
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason(status).encode()),
                 b"Content-Type: " + content_type.encode() + b"\r\n",
                 b"Content-Length: %d\r\n" % len(body), b"Connection: close\r\n",
                 b"Cache-Control: no-store\r\n"]
        lines += [name + b": " + value + b"\r\n" for name, value in headers or ()]
        lines.append(b"\r\n")
        self.out = b"".join(lines) + (b"" if self.head_only else body)
        self.deadline = time.monotonic() + CLIENT_TIMEOUT
        try:
            self.server.sel.register(self.sock, selectors.EVENT_WRITE, self)
        except KeyError:
            self.server.sel.modify(self.sock, selectors.EVENT_WRITE, self)
        self._send()

    def _send(self) -> None:
        try:
            n = self.sock.send(self.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        self.out = self.out[n:]
        if not self.out:
            self.close()

    def timed_out(self) -> None:
        if self.answered:
            self.close()
        else:
            self.reply(504 if self.dispatched else 408, b"timed out\n", "text/plain")

    def close(self) -> None:
        self.server.conns.discard(self)
        try:
            self.server.sel.unregister(self.sock)
        except (KeyError, ValueError):
            pass
        self.sock.close()
