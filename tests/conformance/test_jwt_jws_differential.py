"""Differential tests of the JWS layer: gwcore.jwt.api_jws and decode_complete against PyJWT's.

Tokens are built here (header JSON, payload bytes, signature by PyJWT's own algorithm objects)
so that they can carry what PyJWT's encoder would not write: padded segments, odd alg values,
crit and b64 combinations, detached (RFC 7797) payloads, and then one fault. For each, with a
drawn policy (allowed algorithms, a right or wrong key, verify_signature on or off), both
libraries must return the same {"payload", "header", "signature"} or raise the same exception
class: the same precedence of errors (structure, header, detached payload, alg, key, signature).

Left out by construction, and pinned by tests/unit/test_jwt_api.py instead, are gwcore's
deliberate differences: "none" or unknown names in algorithms (refused up front), kid/typ that
are not strings (DecodeError), short keys (refused by default), non-strict JSON, tokens over
MAX_TOKEN_BYTES, and JWT claims in UTF-16/32 or with a BOM (refused: RFC 8259 8.1).
Hypothesis runs derandomized: the same examples on every run.
"""

from __future__ import annotations

import base64
import functools
import json

import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keypair import key_pair

from gwcore import jwt

ALGS = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512", "EdDSA",
]  # fmt: skip
FAMILY = {alg: alg[:2] for alg in ALGS} | {
    "ES256": "P256", "ES384": "P384", "ES512": "P521", "EdDSA": "Ed"
}  # fmt: skip
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
SETTINGS = settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
PYJWT_ALGS = pyjwt.algorithms.get_default_algorithms()


@functools.cache
def keys() -> dict[str, tuple[object, bytes]]:
    """family -> (signing key for PyJWT's algorithm objects, verification key for both)."""

    secret = bytes(range(64))
    out = {"HS": (secret, secret), "HS2": (secret[::-1], secret[::-1])}
    out["RS"] = out["PS"] = key_pair(rsa.generate_private_key(65537, 2048))
    out["RS2"] = out["PS2"] = key_pair(rsa.generate_private_key(65537, 2048))
    for name, curve in (("P256", ec.SECP256R1()), ("P384", ec.SECP384R1()),
                        ("P521", ec.SECP521R1())):  # fmt: skip
        out[name] = key_pair(ec.generate_private_key(curve))
        out[name + "2"] = key_pair(ec.generate_private_key(curve))
    out["Ed"] = key_pair(ed25519.Ed25519PrivateKey.generate())
    out["Ed2"] = key_pair(ed25519.Ed25519PrivateKey.generate())
    return out


def b64(data: bytes, pad: bool = False) -> bytes:
    text = base64.urlsafe_b64encode(data)
    return text if pad else text.rstrip(b"=")


def outcome(decode: object, *args: object, **kwargs: object) -> object:
    """The result, or the name of the exception class raised."""
    try:
        return decode(*args, **kwargs)
    except (pyjwt.PyJWTError, jwt.PyJWTError, TypeError, ValueError) as e:
        return type(e).__name__


# Header extensions: (members added to the header, the token's payload is unencoded)
EXTENSIONS = {
    "plain": ({}, False),
    "b64_true": ({"b64": True}, False),
    "crit_b64_true": ({"b64": True, "crit": ["b64"]}, False),
    "detached": ({"b64": False, "crit": ["b64"]}, True),
    "b64_false_without_crit": ({"b64": False}, True),
    "crit_b64_absent": ({"crit": ["b64"]}, False),
    "crit_unsupported": ({"crit": ["exp"], "exp": 1}, False),
    "crit_mixed": ({"b64": True, "crit": ["b64", "exp"], "exp": 1}, False),
    "crit_empty": ({"crit": []}, False),
}
json_values = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8)
claims = st.dictionaries(
    st.text(max_size=6).filter(lambda n: n not in ("exp", "nbf", "iat", "aud", "iss", "sub")),
    json_values | st.lists(json_values, max_size=3),
    max_size=4,
)


@st.composite
def cases(draw: st.DrawFn) -> dict:
    alg = draw(st.sampled_from(ALGS))
    other = draw(st.sampled_from([a for a in ALGS if a != alg]))
    header: dict = {}
    alg_kind = draw(st.sampled_from(["alg"] * 6 + ["other", "none", "missing", "odd"]))
    if alg_kind != "missing":
        header["alg"] = {"alg": alg, "other": other, "none": "none"}.get(alg_kind) or draw(
            st.sampled_from(["", None, 256, ["HS256"], {"a": alg}, "hs256"])
        )
    if draw(st.booleans()):
        header["kid"] = draw(st.text(max_size=8))
    if draw(st.integers(0, 3)) == 0:
        header["typ"] = draw(st.sampled_from(["JWT", "JOSE", "application/x"]))
    extension = draw(st.sampled_from(["plain"] * 8 + ["detached"] * 3 + sorted(EXTENSIONS)))
    members, unencoded = EXTENSIONS[extension]
    header.update(members)
    order = draw(st.permutations(sorted(header)))
    header = {name: header[name] for name in order}

    if draw(st.booleans()):
        payload = json.dumps(draw(claims), separators=(",", ":")).encode()
    else:
        payload = draw(st.binary(max_size=48))
    pads = [draw(st.booleans()) for _ in range(3)]
    header_text = b64(json.dumps(header, separators=(",", ":")).encode(), pads[0])
    payload_text = b"" if unencoded else b64(payload, pads[1])
    signing_input = header_text + b"." + (payload if unencoded else payload_text)
    signer, _ = keys()[FAMILY[alg]]
    signature = PYJWT_ALGS[alg].sign(signing_input, PYJWT_ALGS[alg].prepare_key(signer))
    token = header_text + b"." + payload_text + b"." + b64(signature, pads[2])

    fault = draw(st.sampled_from(["none"] * 12 + ["char", "equals", "unpad", "truncate",
                                                  "payload_for_detached"]))  # fmt: skip
    if fault == "char":
        i = draw(st.integers(0, len(token) - 1))
        token = token[:i] + draw(st.sampled_from(ALPHABET + "=.")).encode() + token[i + 1 :]
    elif fault == "equals":
        i = draw(st.integers(0, len(token)))
        token = token[:i] + b"=" + token[i:]
    elif fault == "unpad":
        token = token.replace(b"=", b"", 1)
    elif fault == "truncate":
        token = token[: -draw(st.integers(1, 6))]
    elif fault == "payload_for_detached":
        h, _, s = token.split(b".")
        token = h + b"." + b64(payload or b"x") + b"." + s

    detached = None
    if unencoded:
        detached = draw(st.sampled_from([payload] * 4 + [None, payload + b"!"]))
    else:
        detached = draw(st.sampled_from([None] * 7 + [payload]))

    key_kind = draw(st.sampled_from(["right"] * 4 + ["same_family"] + ["other_family"] * 2))
    family = FAMILY[alg]
    if key_kind == "right":
        key = keys()[family][1]
    elif key_kind == "same_family":
        key = keys()[family + "2"][1]
    else:
        key = keys()[draw(st.sampled_from([f for f in ("HS", "RS", "P256", "P384", "Ed")
                                         if f != family]))][1]  # fmt: skip
    algorithms = draw(st.sampled_from([[alg]] * 4 + [[other], [alg, other], [other, alg], None]))
    options = draw(st.sampled_from([None] * 6 + [{"verify_signature": False},
                                                 {"verify_signature": True}]))  # fmt: skip
    return {
        "token": token if draw(st.booleans()) else token.decode(),
        "key": key,
        "algorithms": algorithms,
        "options": options,
        "detached": detached,
        "is_json": payload[:1] == b"{",
    }


def same(ours: object, theirs: object) -> None:
    if theirs == "ValueError":  # PyJWT's prepare_key leaks a ValueError for an HMAC secret
        theirs = "InvalidKeyError"  # given as an EC key; gwcore refuses it as a bad key
    assert ours == theirs


@SETTINGS
@given(data=st.data())
def test_jws_decode_complete_agrees(data: st.DataObject) -> None:
    case = data.draw(cases())
    args = (case["token"], case["key"], case["algorithms"], case["options"], case["detached"])
    theirs = outcome(pyjwt.api_jws.decode_complete, *args)
    ours = outcome(jwt.api_jws.decode_complete, *args)
    same(ours, theirs)
    payload = outcome(jwt.api_jws.decode, *args)
    assert payload == (ours["payload"] if isinstance(ours, dict) else ours)


@SETTINGS
@given(data=st.data())
def test_jwt_decode_complete_agrees(data: st.DataObject) -> None:
    """The same tokens as JWTs: the payload must then be a JSON object of claims."""
    case = data.draw(cases())
    args = (case["token"], case["key"], case["algorithms"], case["options"])
    kwargs = {"detached_payload": case["detached"]}
    theirs = outcome(pyjwt.decode_complete, *args, **kwargs)
    ours = outcome(jwt.decode_complete, *args, **kwargs)
    if not case["is_json"] and isinstance(theirs, dict):
        # json.loads on bytes also reads UTF-16/32 and a UTF-8 BOM; gwcore reads UTF-8 only
        assert ours == "DecodeError"
        return
    same(ours, theirs)
    assert outcome(jwt.decode, *args, **kwargs) == (
        ours["payload"] if isinstance(ours, dict) else ours
    )


@SETTINGS
@given(data=st.data())
def test_unverified_header_agrees(data: st.DataObject) -> None:
    case = data.draw(cases())
    theirs = outcome(pyjwt.api_jws.get_unverified_header, case["token"])
    ours = outcome(jwt.api_jws.get_unverified_header, case["token"])
    same(ours, theirs)
