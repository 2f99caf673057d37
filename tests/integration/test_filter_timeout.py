"""A request filter that awaits (here: the JWT filter waiting for a JWKS fetch that an unknown
kid triggered) is bounded by the listener's ``timeouts.filter``: 504, never a parked request."""

from __future__ import annotations

import time

from conftest import RawConn, free_port, gateway_config, start_gateway
from jwt.algorithms import RSAAlgorithm
from test_jwt_gateway import JwksServer, jwk, provider_config, rsa_key, token


def test_a_filter_waiting_longer_than_the_filter_timeout_is_504(tmp_path, origin):
    k1, k2 = rsa_key(), rsa_key()
    server = JwksServer()
    server.publish(jwk(k1, "k1", RSAAlgorithm))
    server.start()
    try:
        cfg = gateway_config(free_port(), origin.port, free_port(),
                             timeouts={"filter": "1s"},
                             routes=[{"match": {"path_prefix": "/"}, "cluster": "origin",
                                      "jwt": "main"}])
        provider = provider_config(server)
        provider["jwks"]["timeout"] = "20s"       # the fetch alone would wait this long
        cfg["jwt_providers"] = {"main": provider}
        gw = start_gateway(cfg, tmp_path, "gw-filter-timeout")
        try:
            server.hold()
            fetches = server.fetches
            with RawConn(gw.port) as c:
                started = time.monotonic()
                c.send(b"GET /hello HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer "
                       + token(k2, "k2").encode() + b"\r\n\r\n")
                r = c.read_response(timeout=10)
                elapsed = time.monotonic() - started
            assert r.status == 504, (r.status, r.body)
            assert 0.9 <= elapsed < 2.5, elapsed
            assert server.fetches == fetches + 1     # the filter really was waiting on it
            server.release()
            with RawConn(gw.port) as c:        # the gateway serves on: k1 still verifies
                c.send(b"GET /hello HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer "
                       + token(k1, "k1").encode() + b"\r\n\r\n")
                assert c.read_response(timeout=10).status == 200
        finally:
            gw.proc.stop()
    finally:
        server.stop()
