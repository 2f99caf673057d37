"""Exceptions of gwcore.jwt, with PyJWT's names and hierarchy so ``except`` clauses carry over.

    PyJWTError
    ├── InvalidKeyError                 the key given is unusable (a setup error), or, in the
    │                                   PyJWT functions, cannot verify the token's allowed alg
    └── InvalidTokenError               the token must be refused (HTTP 401 at the gateway)
        ├── DecodeError                 malformed token: segments, base64url, JSON, claim types
        │   └── InvalidSignatureError   the signature does not verify
        ├── ExpiredSignatureError       exp is past (RFC 7519 4.1.4)
        ├── ImmatureSignatureError      nbf or iat is in the future (RFC 7519 4.1.5, 4.1.6)
        ├── InvalidAudienceError        aud does not name this audience (RFC 7519 4.1.3)
        ├── InvalidIssuerError          iss is not the expected issuer (RFC 7519 4.1.1)
        ├── InvalidIssuedAtError        iat is not a number
        ├── InvalidSubjectError         sub is not a string or not the expected subject
        ├── InvalidJTIError             jti is not a string
        ├── InvalidAlgorithmError       alg missing, "none", not allowed (checked before the
        │                               key), or no Key, key-set or Verifier key fits it
        ├── MissingRequiredClaimError   a required claim is absent or null
        └── UnknownKeyIdError           kid names no key of the key set (gwcore addition)

Every exception has a short machine-readable ``code`` (for metrics labels and logs); its
message never contains the token. ``CODES`` lists every code gwcore raises (a metric label set
must be known before the workers start; tests/unit/test_jwt_codes.py keeps it complete).
"""

from __future__ import annotations

CODES = frozenset((
    # the exception classes' own
    "error", "invalid_key", "invalid_token", "malformed", "bad_signature", "expired",
    "immature", "bad_audience", "bad_issuer", "bad_iat", "bad_subject", "bad_jti",
    "bad_algorithm", "unknown_kid", "missing_claim",
    # the compiled verifier's (gwcore/jwt/_jws.pyx)
    "too_long", "segments", "header", "crit", "signature", "payload", "crypto",
    "duplicate_member", "key_too_short",
    # the JWT filter's (gwcore/filters/jwt_auth.py)
    "keys_unavailable", "unforwardable_claim",
))


class PyJWTError(Exception):
    """Base class of every gwcore.jwt exception."""

    code = "error"

    def __init__(self, message: str = "", code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidKeyError(PyJWTError):
    """The key is malformed, of an unsupported type, or unfit for the requested use (e.g. a
    PEM public key given for an HS256 token: as in PyJWT, raised only once the token's alg
    has been found allowed)."""

    code = "invalid_key"


class InvalidTokenError(PyJWTError):
    """The token fails verification; every per-token failure derives from this."""

    code = "invalid_token"


class DecodeError(InvalidTokenError):
    """The token is not a well-formed JWS/JWT (segments, base64url, JSON, claim types)."""

    code = "malformed"


class InvalidSignatureError(DecodeError):
    """The signature does not verify with any candidate key."""

    code = "bad_signature"


class ExpiredSignatureError(InvalidTokenError):
    """The exp claim is at or before now minus the leeway."""

    code = "expired"


class ImmatureSignatureError(InvalidTokenError):
    """The nbf or iat claim is after now plus the leeway."""

    code = "immature"


class InvalidAudienceError(InvalidTokenError):
    """The aud claim does not contain an expected audience (or is present when none is)."""

    code = "bad_audience"


class InvalidIssuerError(InvalidTokenError):
    """The iss claim is not a string or not an expected issuer."""

    code = "bad_issuer"


class InvalidIssuedAtError(InvalidTokenError):
    """The iat claim is not a number."""

    code = "bad_iat"


class InvalidSubjectError(InvalidTokenError):
    """The sub claim is not a string or not the expected subject."""

    code = "bad_subject"


class InvalidJTIError(InvalidTokenError):
    """The jti claim is not a string."""

    code = "bad_jti"


class InvalidAlgorithmError(InvalidTokenError):
    """The alg header is missing, "none", not in the allowed list (whatever its JSON type;
    reported before any key check, as in PyJWT), or fits no key given as a Key or key set
    (or held by a Verifier, where every per-token failure is an InvalidTokenError)."""

    code = "bad_algorithm"


class UnknownKeyIdError(InvalidTokenError):
    """The kid header names no key of the key set (a key-set refresh may be due)."""

    code = "unknown_kid"


class MissingRequiredClaimError(InvalidTokenError):
    """A required claim is absent (or null). ``claim`` holds its name."""

    code = "missing_claim"

    def __init__(self, claim: str) -> None:
        super().__init__(f'Token is missing the "{claim}" claim')
        self.claim = claim


__all__ = [
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
    "MissingRequiredClaimError",
    "PyJWTError",
    "UnknownKeyIdError",
]
