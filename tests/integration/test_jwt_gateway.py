"""JWT authentication in the gateway (issue 4 items 4-5): a real JWKS server (the stdlib's
http.server over a directory), tokens made by PyJWT, the origin reporting what it received."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt as pyjwt
import pytest
from conftest import HOST, free_port, gateway_config, start_gateway
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


def token(private, kid: str, alg: str = "RS256", **claims) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": "gateway", "sub": "user-42", "iat": now, "exp": now + 300}
    body.update(claims)
    return pyjwt.encode(body, private, algorithm=alg, headers={"kid": kid})


class JwksServer:
    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.proc: subprocess.Popen | None = None

    def publish(self, *keys: dict) -> None:
        tmp = self.root / "jwks.json.tmp"
        tmp.write_text(json.dumps({"keys": list(keys)}))
        tmp.replace(self.root / "jwks.json")

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(self.port), "--bind", HOST,
             "--directory", str(self.root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://{HOST}:{self.port}/jwks.json", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("JWKS server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None


@pytest.fixture
def setup(tmp_path: Path, origin, request):
    k1 = rsa_key()
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks_dir = tmp_path / "jwks"
    jwks_dir.mkdir()
    server = JwksServer(jwks_dir)
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
        "main": {"issuer": ISSUER, "audiences": ["gateway"], "algorithms": ["RS256"],
                 "jwks": {"url": f"http://{HOST}:{server.port}/jwks.json",
                          "refresh": getattr(request, "param", "5m")},
                 "forward_claims": {"sub": "x-user-id"}, "forward_authorization": False,
                 "leeway": "5s"},
        "cookie": {"issuer": ISSUER, "audiences": ["gateway"], "algorithms": ["ES256"],
                   "jwks": {"file": str(tmp_path / "cookie-jwks.json")},
                   "from": {"cookie": "session"}},
    }
    gw = start_gateway(cfg, tmp_path, "gw-jwt")
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
    log = gw.proc.log_path.read_text()
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
    new = token(k2, "k2")
    r = httpx.get(f"{gw.url}/headers", headers={"Host": "secure.test",
                                                "Authorization": f"Bearer {new}"})
    assert r.status_code == 200, r.text
    assert "key set now has kids ['k1', 'k2']" in gw.proc.log_path.read_text()
    # a second unknown kid within 30 s does not fetch again: rejected at once
    r = httpx.get(f"{gw.url}/headers", headers={"Host": "secure.test",
                                                "Authorization": f"Bearer {token(k2, 'k9')}"})
    assert r.status_code == 401


@pytest.mark.parametrize("setup", ["1s"], indirect=True)
def test_jwks_outage_keeps_the_cached_keys(setup) -> None:
    gw, server, k1, _ = setup
    server.stop()
    time.sleep(2.5)                  # periodic refreshes (every 1 s) fail meanwhile
    assert "JWKS fetch from" in gw.proc.log_path.read_text()
    for tok in (token(k1, "k1"), token(k1, "k1", sub="fresh")):
        r = httpx.get(f"{gw.url}/headers", headers={"Host": "secure.test",
                                                    "Authorization": f"Bearer {tok}"})
        assert r.status_code == 200, r.text


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
