"""Differential tests: gwcore.jwt against PyJWT on tokens PyJWT makes (hypothesis, bounded).

For every algorithm, random claims and policies: a valid token must give the same claims or
the same exception class in both; a tampered token (a changed character, a truncated, extended
or swapped signature, a changed header) must be refused by gwcore exactly when PyJWT refuses it,
and always with an InvalidTokenError. Time claims are whole seconds far from the present, so
the two clocks (read a few microseconds apart) cannot disagree.

The strict JSON scanner (headers and claims) is also checked against Python's json module made
strict (duplicate names, NaN, lone surrogates and out-of-range numbers refused) on generated and
mutated texts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keypair import key_pair

from gwcore import jwt

ALGS = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512", "EdDSA",
]  # fmt: skip
B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
NOW = int(time.time())
# derandomize: the same examples on every run and machine, so a failure is reproducible and
# CI cannot go red on an unlucky draw; breadth comes from the example counts.
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[object, bytes]]:
    """alg -> (signing key for PyJWT, verification key for both: secret or public PEM)."""

    secret = bytes(range(64))
    rsa_pair = key_pair(rsa.generate_private_key(65537, 2048))
    out: dict[str, tuple[object, bytes]] = {}
    for alg in ALGS[:3]:
        out[alg] = (secret, secret)
    for alg in ALGS[3:9]:
        out[alg] = rsa_pair
    out["ES256"] = key_pair(ec.generate_private_key(ec.SECP256R1()))
    out["ES384"] = key_pair(ec.generate_private_key(ec.SECP384R1()))
    out["ES512"] = key_pair(ec.generate_private_key(ec.SECP521R1()))
    out["EdDSA"] = key_pair(ed25519.Ed25519PrivateKey.generate())
    out["Ed448"] = key_pair(ed448.Ed448PrivateKey.generate())
    return out


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
times = st.integers(min_value=NOW - 10**6, max_value=NOW + 10**6).filter(
    lambda t: abs(t - NOW) > 120
)
audiences = st.sampled_from(["api", "web", "admin"])


REGISTERED = ("exp", "nbf", "iat", "iss", "aud", "sub", "jti")


@st.composite
def claim_sets(draw: st.DrawFn) -> dict:
    """Random private claims, plus registered claims of the types RFC 7519 gives them (where
    PyJWT is laxer, e.g. exp "123" or true, gwcore deliberately differs)."""
    names = st.text(max_size=10).filter(lambda name: name not in REGISTERED)
    claims = draw(st.dictionaries(names, json_values, max_size=6))
    registered = {
        "exp": times,
        "nbf": times,
        "iat": times,
        "iss": st.sampled_from(["https://a.example/", "https://b.example/"]),
        "aud": audiences | st.lists(audiences, max_size=3),
        "sub": st.text(max_size=12),
        "jti": st.text(max_size=12),
    }
    for name, strategy in registered.items():
        if draw(st.booleans()):
            claims[name] = draw(strategy)
    return claims


@st.composite
def policies(draw: st.DrawFn) -> dict:
    policy: dict = {}
    if draw(st.booleans()):
        policy["audience"] = draw(audiences | st.lists(audiences, min_size=1, max_size=2))
    if draw(st.booleans()):
        policy["issuer"] = draw(st.sampled_from(["https://a.example/", "https://b.example/"]))
    if draw(st.booleans()):
        policy["leeway"] = draw(st.integers(min_value=0, max_value=60))
    options = {}
    for name in ("verify_exp", "verify_nbf", "verify_iat", "verify_aud"):
        if draw(st.integers(0, 4)) == 0:
            options[name] = False
    if draw(st.integers(0, 3)) == 0:
        options["require"] = draw(st.lists(st.sampled_from(["exp", "iss", "sub"]), max_size=2))
    if options:
        policy["options"] = options
    return policy


def outcome(decode: object, token: str, key: object, alg: str, policy: dict) -> object:
    """The claims, or the name of the exception class raised."""
    try:
        return decode(token, key, algorithms=[alg], **policy)
    except pyjwt.PyJWTError as e:
        return type(e).__name__
    except jwt.PyJWTError as e:
        assert isinstance(e, jwt.InvalidTokenError), repr(e)
        return type(e).__name__


@SETTINGS
@given(alg=st.sampled_from([*ALGS, "Ed448"]), claims=claim_sets(), policy=policies(),
       kid=st.none() | st.text(max_size=8))  # fmt: skip
def test_valid_tokens_agree(keys: dict, alg: str, claims: dict, policy: dict, kid: object) -> None:
    signer, public = keys[alg]
    jws_alg = "EdDSA" if alg == "Ed448" else alg
    headers = {"kid": kid} if kid is not None else None
    token = pyjwt.encode(claims, signer, algorithm=jws_alg, headers=headers)
    theirs = outcome(pyjwt.decode, token, public, jws_alg, policy)
    ours = outcome(jwt.decode, token, public, jws_alg, policy)
    assert ours == theirs
    if isinstance(ours, dict):
        assert ours == claims
    assert jwt.get_unverified_header(token) == pyjwt.get_unverified_header(token)


@st.composite
def tampered(draw: st.DrawFn, token: str) -> str:
    header, payload, signature = token.split(".")
    kind = draw(st.sampled_from(["char", "truncate", "extend", "swap_header", "drop_sig"]))
    if kind == "char":
        i = draw(st.integers(0, len(token) - 1))
        if token[i] == ".":
            return token[:i] + "A" + token[i + 1 :]
        replacement = draw(st.sampled_from(B64_ALPHABET).filter(lambda c: c != token[i]))
        return token[:i] + replacement + token[i + 1 :]
    if kind == "truncate":
        return token[: -draw(st.integers(1, min(8, len(signature))))]
    if kind == "extend":
        return token + draw(st.text(B64_ALPHABET, min_size=1, max_size=8))
    if kind == "swap_header":
        other = draw(st.sampled_from(ALGS))
        fake = pyjwt.utils.base64url_encode(b'{"alg":"' + other.encode() + b'","typ":"JWT"}')
        return fake.decode() + "." + payload + "." + signature
    return header + "." + payload + "."


@SETTINGS
@given(alg=st.sampled_from(ALGS), claims=claim_sets(), data=st.data())
def test_tampered_tokens_agree(keys: dict, alg: str, claims: dict, data: st.DataObject) -> None:
    signer, public = keys[alg]
    token = pyjwt.encode(claims, signer, algorithm=alg)
    bad = data.draw(tampered(token))
    if bad == token:
        return
    theirs = outcome(pyjwt.decode, bad, public, alg, {})
    ours = outcome(jwt.decode, bad, public, alg, {})
    assert isinstance(ours, str) == isinstance(theirs, str), (ours, theirs)
    if isinstance(ours, dict):  # e.g. a swapped header that decodes to the same bytes
        assert ours == theirs


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_jwks_selection_agrees(keys: dict, data: st.DataObject) -> None:
    """A JWK Set with several keys: the key named by kid verifies, others are refused."""
    names = data.draw(st.lists(st.sampled_from(ALGS[3:]), min_size=1, max_size=4, unique=True))
    jwks = {"keys": []}
    for i, alg in enumerate(names):
        public = serialization.load_pem_public_key(keys[alg][1])
        jwk = pyjwt.algorithms.get_default_algorithms()[alg].to_jwk(public, as_dict=True)
        jwks["keys"].append({**jwk, "kid": f"k{i}", "alg": alg})
    index = data.draw(st.integers(0, len(names) - 1))
    kid = data.draw(st.sampled_from([f"k{index}", f"k{len(names)}"]))
    alg = names[index]
    token = pyjwt.encode({"sub": "x"}, keys[alg][0], algorithm=alg, headers={"kid": kid})
    theirs_set = pyjwt.PyJWKSet.from_dict(jwks)
    try:
        theirs = pyjwt.decode(token, theirs_set[kid], algorithms=[alg])
    except KeyError:
        theirs = "UnknownKeyIdError"
    ours = outcome(jwt.decode, token, jwt.JWKSet.from_dict(jwks), alg, {})
    assert ours == theirs


# --- the JSON scanner against Python's json module -----------------------------------------


class Refused(Exception):
    """The oracle refuses the text."""


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    if len({k for k, _ in pairs}) != len(pairs):
        raise Refused("duplicate member name")
    return dict(pairs)


def _check_values(value: object) -> None:
    """RFC 7493 (I-JSON) rules the json module does not apply: no lone surrogates, finite."""
    if isinstance(value, str):
        value.encode("utf-8")  # UnicodeEncodeError on a lone surrogate
    elif isinstance(value, float) and value in (float("inf"), float("-inf")):
        raise Refused("number out of range")
    elif isinstance(value, list):
        for item in value:
            _check_values(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_values(key)
            _check_values(item)


def strict_json_object(data: bytes) -> dict | None:
    """The oracle: RFC 8259 + I-JSON, object at the top, via the standard library."""
    try:
        value = json.loads(
            data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_refuse
        )
        _check_values(value)
    except (Refused, ValueError, UnicodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _refuse(name: str) -> None:
    raise Refused(name)


def header_oracle(data: bytes) -> dict | None:
    """get_unverified_header's rules on top of strict JSON, for a token "<header>.e30.AA":
    kid and typ strings (RFC 7515 4.1), alg anything (PyJWT leaves it to the algorithms
    policy), b64 a boolean and crit a non-empty list naming only "b64", which must be present
    (RFC 7515 4.1.11, RFC 7797 3); b64 false needs an empty payload segment, which e30 is not."""
    header = strict_json_object(data)
    if header is None:
        return None
    if any(name in header and not isinstance(header[name], str) for name in ("kid", "typ")):
        return None
    if header.get("b64", True) is not True:
        return None
    crit = header.get("crit", ["b64"])
    if not isinstance(crit, list) or not crit or any(entry != "b64" for entry in crit):
        return None
    if "crit" in header and "b64" not in header:
        return None
    return header


keys_text = st.sampled_from(["alg", "kid", "typ", "a", "\\u0061", "é", "b64", "crit", ""])


@st.composite
def json_texts(draw: st.DrawFn, depth: int = 0) -> str:
    """JSON-ish text: valid values in random layouts, with duplicate names and escapes."""
    ws = draw(st.sampled_from(["", " ", "\n", "\t", "\r\n "]))
    kind = draw(
        st.sampled_from(["object", "object", "array", "scalar"] if depth < 4 else ["scalar"])
    )
    if kind == "object":
        members = draw(st.lists(st.tuples(keys_text, json_texts(depth + 1)), max_size=4))
        return "{" + ws + ",".join(f'"{k}"{ws}:{v}' for k, v in members) + "}"
    if kind == "array":
        items = draw(st.lists(json_texts(depth + 1), max_size=3))
        return "[" + ("," + ws).join(items) + "]"
    return draw(
        st.sampled_from(
            [
                "true",
                "false",
                "null",
                "0",
                "-0.5e+3",
                "1E400",
                "01",
                "1.",
                '"x"',
                '"b64"',
                '"\\ud83d\\ude00"',
                '"\\ud800"',
                '"\\u00e9\\n"',
                '"\\x"',
                '"é"',
                "NaN",
                "123456789012345678901234567890",
            ]
        )
        | st.text(max_size=6).map(lambda s: json.dumps(s, ensure_ascii=False))
    )


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(json_texts()).encode("utf-8", "surrogatepass"))
    for _ in range(draw(st.integers(0, 2))):
        pos = draw(st.integers(0, len(data)))
        junk = draw(st.sampled_from(list(b'{}[]":,\\ u0ex\x00\x1f\x7f') + [0xC3, 0xFF, 0xED]))
        if draw(st.booleans()) and pos < len(data):
            del data[pos]
        else:
            data.insert(pos, junk)
    return bytes(data)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(data=mutated())
def test_header_json_agrees_with_stdlib_json(data: bytes) -> None:
    token = pyjwt.utils.base64url_encode(data) + b".e30.AA"
    expected = header_oracle(data)
    try:
        ours = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        ours = None
    assert ours == expected, data


@settings(max_examples=300, deadline=None, derandomize=True)
@given(data=mutated())
def test_claims_json_agrees_with_stdlib_json(data: bytes) -> None:
    secret = b"k" * 32
    signing_input = b"eyJhbGciOiJIUzI1NiJ9." + pyjwt.utils.base64url_encode(data)
    token = (
        signing_input
        + b"."
        + pyjwt.utils.base64url_encode(hmac.new(secret, signing_input, hashlib.sha256).digest())
    )
    off = {name: False for name in ("verify_exp", "verify_nbf", "verify_iat", "verify_aud",
                                    "verify_sub", "verify_jti")}  # fmt: skip
    try:
        ours = jwt.decode(token, secret, algorithms=["HS256"], options=off)
    except jwt.DecodeError:
        ours = None
    assert ours == strict_json_object(data), data
