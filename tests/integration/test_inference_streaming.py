"""Streamed responses through the gateway (inference issue, item 6): server-sent events and
chunked token streams pass through without buffering, the cluster's ``timeouts.response``
applies between chunks (not to the whole stream), and a client that goes away mid-stream closes
the upstream request at once.

The origin is tests/integration/sse_origin.py, a real process paced by the test: in ``step``
pace it writes event k only once the test has released it (GET /next on the origin, out of
band), and the test releases event k + 1 only after it has read event k through the gateway;
so each event crossed the gateway alone. /state tells what the origin wrote and whether it saw
its connection closed. Latency (p99 ≤ 1 ms) is measured by bench/macro/sse_latency.py, not
asserted here.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import h11
import pytest
from conftest import (
    HOST,
    Gateway,
    Origin,
    free_port,
    gateway_config,
    start_gateway_on_free_port,
    start_origin,
    wait_for,
)

RESPONSE_TIMEOUT_S = 1.0        # the "short" cluster's timeouts.response, seconds
WAIT_S = 5.0                    # bound on waits for things that should happen (not a sleep)


@pytest.fixture(scope="module")
def sse_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    o = start_origin(tmp_path_factory.mktemp("sse"), "sse-origin", script="sse_origin.py")
    yield o
    o.proc.stop()


@pytest.fixture(scope="module")
def sse_gw(sse_origin: Origin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Host ``short.test`` -> cluster ``short`` (timeouts.response 1 s); anything else ->
    cluster ``sse`` (15 s). Both are the SSE origin."""
    live = f"{HOST}:{sse_origin.port}"
    clusters = [
        {"name": "sse", "endpoints": [live]},
        {"name": "short", "endpoints": [live],
         "timeouts": {"connect": "1s", "response": f"{int(RESPONSE_TIMEOUT_S * 1000)}ms"}},
    ]
    routes = [
        {"match": {"host": "short.test", "path_prefix": "/"}, "cluster": "short"},
        {"match": {"path_prefix": "/"}, "cluster": "sse"},
    ]
    g = start_gateway_on_free_port(
        lambda port: gateway_config(port, sse_origin.port, free_port(), clusters=clusters,
                                    routes=routes),
        tmp_path_factory.mktemp("sse-gw"), "gateway-sse")
    yield g
    alive = g.proc.alive()
    g.proc.stop()
    assert alive, f"the gateway died:\n{g.proc.log_tail()}"


_ids = iter(range(1 << 30))


def new_id(what: str) -> str:
    """A stream id unique in this run of the origin."""
    return f"{what}-{next(_ids)}-{time.monotonic_ns()}"


def state(origin: Origin, key: str) -> dict:
    return origin._control(f"/state?id={key}").json()


def release(origin: Origin, key: str, n: int = 1) -> None:
    assert origin._control(f"/next?id={key}&n={n}").status == 200


class EventClient:
    """A client of one streamed response: a blocking socket, h11 as the response parser (an
    oracle independent of gwcore), and the body split into events as they arrive
    (``sep``: b"\\n\\n" for SSE, b"\\n" for token lines)."""

    def __init__(self, port: int, target: str, *, host: str = "gw.test",
                 version: str = "HTTP/1.1", sep: bytes = b"\n\n") -> None:
        self.sock = socket.create_connection((HOST, port), timeout=WAIT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(f"GET {target} {version}\r\nHost: {host}\r\n"
                          f"Accept: text/event-stream\r\n\r\n".encode())
        self.parser = h11.Connection(h11.CLIENT)
        self.parser.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
        self.parser.send(h11.EndOfMessage())
        self.sep = sep
        self.head: h11.Response | None = None
        self.body = b""             # received, not yet returned as events
        self.raw = b""              # every byte received, framing included
        self.ended = False          # h11 saw the end of the message
        self.cut = False            # the connection ended before the message did
        self.reset = False          # ... with a reset

    def _pump(self, deadline: float) -> None:
        """One step: the next h11 event, receiving when it needs data (TimeoutError past
        ``deadline``, a time.monotonic() value)."""
        try:
            event = self.parser.next_event()
        except h11.RemoteProtocolError:
            self.cut = True         # e.g. EOF inside a chunked body
            return
        if event is h11.NEED_DATA:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"nothing more; so far {self.raw[-300:]!r}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data, self.reset = b"", True
            except TimeoutError as exc:
                raise TimeoutError(f"nothing more; so far {self.raw[-300:]!r}") from exc
            self.raw += data
            self.parser.receive_data(data)
        elif type(event) is h11.Response:
            self.head = event
        elif type(event) is h11.Data:
            self.body += bytes(event.data)
        elif type(event) is h11.EndOfMessage:
            self.ended = True
        elif type(event) is h11.ConnectionClosed:
            self.cut = True

    def read_head(self, timeout: float = WAIT_S) -> h11.Response:
        deadline = time.monotonic() + timeout
        while self.head is None and not self.cut:
            self._pump(deadline)
        assert self.head is not None, f"no response head: {self.raw!r}"
        return self.head

    def read_event(self, timeout: float = WAIT_S) -> bytes | None:
        """The next whole event (separator included), or None when the body ended or the
        connection was cut first."""
        deadline = time.monotonic() + timeout
        while self.sep not in self.body:
            if self.ended or self.cut:
                return None
            self._pump(deadline)
        event, sep, self.body = self.body.partition(self.sep)
        return event + sep

    def read_end(self, timeout: float = WAIT_S) -> None:
        """Reads until the message ends or the connection is cut."""
        deadline = time.monotonic() + timeout
        while not (self.ended or self.cut):
            self._pump(deadline)

    def field(self, name: str) -> str | None:
        assert self.head is not None
        values = [v.decode() for k, v in self.head.headers if k == name.encode()]
        return ", ".join(values) if values else None

    def abort(self) -> None:
        """Closes with a reset (SO_LINGER 0), as a killed client's kernel may."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


def sse_event(i: int) -> bytes:
    return f"id: {i}\nevent: token\ndata: tok{i}\n\n".encode()


def token_line(i: int) -> bytes:
    return f'{{"i": {i}, "token": "tok{i}"}}\n'.encode()


# framing of the origin's response, kind of stream, the client's HTTP version
CASES = [
    ("chunked", "sse", "HTTP/1.1"),
    ("chunked", "tokens", "HTTP/1.1"),
    ("close", "sse", "HTTP/1.1"),        # close-delimited upstream, re-chunked by the gateway
    ("close", "sse", "HTTP/1.0"),        # close-delimited both ways
    ("chunked", "sse", "HTTP/1.0"),      # de-chunked for an HTTP/1.0 client
]


@pytest.mark.parametrize(("framing", "kind", "version"), CASES,
                         ids=["-".join(c) for c in CASES])
def test_each_event_reaches_the_client_before_the_next_is_written(
        sse_gw: Gateway, sse_origin: Origin, framing: str, kind: str, version: str) -> None:
    """The origin writes event k + 1 only after the client has read event k through the
    gateway: every event (and the head, before any) crosses the gateway alone."""
    n = 20
    key = new_id("step")
    sep = b"\n\n" if kind == "sse" else b"\n"
    expected = sse_event if kind == "sse" else token_line
    c = EventClient(sse_gw.port, f"/stream?id={key}&framing={framing}&kind={kind}&count={n}"
                    f"&pace=step", version=version, sep=sep)
    try:
        head = c.read_head()            # nothing released yet: the head alone came through
        assert head.status_code == 200
        assert c.field("content-type") == ("text/event-stream" if kind == "sse"
                                           else "application/x-ndjson")
        assert c.field("content-length") is None
        assert c.field("transfer-encoding") == ("chunked" if version == "HTTP/1.1" else None)
        assert state(sse_origin, key)["sent"] == 0
        for k in range(n):
            release(sse_origin, key)
            assert c.read_event() == expected(k), f"event {k}"
            assert c.body == b"", "bytes beyond the event the origin was allowed to write"
            assert state(sse_origin, key)["sent"] == k + 1
        c.read_end()
        assert c.ended and not c.cut, "the stream did not end cleanly"
        assert c.body == b""
        if version == "HTTP/1.1":
            assert c.raw.endswith(b"\r\n0\r\n\r\n")
        wait_for(lambda: state(sse_origin, key)["finished"], WAIT_S, "the origin's end")
    finally:
        c.close()


def test_a_stream_longer_than_the_response_timeout_completes(
        sse_gw: Gateway, sse_origin: Origin) -> None:
    """8 events 0.5 s apart on a cluster whose timeouts.response is 1 s: the stream lasts
    3.5 × the timeout and arrives whole (the timeout runs between chunks)."""
    n, gap = 8, RESPONSE_TIMEOUT_S / 2
    key = new_id("long")
    started = time.monotonic()
    c = EventClient(sse_gw.port, f"/stream?id={key}&framing=chunked&kind=sse&count={n}"
                    f"&pace=auto&gap={gap}", host="short.test")
    try:
        assert c.read_head().status_code == 200
        events = [c.read_event() for _ in range(n)]
        c.read_end()
    finally:
        c.close()
    elapsed = time.monotonic() - started
    assert events == [sse_event(k) for k in range(n)]
    assert c.ended and not c.cut and c.raw.endswith(b"\r\n0\r\n\r\n")
    assert elapsed >= 3 * RESPONSE_TIMEOUT_S, f"the stream took only {elapsed:.2f}s"


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_a_gap_over_the_response_timeout_cuts_the_stream(
        sse_gw: Gateway, sse_origin: Origin, framing: str) -> None:
    """Events 0.3 s apart, then a 2.5 s gap on a cluster whose timeouts.response is 1 s: the
    client gets the first events, then the connection ends without the last chunk (an
    incomplete body, never one passed off as complete), about a timeout after the last event;
    the gateway closes its upstream connection too."""
    key = new_id("cut")
    c = EventClient(sse_gw.port, f"/stream?id={key}&framing={framing}&kind=sse&count=6"
                    f"&pace=auto&gaps=0.3,0.3,2.5,0.3,0.3", host="short.test")
    try:
        assert c.read_head().status_code == 200
        assert c.field("transfer-encoding") == "chunked"
        assert [c.read_event() for _ in range(3)] == [sse_event(k) for k in range(3)]
        last = time.monotonic()
        c.read_end(timeout=RESPONSE_TIMEOUT_S + WAIT_S)
        waited = time.monotonic() - last
    finally:
        c.close()
    assert c.cut and not c.ended, f"the cut stream looked complete: {c.raw[-200:]!r}"
    assert sse_event(3)[:-2] not in c.raw and not c.raw.endswith(b"0\r\n\r\n")
    assert waited >= RESPONSE_TIMEOUT_S * 0.8, f"cut {waited:.2f}s after the last event"
    s = wait_for(lambda: (st := state(sse_origin, key))["peer_closed"] and st, WAIT_S,
                 "the origin to see the gateway close the stream's connection")
    assert s["sent_at_close"] == 3 and not s["finished"]


def _assert_origin_stops(origin: Origin, key: str, read: int, closed_at: float) -> dict:
    """The origin sees its connection closed within 2 s of the client leaving (``closed_at``,
    a time.monotonic() value) and its writer stops; returns the origin's /state then."""
    s = wait_for(lambda: (st := state(origin, key))["peer_closed"] and st, 2.0,
                 "the origin to see its upstream connection closed")
    seen = time.monotonic() - closed_at
    s = wait_for(lambda: not (st := state(origin, key))["generating"] and st, 2.0,
                 "the origin's writer to stop")
    assert not s["finished"]
    assert s["sent_at_close"] is not None and s["sent"] == s["sent_at_close"]
    print(f"origin saw the close {seen * 1000:.1f} ms after the client; "
          f"{s['sent']} events written, {read} read")
    return s


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_client_leaving_mid_stream_closes_the_upstream_request(
        sse_gw: Gateway, sse_origin: Origin, how: str) -> None:
    """An endless event stream (an event every 50 ms): the client reads 5 events and closes
    (FIN) or resets; the origin sees its connection closed within 2 s and stops writing,
    a few events (150 ms) past what the client read at most."""
    key = new_id(f"leave-{how}")
    c = EventClient(sse_gw.port, f"/stream?id={key}&framing=chunked&kind=sse&count=0"
                    f"&pace=auto&gap=0.05")
    assert c.read_head().status_code == 200
    events = [c.read_event() for _ in range(5)]
    assert events == [sse_event(k) for k in range(5)]
    if how == "reset":
        c.abort()
    else:
        c.close()
    s = _assert_origin_stops(sse_origin, key, 5, time.monotonic())
    assert s["sent"] <= 5 + 3, "the origin went on generating"


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_client_leaving_while_the_model_is_silent_closes_the_upstream_request(
        sse_gw: Gateway, sse_origin: Origin, how: str) -> None:
    """The origin has written 3 events and writes nothing more (step pace, nothing
    released): a client that closes (FIN) or resets now still closes the upstream request
    at once: no later write is needed to notice."""
    key = new_id(f"silent-{how}")
    c = EventClient(sse_gw.port, f"/stream?id={key}&framing=chunked&kind=sse&count=0"
                    f"&pace=step")
    assert c.read_head().status_code == 200
    release(sse_origin, key, 3)
    assert [c.read_event() for _ in range(3)] == [sse_event(k) for k in range(3)]
    if how == "reset":
        c.abort()
    else:
        c.close()
    s = _assert_origin_stops(sse_origin, key, 3, time.monotonic())
    assert s["sent"] == 3


def test_the_connection_carries_the_next_request_after_a_stream(
        sse_gw: Gateway, sse_origin: Origin) -> None:
    """A complete chunked event stream leaves the client connection usable (keep-alive):
    a second stream on it arrives whole too."""
    keys = [new_id("ka"), new_id("ka")]
    with socket.create_connection((HOST, sse_gw.port), timeout=WAIT_S) as s:
        data = b""
        for key in keys:
            s.sendall(f"GET /stream?id={key}&framing=chunked&kind=sse&count=3&pace=auto"
                      f"&gap=0.01 HTTP/1.1\r\nHost: gw.test\r\n\r\n".encode())
            deadline = time.monotonic() + WAIT_S
            while not data.endswith(b"\r\n0\r\n\r\n"):
                assert time.monotonic() < deadline, f"no end of stream: {data[-200:]!r}"
                chunk = s.recv(65536)
                assert chunk, f"closed: {data[-200:]!r}"
                data += chunk
            assert all(sse_event(k) in data for k in range(3))
            data = b""
    for key in keys:
        assert state(sse_origin, key)["finished"]

