"""Per-listener connection limits (``limits.max_connections`` and
``max_connections_per_client``, per worker process): a connection beyond either gets a 503
with Retry-After and is closed, the ones within keep being served, and a closed connection
frees its place (also its client's)."""

from __future__ import annotations

import socket

import h11
import pytest
from conftest import HOST, gateway_config, start_gateway_on_free_port, wait_for


@pytest.fixture(scope="module")
def gw_conns(origin, dead_port, tmp_path_factory):
    gw = start_gateway_on_free_port(
        lambda port: gateway_config(port, origin.port, dead_port, limits={
            "max_connections": 3, "max_connections_per_client": 2}),
        tmp_path_factory.mktemp("conn-limits"), "gw-conn-limits")
    yield gw
    gw.proc.stop()


def connect(port: int, source: str) -> socket.socket:
    s = socket.socket()
    s.settimeout(10)
    s.bind((source, 0))
    s.connect((HOST, port))
    return s


def exchange(s: socket.socket) -> tuple[int, bytes]:
    """One GET on s: (status, body); (0, b"") when the connection was closed first."""
    conn = h11.Connection(h11.CLIENT)
    try:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: gw.test\r\n\r\n")
    except OSError:
        return 0, b""
    status, body = 0, b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data and status == 0:
                return 0, b""
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            return status, body


def test_total_and_per_client_limits(gw_conns) -> None:
    port = gw_conns.port
    a1, a2 = connect(port, "127.0.0.1"), connect(port, "127.0.0.1")
    assert exchange(a1)[0] == 200 and exchange(a2)[0] == 200
    a3 = connect(port, "127.0.0.1")                         # a third from the same client
    assert exchange(a3) == (503, b"503 Service Unavailable: too many connections\n")
    b1 = connect(port, "127.0.0.2")                         # another client: 3 in all
    assert exchange(b1)[0] == 200
    c1 = connect(port, "127.0.0.3")                         # a fourth connection
    assert exchange(c1)[0] == 503
    assert exchange(a1)[0] == 200 and exchange(b1)[0] == 200   # the admitted ones go on
    a1.close()

    def new_one_served() -> bool:
        s = connect(port, "127.0.0.1")
        try:
            return exchange(s)[0] == 200
        finally:
            s.close()
    wait_for(new_one_served, timeout=10, what="a freed place taken by the same client")
    for s in (a2, a3, b1, c1):
        s.close()
