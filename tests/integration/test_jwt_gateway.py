"""JWT authentication in the gateway (issue 4 items 4-5): a JWKS server in the test process that
counts its fetches and can hold them, tokens made by PyJWT, the origin reporting what it
received."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from pathlib import Path

import httpx
import jwt as pyjwt
import pytest
from conftest import HOST, RawConn, free_port, gateway_config, start_gateway, wait_for
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

pytestmark = pytest.mark.timeout(90)

ISSUER = "https://auth.test/"


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(private, kid: str, algo) -> dict:
    d = json.loads(algo.to_jwk(private.public_key()))
    d.update(kid=kid, use="sig")
    return d


def token(private, kid: str | None, alg: str = "RS256", **claims) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": "gateway", "sub": "user-42", "iat": now, "exp": now + 300}
    body.update(claims)
    return pyjwt.encode(body, private, algorithm=alg,
                        headers={"kid": kid} if kid is not None else None)


class JwksServer:
    """GET /jwks.json answers the published key set. ``fetches``: requests received;
    ``served``: answers sent. ``hold()`` makes fetches wait until ``release()``;
    ``first_delay`` delays the first answer (a slow identity provider at start-up)."""

    def __init__(self, first_delay: float = 0.0) -> None:
        self.document = b'{"keys": []}'
        self.fetches = self.served = 0
        self.first_delay = first_delay
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()
        self.httpd: http.server.ThreadingHTTPServer | None = None
        self.port = 0

    def publish(self, *keys: dict) -> None:
        self.document = json.dumps({"keys": list(keys)}).encode()

    def hold(self) -> None:
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def start(self) -> None:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server.lock:
                    server.fetches += 1
                    first = server.fetches == 1
                if first and server.first_delay:
                    time.sleep(server.first_delay)
                server.gate.wait(60)
                body = server.document
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                with server.lock:
                    server.served += 1

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/jwks.json"

    def stop(self) -> None:
        """Stop listening: from now on fetches are refused."""
        if self.httpd is not None:
            self.release()
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


def provider_config(server: JwksServer, refresh: str = "5m") -> dict:
    return {"issuer": ISSUER, "audiences": ["gateway"], "algorithms": ["RS256"],
            "jwks": {"url": server.url, "refresh": refresh},
            "forward_claims": {"sub": "x-user-id"}, "forward_authorization": False,
            "leeway": "5s"}


@pytest.fixture
def setup(tmp_path: Path, origin, request):
    k1 = rsa_key()
    ec_key = ec.generate_private_key(ec.SECP256R1())
    refresh, first_delay = getattr(request, "param", ("5m", 0.0))
    server = JwksServer(first_delay)
    server.publish(jwk(k1, "k1", RSAAlgorithm))
    server.start()
    request.addfinalizer(server.stop)
    (tmp_path / "cookie-jwks.json").write_text(json.dumps(
        {"keys": [jwk(ec_key, "e1", ECAlgorithm)]}))
    cfg = gateway_config(free_port(), origin.port, free_port(), routes=[
        {"match": {"host": "secure.test"}, "cluster": "origin", "jwt": "main"},
        {"match": {"host": "optional.test"}, "cluster": "origin",
         "jwt": {"provider": "main", "optional": True}},
        {"match": {"host": "cookie.test"}, "cluster": "origin", "jwt": "cookie"},
        {"match": {"path_prefix": "/"}, "cluster": "origin"},
    ])
    cfg["jwt_providers"] = {
        "main": provider_config(server, refresh),
        "cookie": {"issuer": ISSUER, "audiences": ["gateway"], "algorithms": ["ES256"],
                   "jwks": {"file": str(tmp_path / "cookie-jwks.json")},
                   "from": {"cookie": "session"}},
    }
    gw = start_gateway(cfg, tmp_path, "gw-jwt")       # returns at READY=1
    yield gw, server, k1, ec_key
    gw.proc.stop()
    server.stop()


def headers_seen(resp: httpx.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in resp.json()["headers"]}


def test_missing_and_invalid_tokens_get_401_challenges(setup) -> None:
    gw, _, k1, _ = setup
    url = f"{gw.url}/headers"
    r = httpx.get(url, headers={"Host": "secure.test"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="gwcore"'     # RFC 6750 §3.1
    r = httpx.get(url, headers={"Host": "secure.test", "Authorization": "Bearer not.a.jwt"})
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert "not.a.jwt" not in r.headers["www-authenticate"] + r.text
    expired = token(k1, "k1", exp=int(time.time()) - 60)
    r = httpx.get(url, headers={"Host": "secure.test", "Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and "expired" in r.headers["www-authenticate"].lower()
    wrong_aud = token(k1, "k1", aud="someone-else")
    r = httpx.get(url, headers={"Host": "secure.test", "Authorization": f"Bearer {wrong_aud}"})
    assert r.status_code == 401
    other_key = token(rsa_key(), "k1")                       # right kid, wrong signature
    r = httpx.get(url, headers={"Host": "secure.test", "Authorization": f"Bearer {other_key}"})
    assert r.status_code == 401
    log = gw.proc.log()
    assert "401 missing token" in log and "401 expired" in log
    assert expired not in log and other_key not in log


def test_valid_token_forwards_claims_and_strips_authorization(setup) -> None:
    gw, _, k1, _ = setup
    tok = token(k1, "k1", sub="alice")
    for _ in range(3):             # repeats take the verified-token cache
        r = httpx.get(f"{gw.url}/headers", headers={
            "Host": "secure.test", "Authorization": f"Bearer {tok}", "X-User-Id": "admin"})
        assert r.status_code == 200, r.text
        seen = headers_seen(r)
        assert seen["x-user-id"] == "alice"              # the client's X-User-Id is replaced
        assert "authorization" not in seen
        assert [k for k, _ in r.json()["headers"] if k.lower() == "x-user-id"] == ["x-user-id"]


def test_key_rotation_without_restart(setup) -> None:
    gw, server, k1, _ = setup        # refresh: 5m, so only an unknown kid can fetch here
    k2 = rsa_key()
    server.publish(jwk(k1, "k1", RSAAlgorithm), jwk(k2, "k2", RSAAlgorithm))
    fetches = server.fetches
    new = token(k2, "k2")
    r = httpx.get(f"{gw.url}/headers", headers={"Host": "secure.test",
                                                "Authorization": f"Bearer {new}"})
    assert r.status_code == 200, r.text
    assert server.fetches == fetches + 1            # the unknown kid fetched, once
    assert "key set now has kids ['k1', 'k2']" in gw.proc.log()
    # a second unknown kid within 30 s does not fetch again: rejected at once (a fetch would
    # have been awaited before answering, so it would be counted by now)
    r = httpx.get(f"{gw.url}/headers", headers={"Host": "secure.test",
                                                "Authorization": f"Bearer {token(k2, 'k9')}"})
    assert r.status_code == 401
    assert server.fetches == fetches + 1


# refresh every 1 s; the first fetch answered after 0.5 s, so a gateway reporting ready
# before its first fetch finished is caught every time
@pytest.mark.parametrize("setup", [("1s", 0.5)], indirect=True)
def test_jwks_outage_keeps_the_cached_keys(setup) -> None:
    gw, server, k1, _ = setup
    assert server.served >= 1, "READY=1 before the first JWKS fetch finished"
    assert "JWKS fetch from" not in gw.proc.log()
    server.stop()
    gw.proc.wait_for_log("JWKS fetch from", timeout=15)     # a periodic refresh failed
    for tok in (token(k1, "k1"), token(k1, "k1", sub="fresh")):   # cached, then a new one
        r = httpx.get(f"{gw.url}/headers", headers={"Host": "secure.test",
                                                    "Authorization": f"Bearer {tok}"})
        assert r.status_code == 200, r.text
    assert "keeping 1 cached keys" in gw.proc.log()


def nothing_received(conn: RawConn) -> bool:
    """No byte (nor EOF) has arrived on conn yet."""
    conn.sock.setblocking(False)
    try:
        conn.sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    finally:
        conn.sock.settimeout(conn.timeout)
    return False


def test_a_request_before_the_first_fetch_waits_for_it(tmp_path: Path, origin) -> None:
    """The first JWKS fetch is held at the server: the worker is not ready (no READY=1), and
    a request that arrives meanwhile (a token without kid, which the empty key set would
    refuse at once) waits for the fetch instead of getting 401, without a fetch of its own."""
    k1 = rsa_key()
    server = JwksServer()
    server.publish(jwk(k1, "k1", RSAAlgorithm))
    server.hold()
    server.start()
    gw = None
    try:
        cfg = gateway_config(free_port(), origin.port, free_port(), routes=[
            {"match": {"path_prefix": "/"}, "cluster": "origin", "jwt": "main"}])
        cfg["jwt_providers"] = {"main": provider_config(server)}
        gw = start_gateway(cfg, tmp_path, "gw-jwt-early", ready=False)
        wait_for(lambda: server.fetches >= 1, what="the first JWKS fetch at the server")
        with RawConn(gw.port, timeout=20) as conn:
            conn.send(f"GET /headers?early HTTP/1.1\r\nHost: gw.test\r\n"
                      f"Authorization: Bearer {token(k1, None, sub='early')}\r\n\r\n".encode())
            gw.proc.wait_for_log("waiting for the first JWKS fetch")   # the request is in
            assert nothing_received(conn)                        # and not answered
            assert b"READY=1" not in gw.notify.poll()
            assert server.served == 0
            server.release()
            r = conn.read_response()
        assert r.status == 200, r.body
        assert {k.lower(): v for k, v in r.json()["headers"]}["x-user-id"] == "early"
        gw.notify.wait(b"READY=1", gw.proc)
        assert server.fetches == 1
    finally:
        if gw is not None:
            gw.proc.stop()
        server.stop()


def test_optional_route_and_cookie_source(setup) -> None:
    gw, _, _, ec_key = setup
    assert httpx.get(f"{gw.url}/hello", headers={"Host": "optional.test"}).status_code == 200
    bad = httpx.get(f"{gw.url}/hello", headers={"Host": "optional.test",
                                                "Authorization": "Bearer x.y.z"})
    assert bad.status_code == 401
    ok = httpx.get(f"{gw.url}/hello", headers={
        "Host": "cookie.test", "Cookie": f"theme=dark; session={token(ec_key, 'e1', 'ES256')}"})
    assert ok.status_code == 200, ok.text
    # the cookie provider does not look at Authorization
    r = httpx.get(f"{gw.url}/hello", headers={
        "Host": "cookie.test", "Authorization": f"Bearer {token(ec_key, 'e1', 'ES256')}"})
    assert r.status_code == 401
    # routes without jwt are untouched
    assert httpx.get(f"{gw.url}/hello").status_code == 200
