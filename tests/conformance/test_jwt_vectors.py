"""Published vectors: RFC 7515 Appendix A, RFC 7520 section 4 (compact forms), RFC 8037 A.4.

Every token must verify with its published key, no other key, and no algorithm but its own;
A.1-A.3 carry the JWT claims {"iss":"joe","exp":1300819380,...}, so their exp edge is checked
exactly; A.5 (an Unsecured JWS) must be refused.
"""

from __future__ import annotations

import pytest

from gwcore import jwt

# RFC 7515 Appendix A ------------------------------------------------------------------------

A_PAYLOAD = (
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
)
A_CLAIMS = {"iss": "joe", "exp": 1300819380, "http://example.com/is_root": True}

A1 = (
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
    + A_PAYLOAD
    + ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)
A1_KEY = {
    "kty": "oct",
    "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
}
A2 = (
    "eyJhbGciOiJSUzI1NiJ9."
    + A_PAYLOAD
    + ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZ"
    "mh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75"
    "vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOP"
    "qvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw"
)
A2_KEY = {
    "kty": "RSA",
    "n": "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1P"
    "t0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5"
    "z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhy"
    "xXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",
    "e": "AQAB",
}
A3 = (
    "eyJhbGciOiJFUzI1NiJ9."
    + A_PAYLOAD
    + ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8IS"
    "lSApmWQxfKTUJqPP3-Kg6NU1Q"
)
A3_KEY = {
    "kty": "EC",
    "crv": "P-256",
    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
}
A4 = (
    "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA.AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZq"
    "wqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9"
    "ERBXukOXolLzeO_Jn"
)
A4_KEY = {
    "kty": "EC",
    "crv": "P-521",
    "x": "AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk",
    "y": "ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2",
}
A5 = "eyJhbGciOiJub25lIn0." + A_PAYLOAD + "."

# RFC 7520 section 4 ("It's a dangerous business, Frodo, ...") ------------------------------

C_PAYLOAD_B64 = (
    "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250"
    "byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcm"
    "UgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4"
)
C_PAYLOAD = (
    "It\u2019s a dangerous business, Frodo, going out your door. You step onto the road, and if "
    "you don't keep your feet, there\u2019s no knowing where you might be swept off to."
).encode()
C_RSA_KEY = {
    "kty": "RSA",
    "kid": "bilbo.baggins@hobbiton.example",
    "use": "sig",
    "n": "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_"
    "AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-"
    "OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKw"
    "uCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw",
    "e": "AQAB",
}
C_EC_KEY = {
    "kty": "EC",
    "kid": "bilbo.baggins@hobbiton.example",
    "use": "sig",
    "crv": "P-521",
    "x": "AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt",
    "y": "AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1",
}
C_HMAC_KEY = {
    "kty": "oct",
    "kid": "018c0ae5-4d9b-471b-bfd6-eef314bc7037",
    "use": "sig",
    "alg": "HS256",
    "k": "hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg",
}
C41 = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9."
    + C_PAYLOAD_B64
    + ".MRj"
    "dkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM1O2U4mwzJdQx996ivp83xuglII7PNDi"
    "84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8wW1Kt9eRo4"
    "QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluPxUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZ"
    "Dnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18kDquDg"
)
C42 = (
    "eyJhbGciOiJQUzM4NCIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9."
    + C_PAYLOAD_B64
    + ".cu2"
    "2eBqkYDKgIlTpzDXGvaFfz6WGoz7fUDcfT0kkOy42miAh2qyBzk1xEsnk2IpN6-tPid6VrklHkqsGqDqHCdP6O8TTB5dDDIt"
    "llVo6_1OLPpcbUrhiUSMxbbXUvdvWXzg-UD8biiReQFlfz28zGWVsdiNAUf8ZnyPEgVFn442ZdNqiVJRmBqrYRXe8P_ijQ7p"
    "8Vdz0TTrxUeT3lm8d9shnr2lfJT8ImUjvAA2Xez2Mlp8cBE5awDzT0qI0n6uiP1aCN_2_jLAeQTlqRHtfa64QQSUmFAAjVKP"
    "bByi7xho0uTOcbH510a6GYmJUAfmWjwZ6oD4ifKo8DYM-X72Eaw"
)
C43 = (
    "eyJhbGciOiJFUzUxMiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9."
    + C_PAYLOAD_B64
    + ".AE_"
    "R_YZCChjn4791jSQCrdPZCNYqHXCTZH0-JZGYNlaAjP2kqaluUIIUnC9qvbu9Plon7KRTzoNEuT4Va2cmL1eJAQy3mtPBu_u"
    "_sDDyYjnAMDxXPn7XrT0lw-kvAD890jl8e2puQens_IEKBpHABlsbEPX6sFY8OcGDqoRuBomu9xQ2"
)
C44 = (
    "eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVlZjMxNGJjNzAzNyJ9."
    + C_PAYLOAD_B64
    + ".s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0"
)

# RFC 8037 Appendix A.4 ----------------------------------------------------------------------

ED = (
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3A"
    "IbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)
ED_KEY = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}

VECTORS = [
    pytest.param(A1, A1_KEY, "HS256", A_PAYLOAD, id="rfc7515-A.1-HS256"),
    pytest.param(A2, A2_KEY, "RS256", A_PAYLOAD, id="rfc7515-A.2-RS256"),
    pytest.param(A3, A3_KEY, "ES256", A_PAYLOAD, id="rfc7515-A.3-ES256"),
    pytest.param(A4, A4_KEY, "ES512", "UGF5bG9hZA", id="rfc7515-A.4-ES512"),
    pytest.param(C41, C_RSA_KEY, "RS256", C_PAYLOAD_B64, id="rfc7520-4.1-RS256"),
    pytest.param(C42, C_RSA_KEY, "PS384", C_PAYLOAD_B64, id="rfc7520-4.2-PS384"),
    pytest.param(C43, C_EC_KEY, "ES512", C_PAYLOAD_B64, id="rfc7520-4.3-ES512"),
    pytest.param(C44, C_HMAC_KEY, "HS256", C_PAYLOAD_B64, id="rfc7520-4.4-HS256"),
    pytest.param(
        ED, ED_KEY, "EdDSA", "RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc", id="rfc8037-A.4-EdDSA"
    ),
]
ALL_KEYS = [A1_KEY, A2_KEY, A3_KEY, A4_KEY, C_RSA_KEY, C_EC_KEY, C_HMAC_KEY, ED_KEY]
ALL_ALGS = ["HS256", "RS256", "PS384", "ES256", "ES512", "EdDSA"]


@pytest.mark.parametrize(("token", "jwk", "alg", "payload_b64"), VECTORS)
def test_vector_verifies_with_its_key_only(
    token: str, jwk: dict, alg: str, payload_b64: str
) -> None:
    payload = jwt.b64url_decode(payload_b64)
    assert jwt.Verifier(jwk, [alg]).verify_jws(token) == payload
    assert (
        jwt.Verifier(jwt.JWKSet.from_dict({"keys": ALL_KEYS}), ALL_ALGS).verify_jws(token)
        == payload
    )
    if payload_b64 == C_PAYLOAD_B64:
        assert payload == C_PAYLOAD
    for other in ALL_KEYS:
        if other is jwk:
            continue
        key = jwt.Key.from_jwk(other)
        if alg not in key.algorithms:
            continue
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.Verifier(key, [alg]).verify_jws(token)
    if alg != "EdDSA":
        with pytest.raises(jwt.InvalidAlgorithmError):
            jwt.Verifier(jwk, ALL_ALGS).verify_jws(
                token.replace(token.split(".")[0], "eyJhbGciOiJFZERTQSJ9")
            )


@pytest.mark.parametrize(
    ("token", "jwk"), [(A1, A1_KEY), (A2, A2_KEY), (A3, A3_KEY)], ids=["A.1", "A.2", "A.3"]
)
def test_appendix_a_claims_and_exp_edge(token: str, jwk: dict) -> None:
    alg = jwt.get_unverified_header(token)["alg"]
    exp = A_CLAIMS["exp"]
    assert jwt.decode(token, jwk, algorithms=[alg], now=exp - 1) == A_CLAIMS
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(token, jwk, algorithms=[alg], now=exp)
    assert jwt.decode(token, jwk, algorithms=[alg], now=exp + 29.9, leeway=30) == A_CLAIMS
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(token, jwk, algorithms=[alg], now=exp + 30, leeway=30)


def test_headers_of_the_vectors() -> None:
    assert jwt.get_unverified_header(A1) == {"typ": "JWT", "alg": "HS256"}
    assert jwt.get_unverified_header(C44) == {
        "alg": "HS256",
        "kid": "018c0ae5-4d9b-471b-bfd6-eef314bc7037",
    }


def test_non_json_payloads_are_not_jwts() -> None:
    with pytest.raises(jwt.DecodeError):
        jwt.decode(A4, A4_KEY, algorithms=["ES512"])
    with pytest.raises(jwt.DecodeError):
        jwt.decode(C44, C_HMAC_KEY, algorithms=["HS256"])


def test_unsecured_jws_a5_is_refused() -> None:
    for key in (A1_KEY, A2_KEY):
        with pytest.raises(jwt.InvalidAlgorithmError):
            jwt.decode(A5, key, algorithms=["HS256", "RS256"])
