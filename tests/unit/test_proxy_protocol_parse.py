"""PROXY protocol: the ``proxy_protocol`` listener key and the compiled header parser's Python
face (gwcore/proxy/_proxyproto.pyx over src_c/proxyproto.h, whose own tests are in tests/c)."""

from __future__ import annotations

import socket
import struct

import pytest
from gwcore.proxy._proxyproto import parse

from gwcore import config

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def cfg(pp: str) -> config.Config:
    return config.parse(f"listeners: [{{name: a, address: 127.0.0.1:1, proxy_protocol: {pp}}}]\n"
                        "clusters: [{name: c, endpoints: [127.0.0.1:2]}]\n"
                        "routes: [{cluster: c}]\n", "gw.yaml")


def test_config() -> None:
    lst = cfg("{trusted: [10.0.0.0/8, '::1', 192.168.1.7/32]}").listeners[0]
    assert lst.proxy_protocol is not None and len(lst.proxy_protocol.trusted) == 3
    with pytest.raises(config.ConfigError,
                       match=r"listeners\[0\]\.proxy_protocol\.trusted\[0\]: 'x' is not"):
        cfg("{trusted: [x]}")
    with pytest.raises(config.ConfigError, match="trusted: give at least one"):
        cfg("{trusted: []}")


@pytest.mark.parametrize(("data", "want"), [
    (b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 443\r\nGET", (44, ("203.0.113.7", 40000))),
    (b"PROXY TCP6 2001:db8::7 2001:db8::1 1 2\r\n", (40, ("2001:db8::7", 1))),
    (b"PROXY UNKNOWN\r\n", (15, None)),
    (SIG + b"\x21\x11\x00\x0c" + socket.inet_aton("198.51.100.9") + bytes(4)
     + struct.pack("!HH", 5555, 443) + b"rest", (28, ("198.51.100.9", 5555))),
    (SIG + b"\x20\x00\x00\x00", (16, None)),
    (b"PROXY TCP4 1.2.3.4", (-2, None)),
    (SIG[:7], (-2, None)),
    (b"GET / HTTP/1.1\r\n", (-1, None)),
    (b"PROXY TCP4 1.2.3.4 1.2.3.4 99999 1\r\n", (-1, None)),
])
def test_parse(data: bytes, want: tuple) -> None:
    assert parse(data) == want
