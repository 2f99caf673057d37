"""JWT verification: gwcore vs PyJWT vs joserfc, and the raw libcrypto verify underneath.

Same token and key for every contender, per algorithm (HS256, RS256 with RSA-2048, ES256 with
P-256, EdDSA with Ed25519). Each verifies the signature and checks exp, nbf, iat, iss and aud
of a realistic 9-claim token (about 300 bytes):

- gwcore Verifier: ``Verifier(...)`` built once, ``verify(token)`` per request (the gateway's
  path, bytes in).
- gwcore decode: ``gwcore.jwt.decode(token, pem_or_secret, algorithms=..., audience=...,
  issuer=...)`` per call (PyJWT's API; the prepared key is cached).
- PyJWT: ``jwt.decode`` with a ``cryptography`` key object prepared once.
- joserfc: ``jwt.decode`` with an imported key, then ``JWTClaimsRegistry.validate``.
- raw: the ``cryptography`` package's verify of the same signature (HMAC, RSA PKCS #1 v1.5,
  ECDSA over the DER form, Ed25519): a thin call into the same libcrypto, measured in the same
  run, to state gwcore's overhead as a ratio (targets: RS256, ES256, EdDSA <= 1.2x raw;
  HS256 <= 3 us).

The last test prints median times and the ratios to raw (run with ``-s`` to see them):

    /work/venv/bin/python -m pytest bench/micro/test_jwt_bench.py -s \
        --benchmark-columns=min,median,ops --benchmark-group-by=group
"""

from __future__ import annotations

import time

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jwt as joserfc_jwt
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from gwcore import jwt

NOW = int(time.time())
CLAIMS = {
    "iss": "https://auth.example.com/",
    "sub": "user-4f1c2a9e-8d7b-4e3a-9c5f-1a2b3c4d5e6f",
    "aud": ["gateway", "billing"],
    "exp": NOW + 3600,
    "nbf": NOW - 60,
    "iat": NOW - 60,
    "jti": "0c5d8e4a-6f1b-4d2c-8a3e-9b7f6e5d4c3b",
    "scope": "videos:read videos:write profile",
    "tenant": "acme",
}
POLICY = {"audience": "gateway", "issuer": "https://auth.example.com/"}
ALGS = ["HS256", "RS256", "ES256", "EdDSA"]
RESULTS: dict[tuple[str, str], float] = {}


def make_case(alg: str) -> dict:
    if alg == "HS256":
        secret = bytes(range(32, 96))
        private, public_obj, public_pem = secret, secret, secret
        joserfc_key = OctKey.import_key(secret)
    else:
        private = {
            "RS256": lambda: rsa.generate_private_key(65537, 2048),
            "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
            "EdDSA": ed25519.Ed25519PrivateKey.generate,
        }[alg]()
        public_obj = private.public_key()
        public_pem = public_obj.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        joserfc_key = {"RS256": RSAKey, "ES256": ECKey, "EdDSA": OKPKey}[alg].import_key(public_pem)
    token = pyjwt.encode(CLAIMS, private, algorithm=alg, headers={"kid": "k1"}).encode()
    signing_input, sig = token.rsplit(b".", 1)
    raw_sig = jwt.b64url_decode(sig)
    if alg == "HS256":

        def raw() -> None:
            h = hmac.HMAC(secret, hashes.SHA256())
            h.update(signing_input)
            h.verify(raw_sig)

    elif alg == "RS256":

        def raw() -> None:
            public_obj.verify(raw_sig, signing_input, padding.PKCS1v15(), hashes.SHA256())

    elif alg == "ES256":
        der = encode_dss_signature(
            int.from_bytes(raw_sig[:32], "big"), int.from_bytes(raw_sig[32:], "big")
        )

        def raw() -> None:
            public_obj.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))

    else:

        def raw() -> None:
            public_obj.verify(raw_sig, signing_input)

    return {
        "token": token,
        "public_obj": public_obj,
        "public_pem": public_pem,
        "joserfc_key": joserfc_key,
        "raw": raw,
    }


@pytest.fixture(scope="module")
def cases() -> dict[str, dict]:
    return {alg: make_case(alg) for alg in ALGS}


def record(benchmark, alg: str, who: str) -> None:
    RESULTS[(alg, who)] = benchmark.stats.stats.median


@pytest.mark.parametrize("alg", ALGS)
def test_raw_libcrypto_verify(benchmark, cases, alg):
    benchmark.group = f"{alg} verify + claims"
    raw = cases[alg]["raw"]
    benchmark(raw)
    record(benchmark, alg, "raw")


@pytest.mark.parametrize("alg", ALGS)
def test_gwcore_verifier(benchmark, cases, alg):
    benchmark.group = f"{alg} verify + claims"
    case = cases[alg]
    verifier = jwt.Verifier(case["public_pem"], [alg], **POLICY)
    assert benchmark(verifier.verify, case["token"]) == CLAIMS
    record(benchmark, alg, "gwcore Verifier")


@pytest.mark.parametrize("alg", ALGS)
def test_gwcore_decode(benchmark, cases, alg):
    benchmark.group = f"{alg} verify + claims"
    case = cases[alg]
    key, token = case["public_pem"], case["token"]

    def run() -> dict:
        return jwt.decode(token, key, algorithms=[alg], **POLICY)

    assert benchmark(run) == CLAIMS
    record(benchmark, alg, "gwcore decode")


@pytest.mark.parametrize("alg", ALGS)
def test_pyjwt_decode(benchmark, cases, alg):
    benchmark.group = f"{alg} verify + claims"
    case = cases[alg]
    key, token = case["public_obj"], case["token"]

    def run() -> dict:
        return pyjwt.decode(token, key, algorithms=[alg], **POLICY)

    assert benchmark(run) == CLAIMS
    record(benchmark, alg, "PyJWT")


@pytest.mark.parametrize("alg", ALGS)
def test_joserfc_decode(benchmark, cases, alg):
    benchmark.group = f"{alg} verify + claims"
    case = cases[alg]
    key, token = case["joserfc_key"], case["token"]
    registry = joserfc_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": POLICY["issuer"]},
        aud={"essential": True, "value": POLICY["audience"]},
    )

    def run() -> dict:
        decoded = joserfc_jwt.decode(token, key, algorithms=[alg])
        registry.validate(decoded.claims)  # exp, nbf, iat are checked by default
        return decoded.claims

    assert benchmark(run) == CLAIMS
    record(benchmark, alg, "joserfc")


def test_report_ratios(capsys):
    """Print medians (us) and the ratios to the raw verify measured above."""
    if not RESULTS:
        pytest.skip("benchmarks disabled")
    who = ["raw", "gwcore Verifier", "gwcore decode", "PyJWT", "joserfc"]
    lines = ["", "median us | " + " | ".join(who) + " | Verifier/raw | decode/raw"]
    for alg in ALGS:
        t = {w: RESULTS.get((alg, w)) for w in who}
        cells = [f"{t[w] * 1e6:.2f}" if t[w] else "-" for w in who]
        ratios = [
            f"{t[w] / t['raw']:.2f}x" if t[w] and t["raw"] else "-"
            for w in ("gwcore Verifier", "gwcore decode")
        ]
        lines.append(f"{alg} | " + " | ".join(cells + ratios))
    with capsys.disabled():
        print("\n".join(lines))
    assert all(v > 0 for v in RESULTS.values())
