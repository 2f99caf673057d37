"""gwcore.jwt: decode(), Verifier, Key, exceptions, and the attacks of RFC 8725.

Tokens are forged here byte by byte (header and payload JSON given as raw bytes) so that
malformed, duplicate-member and alg-confusion tokens can carry valid signatures. Keys are
generated with `cryptography` for each run.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import inspect
import json
from datetime import UTC, datetime, timedelta

import jwt as pyjwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from gwcore import jwt
from gwcore.jwt import exceptions

NOW = 1_700_000_000.0
SECRET = b"s" * 64
HASH = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}
EC_CURVES = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def to_json(obj: object) -> bytes:
    return obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode()


def sign(alg: str, key: object, msg: bytes) -> bytes:
    """JWS signature of msg (RFC 7518 3, RFC 8037 3.1), ECDSA as raw R||S."""
    family, bits = alg[:2], alg[2:]
    if family == "HS":
        return hmac.new(key, msg, getattr(hashlib, f"sha{bits}")).digest()
    if family == "RS":
        return key.sign(msg, padding.PKCS1v15(), HASH[bits])
    if family == "PS":
        pss = padding.PSS(padding.MGF1(HASH[bits]), HASH[bits].digest_size)
        return key.sign(msg, pss, HASH[bits])
    if family == "ES":
        r, s = decode_dss_signature(key.sign(msg, ec.ECDSA(HASH[bits])))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return key.sign(msg)  # EdDSA


def forge(header: object, payload: object, alg: str | None = None, key: object = SECRET) -> bytes:
    """A compact JWS of raw header/payload JSON, signed with key under alg (default: the
    header's alg)."""
    msg = b64(to_json(header)) + b"." + b64(to_json(payload))
    alg = alg or header["alg"]
    return msg + b"." + b64(sign(alg, key, msg))


def pem(private_key: object) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def keys() -> dict[str, object]:
    """One private key per JWS algorithm family."""
    rsa_key = rsa.generate_private_key(65537, 2048)
    out: dict[str, object] = {"HS": SECRET, "RS": rsa_key, "PS": rsa_key}
    out.update({alg: ec.generate_private_key(curve) for alg, curve in EC_CURVES.items()})
    out["EdDSA"] = ed25519.Ed25519PrivateKey.generate()
    out["Ed448"] = ed448.Ed448PrivateKey.generate()
    return out


def private_for(keys: dict[str, object], alg: str) -> object:
    return keys.get(alg) or keys[alg[:2]]


def public_for(keys: dict[str, object], alg: str) -> bytes:
    key = private_for(keys, alg)
    return key if isinstance(key, bytes) else pem(key)


ALL_ALGS = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512", "EdDSA",
]  # fmt: skip


# --- exceptions ---------------------------------------------------------------------------


def test_exception_hierarchy_mirrors_pyjwt() -> None:
    ours = {
        name: cls
        for name, cls in inspect.getmembers(exceptions, inspect.isclass)
        if issubclass(cls, exceptions.PyJWTError)
    }
    shared = [name for name in ours if hasattr(pyjwt.exceptions, name)]
    assert len(shared) == len(ours) - 1  # all but UnknownKeyIdError
    for a in shared:
        for b in shared:
            theirs = issubclass(getattr(pyjwt.exceptions, a), getattr(pyjwt.exceptions, b))
            assert issubclass(ours[a], ours[b]) == theirs, (a, b)
    assert issubclass(jwt.UnknownKeyIdError, jwt.InvalidTokenError)
    assert jwt.MissingRequiredClaimError("exp").claim == "exp"
    assert jwt.DecodeError("x", "too_long").code == "too_long"
    assert jwt.ExpiredSignatureError("x").code == "expired"


# --- round trips and accepted inputs --------------------------------------------------------


@pytest.mark.parametrize("alg", ALL_ALGS)
def test_every_algorithm_round_trips(keys: dict[str, object], alg: str) -> None:
    claims = {"sub": "alice", "exp": NOW + 60, "n": [1, 2.5, None, True, {"x": "é"}]}
    token = forge({"alg": alg, "typ": "JWT"}, claims, key=private_for(keys, alg))
    key = public_for(keys, alg)
    assert jwt.decode(token, key, algorithms=[alg], now=NOW) == claims
    assert jwt.decode(token.decode(), key, algorithms=alg, now=NOW) == claims
    assert jwt.decode(bytearray(token), key, algorithms=[alg], now=NOW) == claims
    verifier = jwt.Verifier(key, [alg])
    assert verifier.verify(token, NOW) == claims
    assert verifier.verify_jws(token) == to_json(claims)


def test_ed448_uses_eddsa(keys: dict[str, object]) -> None:
    token = forge({"alg": "EdDSA"}, {"a": 1}, key=keys["Ed448"])
    key = jwt.Key.from_pem(pem(keys["Ed448"]))
    assert (key.kty, key.curve, key.algorithms) == ("OKP", "Ed448", frozenset({"EdDSA"}))
    assert jwt.decode(token, key, algorithms=["EdDSA"]) == {"a": 1}


def test_key_objects_certificates_and_jwks(keys: dict[str, object]) -> None:
    rsa_key = keys["RS"]
    token = forge({"alg": "RS256"}, {"a": 1}, key=rsa_key)
    assert jwt.decode(token, rsa_key.public_key(), algorithms=["RS256"]) == {"a": 1}
    assert jwt.decode(token, rsa_key, algorithms=["RS256"]) == {"a": 1}  # public part used
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(rsa_key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2021, 1, 1, tzinfo=UTC))
        .sign(rsa_key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    assert jwt.decode(token, cert_pem, algorithms=["RS256"]) == {"a": 1}
    jwk = pyjwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    assert jwt.decode(token, jwk, algorithms=["RS256"]) == {"a": 1}
    pkcs1 = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    assert jwt.Key.from_pem(pkcs1).bits == 2048
    assert jwt.Key.from_pem(pkcs1.decode()).algorithms == frozenset(ALL_ALGS[3:9])


def test_key_properties() -> None:
    key = jwt.Key.from_secret("k" * 32, kid="one")
    assert (key.kty, key.curve, key.bits, key.kid) == ("oct", None, 256, "one")
    assert key.algorithms == frozenset({"HS256", "HS384", "HS512"})
    assert jwt.Key.from_secret(SECRET, alg="HS512").algorithms == frozenset({"HS512"})
    with pytest.raises(jwt.InvalidKeyError):
        jwt.Key.from_secret(SECRET, alg="RS256")
    with pytest.raises(jwt.InvalidKeyError):
        jwt.Key.from_secret(SECRET, kid=7)
    with pytest.raises(TypeError):
        jwt.Key()


def test_get_unverified_header_checks_header_not_signature() -> None:
    token = forge({"alg": "HS256", "kid": "k1", "x": [1]}, {"a": 1})
    bad_sig = token[:-2] + (b"AA" if not token.endswith(b"AA") else b"BA")
    assert jwt.get_unverified_header(bad_sig) == {"alg": "HS256", "kid": "k1", "x": [1]}
    assert jwt.get_unverified_header(token.decode())["kid"] == "k1"
    with pytest.raises(jwt.DecodeError):
        jwt.get_unverified_header(forge(b'{"alg":"HS256","kid":"a","kid":"b"}', {}, "HS256"))
    with pytest.raises(jwt.DecodeError):
        jwt.get_unverified_header(b"abc")
    with pytest.raises(jwt.DecodeError):
        jwt.get_unverified_header(42)


# --- algorithm policy (RFC 8725 2.1, 3.1) ---------------------------------------------------


def test_algorithms_are_required_and_known() -> None:
    token = forge({"alg": "HS256"}, {})
    with pytest.raises(jwt.DecodeError, match="algorithms"):
        jwt.decode(token, SECRET)
    with pytest.raises(jwt.DecodeError):
        jwt.decode(token, SECRET, algorithms=[])
    for name in ("none", "None", "HS1", "ES256K"):
        with pytest.raises(jwt.InvalidAlgorithmError):
            jwt.decode(token, SECRET, algorithms=["HS256", name])


@pytest.mark.parametrize("none", ["none", "None", "NONE", "nOnE", "non\\u0065"])
@pytest.mark.parametrize("signature", [b"", b"AAAA"])
def test_alg_none_is_never_accepted(none: str, signature: bytes) -> None:
    header = b'{"alg":"' + none.encode() + b'"}'
    token = b64(header) + b"." + b64(b'{"sub":"root"}') + b"." + signature
    with pytest.raises(jwt.InvalidAlgorithmError, match="none"):
        jwt.decode(token, SECRET, algorithms=["HS256"])


def test_alg_must_be_allowed_present_and_a_string() -> None:
    token = forge({"alg": "HS384"}, {})
    with pytest.raises(jwt.InvalidAlgorithmError, match="not allowed"):
        jwt.decode(token, SECRET, algorithms=["HS256"])
    assert jwt.decode(token, SECRET, algorithms=["HS256", "HS384"]) == {}
    with pytest.raises(jwt.InvalidAlgorithmError, match="not specified"):
        jwt.decode(forge({"typ": "JWT"}, {}, "HS256"), SECRET, algorithms=["HS256"])
    with pytest.raises(jwt.InvalidAlgorithmError):
        jwt.decode(forge({"alg": "hs256"}, {}, "HS256"), SECRET, algorithms=["HS256"])
    for alg in (["HS256"], None, 256, ""):
        token = forge({"alg": alg}, {}, "HS256")
        # PyJWT: an alg that is not an allowed name, whatever its JSON type, is not allowed
        with pytest.raises(jwt.InvalidAlgorithmError, match="not allowed"):
            jwt.decode(token, SECRET, algorithms=["HS256"])
        with pytest.raises(pyjwt.InvalidAlgorithmError):
            pyjwt.decode(token, SECRET, algorithms=["HS256"])
        strict = jwt.InvalidAlgorithmError if alg == "" else jwt.DecodeError
        with pytest.raises(strict):  # the Verifier: RFC 7515 4.1.1, alg is a string
            jwt.Verifier(SECRET, ["HS256"]).verify(token)


def test_alg_outside_algorithms_is_reported_before_any_key_check(keys: dict[str, object]) -> None:
    """PyJWT's precedence: structure, header, alg present and allowed, then the key."""
    hs = forge({"alg": "HS256"}, {"a": 1})
    rs = forge({"alg": "RS256"}, {"a": 1}, key=keys["RS"])
    private = keys["RS"].private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for token, key, algorithms in [
        (hs, SECRET, ["RS256"]),  # the secret fits no allowed algorithm
        (hs, 12345, ["RS256"]),  # not a key at all
        (hs, b"", ["ES256"]),  # an empty secret
        (rs, private, ["HS256"]),  # a private key
        (rs, pem(keys["RS"]), ["ES256", "HS256"]),
        (forge({"alg": "none"}, {}, "HS256"), SECRET, ["HS256"]),
    ]:
        for decode in (jwt.decode, jwt.decode_complete, jwt.api_jws.decode):
            with pytest.raises(jwt.InvalidAlgorithmError):
                decode(token, key, algorithms=algorithms)
    # an allowed alg the key cannot verify: the key is the problem, as in PyJWT
    for token, key, algorithms in [
        (hs, pem(keys["RS"]), ["RS256", "HS256"]),
        (rs, SECRET, ["RS256", "HS256"]),
        (rs, pem(keys["ES256"]), ["RS256", "ES256"]),
        (rs, private, ["RS256"]),  # (PyJWT: AttributeError)
    ]:
        for decode in (jwt.decode, jwt.decode_complete, jwt.api_jws.decode):
            with pytest.raises(jwt.InvalidKeyError):
                decode(token, key, algorithms=algorithms)
        if key is not private:
            with pytest.raises(pyjwt.InvalidKeyError):
                pyjwt.decode(token, key, algorithms=algorithms)
    # a Key or key set bound to other algorithms is PyJWK-like: no key for this alg
    with pytest.raises(jwt.InvalidAlgorithmError, match="No key"):
        jwt.decode(rs, jwt.Key.from_pem(pem(keys["ES256"])), algorithms=["RS256"])
    # malformed tokens are reported before the algorithms policy looks at the alg
    with pytest.raises(jwt.DecodeError):
        jwt.api_jws.decode(hs[:-1] + b"!", 12345, algorithms=["RS256"])
    # the Verifier checks its key against its algorithms once, when it is built
    with pytest.raises(jwt.InvalidKeyError):
        jwt.Verifier(SECRET, ["RS256"])


def test_public_key_is_never_an_hmac_secret(keys: dict[str, object]) -> None:
    """CVE-2022-29217 class: an HS256 token MACed with the public key text is refused."""
    public = pem(keys["RS"])
    forged = forge({"alg": "HS256"}, {"sub": "root"}, key=public)
    for key in (public, public.decode(), b"\n" + public):
        with pytest.raises(jwt.InvalidKeyError):  # PyJWT: the HS256 key may not be a PEM
            jwt.decode(forged, key, algorithms=["RS256", "HS256"])
        with pytest.raises(jwt.InvalidAlgorithmError):
            jwt.Verifier(key, ["RS256", "HS256"]).verify(forged)
        with pytest.raises(jwt.InvalidKeyError):
            jwt.decode(forged, key, algorithms=["HS256"])
        with pytest.raises(jwt.InvalidKeyError):
            jwt.Key.from_secret(key)
    ssh = (
        keys["RS"]
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    )
    jwk_text = pyjwt.algorithms.RSAAlgorithm.to_jwk(keys["RS"].public_key())
    for text in (ssh, jwk_text, b"xx -----BEGIN CERTIFICATE----- yy"):
        with pytest.raises(jwt.InvalidKeyError):
            jwt.Key.from_secret(text)
        with pytest.raises(jwt.InvalidKeyError):
            jwt.decode(forge({"alg": "HS256"}, {}, key=to_json(text)), text, algorithms=["HS256"])
    oct_pem = {"kty": "oct", "k": b64(public).decode()}
    with pytest.raises(jwt.InvalidKeyError):
        jwt.Key.from_jwk(oct_pem)


def test_key_that_fits_no_allowed_algorithm_is_refused(keys: dict[str, object]) -> None:
    with pytest.raises(jwt.InvalidKeyError):
        jwt.Verifier(pem(keys["RS"]), ["HS256", "ES256"])
    with pytest.raises(jwt.InvalidKeyError):
        jwt.Verifier(SECRET, ["RS256"])
    verifier = jwt.Verifier(pem(keys["ES256"]), ["ES256", "RS256"])
    with pytest.raises(jwt.InvalidAlgorithmError, match="No key"):
        verifier.verify(forge({"alg": "RS256"}, {}, key=keys["RS"]))


def test_private_keys_and_unsupported_keys_are_refused(keys: dict[str, object]) -> None:
    private = keys["RS"].private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(jwt.InvalidKeyError, match="private"):
        jwt.Key.from_pem(private)
    with pytest.raises(jwt.InvalidKeyError, match="private"):
        jwt.decode(forge({"alg": "RS256"}, {}, key=keys["RS"]), private, algorithms=["RS256"])
    k1 = ec.generate_private_key(ec.SECP256K1())
    with pytest.raises(jwt.InvalidKeyError):
        jwt.Key.from_pem(pem(k1))
    with pytest.raises(jwt.InvalidKeyError):
        jwt.Key.from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(jwt.InvalidKeyError):
        jwt.Key.from_secret(b"")
    with pytest.raises(jwt.InvalidKeyError):
        jwt.decode(forge({"alg": "HS256"}, {}), 12345, algorithms=["HS256"])
    with pytest.raises(jwt.InvalidKeyError):
        jwt.decode(forge({"alg": "HS256"}, {}), {"keys": []}, algorithms=["HS256"])


def test_minimum_key_sizes_rfc7518() -> None:
    short = b"x" * 31
    token = forge({"alg": "HS256"}, {"a": 1}, key=short)
    with pytest.raises(jwt.InvalidKeyError):
        jwt.decode(token, short, algorithms=["HS256"])
    relaxed = {"enforce_minimum_key_length": False}
    assert jwt.decode(token, short, algorithms=["HS256"], options=relaxed) == {"a": 1}
    with pytest.raises(jwt.InvalidKeyError):  # 32 bytes suffice for HS256, not HS384
        jwt.decode(forge({"alg": "HS384"}, {}, key=b"x" * 32), b"x" * 32, algorithms=["HS384"])
    small = rsa.generate_private_key(65537, 1024)
    token = forge({"alg": "RS256"}, {"a": 1}, key=small)
    with pytest.raises(jwt.InvalidKeyError):
        jwt.decode(token, pem(small), algorithms=["RS256"])
    assert jwt.decode(token, pem(small), algorithms=["RS256"], options=relaxed) == {"a": 1}


def test_crit_is_rejected() -> None:
    """crit (RFC 7515 4.1.11): only "b64" (RFC 7797) is understood, and only by the PyJWT
    functions; the Verifier implements no extension."""
    verifier = jwt.Verifier(SECRET, ["HS256"])
    for header in (
        {"alg": "HS256", "crit": ["exp"], "exp": 1},
        {"alg": "HS256", "crit": ["b64", "exp"], "b64": True, "exp": 1},
        {"alg": "HS256", "crit": ["b64"]},  # named but absent
        {"alg": "HS256", "crit": []},
        {"alg": "HS256", "crit": "exp"},
        {"alg": "HS256", "crit": [1]},
    ):
        token = forge(header, {})
        for check in (lambda t: jwt.decode(t, SECRET, algorithms=["HS256"]), verifier.verify):
            with pytest.raises(jwt.InvalidTokenError) as info:
                check(token)
            assert info.value.code == "crit"
    b64_true = forge({"alg": "HS256", "crit": ["b64"], "b64": True}, {"a": 1})
    assert jwt.decode(b64_true, SECRET, algorithms=["HS256"]) == {"a": 1}
    escaped = forge(b'{"alg":"HS256","crit":["\\u0062\\u0036\\u0034"],"b64":true}', b"{}", "HS256")
    assert jwt.decode(escaped, SECRET, algorithms=["HS256"]) == {}
    with pytest.raises(jwt.InvalidTokenError, match="crit"):
        verifier.verify(b64_true)
    with pytest.raises(jwt.DecodeError):  # b64 false: the Verifier refuses unencoded payloads
        verifier.verify(forge({"alg": "HS256", "b64": False, "crit": ["b64"]}, {}))


# --- structure ------------------------------------------------------------------------------


def test_duplicate_members_are_rejected_even_when_signed() -> None:
    cases = [
        (b'{"alg":"HS256","alg":"HS256"}', b"{}"),
        (b'{"alg":"HS256","\\u0061lg":"HS256"}', b"{}"),
        (b'{"alg":"HS256","kid":"a","kid":"b"}', b"{}"),
        (b'{"alg":"HS256"}', b'{"sub":"a","sub":"admin"}'),
        (b'{"alg":"HS256"}', b'{"exp":1,"\\u0065xp":9999999999}'),
        (b'{"alg":"HS256"}', b'{"x":{"role":"user","role":"admin"}}'),
    ]
    for header, payload in cases:
        with pytest.raises(jwt.DecodeError) as info:
            jwt.decode(forge(header, payload, "HS256"), SECRET, algorithms=["HS256"])
        assert info.value.code == "duplicate_member"
    pyjwt_view = pyjwt.decode(
        forge(b'{"alg":"HS256"}', b'{"sub":"a","sub":"admin"}', "HS256"),
        SECRET,
        algorithms=["HS256"],
    )
    assert pyjwt_view == {"sub": "admin"}  # what a lenient parser would have let through


@pytest.mark.parametrize(
    "payload",
    [b"[1]", b'"str"', b"", b"{", b'{"a":NaN}', b'{"a":1e999}', b'{"a":"\xff"}',
     b'{"a":"\\ud800"}', b"{}x", b'{"a":01}'],
)  # fmt: skip
def test_claims_must_be_a_strict_json_object(payload: bytes) -> None:
    with pytest.raises(jwt.DecodeError):
        jwt.decode(forge(b'{"alg":"HS256"}', payload, "HS256"), SECRET, algorithms=["HS256"])


def test_malformed_compact_serialization() -> None:
    token = forge({"alg": "HS256"}, {"a": 1})
    h, p, s = token.split(b".")
    padded = base64.urlsafe_b64encode(base64.urlsafe_b64decode(s + b"=="))
    assert padded != s
    cases = [
        b"", b"a", h + b"." + p, token + b".", token + b".x", h + b"=." + p + b"." + s,
        h + b"." + p + b"+." + s, token.replace(b"-", b"+"), h + b"." + p + b"." + s + b"==",
        h + b"." + p + b"." + padded + b"=", h + b"." + p + b"." + s + b"A==",
        b" " + token, token + b"\n", token[:-1] + b"\xff",
    ]  # fmt: skip
    verifier = jwt.Verifier(SECRET, ["HS256"])
    for bad in cases:
        if bad == token:
            continue
        with pytest.raises(jwt.DecodeError):
            jwt.decode(bad, SECRET, algorithms=["HS256"])
        with pytest.raises(jwt.DecodeError):
            verifier.verify(bad)
    # RFC 4648 padding: accepted by the PyJWT functions (as PyJWT does), never by a Verifier
    assert jwt.decode(h + b"." + p + b"." + padded, SECRET, algorithms=["HS256"]) == {"a": 1}
    with pytest.raises(jwt.DecodeError):
        verifier.verify(h + b"." + p + b"." + padded)
    with pytest.raises(jwt.DecodeError):
        jwt.decode("é" + token.decode(), SECRET, algorithms=["HS256"])
    with pytest.raises(jwt.DecodeError):
        jwt.decode(12, SECRET, algorithms=["HS256"])


def test_non_canonical_base64_is_rejected() -> None:
    token = forge({"alg": "HS256"}, {"a": 1})
    h, p, s = token.split(b".")
    assert len(s) % 4 == 3  # 32 bytes: the last character carries two unused bits
    last = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".index(s[-1:])
    twin = s[:-1] + bytes(
        [b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last | 1]]
    )
    assert base64.urlsafe_b64decode(twin + b"=") == base64.urlsafe_b64decode(s + b"=")
    with pytest.raises(jwt.DecodeError):
        jwt.decode(h + b"." + p + b"." + twin, SECRET, algorithms=["HS256"])


def test_token_size_limit_applies_before_anything_else() -> None:
    def token_of_length(n: int) -> bytes:
        base = forge({"alg": "HS256"}, {"pad": ""})
        pad = "x" * ((n - len(base)) * 3 // 4)
        while True:
            t = forge({"alg": "HS256"}, {"pad": pad})
            if len(t) >= n:
                return t
            pad += "x"

    ok = token_of_length(jwt.MAX_TOKEN_BYTES - 3)
    assert len(ok) <= jwt.MAX_TOKEN_BYTES
    assert jwt.decode(ok, SECRET, algorithms=["HS256"])["pad"].startswith("x")
    big = token_of_length(jwt.MAX_TOKEN_BYTES + 1)
    for token in (big, big.decode()):
        with pytest.raises(jwt.DecodeError) as info:
            jwt.decode(token, SECRET, algorithms=["HS256"])
        assert info.value.code == "too_long"
    huge = b"x" * 10_000_000  # refused on length alone: no split, no base64, no MAC
    with pytest.raises(jwt.DecodeError, match="8192"):
        jwt.decode(huge, SECRET, algorithms=["HS256"])


# --- signatures -----------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALL_ALGS)
def test_truncated_extended_and_swapped_signatures(keys: dict[str, object], alg: str) -> None:
    token = forge({"alg": alg}, {"a": 1}, key=private_for(keys, alg))
    key = public_for(keys, alg)
    signing_input, s = token.rsplit(b".", 1)
    raw = base64.urlsafe_b64decode(s + b"=" * (-len(s) % 4))
    for sig in (raw[:-1], raw + b"\0", b"\0" + raw, raw[1:], b"", raw[: len(raw) // 2]):
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(signing_input + b"." + b64(sig), key, algorithms=[alg])
    other = forge({"alg": alg}, {"a": 2}, key=private_for(keys, alg))
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(signing_input + b"." + other.rsplit(b".", 1)[1], key, algorithms=[alg])
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0x01
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(signing_input + b"." + b64(bytes(flipped)), key, algorithms=[alg])


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512"])
def test_der_encoded_ecdsa_signatures_are_rejected(keys: dict[str, object], alg: str) -> None:
    key = keys[alg]
    msg = b64(to_json({"alg": alg})) + b"." + b64(b"{}")
    der = key.sign(msg, ec.ECDSA(HASH[alg[2:]]))  # what OpenSSL produces, valid ASN.1
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(msg + b"." + b64(der), pem(key), algorithms=[alg])
    assert jwt.decode(msg + b"." + b64(sign(alg, key, msg)), pem(key), algorithms=[alg]) == {}


def test_rsa_pss_and_pkcs1_are_not_interchangeable(keys: dict[str, object]) -> None:
    msg = b64(b'{"alg":"PS256"}') + b"." + b64(b"{}")
    pkcs1 = keys["RS"].sign(msg, padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(msg + b"." + b64(pkcs1), pem(keys["RS"]), algorithms=["PS256"])
    short_salt = keys["RS"].sign(
        msg, padding.PSS(padding.MGF1(hashes.SHA256()), 0), hashes.SHA256()
    )
    with pytest.raises(jwt.InvalidSignatureError):  # RFC 7518 3.5: salt length = hash length
        jwt.decode(msg + b"." + b64(short_salt), pem(keys["RS"]), algorithms=["PS256"])


# --- claims (RFC 7519 4.1, PyJWT semantics) ------------------------------------------------


def decode_at(claims: dict, now: float, **kwargs: object) -> dict:
    return jwt.decode(forge({"alg": "HS256"}, claims), SECRET, algorithms=["HS256"], now=now,
                      **kwargs)  # fmt: skip


@pytest.mark.parametrize("leeway", [0, 10, 2.5, timedelta(seconds=10)])
def test_exp_and_nbf_exact_edges(leeway: float | timedelta) -> None:
    lw = leeway.total_seconds() if isinstance(leeway, timedelta) else leeway
    # exp: valid while now < exp + leeway (RFC 7519 4.1.4: "MUST be before")
    assert decode_at({"exp": 1000}, 1000 + lw - 0.001, leeway=leeway) == {"exp": 1000}
    with pytest.raises(jwt.ExpiredSignatureError):
        decode_at({"exp": 1000}, 1000 + lw, leeway=leeway)
    with pytest.raises(jwt.ExpiredSignatureError):
        decode_at({"exp": 1000.5}, 1000.5 + lw, leeway=leeway)
    # nbf: valid once now >= nbf - leeway (RFC 7519 4.1.5: "after or equal to")
    assert decode_at({"nbf": 1000}, 1000 - lw, leeway=leeway) == {"nbf": 1000}
    with pytest.raises(jwt.ImmatureSignatureError):
        decode_at({"nbf": 1000}, 1000 - lw - 0.001, leeway=leeway)
    # iat in the future is refused like nbf (PyJWT)
    assert decode_at({"iat": 1000}, 1000 - lw, leeway=leeway) == {"iat": 1000}
    with pytest.raises(jwt.ImmatureSignatureError):
        decode_at({"iat": 1000}, 1000 - lw - 0.001, leeway=leeway)


def test_time_claims_follow_the_clock() -> None:
    now = datetime.now(tz=UTC).timestamp()
    token = forge({"alg": "HS256"}, {"exp": int(now) + 30, "nbf": int(now) - 30})
    assert jwt.decode(token, SECRET, algorithms=["HS256"])["exp"] == int(now) + 30
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(forge({"alg": "HS256"}, {"exp": int(now) - 30}), SECRET, algorithms=["HS256"])
    with pytest.raises(jwt.ImmatureSignatureError):
        jwt.decode(forge({"alg": "HS256"}, {"nbf": int(now) + 30}), SECRET, algorithms=["HS256"])


@pytest.mark.parametrize("value", ["1000", True, None, [1000], {"t": 1}, 10**400])
def test_time_claims_must_be_numbers(value: object) -> None:
    claims = {"exp": value} if value != 10**400 else b'{"exp":' + str(value).encode() + b"}"
    with pytest.raises(jwt.DecodeError, match="exp"):
        decode_at(claims, NOW)
    with pytest.raises(jwt.DecodeError, match="nbf"):
        decode_at({"nbf": "1"}, NOW)
    with pytest.raises(jwt.InvalidIssuedAtError):
        decode_at({"iat": "1"}, NOW)
    assert decode_at({"exp": value}, NOW, options={"verify_exp": False})["exp"] == value


@pytest.mark.parametrize(
    ("option", "claims", "exc"),
    [
        ("verify_iat", {"iat": 2 * NOW}, jwt.ImmatureSignatureError),
        ("verify_nbf", {"nbf": 2 * NOW}, jwt.ImmatureSignatureError),
        ("verify_exp", {"exp": 1}, jwt.ExpiredSignatureError),
        ("verify_aud", {"aud": "x"}, jwt.InvalidAudienceError),
        ("verify_sub", {"sub": 1}, jwt.InvalidSubjectError),
        ("verify_jti", {"jti": 2}, jwt.InvalidJTIError),
    ],
)
def test_each_check_has_an_option(option: str, claims: dict, exc: type) -> None:
    with pytest.raises(exc):
        decode_at(claims, NOW)
    assert decode_at(claims, NOW, options={option: False}) == claims


def test_iss_check_has_an_option() -> None:
    with pytest.raises(jwt.InvalidIssuerError):
        decode_at({"iss": "b"}, NOW, issuer="a")
    assert decode_at({"iss": "b"}, NOW, issuer="a", options={"verify_iss": False}) == {"iss": "b"}


def test_required_claims_and_malformed_options() -> None:
    with pytest.raises(jwt.MissingRequiredClaimError) as info:
        decode_at({"exp": NOW + 9, "sub": None}, NOW, options={"require": ["exp", "sub"]})
    assert info.value.claim == "sub"
    assert decode_at({"exp": NOW + 9}, NOW, options={"require": ["exp"]}) == {"exp": NOW + 9}
    with pytest.raises(ValueError):
        decode_at({}, NOW, options={"verify_expiration": False})
    with pytest.raises(ValueError):
        jwt.Verifier(SECRET, ["HS256"], options={"verify_signature": False})
    with pytest.raises(TypeError):
        decode_at({}, NOW, options={"require": "exp"})
    with pytest.raises(ValueError):
        decode_at({}, NOW, leeway=float("nan"))
    with pytest.raises(ValueError):
        decode_at({}, float("nan"))


def test_audience() -> None:
    assert decode_at({"aud": "api"}, NOW, audience="api") == {"aud": "api"}
    assert decode_at({"aud": ["x", "api"]}, NOW, audience="api")["aud"] == ["x", "api"]
    assert decode_at({"aud": "api"}, NOW, audience=["y", "api"]) == {"aud": "api"}
    assert decode_at({"aud": []}, NOW) == {"aud": []}
    with pytest.raises(jwt.InvalidAudienceError):
        decode_at({"aud": "api"}, NOW)  # RFC 7519 4.1.3: we are not its audience
    with pytest.raises(jwt.InvalidAudienceError):
        decode_at({"aud": "other"}, NOW, audience="api")
    with pytest.raises(jwt.MissingRequiredClaimError):
        decode_at({}, NOW, audience="api")
    for bad in (1, ["api", 1], {"api": 1}):
        with pytest.raises(jwt.InvalidAudienceError):
            decode_at({"aud": bad}, NOW, audience="api")
    strict = {"strict_aud": True}
    assert decode_at({"aud": "api"}, NOW, audience="api", options=strict) == {"aud": "api"}
    with pytest.raises(jwt.InvalidAudienceError):
        decode_at({"aud": ["api"]}, NOW, audience="api", options=strict)
    with pytest.raises(jwt.InvalidAudienceError):
        decode_at({"aud": "api"}, NOW, audience=["api"], options=strict)
    with pytest.raises(TypeError):
        decode_at({"aud": "api"}, NOW, audience=5)


def test_issuer_subject_jti() -> None:
    assert decode_at({"iss": "a"}, NOW, issuer="a") == {"iss": "a"}
    assert decode_at({"iss": "a"}, NOW, issuer=["b", "a"]) == {"iss": "a"}
    assert decode_at({"iss": 5}, NOW) == {"iss": 5}  # not checked when no issuer is expected
    with pytest.raises(jwt.InvalidIssuerError):
        decode_at({"iss": "b"}, NOW, issuer="a")
    with pytest.raises(jwt.InvalidIssuerError):
        decode_at({"iss": ["a"]}, NOW, issuer="a")
    with pytest.raises(jwt.MissingRequiredClaimError):
        decode_at({}, NOW, issuer="a")
    assert decode_at({"sub": "u"}, NOW, subject="u") == {"sub": "u"}
    with pytest.raises(jwt.InvalidSubjectError):
        decode_at({"sub": "v"}, NOW, subject="u")
    with pytest.raises(jwt.MissingRequiredClaimError):
        decode_at({}, NOW, subject="u")
    with pytest.raises(jwt.InvalidSubjectError):
        decode_at({"sub": 1}, NOW)
    with pytest.raises(jwt.InvalidJTIError):
        decode_at({"jti": 1}, NOW)
    with pytest.raises(TypeError):
        decode_at({}, NOW, subject=1)


def test_errors_never_echo_the_token() -> None:
    token = forge({"alg": "HS256", "kid": "secret-kid"}, {"exp": 1, "sub": "secret-sub"})
    for bad in (token, token[:-3], token + b"A", token.replace(b".", b"", 1)):
        try:
            jwt.decode(bad, SECRET, algorithms=["HS256"])
        except jwt.InvalidTokenError as e:
            assert "secret" not in str(e) and bad.decode() not in str(e) and e.code
        else:
            raise AssertionError("accepted")


def test_verifier_keys_can_be_replaced(keys: dict[str, object]) -> None:
    verifier = jwt.Verifier(SECRET, ["HS256", "ES256"], audience="api")
    token = forge({"alg": "HS256"}, {"aud": "api"})
    assert verifier.verify(token) == {"aud": "api"}
    assert isinstance(verifier.keys, jwt.Key) and verifier.keys.kty == "oct"
    verifier.keys = pem(keys["ES256"])
    with pytest.raises(jwt.InvalidAlgorithmError):
        verifier.verify(token)
    assert verifier.verify(forge({"alg": "ES256"}, {"aud": "api"}, key=keys["ES256"])) == {
        "aud": "api"
    }


def test_keys_embedded_in_the_header_are_ignored(keys: dict[str, object]) -> None:
    """RFC 8725 3.10 (CVE-2018-0114 class): jwk, jku, x5u, x5c never choose the key."""
    attacker = ec.generate_private_key(ec.SECP256R1())
    jwk = pyjwt.algorithms.ECAlgorithm.to_jwk(attacker.public_key(), as_dict=True)
    header = {"alg": "ES256", "jwk": jwk, "jku": "https://evil.example/jwks", "x5u": "x"}
    token = forge(header, {"sub": "admin"}, key=attacker)
    assert jwt.decode(token, jwk, algorithms=["ES256"]) == {"sub": "admin"}  # the forgery is sound
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, pem(keys["ES256"]), algorithms=["ES256"])
    keyset = jwt.JWKSet.from_dict({"keys": [{**pyjwt.algorithms.ECAlgorithm.to_jwk(
        keys["ES256"].public_key(), as_dict=True), "kid": "real"}]})  # fmt: skip
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, keyset, algorithms=["ES256"])


def test_sha256_matches_hashlib():
    import hashlib

    from gwcore.jwt._jws import sha256

    for data in (b"", b"abc", b"x" * 243, bytes(range(256)) * 40):
        assert sha256(data) == hashlib.sha256(data).digest()


# --- the JWS layer (PyJWT's api_jws) and decode_complete -----------------------------------

# RFC 7797 4.2: HS256 over the unencoded, detached payload "$.02" with the RFC 7515 A.1 key
RFC7797_KEY = base64.urlsafe_b64decode(
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow=="
)
RFC7797_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsImI2NCI6ZmFsc2UsImNyaXQiOlsiYjY0Il19"
    "..A5dxf2s96_n5FLueVuW1Z_vh161FwXZC4YLPff6dmDY"
)


def test_api_jws_module_has_pyjwt_shape() -> None:
    import importlib

    assert jwt.api_jws is importlib.import_module("gwcore.jwt.api_jws")
    for name in ("decode", "decode_complete"):
        ours = list(inspect.signature(getattr(jwt.api_jws, name)).parameters)
        theirs = list(inspect.signature(getattr(pyjwt.api_jws, name)).parameters)
        assert ours == theirs[: len(ours)] == ["jwt", "key", "algorithms", "options",
                                               "detached_payload"]  # fmt: skip
    assert jwt.api_jws.get_unverified_header is jwt.get_unverified_header


@pytest.mark.parametrize(
    "payload", [b"", b"\xff\xfe\x00\x80", b"plain text", b'{"a":1}', b"[1]", b"\x00" * 100]
)
@pytest.mark.parametrize("alg", ["HS256", "RS256", "ES256", "EdDSA"])
def test_jws_payload_is_returned_as_bytes(keys: dict, alg: str, payload: bytes) -> None:
    """Any payload, empty or not UTF-8, comes back as the exact bytes, as in PyJWT."""
    token = forge({"alg": alg, "kid": "k"}, payload, key=private_for(keys, alg))
    key = public_for(keys, alg)
    assert jwt.api_jws.decode(token, key, algorithms=[alg]) == payload
    ours = jwt.api_jws.decode_complete(token.decode(), key, [alg])
    theirs = pyjwt.api_jws.decode_complete(token, key, algorithms=[alg])
    assert ours == theirs
    assert type(ours["payload"]) is bytes and type(ours["signature"]) is bytes
    assert ours["signature"] == base64.urlsafe_b64decode(token.rsplit(b".", 1)[1] + b"==")
    assert jwt.Verifier(key, [alg]).verify_jws(token) == payload


def test_jwt_decode_complete_matches_pyjwt(keys: dict) -> None:
    claims = {"sub": "u", "aud": "api", "exp": NOW + 60, "n": [1, {"x": None}]}
    token = forge({"alg": "ES384", "typ": "JWT"}, claims, key=keys["ES384"])
    key = pem(keys["ES384"])
    ours = jwt.decode_complete(token, key, ["ES384"], audience="api", now=NOW)
    theirs = pyjwt.decode_complete(
        token, key, algorithms=["ES384"], audience="api", options={"verify_exp": False}
    )
    assert ours == theirs
    assert ours["payload"] == claims and ours["header"] == {"alg": "ES384", "typ": "JWT"}
    assert jwt.decode(token, key, ["ES384"], audience="api", now=NOW) == claims
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode_complete(token, key, ["ES384"], audience="api", now=NOW + 61)


def test_empty_and_non_utf8_payloads_as_jwt_claims() -> None:
    """As JWT claims (PyJWT parses the payload as JSON): empty and invalid UTF-8 are
    DecodeError in both. PyJWT also sniffs UTF-16/32 and a UTF-8 BOM (json.loads on bytes);
    gwcore keeps RFC 8259 8.1 (UTF-8 only) and refuses them: a deliberate difference."""
    for payload in (b"", b"\xff", b'{"a":"\xff"}', b"\xc3"):
        token = forge({"alg": "HS256"}, payload)
        for decode in (jwt.decode, jwt.decode_complete, pyjwt.decode):
            with pytest.raises((jwt.DecodeError, pyjwt.DecodeError)):
                decode(token, SECRET, algorithms=["HS256"])
    for payload in ('{"a":1}'.encode("utf-16"), b'\xef\xbb\xbf{"a":1}'):
        token = forge({"alg": "HS256"}, payload)
        assert pyjwt.decode(token, SECRET, algorithms=["HS256"]) == {"a": 1}
        with pytest.raises(jwt.DecodeError):
            jwt.decode(token, SECRET, algorithms=["HS256"])
        assert jwt.api_jws.decode(token, SECRET, algorithms=["HS256"]) == payload


def test_padded_base64url_as_pyjwt() -> None:
    """PyJWT accepts RFC 4648 padding ('=' to a multiple of 4) on each segment and nothing
    else; the signing input is the token text as sent. A Verifier stays strict (RFC 7515 2)."""
    for payload, segment, accepted in [
        (b"a", b"YQ==", True),
        (b"ab", b"YWI=", True),
        (b"abc", b"YWJj", True),
        (b"a", b"YQ=", False),  # not a multiple of 4
        (b"a", b"YQ===", False),
        (b"ab", b"YWI==", False),
        (b"abc", b"YWJj====", False),
        (b"a", b"YR==", False),  # non-canonical final bits
        (b"", b"====", False),
        (b"", b"=", False),
        (b"aa", b"YQ==YQ==", False),  # padding inside
    ]:
        msg = b64(b'{"alg":"HS256"}') + b"." + segment
        token = msg + b"." + b64(sign("HS256", SECRET, msg))
        for decode in (jwt.api_jws.decode, pyjwt.api_jws.decode):
            if accepted:
                assert decode(token, SECRET, algorithms=["HS256"]) == payload
            else:
                with pytest.raises((jwt.DecodeError, pyjwt.DecodeError)):
                    decode(token, SECRET, algorithms=["HS256"])
        if b"=" in segment or not accepted:
            with pytest.raises(jwt.DecodeError):
                jwt.Verifier(SECRET, ["HS256"]).verify_jws(token)
    enc = base64.urlsafe_b64encode
    padded = enc(b'{"alg": "HS256"}') + b"." + enc(b'{"a":1}')
    token = padded + b"." + enc(sign("HS256", SECRET, padded))
    assert token.count(b"=") == 5
    assert jwt.decode(token, SECRET, ["HS256"]) == pyjwt.decode(token, SECRET, ["HS256"])
    assert jwt.get_unverified_header(token) == {"alg": "HS256"}


def test_detached_unencoded_payload_rfc7797() -> None:
    parts = jwt.api_jws.decode_complete(
        RFC7797_TOKEN, RFC7797_KEY, ["HS256"], detached_payload=b"$.02"
    )
    assert parts == pyjwt.api_jws.decode_complete(
        RFC7797_TOKEN, RFC7797_KEY, ["HS256"], detached_payload=b"$.02"
    )
    assert parts["header"] == {"alg": "HS256", "b64": False, "crit": ["b64"]}
    assert parts["payload"] == b"$.02"
    assert jwt.api_jws.decode(RFC7797_TOKEN, RFC7797_KEY, ["HS256"], None, bytearray(b"$.02"))
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.api_jws.decode(RFC7797_TOKEN, RFC7797_KEY, ["HS256"], detached_payload=b"$.03")
    with pytest.raises(jwt.DecodeError, match="detached_payload"):
        jwt.api_jws.decode(RFC7797_TOKEN, RFC7797_KEY, ["HS256"])
    with pytest.raises(TypeError):
        jwt.api_jws.decode(RFC7797_TOKEN, RFC7797_KEY, ["HS256"], detached_payload="$.02")
    with pytest.raises(jwt.DecodeError, match="detached_payload"):
        jwt.api_jws.decode(forge({"alg": "HS256"}, b"x"), SECRET, ["HS256"], detached_payload=b"x")
    with pytest.raises(jwt.DecodeError):  # a Verifier implements no extension
        jwt.Verifier(RFC7797_KEY, ["HS256"]).verify_jws(RFC7797_TOKEN)
    # the detached form only: b64 false needs crit and an empty payload segment
    head = b64(b'{"alg":"HS256","b64":false}')
    with pytest.raises(jwt.InvalidTokenError, match="crit") as info:
        jwt.api_jws.decode(head + b".." + b64(b"x" * 32), SECRET, ["HS256"], detached_payload=b"")
    assert type(info.value) is jwt.InvalidTokenError
    head, _, sig = RFC7797_TOKEN.partition("..")
    with pytest.raises(jwt.DecodeError, match="empty"):
        jwt.api_jws.decode(f"{head}.JC4wMg.{sig}", RFC7797_KEY, ["HS256"], detached_payload=b"")
    # a JWT may carry its claims detached, as in PyJWT
    msg = b64(b'{"alg":"HS256","b64":false,"crit":["b64"]}') + b"."
    token = msg + b"." + b64(sign("HS256", SECRET, msg + b'{"sub":"u"}'))
    assert jwt.decode(token, SECRET, ["HS256"], detached_payload=b'{"sub":"u"}') == {"sub": "u"}
    big = b'{"pad":"' + b"x" * 7000 + b'"}'
    token = msg + b"." + b64(sign("HS256", SECRET, msg + big))
    assert jwt.api_jws.decode(token, SECRET, ["HS256"], detached_payload=big) == big
    with pytest.raises(jwt.DecodeError, match="larger"):  # claims are scanned within 6 KiB
        jwt.decode(token, SECRET, ["HS256"], detached_payload=big)


def test_verify_signature_false(keys: dict) -> None:
    """PyJWT's options={"verify_signature": False}: structure and header checks only; key and
    algorithms unused; for a JWT the verify_* claim checks default to off, require still holds."""
    token = forge({"alg": "HS256"}, {"exp": 1, "aud": "x"})
    forged = token[:-4] + (b"AAAA" if not token.endswith(b"AAAA") else b"BBBB")
    off = {"verify_signature": False}
    for t in (token, forged, forge({"alg": "none"}, {"exp": 1, "aud": "x"}, "HS256")):
        parts = jwt.api_jws.decode_complete(t, options=off)
        assert parts == pyjwt.api_jws.decode_complete(t, options=off)
        assert jwt.decode(t, options=off) == {"exp": 1, "aud": "x"}
        assert jwt.decode(t, 12345, ["XX"], options=off) == {"exp": 1, "aud": "x"}
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(forged, options={**off, "verify_exp": True})
    with pytest.raises(jwt.MissingRequiredClaimError):
        jwt.decode(forged, options={**off, "require": ["sub"]})
    with pytest.raises(jwt.DecodeError):  # the structure is still checked
        jwt.api_jws.decode(token + b"!", options=off)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.api_jws.decode(forged, SECRET, ["HS256"], options={"verify_signature": True})
