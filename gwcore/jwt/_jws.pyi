"""Compiled JWT verification (src_c/jws.c over libcrypto): keys, key sets, Verifier, decode().

Standards: RFC 7515 (JWS compact serialization), RFC 7518 (HS/RS/PS/ES algorithms, key sizes),
RFC 7519 (JWT claims), RFC 8037 (EdDSA), RFC 7517 (JWK), RFC 8725 (best practices).
Tokens are bytes or str (ASCII); times are float seconds since the epoch; leeway is seconds
(float or timedelta). Errors are the gwcore.jwt.exceptions classes (PyJWT's names).

Two framings over one C core. A Verifier (the gateway's path) is strict RFC 7515: unpadded
base64url, alg/kid/typ strings, no crit extension. The PyJWT-compatible functions (decode,
decode_complete, jws_decode, jws_decode_complete, get_unverified_header) read tokens as PyJWT
does: RFC 4648 padding ('=' to a multiple of 4) accepted on each segment, RFC 7797 detached
payloads ("b64": false listed in "crit", empty payload segment) verified over
``detached_payload``, and errors in PyJWT's order: token structure (DecodeError), header
parameters (kid, crit: InvalidTokenError), the detached-payload rule (DecodeError), alg missing
or not in ``algorithms`` whatever its JSON type (InvalidAlgorithmError), then the key
(InvalidKeyError), then the signature (InvalidSignatureError), then, for a JWT, the claims.
Deliberate differences from PyJWT: "none" or unknown names in ``algorithms`` raise
InvalidAlgorithmError up front; a str ``algorithms`` is one exact name; keys under the RFC 7518
minimum raise InvalidKeyError unless options["enforce_minimum_key_length"] is False; header and
claims JSON must be strict UTF-8 JSON without duplicate names; kid/typ that are not strings and a
b64 that is not a boolean are DecodeError; tokens over MAX_TOKEN_BYTES are DecodeError.
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
    enforce_minimum_key_length (default True: HMAC secret >= hash size, RSA >= 2048 bits);
    verify_signature may only be True here. Tokens are read strictly (RFC 7515, see above).
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
        InvalidKeyError for a key under the RFC 7518 minimum size. A token alg that no key can
        verify is InvalidAlgorithmError, so every per-token failure is an InvalidTokenError.
        """
    def verify_jws(self, token: bytes | str) -> bytes:
        """Verify the signature of a compact JWS and return the payload bytes (no claim checks,
        payload need not be JSON)."""

def decode(
    token: bytes | str,
    key: KeyLike = "",
    algorithms: Sequence[str] | str | None = None,
    options: Mapping[str, Any] | None = None,
    audience: str | Iterable[str] | None = None,
    issuer: str | Container[str] | None = None,
    subject: str | None = None,
    leeway: float | timedelta = 0,
    *,
    detached_payload: bytes | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """PyJWT-compatible decode(): verify a JWT and return its claims (dict).

    Policy as Verifier; framing and error order as PyJWT (see the module docstring). Keys given
    as str/bytes or key objects are prepared once and cached. options["verify_signature"]=False
    skips key, algorithms and signature and, unless given explicitly, the verify_* claim checks
    (require still applies). The claims must be a strict UTF-8 JSON object (UTF-16/32 and a BOM,
    which PyJWT's json.loads accepts, are DecodeError); a detached payload is at most 6144 bytes.
    Raises DecodeError if algorithms is None (when verifying); InvalidAlgorithmError for an alg
    missing or not allowed, before any key check; InvalidKeyError for key material that cannot
    verify the token's (allowed) alg; plus everything Verifier.verify raises. TypeError for a
    detached_payload that is not bytes.
    """

def decode_complete(
    token: bytes | str,
    key: KeyLike = "",
    algorithms: Sequence[str] | str | None = None,
    options: Mapping[str, Any] | None = None,
    audience: str | Iterable[str] | None = None,
    issuer: str | Container[str] | None = None,
    subject: str | None = None,
    leeway: float | timedelta = 0,
    *,
    detached_payload: bytes | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """decode(), returning ``{"payload": claims (dict), "header": dict, "signature": bytes}``
    (PyJWT's jwt.decode_complete). Raises as decode()."""

def jws_decode(
    jwt: bytes | str,
    key: KeyLike = "",
    algorithms: Sequence[str] | str | None = None,
    options: Mapping[str, Any] | None = None,
    detached_payload: bytes | None = None,
) -> bytes:
    """PyJWT's api_jws.decode() (exported as gwcore.jwt.api_jws.decode): verify a compact JWS
    and return its payload bytes, exactly as signed: b"" for an empty payload, any bytes (no
    UTF-8 or JSON check), ``detached_payload`` for a "b64": false token. Options:
    verify_signature, enforce_minimum_key_length. Raises as decode() minus the claim errors."""

def jws_decode_complete(
    jwt: bytes | str,
    key: KeyLike = "",
    algorithms: Sequence[str] | str | None = None,
    options: Mapping[str, Any] | None = None,
    detached_payload: bytes | None = None,
) -> dict[str, Any]:
    """PyJWT's api_jws.decode_complete(): ``{"payload": bytes, "header": dict,
    "signature": bytes}``. Raises as jws_decode()."""

def get_unverified_header(token: bytes | str) -> dict[str, Any]:
    """The JOSE header as a dict WITHOUT verifying the signature, read with PyJWT's framing
    (header checks still apply: strict JSON, no duplicate names, kid/typ strings, crit; a
    "b64": false not listed in crit is left for decoding to refuse, as in PyJWT).
    Raises DecodeError/InvalidTokenError.
    """
