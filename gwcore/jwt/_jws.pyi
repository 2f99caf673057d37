"""Compiled JWT verification (src_c/jws.c over libcrypto): keys, key sets, Verifier, decode().

Standards: RFC 7515 (JWS compact serialization), RFC 7518 (HS/RS/PS/ES algorithms, key sizes),
RFC 7519 (JWT claims), RFC 8037 (EdDSA), RFC 7517 (JWK), RFC 8725 (best practices).
Tokens are bytes or str (ASCII); times are float seconds since the epoch; leeway is seconds
(float or timedelta). Errors are the gwcore.jwt.exceptions classes (PyJWT's names).
"""

from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeAlias

MAX_TOKEN_BYTES: int
"""Longest accepted token (8192 bytes); longer ones fail with DecodeError before any crypto."""

def sha256(data: bytes) -> bytes:
    """SHA-256 digest (32 bytes) of data through libcrypto, the digest fetched once: the key
    of the gateway's verified-token cache. RuntimeError if libcrypto fails."""

def b64url_decode(data: bytes | str) -> bytes:
    """Strict base64url (RFC 7515 2): no padding, canonical final bits. ValueError otherwise."""

class Key:
    """One verification key prepared once (HMAC secret or RSA/EC/EdDSA public key); immutable."""

    kid: str | None
    @staticmethod
    def from_secret(secret: bytes | str, *, kid: str | None = None, alg: str | None = None) -> Key:
        """HMAC key for HS256/384/512. InvalidKeyError if empty or if it looks like PEM, SSH or
        JWK public key material (CVE-2022-29217 class)."""
    @staticmethod
    def from_pem(pem: bytes | str, *, kid: str | None = None, alg: str | None = None) -> Key:
        """From one PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE PEM block. Private keys, other
        types and curves other than P-256/384/521, Ed25519, Ed448 raise InvalidKeyError."""
    @staticmethod
    def from_jwk(jwk: Mapping[str, Any]) -> Key:
        """From a JWK (kty RSA, EC, OKP, oct); honours use, key_ops and alg; refuses private
        members. Raises InvalidKeyError."""
    @property
    def kty(self) -> str:
        """ "oct", "RSA", "EC" or "OKP"."""
    @property
    def curve(self) -> str | None:
        """ "P-256", "P-384", "P-521", "Ed25519", "Ed448", or None."""
    @property
    def bits(self) -> int:
        """Modulus, curve or secret size in bits."""
    @property
    def algorithms(self) -> frozenset[str]:
        """The JWS alg values this key verifies (after a JWK/constructor alg restriction)."""

class KeySet:
    """Immutable keys indexed by kid. A token with a kid is tried against the keys with that
    kid, then the kid-less keys (UnknownKeyIdError if there are none); a token without a kid
    against every key. Only keys whose algorithms include the token's alg are tried."""

    keys: tuple[Key, ...]
    def __init__(self, keys: Iterable[Key] = ...) -> None: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Key]: ...
    def kids(self) -> frozenset[str]:
        """The kid values present."""

KeyLike: TypeAlias = Key | KeySet | bytes | str | Mapping[str, Any] | Any
"""What Verifier and decode accept as a key (the last case: a `cryptography` key object)."""

class Verifier:
    """Verifies tokens against fixed keys and a fixed policy, prepared once (the gateway path).

    key: a Key, KeySet/JWKSet, HMAC secret (bytes/str), PEM text (bytes/str), JWK mapping, or a
    ``cryptography`` public/private key object. algorithms: required, e.g. ["RS256"]; "none" is
    never allowed. audience: str or iterable of str; a token with an aud is refused when None.
    issuer: str or container of str. subject: str. leeway: seconds (float or timedelta).
    options: PyJWT's verify_exp, verify_nbf, verify_iat, verify_aud, verify_iss, verify_sub,
    verify_jti (default True), require (list of claim names), strict_aud (default False),
    enforce_minimum_key_length (default True: HMAC secret >= hash size, RSA >= 2048 bits).
    Raises InvalidKeyError if a single key fits none of the algorithms, ValueError/TypeError
    for malformed options, InvalidAlgorithmError for unknown algorithm names.
    """

    keys: Key | KeySet
    """The keys in use; assign a new Key, JWKSet or any accepted key form to rotate."""

    def __init__(
        self,
        key: KeyLike,
        algorithms: Sequence[str] | str,
        *,
        audience: str | Iterable[str] | None = None,
        issuer: str | Container[str] | None = None,
        subject: str | None = None,
        leeway: float | timedelta = 0,
        options: Mapping[str, Any] | None = None,
    ) -> None: ...
    def verify(self, token: bytes | str, now: float | None = None) -> dict[str, Any]:
        """Verify a compact JWT and return its claims. ``now`` replaces the clock (seconds).

        Raises InvalidTokenError subclasses (DecodeError, InvalidSignatureError,
        ExpiredSignatureError, ImmatureSignatureError, InvalidAudienceError, InvalidIssuerError,
        InvalidAlgorithmError, MissingRequiredClaimError, UnknownKeyIdError, ...), or
        InvalidKeyError for a key under the RFC 7518 minimum size.
        """
    def verify_jws(self, token: bytes | str) -> bytes:
        """Verify the signature of a compact JWS and return the payload bytes (no claim checks,
        payload need not be JSON)."""

def decode(
    token: bytes | str,
    key: KeyLike,
    algorithms: Sequence[str] | str | None = None,
    options: Mapping[str, Any] | None = None,
    audience: str | Iterable[str] | None = None,
    issuer: str | Container[str] | None = None,
    subject: str | None = None,
    leeway: float | timedelta = 0,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """PyJWT-compatible decode(): verify a JWT and return its claims (see Verifier).

    Keys given as str/bytes or key objects are prepared once and cached. Raises DecodeError if
    algorithms is None, plus everything Verifier.verify raises.
    """

def get_unverified_header(token: bytes | str) -> dict[str, Any]:
    """The JOSE header as a dict WITHOUT verifying the signature (header checks still apply:
    strict JSON, no duplicate names, kid/typ strings, crit). Raises DecodeError/InvalidTokenError.
    """
