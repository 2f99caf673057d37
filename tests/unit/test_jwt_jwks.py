"""gwcore.jwt.JWKSet and KeySet: RFC 7517 members, kid selection, rotation, PEM files.

Tokens are made by PyJWT; JWKs are exported by PyJWT's algorithm classes.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import threading
from pathlib import Path

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gwcore import jwt

ALGS = pyjwt.algorithms.get_default_algorithms()


def public_jwk(private_key: object, family: str, **members: object) -> dict:
    jwk = ALGS[family].to_jwk(private_key.public_key(), as_dict=True)
    jwk.update(members)
    return jwk


def public_pem(private_key: object) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def keys() -> dict[str, object]:
    return {
        "rsa1": rsa.generate_private_key(65537, 2048),
        "rsa2": rsa.generate_private_key(65537, 2048),
        "p256": ec.generate_private_key(ec.SECP256R1()),
        "p384": ec.generate_private_key(ec.SECP384R1()),
        "ed": ed25519.Ed25519PrivateKey.generate(),
    }


@pytest.fixture(scope="module")
def jwks(keys: dict[str, object]) -> dict:
    return {
        "keys": [
            public_jwk(keys["rsa1"], "RS256", kid="r1", use="sig"),
            public_jwk(keys["rsa2"], "RS256", kid="r2", alg="RS256"),
            public_jwk(keys["p256"], "ES256", kid="e1", key_ops=["verify"]),
            public_jwk(keys["p384"], "ES384", kid="e2"),
            public_jwk(keys["ed"], "EdDSA", kid="d1"),
            {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA", "kid": "h1"},
        ]
    }


def sign(key: object, alg: str, kid: str | None = None, **claims: object) -> str:
    headers = {"kid": kid} if kid is not None else None
    return pyjwt.encode(claims or {"sub": "u"}, key, algorithm=alg, headers=headers)


def test_every_kty_is_loaded_and_selected_by_kid(keys: dict[str, object], jwks: dict) -> None:
    keyset = jwt.JWKSet.from_dict(jwks)
    assert len(keyset) == 6 and keyset.skipped == ()
    assert keyset.kids() == frozenset({"r1", "r2", "e1", "e2", "d1", "h1"})
    assert [k.kty for k in keyset] == ["RSA", "RSA", "EC", "EC", "OKP", "oct"]
    assert keyset["e2"].curve == "P-384" and keyset["r2"].algorithms == frozenset({"RS256"})
    with pytest.raises(KeyError):
        keyset["nope"]
    all_algs = ["RS256", "PS256", "ES256", "ES384", "EdDSA", "HS256"]
    verifier = jwt.Verifier(keyset, all_algs)
    secret = jwt.b64url_decode(jwks["keys"][5]["k"])
    for key, alg, kid in [
        (keys["rsa1"], "RS256", "r1"),
        (keys["rsa1"], "PS256", "r1"),
        (keys["rsa2"], "RS256", "r2"),
        (keys["p256"], "ES256", "e1"),
        (keys["p384"], "ES384", "e2"),
        (keys["ed"], "EdDSA", "d1"),
        (secret, "HS256", "h1"),
    ]:
        assert verifier.verify(sign(key, alg, kid, sub=kid)) == {"sub": kid}
        assert jwt.decode(sign(key, alg, kid), keyset, algorithms=[alg]) == {"sub": "u"}


def test_kid_naming_no_key_is_refused(keys: dict[str, object], jwks: dict) -> None:
    keyset = jwt.JWKSet.from_dict(jwks)
    with pytest.raises(jwt.UnknownKeyIdError) as info:
        jwt.decode(sign(keys["rsa1"], "RS256", "r9"), keyset, algorithms=["RS256"])
    assert info.value.code == "unknown_kid"
    # a kid naming another key's id is verified with that key only, and fails
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(sign(keys["rsa1"], "RS256", "r2"), keyset, algorithms=["RS256"])
    # a kid naming a key of another type: no key for the algorithm
    with pytest.raises(jwt.InvalidAlgorithmError):
        jwt.decode(sign(keys["rsa1"], "RS256", "e1"), keyset, algorithms=["RS256"])


def test_without_kid_every_fitting_key_is_tried(keys: dict[str, object], jwks: dict) -> None:
    keyset = jwt.JWKSet.from_dict(jwks)
    assert jwt.decode(sign(keys["rsa2"], "RS256"), keyset, algorithms=["RS256"]) == {"sub": "u"}
    assert jwt.decode(sign(keys["rsa1"], "PS256"), keyset, algorithms=["PS256"]) == {"sub": "u"}
    assert jwt.decode(sign(keys["p384"], "ES384"), keyset, algorithms=["ES384"]) == {"sub": "u"}
    other = rsa.generate_private_key(65537, 2048)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(sign(other, "RS256"), keyset, algorithms=["RS256"])


def test_jwk_alg_restricts_the_key(keys: dict[str, object], jwks: dict) -> None:
    keyset = jwt.JWKSet.from_dict(jwks)  # r2 carries "alg": "RS256"
    with pytest.raises(jwt.InvalidAlgorithmError):
        jwt.decode(sign(keys["rsa2"], "PS256", "r2"), keyset, algorithms=["PS256"])
    with pytest.raises(jwt.InvalidSignatureError):  # without kid only r1 fits PS256
        jwt.decode(sign(keys["rsa2"], "PS256"), keyset, algorithms=["PS256"])


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ({"use": "enc"}, "use"),
        ({"key_ops": ["sign"]}, "key_ops"),
        ({"key_ops": "verify"}, "key_ops"),
        ({"alg": "ES256"}, "alg"),
        ({"alg": "none"}, "alg"),
        ({"kty": "DSA"}, "kty"),
        ({"n": "AQAB="}, "base64url"),
        ({"n": 5}, "string"),
        ({"e": None}, "string"),
        ({"d": "AQAB"}, "private"),
        ({"kid": 5}, "kid"),
    ],
)
def test_unusable_jwks_are_skipped(keys: dict[str, object], members: dict, reason: str) -> None:
    good = public_jwk(keys["rsa1"], "RS256", kid="good")
    bad = public_jwk(keys["rsa2"], "RS256", kid="bad")
    bad.update(members)
    keyset = jwt.JWKSet.from_dict({"keys": [bad, good]})
    assert [k.kid for k in keyset] == ["good"]
    assert len(keyset.skipped) == 1
    index, kid, why = keyset.skipped[0]
    assert index == 0 and kid == (bad["kid"] if isinstance(bad["kid"], str) else None)
    assert reason in why
    with pytest.raises(jwt.InvalidKeyError):
        jwt.Key.from_jwk(bad)


def test_malformed_ec_and_okp_jwks(keys: dict[str, object]) -> None:
    base = public_jwk(keys["p256"], "ES256")
    x = jwt.b64url_decode(base["x"])
    y = jwt.b64url_decode(base["y"])
    off_curve = bytes([y[0] ^ 1]) + y[1:]
    b64 = pyjwt.utils.base64url_encode
    for members in (
        {"crv": "P-384"},  # coordinates of the wrong size for the curve
        {"crv": "secp256k1"},
        {"x": b64(x[1:]).decode()},  # RFC 7518 6.2.1.2: full-length coordinates only
        {"y": b64(off_curve).decode()},
    ):
        with pytest.raises(jwt.InvalidKeyError):
            jwt.Key.from_jwk({**base, **members})
    okp = public_jwk(keys["ed"], "EdDSA")
    for members in ({"crv": "X25519"}, {"x": okp["x"][:-2]}):
        with pytest.raises(jwt.InvalidKeyError):
            jwt.Key.from_jwk({**okp, **members})
    with pytest.raises(jwt.InvalidKeyError):
        jwt.Key.from_jwk(["kty", "EC"])
    with pytest.raises(jwt.InvalidKeyError):
        jwt.Key.from_jwk({"kty": "oct", "k": ""})


def test_document_shape_and_sources(tmp_path: Path, keys: dict[str, object], jwks: dict) -> None:
    for document in ({}, {"keys": {}}, [jwks], {"keys": "x"}):
        with pytest.raises(jwt.InvalidKeyError):
            jwt.JWKSet.from_dict(document)
    with pytest.raises(jwt.InvalidKeyError):
        jwt.JWKSet.from_json(b"{not json")
    assert len(jwt.JWKSet.from_json(json.dumps(jwks))) == 6
    assert len(jwt.JWKSet.from_dict({"keys": []})) == 0

    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    assert jwt.JWKSet.from_file(path).kids() == jwt.JWKSet.from_dict(jwks).kids()
    bundle = public_pem(keys["rsa1"]) + b"\n" + public_pem(keys["p256"])
    pem_path = tmp_path / "keys.pem"
    pem_path.write_bytes(bundle)
    from_pem = jwt.JWKSet.from_file(str(pem_path))
    assert [k.kty for k in from_pem] == ["RSA", "EC"] and from_pem.kids() == frozenset()
    # keys without kid match any kid
    token = sign(keys["p256"], "ES256", "whatever")
    assert jwt.decode(token, from_pem, algorithms=["ES256"]) == {"sub": "u"}
    assert len(jwt.JWKSet.from_pem(public_pem(keys["ed"]).decode(), bundle)) == 3
    with pytest.raises(jwt.InvalidKeyError):
        jwt.JWKSet.from_pem(b"no pem here")


def test_kid_less_keys_back_up_named_ones(keys: dict[str, object]) -> None:
    keyset = jwt.KeySet(
        [
            jwt.Key.from_pem(public_pem(keys["rsa1"]), kid="a"),
            jwt.Key.from_pem(public_pem(keys["rsa2"])),
        ]
    )
    verifier = jwt.Verifier(keyset, ["RS256"])
    assert verifier.verify(sign(keys["rsa1"], "RS256", "a")) == {"sub": "u"}
    assert verifier.verify(sign(keys["rsa2"], "RS256", "a")) == {"sub": "u"}  # kid-less fallback
    assert verifier.verify(sign(keys["rsa2"], "RS256", "zzz")) == {"sub": "u"}
    with pytest.raises(TypeError):
        jwt.KeySet([public_pem(keys["rsa1"])])


def test_rotation_by_replacing_the_key_set(keys: dict[str, object]) -> None:
    old = jwt.JWKSet.from_dict({"keys": [public_jwk(keys["rsa1"], "RS256", kid="2024")]})
    new = jwt.JWKSet.from_dict({"keys": [public_jwk(keys["rsa2"], "RS256", kid="2025")]})
    verifier = jwt.Verifier(old, ["RS256"], audience="api")
    old_token = sign(keys["rsa1"], "RS256", "2024", aud="api")
    new_token = sign(keys["rsa2"], "RS256", "2025", aud="api")
    assert verifier.verify(old_token) == {"aud": "api"}
    with pytest.raises(jwt.UnknownKeyIdError):
        verifier.verify(new_token)
    verifier.keys = new
    assert verifier.keys is new
    assert verifier.verify(new_token) == {"aud": "api"}
    with pytest.raises(jwt.UnknownKeyIdError):
        verifier.verify(old_token)


def test_escaped_and_unicode_kids_match(keys: dict[str, object]) -> None:
    keyset = jwt.JWKSet.from_dict({"keys": [public_jwk(keys["ed"], "EdDSA", kid="clé/1")]})
    token = sign(keys["ed"], "EdDSA", "clé/1")  # PyJWT writes the kid as "cl\u00e9/1"
    assert b"\\u00e9" in pyjwt.utils.base64url_decode(token.split(".")[0])
    assert jwt.decode(token, keyset, algorithms=["EdDSA"]) == {"sub": "u"}
    assert jwt.get_unverified_header(token)["kid"] == "clé/1"


def test_pem_with_a_second_block_is_refused():
    from gwcore.jwt import InvalidKeyError, Key
    priv = ec.generate_private_key(ec.SECP256R1())
    pub = priv.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    assert Key.from_pem(pub).kty == "EC"
    secret = priv.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    with pytest.raises(InvalidKeyError):
        Key.from_pem(pub + secret)


# -- a provider whose keys come from a URL: the first fetch ----------------------------------
# The fetch is replaced by one the test releases, so "before the first fetch finished" is a
# state the test holds, not a race it hopes to win.


class _GatedFetch:
    """Stands in for gwcore.jwt.jwks.fetch: blocks (in the executor) until released, then
    returns ``result`` or raises it. ``calls`` counts the fetches started."""

    def __init__(self, result: object) -> None:
        self.result, self.calls = result, 0
        self.gate = threading.Event()

    def __call__(self, url: str, timeout: float) -> object:
        self.calls += 1
        if not self.gate.wait(30):
            raise OSError("test gate never opened")
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


class _Request:
    def __init__(self, token: str) -> None:
        self.target = b"/"
        self._fields = {b"authorization": f"Bearer {token}".encode()}

    def get(self, name: bytes) -> bytes | None:
        return self._fields.get(name)


class _Exchange:
    """What the JWT filter uses of an exchange."""

    def __init__(self, token: str) -> None:
        self.request = _Request(token)
        self.client_ip = "10.0.0.1"
        self.state: dict = {}
        self.upstream_fields: list = []

    def set_upstream_field(self, name: bytes, value: bytes) -> None:
        self.upstream_fields.append((name, value))

    def remove_upstream_field(self, name: bytes) -> None:
        pass


def _status(result: object) -> int | None:
    """The status of a filter's answer (None: let through; a coroutine: still deciding)."""
    return getattr(result, "status", None)


def _url_provider(timeout: str = "5s"):
    from gwcore.config import parse
    from gwcore.filters.jwt_auth import Provider

    cfg = parse(f"""
listeners: [{{name: l, address: "127.0.0.1:1"}}]
clusters: [{{name: c, endpoints: ["127.0.0.1:2"]}}]
routes: [{{match: {{path_prefix: /}}, cluster: c, jwt: p}}]
jwt_providers:
  p: {{algorithms: [RS256], jwks: {{url: "http://127.0.0.1:3/jwks.json", timeout: {timeout}}}}}
""")
    return Provider("p", cfg.jwt_providers["p"])


async def _spin(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_a_request_before_the_first_fetch_waits_for_it(keys, monkeypatch) -> None:
    """A token without kid, before any key arrived: without the wait it is refused at once
    ("no key for the alg"); with it, admitted once the first fetch brings the key."""
    from gwcore.filters import jwt_auth

    keyset = jwt.JWKSet.from_dict({"keys": [public_jwk(keys["rsa1"], "RS256", kid="r1")]})
    fetch = _GatedFetch(keyset)
    monkeypatch.setattr(jwt_auth, "fetch", fetch)

    async def run() -> None:
        provider = _url_provider()
        refresher = asyncio.ensure_future(provider.refresh_forever())
        try:
            ex = _Exchange(sign(keys["rsa1"], "RS256", sub="early"))
            result = jwt_auth.JwtAuth(provider).on_request(ex)
            assert inspect.isawaitable(result), result        # not answered at once
            pending = asyncio.ensure_future(result)
            await _spin()
            assert not pending.done() and not provider.keys_ready.is_set()
            assert fetch.calls == 1
            fetch.gate.set()
            assert await asyncio.wait_for(pending, 10) is None     # admitted
            assert ex.state["jwt_claims"] == {"sub": "early"}
            assert fetch.calls == 1                  # the request did not fetch on its own
            assert provider.keys_ready.is_set()
        finally:
            fetch.gate.set()
            refresher.cancel()

    asyncio.run(run())


def test_the_wait_for_the_first_fetch_is_bounded(keys, monkeypatch) -> None:
    from gwcore.filters import jwt_auth

    fetch = _GatedFetch(OSError("never mind"))
    monkeypatch.setattr(jwt_auth, "fetch", fetch)

    async def run() -> None:
        provider = _url_provider(timeout="200ms")
        refresher = asyncio.ensure_future(provider.refresh_forever())
        try:
            ex = _Exchange(sign(keys["rsa1"], "RS256", "r1"))
            loop = asyncio.get_running_loop()
            started = loop.time()
            result = await asyncio.wait_for(jwt_auth.JwtAuth(provider).on_request(ex), 10)
            waited = loop.time() - started
            assert _status(result) == 401
            assert 0.15 <= waited < 5, waited
            assert provider.failures["keys_unavailable"] == 1
            assert await provider.wait_for_keys(0.05) is False
        finally:
            fetch.gate.set()
            refresher.cancel()

    asyncio.run(run())


def test_a_failed_first_fetch_ends_the_wait(keys, monkeypatch) -> None:
    from gwcore.filters import jwt_auth

    fetch = _GatedFetch(OSError("connection refused"))
    monkeypatch.setattr(jwt_auth, "fetch", fetch)

    async def run() -> None:
        provider = _url_provider()
        fetch.gate.set()
        await asyncio.wait_for(provider.refresh(), 10)
        assert provider.keys_ready.is_set() and provider.fetch_failures == 1
        assert await provider.wait_for_keys(0) is True
        ex = _Exchange(sign(keys["rsa1"], "RS256"))   # no kid
        result = jwt_auth.JwtAuth(provider).on_request(ex)
        assert _status(result) == 401   # at once

    asyncio.run(run())


def test_worker_reports_ready_only_after_the_first_fetch(keys, monkeypatch) -> None:
    """gwcore.process.worker writes b"R" to the master once each URL provider's first fetch
    has finished (here: failed), and not before."""
    from gwcore.filters import jwt_auth
    from gwcore.process import worker

    fetch = _GatedFetch(OSError("connection refused"))
    monkeypatch.setattr(jwt_auth, "fetch", fetch)
    r, w = os.pipe2(os.O_NONBLOCK)

    async def run() -> None:
        provider = _url_provider()
        refresher = asyncio.ensure_future(provider.refresh_forever())
        try:
            report = asyncio.ensure_future(
                worker._report_ready(asyncio.get_running_loop(), w, [provider]))
            await _spin()
            with pytest.raises(BlockingIOError):
                os.read(r, 10)                      # nothing said yet
            fetch.gate.set()
            await asyncio.wait_for(report, 10)
            assert os.read(r, 10) == b"R"
        finally:
            fetch.gate.set()
            refresher.cancel()

    try:
        asyncio.run(run())
    finally:
        os.close(r)
        os.close(w)
