"""JWT verification at the edge: RFC 7515/7518/7519/8037 over OpenSSL, with PyJWT's API.

    from gwcore import jwt
    claims = jwt.decode(token, public_pem, algorithms=["RS256"], audience="api")
    parts = jwt.decode_complete(token, public_pem, algorithms=["RS256"], audience="api")
    body = jwt.api_jws.decode(jws, public_pem, algorithms=["RS256"])   # any payload, bytes

For a fixed policy (the gateway's case) build a Verifier once and call ``verify(token)``;
``JWKSet`` holds the keys of a JWKS document or PEM files, chosen by ``kid``.
"""

from gwcore.jwt import api_jws
from gwcore.jwt._jws import (
    MAX_TOKEN_BYTES,
    Key,
    KeySet,
    Verifier,
    b64url_decode,
    decode,
    decode_complete,
    get_unverified_header,
)
from gwcore.jwt.exceptions import (
    DecodeError,
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAlgorithmError,
    InvalidAudienceError,
    InvalidIssuedAtError,
    InvalidIssuerError,
    InvalidJTIError,
    InvalidKeyError,
    InvalidSignatureError,
    InvalidSubjectError,
    InvalidTokenError,
    MissingRequiredClaimError,
    PyJWTError,
    UnknownKeyIdError,
)
from gwcore.jwt.jwks import JWKSet

__all__ = [
    "MAX_TOKEN_BYTES",
    "DecodeError",
    "ExpiredSignatureError",
    "ImmatureSignatureError",
    "InvalidAlgorithmError",
    "InvalidAudienceError",
    "InvalidIssuedAtError",
    "InvalidIssuerError",
    "InvalidJTIError",
    "InvalidKeyError",
    "InvalidSignatureError",
    "InvalidSubjectError",
    "InvalidTokenError",
    "JWKSet",
    "Key",
    "KeySet",
    "MissingRequiredClaimError",
    "PyJWTError",
    "UnknownKeyIdError",
    "Verifier",
    "api_jws",
    "b64url_decode",
    "decode",
    "decode_complete",
    "get_unverified_header",
]
