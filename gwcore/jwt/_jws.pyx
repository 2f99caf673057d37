# distutils: sources = src_c/jws.c
# distutils: libraries = crypto
"""Compiled JWT verification: keys, key sets, a reusable Verifier and PyJWT-style decode().

Two framings over the same C core: the Verifier reads tokens strictly (RFC 7515); decode,
decode_complete, the JWS-level jws_decode/jws_decode_complete (gwcore.jwt.api_jws) and
get_unverified_header read them as PyJWT does (_PYJWT_FRAMING) and raise in PyJWT's order.

The token is split, its header and signature decoded and checked, and the signature verified in
C (src_c/jws.c, over libcrypto EVP); the claims JSON is checked strictly in C (duplicate names
rejected) and then turned into a dict by msgspec; the claim checks (RFC 7519 4.1, in PyJWT's
order and with PyJWT's exceptions) run here. Public signatures are documented in _jws.pyi.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.ref cimport PyObject
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.math cimport isfinite
from libc.stdint cimport uint8_t, uint32_t
from posix.time cimport CLOCK_REALTIME, clock_gettime, timespec

from collections.abc import Mapping
from datetime import timedelta

import msgspec

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


cdef extern from "jws.h" nogil:
    enum:
        GW_JWS_MAX_TOKEN
        GW_JWS_MAX_JSON
        GW_JWS_F_ENFORCE_MIN_KEY
        GW_JWS_P_PADDED
        GW_JWS_P_B64
        GW_JWS_P_SEGMENTS_FIRST
        GW_JWS_P_ALG_ANY_JSON
    enum gw_jws_error:
        GW_JWS_E_NONE, GW_JWS_E_TOO_LONG, GW_JWS_E_SEGMENTS, GW_JWS_E_HEADER_B64,
        GW_JWS_E_HEADER_JSON, GW_JWS_E_HEADER_PARAM, GW_JWS_E_CRIT, GW_JWS_E_CRIT_UNSUPPORTED,
        GW_JWS_E_B64_FALSE, GW_JWS_E_SIG_B64, GW_JWS_E_SIG_LENGTH, GW_JWS_E_SIGNATURE,
        GW_JWS_E_KEY_ALG, GW_JWS_E_KEY_TOO_SHORT, GW_JWS_E_PAYLOAD_B64, GW_JWS_E_PAYLOAD_JSON,
        GW_JWS_E_DUPLICATE, GW_JWS_E_KEY_INVALID, GW_JWS_E_KEY_UNSUPPORTED,
        GW_JWS_E_KEY_PRIVATE, GW_JWS_E_CRYPTO, GW_JWS_E_CRIT_ABSENT, GW_JWS_E_B64_CRIT,
        GW_JWS_E_B64_PAYLOAD, GW_JWS_E__COUNT
    enum gw_jws_alg:
        GW_JWS_HS512, GW_JWS_ALG__COUNT, GW_JWS_ALG_MISSING, GW_JWS_ALG_NONE, GW_JWS_ALG_UNKNOWN
    enum gw_jws_kty:
        GW_JWS_KTY_OCT, GW_JWS_KTY_RSA, GW_JWS_KTY_EC, GW_JWS_KTY_OKP
    enum gw_jws_crv:
        GW_JWS_CRV_NONE, GW_JWS_CRV_P256, GW_JWS_CRV_P384, GW_JWS_CRV_P521,
        GW_JWS_CRV_ED25519, GW_JWS_CRV_ED448

    ctypedef struct gw_json_scratch:
        uint32_t top_count

    ctypedef struct gw_jws:
        int error
        int alg
        int b64
        uint32_t signing_input_len
        uint32_t payload_off
        uint32_t payload_len
        uint32_t header_len
        uint32_t sig_len
        uint32_t json_len
        const uint8_t *kid
        uint32_t kid_len
        uint8_t json[1]
        uint8_t sig[1]
        gw_json_scratch scratch

    ctypedef struct gw_jws_key:
        pass

    int gw_jws_init()
    int gw_jws_sha256(const uint8_t *data, size_t len, uint8_t *out)
    size_t gw_b64url_decoded_len(size_t length)
    long gw_b64url_decode(const char *inp, size_t length, uint8_t *out)
    int gw_json_check_object(const uint8_t *buf, size_t length, gw_json_scratch *s, int *dup)
    int gw_jws_parse(gw_jws *t, const char *token, size_t length)
    int gw_jws_parse_ex(gw_jws *t, const char *token, size_t length, unsigned flags)
    int gw_jws_payload(gw_jws *t, const char *token)
    int gw_jws_verify(gw_jws_key *key, int alg, const uint8_t *msg, size_t msg_len,
                      const uint8_t *sig, size_t sig_len, unsigned flags, int *error)
    int gw_jws_key_secret(const uint8_t *k, size_t length, gw_jws_key **out, int *error)
    int gw_jws_key_pem(const char *pem, size_t length, gw_jws_key **out, int *error)
    int gw_jws_key_rsa(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len,
                       gw_jws_key **out, int *error)
    int gw_jws_key_ec(int crv, const uint8_t *x, size_t x_len, const uint8_t *y, size_t y_len,
                      gw_jws_key **out, int *error)
    int gw_jws_key_okp(int crv, const uint8_t *x, size_t x_len, gw_jws_key **out, int *error)
    void gw_jws_key_free(gw_jws_key *key)
    int gw_jws_key_kty(const gw_jws_key *key)
    int gw_jws_key_crv(const gw_jws_key *key)
    int gw_jws_key_bits(const gw_jws_key *key)
    uint32_t gw_jws_key_algs(const gw_jws_key *key)
    const char *gw_jws_alg_name(int alg)


if gw_jws_init() != 0:
    raise ImportError("libcrypto provides no HMAC or SHA-2 implementation")

MAX_TOKEN_BYTES = GW_JWS_MAX_TOKEN

cdef object _json_decode = msgspec.json.Decoder().decode
cdef object _MsgspecError = msgspec.DecodeError

cdef dict _ALG_BY_NAME = {gw_jws_alg_name(a).decode(): a for a in range(GW_JWS_ALG__COUNT)}
cdef tuple _KTY_NAME = ("oct", "RSA", "EC", "OKP")
cdef tuple _CRV_NAME = (None, "P-256", "P-384", "P-521", "Ed25519", "Ed448")
cdef dict _EC_CRV = {"P-256": GW_JWS_CRV_P256, "P-384": GW_JWS_CRV_P384, "P-521": GW_JWS_CRV_P521}
cdef dict _OKP_CRV = {"Ed25519": GW_JWS_CRV_ED25519, "Ed448": GW_JWS_CRV_ED448}
cdef tuple _SSH_PREFIXES = (b"ssh-rsa", b"ssh-dss", b"ssh-ed25519", b"ssh-ed448", b"ecdsa-sha2-",
                            b"sk-ssh-", b"sk-ecdsa-")

# C error code -> (exception class, message, code); codes are metric/log labels.
cdef list _ERRORS = [None] * GW_JWS_E__COUNT
_ERRORS[GW_JWS_E_TOO_LONG] = (DecodeError, "Token longer than 8192 bytes", "too_long")
_ERRORS[GW_JWS_E_SEGMENTS] = (DecodeError, "Token is not three base64url segments", "segments")
_ERRORS[GW_JWS_E_HEADER_B64] = (DecodeError, "Header segment is not base64url", "header")
_ERRORS[GW_JWS_E_HEADER_JSON] = (DecodeError, "Header is not a JSON object", "header")
_ERRORS[GW_JWS_E_HEADER_PARAM] = (
    DecodeError, "Header alg, kid and typ must be strings and b64 a boolean", "header")
_ERRORS[GW_JWS_E_CRIT] = (
    InvalidTokenError, "Invalid 'crit' header: must be a non-empty list of strings", "crit")
_ERRORS[GW_JWS_E_CRIT_UNSUPPORTED] = (
    InvalidTokenError, "Unsupported critical extension", "crit")
_ERRORS[GW_JWS_E_B64_FALSE] = (
    DecodeError, "Unencoded payloads (b64: false) are not supported", "header")
_ERRORS[GW_JWS_E_SIG_B64] = (DecodeError, "Signature segment is not base64url", "signature")
_ERRORS[GW_JWS_E_SIG_LENGTH] = (
    InvalidSignatureError, "Signature length does not match the algorithm", "bad_signature")
_ERRORS[GW_JWS_E_SIGNATURE] = (
    InvalidSignatureError, "Signature verification failed", "bad_signature")
_ERRORS[GW_JWS_E_KEY_ALG] = (
    InvalidAlgorithmError, "The key cannot verify this algorithm", "bad_algorithm")
_ERRORS[GW_JWS_E_KEY_TOO_SHORT] = (
    InvalidKeyError, "Key shorter than RFC 7518 requires (HMAC: hash size, RSA: 2048 bits)",
    "key_too_short")
_ERRORS[GW_JWS_E_PAYLOAD_B64] = (DecodeError, "Payload segment is not base64url", "payload")
_ERRORS[GW_JWS_E_PAYLOAD_JSON] = (DecodeError, "Payload is not a JSON object", "payload")
_ERRORS[GW_JWS_E_DUPLICATE] = (DecodeError, "Duplicate JSON member name", "duplicate_member")
_ERRORS[GW_JWS_E_KEY_INVALID] = (InvalidKeyError, "Key material is malformed", "invalid_key")
_ERRORS[GW_JWS_E_KEY_UNSUPPORTED] = (
    InvalidKeyError, "Key type or curve not supported", "invalid_key")
_ERRORS[GW_JWS_E_KEY_PRIVATE] = (
    InvalidKeyError, "A private key was given: verification takes the public key", "invalid_key")
_ERRORS[GW_JWS_E_CRYPTO] = (PyJWTError, "libcrypto failure", "crypto")
_ERRORS[GW_JWS_E_CRIT_ABSENT] = (
    InvalidTokenError, "Critical extension 'b64' is missing from the header", "crit")
_ERRORS[GW_JWS_E_B64_CRIT] = (
    InvalidTokenError, "The 'b64' header parameter requires 'b64' to be listed in 'crit'", "crit")
_ERRORS[GW_JWS_E_B64_PAYLOAD] = (
    DecodeError, "Payload segment must be empty when 'b64' is false", "payload")

# PyJWT's framing, for the PyJWT-compatible functions (decode, decode_complete, api_jws,
# get_unverified_header): padded segments accepted, RFC 7797 detached payloads understood, every
# segment's base64url checked before a header parameter is judged, and an alg of any JSON type
# left to the algorithms policy (InvalidAlgorithmError). Verifier stays strict RFC 7515.
cdef unsigned _PYJWT_FRAMING = (GW_JWS_P_PADDED | GW_JWS_P_B64 | GW_JWS_P_SEGMENTS_FIRST
                                | GW_JWS_P_ALG_ANY_JSON)


cdef object _error(int code):
    cls, message, label = _ERRORS[code]
    return cls(message, label)


cdef inline double _clock() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


cdef bytes _as_bytes(object data, str what):
    if isinstance(data, bytes):
        return <bytes>data
    if isinstance(data, str):
        return (<str>data).encode("utf-8")
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"{what} must be bytes or str, not {type(data).__name__}")


def sha256(bytes data) -> bytes:
    """SHA-256 digest (32 bytes) of data, through libcrypto with the digest fetched once:
    the key of the gateway's verified-token cache. RuntimeError if libcrypto fails."""
    cdef uint8_t out[32]
    if gw_jws_sha256(<const uint8_t *>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data),
                     out) != 0:
        raise RuntimeError("libcrypto SHA-256 failed")
    return PyBytes_FromStringAndSize(<char *>out, 32)


def b64url_decode(data: bytes | str) -> bytes:
    """Decode strict base64url (RFC 7515 section 2: no padding, canonical final bits).

    Raises ValueError on any other input.
    """
    cdef bytes raw = _as_bytes(data, "data")
    cdef bytes out = PyBytes_FromStringAndSize(NULL, gw_b64url_decoded_len(len(raw)))
    cdef long n = gw_b64url_decode(PyBytes_AS_STRING(raw), len(raw),
                                   <uint8_t *>PyBytes_AS_STRING(out))
    if n < 0:
        raise ValueError("not strict base64url")
    return out


cdef bytes _jwk_b64(object jwk, str member):
    value = jwk.get(member)
    if not isinstance(value, str):
        raise InvalidKeyError(f"JWK member {member!r} missing or not a string")
    try:
        return b64url_decode(value)
    except (ValueError, UnicodeEncodeError):
        raise InvalidKeyError(f"JWK member {member!r} is not base64url") from None


cdef bint _looks_like_public_key(bytes data):
    """True for text an HMAC secret must never be: PEM, SSH or JWK key material."""
    if b"-----BEGIN " in data:
        return True
    cdef bytes s = data.lstrip()
    if s.startswith(_SSH_PREFIXES):
        return True
    if s.startswith(b"{"):
        try:
            obj = _json_decode(s)
        except _MsgspecError:
            return False
        return isinstance(obj, dict) and "kty" in obj
    return False


cdef class Key:
    """One verification key, prepared once: an HMAC secret, or an RSA, EC or EdDSA public key.

    Made by Key.from_secret, Key.from_pem or Key.from_jwk; immutable. ``kid`` (str or None)
    selects it in a KeySet; ``algorithms`` is the set of JWS alg values it verifies.
    """

    cdef gw_jws_key *_k
    cdef uint32_t _algs
    cdef readonly object kid

    def __cinit__(self):
        self._k = NULL

    def __dealloc__(self):
        gw_jws_key_free(self._k)

    def __init__(self, *args, **kwargs):
        raise TypeError("use Key.from_secret, Key.from_pem or Key.from_jwk")

    @staticmethod
    cdef Key _wrap(int rc, gw_jws_key *k, int err, object kid, object alg):
        if rc < 0:
            raise _error(err)
        cdef Key key = Key.__new__(Key)
        key._k = k
        key._algs = gw_jws_key_algs(k)
        if kid is not None and not isinstance(kid, str):
            raise InvalidKeyError("kid must be a string")
        key.kid = kid
        if alg is not None:
            a = _ALG_BY_NAME.get(alg)
            if a is None or not (key._algs & (1u << <int>a)):
                raise InvalidKeyError(f"alg {alg!r} cannot be used with this {key.kty} key")
            key._algs = 1u << <int>a
        return key

    @staticmethod
    def from_secret(secret, *, kid=None, alg=None):
        """HMAC key from secret bytes (str is UTF-8 encoded); usable for HS256/384/512 only.

        Raises InvalidKeyError if the secret is empty or looks like PEM, SSH or JWK public
        key material (RFC 8725 2.1, the CVE-2022-29217 class of algorithm confusion).
        """
        cdef bytes data = _as_bytes(secret, "secret")
        if _looks_like_public_key(data):
            raise InvalidKeyError(
                "The key looks like a public key or certificate and cannot be an HMAC secret")
        cdef gw_jws_key *k = NULL
        cdef int err = 0
        cdef int rc = gw_jws_key_secret(<const uint8_t *>PyBytes_AS_STRING(data), len(data),
                                        &k, &err)
        return Key._wrap(rc, k, err, kid, alg)

    @staticmethod
    def from_pem(pem, *, kid=None, alg=None):
        """Public key from one PEM block: PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE.

        Raises InvalidKeyError for private keys, unsupported types (only RSA, EC P-256/384/521,
        Ed25519, Ed448) and malformed input.
        """
        cdef bytes data = _as_bytes(pem, "pem")
        cdef gw_jws_key *k = NULL
        cdef int err = 0
        cdef int rc = gw_jws_key_pem(PyBytes_AS_STRING(data), len(data), &k, &err)
        return Key._wrap(rc, k, err, kid, alg)

    @staticmethod
    def from_jwk(jwk):
        """Key from a JWK (RFC 7517 4, RFC 7518 6, RFC 8037 2) given as a mapping.

        kty RSA (n, e), EC (crv P-256/P-384/P-521, x, y), OKP (crv Ed25519/Ed448, x) or oct (k).
        "use" must be "sig" and "key_ops" must contain "verify" when present; "alg" restricts
        the key to that algorithm; "kid" is kept. Private members ("d") are refused.
        Raises InvalidKeyError.
        """
        if not isinstance(jwk, Mapping):
            raise InvalidKeyError("a JWK must be a JSON object")
        kty = jwk.get("kty")
        use = jwk.get("use")
        ops = jwk.get("key_ops")
        kid = jwk.get("kid")
        alg = jwk.get("alg")
        if use is not None and use != "sig":
            raise InvalidKeyError(f"JWK use {use!r} is not 'sig'")
        if ops is not None and (not isinstance(ops, (list, tuple)) or "verify" not in ops):
            raise InvalidKeyError("JWK key_ops does not allow 'verify'")
        if alg is not None and not isinstance(alg, str):
            raise InvalidKeyError("JWK alg must be a string")
        if kty != "oct" and "d" in jwk:
            raise InvalidKeyError("JWK holds private key material ('d'); give the public key")
        cdef gw_jws_key *k = NULL
        cdef int err = 0, rc
        cdef bytes a, b
        if kty == "oct":
            a = _jwk_b64(jwk, "k")
            if _looks_like_public_key(a):
                raise InvalidKeyError("oct JWK secret looks like a public key")
            rc = gw_jws_key_secret(<const uint8_t *>PyBytes_AS_STRING(a), len(a), &k, &err)
        elif kty == "RSA":
            a = _jwk_b64(jwk, "n")
            b = _jwk_b64(jwk, "e")
            rc = gw_jws_key_rsa(<const uint8_t *>PyBytes_AS_STRING(a), len(a),
                                <const uint8_t *>PyBytes_AS_STRING(b), len(b), &k, &err)
        elif kty == "EC":
            crv = _EC_CRV.get(jwk.get("crv"))
            if crv is None:
                raise InvalidKeyError(f"unsupported EC crv {jwk.get('crv')!r}")
            a = _jwk_b64(jwk, "x")
            b = _jwk_b64(jwk, "y")
            rc = gw_jws_key_ec(crv, <const uint8_t *>PyBytes_AS_STRING(a), len(a),
                               <const uint8_t *>PyBytes_AS_STRING(b), len(b), &k, &err)
        elif kty == "OKP":
            crv = _OKP_CRV.get(jwk.get("crv"))
            if crv is None:
                raise InvalidKeyError(f"unsupported OKP crv {jwk.get('crv')!r}")
            a = _jwk_b64(jwk, "x")
            rc = gw_jws_key_okp(crv, <const uint8_t *>PyBytes_AS_STRING(a), len(a), &k, &err)
        else:
            raise InvalidKeyError(f"unsupported JWK kty {kty!r}")
        return Key._wrap(rc, k, err, kid, alg)

    @property
    def kty(self):
        """"oct", "RSA", "EC" or "OKP" (RFC 7517 4.1)."""
        return _KTY_NAME[gw_jws_key_kty(self._k)]

    @property
    def curve(self):
        """"P-256", "P-384", "P-521", "Ed25519", "Ed448", or None for RSA and HMAC keys."""
        return _CRV_NAME[gw_jws_key_crv(self._k)]

    @property
    def bits(self):
        """Modulus, curve or secret size in bits."""
        return gw_jws_key_bits(self._k)

    @property
    def algorithms(self):
        """The JWS alg values this key verifies."""
        return frozenset(n for n, a in _ALG_BY_NAME.items() if self._algs & (1u << <int>a))

    def __repr__(self):
        return f"<Key {self.kty} {self.bits} bits kid={self.kid!r}>"


cdef class KeySet:
    """An immutable set of Keys indexed by kid (the base of gwcore.jwt.JWKSet).

    A token with a kid is tried against the keys with that kid, then the keys without one;
    a token without a kid against every key. Only keys whose algorithms include the token's
    alg are tried.
    """

    cdef readonly tuple keys
    cdef dict _by_kid   # UTF-8 kid -> keys with that kid, then the keys without a kid
    cdef tuple _wild    # keys without a kid

    def __init__(self, keys=()):
        cdef tuple ks = tuple(keys)
        cdef dict named = {}
        wild = []
        for k in ks:
            if not isinstance(k, Key):
                raise TypeError(f"KeySet holds Key objects, not {type(k).__name__}")
            if (<Key>k).kid is None:
                wild.append(k)
            else:
                named.setdefault((<Key>k).kid.encode("utf-8", "surrogatepass"), []).append(k)
        self._wild = tuple(wild)
        self._by_kid = {kid: tuple(v) + self._wild for kid, v in named.items()}
        self.keys = ks

    def __len__(self):
        return len(self.keys)

    def __iter__(self):
        return iter(self.keys)

    def kids(self):
        """The kid values present, as a frozenset of str."""
        return frozenset(k.kid for k in self.keys if k.kid is not None)


# Keys prepared for decode(): text keys by value; `cryptography` key objects (immutable,
# unhashable) by identity, the entry holding the object so its id cannot be reused.
cdef dict _KEY_CACHE = {}
cdef dict _OBJECT_CACHE = {}
cdef Py_ssize_t _KEY_CACHE_MAX = 128


cdef object _coerce_key(object key):
    """Key or KeySet from what decode() accepts; see Verifier.__init__."""
    if isinstance(key, (Key, KeySet)):
        return key
    if isinstance(key, (str, bytes, bytearray, memoryview)):
        data = _as_bytes(key, "key")
        if b"-----BEGIN " in data:
            return Key.from_pem(data)
        if data.lstrip().startswith(_SSH_PREFIXES):
            raise InvalidKeyError("SSH public keys are not supported: give the key as PEM")
        return Key.from_secret(data)
    if isinstance(key, Mapping):
        if "keys" in key:
            raise InvalidKeyError("a JWKS document: build a gwcore.jwt.JWKSet from it")
        return Key.from_jwk(key)
    if hasattr(key, "public_bytes") or hasattr(key, "public_key"):
        # a `cryptography` key object: only reachable when that package is installed
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
        public = key if hasattr(key, "public_bytes") else key.public_key()
        return Key.from_pem(public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    raise InvalidKeyError(f"unsupported key type {type(key).__name__}")


cdef object _coerce_key_cached(object key):
    if isinstance(key, (Key, KeySet)):
        return key
    cdef dict cache
    if type(key) is bytes or type(key) is str:
        cache, cache_key = _KEY_CACHE, key
    elif hasattr(key, "public_bytes") or hasattr(key, "public_key"):
        cache, cache_key = _OBJECT_CACHE, id(key)
    else:  # mutable (bytearray, a JWK dict): prepared anew each time
        return _coerce_key(key)
    entry = cache.get(cache_key)
    if entry is not None and (cache is _KEY_CACHE or (<tuple>entry)[0] is key):
        return (<tuple>entry)[1]
    prepared = _coerce_key(key)
    if len(cache) >= _KEY_CACHE_MAX:
        cache.clear()
    cache[cache_key] = (key, prepared)
    return prepared


cdef enum:
    F_EXP = 1
    F_NBF = 2
    F_IAT = 4
    F_AUD = 8
    F_ISS = 16
    F_SUB = 32
    F_JTI = 64
    F_STRICT_AUD = 128
    F_MIN_KEY = 256
    F_CLAIMS = F_EXP | F_NBF | F_IAT | F_AUD | F_ISS | F_SUB | F_JTI
    F_DEFAULT = F_CLAIMS | F_MIN_KEY

cdef dict _OPTION_FLAGS = {
    "verify_exp": F_EXP, "verify_nbf": F_NBF, "verify_iat": F_IAT, "verify_aud": F_AUD,
    "verify_iss": F_ISS, "verify_sub": F_SUB, "verify_jti": F_JTI, "strict_aud": F_STRICT_AUD,
    "enforce_minimum_key_length": F_MIN_KEY,
}


cdef double _number(object v, object exc, str message) except? -1.0:
    """A NumericDate (RFC 7519 2) as a double: int or float, never bool or str."""
    cdef double d
    cdef int overflow = 0
    cdef long long i
    if type(v) is int:
        i = PyLong_AsLongLongAndOverflow(v, &overflow)  # the common case, without a division
        if not overflow:
            return <double>i
        try:
            return <double>v
        except OverflowError:
            raise exc(message) from None
    if type(v) is float:
        d = v
        if isfinite(d):
            return d
    raise exc(message)

cdef object _token_buffer(object token, const char **buf, Py_ssize_t *n):
    """The object holding the token's bytes (keep it alive while *buf is used)."""
    if type(token) is bytes:
        buf[0] = PyBytes_AS_STRING(token)
        n[0] = PyBytes_GET_SIZE(token)
        return token
    if type(token) is str:
        if len(<str>token) > GW_JWS_MAX_TOKEN:
            raise _error(GW_JWS_E_TOO_LONG)
        buf[0] = PyUnicode_AsUTF8AndSize(token, n)
        return token
    if isinstance(token, (bytes, bytearray, memoryview)):
        token = bytes(token)
        buf[0] = PyBytes_AS_STRING(token)
        n[0] = PyBytes_GET_SIZE(token)
        return token
    raise DecodeError("Invalid token type. Token must be bytes or str", "segments")


cdef class Verifier:
    """Verifies tokens against fixed keys and a fixed policy, prepared once.

    The policy is PyJWT's decode() arguments; verify(token) then costs the signature check plus
    about a microsecond of parsing and claim checks. Threads may share a Verifier, and ``keys``
    may be replaced while others verify (each call uses either the old or the new keys).
    """

    cdef uint32_t _algs
    cdef unsigned _flags
    cdef tuple _single       # (Key,) when given one key, else None
    cdef KeySet _set         # when given a key set, else None
    cdef object _aud_str     # the audience when given as a str, else None
    cdef frozenset _aud_set  # the audiences when given as an iterable, else None
    cdef object _issuer      # None, a str, or a container of str
    cdef object _subject
    cdef double _leeway
    cdef tuple _require

    def __init__(self, key, algorithms, *, audience=None, issuer=None, subject=None, leeway=0,
                 options=None):
        self._configure(algorithms, audience, issuer, subject, leeway, options, False)
        self._set_key(_coerce_key(key))

    cdef int _configure(self, object algorithms, object audience, object issuer, object subject,
                        object leeway, object options, bint pyjwt) except -1:
        """The policy (everything but the key). Returns 1 when signatures are to be verified:
        always for a Verifier; for the PyJWT functions (pyjwt true) unless
        options["verify_signature"] is false, which as in PyJWT also makes algorithms optional
        and turns the verify_* claim checks off unless they are given explicitly."""
        cdef bint verify = True
        if options is not None and pyjwt:
            verify = bool(options.get("verify_signature", True))
        cdef uint32_t mask = 0
        if verify:
            if algorithms is None:
                raise DecodeError(
                    'It is required that you pass in a value for the "algorithms" argument')
            if isinstance(algorithms, str):
                algorithms = (algorithms,)
            for name in algorithms:
                a = _ALG_BY_NAME.get(name)
                if a is None:
                    raise InvalidAlgorithmError(f"Algorithm not supported: {name!r}")
                mask |= 1u << <int>a
            if mask == 0:
                raise DecodeError('The "algorithms" argument must name at least one algorithm')
        self._algs = mask

        cdef unsigned flags = F_DEFAULT if verify else (F_DEFAULT & ~F_CLAIMS)
        self._require = ()
        if options is not None:
            for opt, value in options.items():
                if opt == "require":
                    if isinstance(value, str) or not all(isinstance(c, str) for c in value):
                        raise TypeError('options["require"] must be a list of claim names')
                    self._require = tuple(value)
                elif opt == "verify_signature":
                    if not value and not pyjwt:
                        raise ValueError("verify_signature=False is not supported by a "
                                         "Verifier: use decode_complete() with it, or "
                                         "get_unverified_header()")
                elif opt in _OPTION_FLAGS:
                    bit = _OPTION_FLAGS[opt]
                    flags = (flags | bit) if value else (flags & ~(<unsigned>bit))
                else:
                    raise ValueError(f"unknown option {opt!r}")
        self._flags = flags

        if audience is None:
            self._aud_str = None
            self._aud_set = None
        elif isinstance(audience, str):
            self._aud_str = audience
            self._aud_set = None
        else:
            try:
                self._aud_set = frozenset(audience)
            except TypeError:
                raise TypeError("audience must be a string, iterable or None") from None
            self._aud_str = None
        if issuer is None or isinstance(issuer, str):
            self._issuer = issuer
        elif isinstance(issuer, (list, tuple, set)):
            self._issuer = frozenset(issuer)
        else:
            self._issuer = issuer
        if subject is not None and not isinstance(subject, str):
            raise TypeError("subject must be a string or None")
        self._subject = subject
        if isinstance(leeway, timedelta):
            leeway = leeway.total_seconds()
        self._leeway = leeway
        if not isfinite(self._leeway):
            raise ValueError("leeway must be a finite number of seconds")
        return verify

    cdef int _set_key(self, object key) except -1:
        """Use key, refusing a single key that fits none of the allowed algorithms (the
        Verifier's setup check; the PyJWT functions judge the key against the token's alg)."""
        if not isinstance(key, KeySet) and not ((<Key>key)._algs & self._algs):
            raise InvalidKeyError(
                f"The {(<Key>key).kty} key can verify none of the allowed algorithms")
        return self._use_key(key)

    cdef int _use_key(self, object key) except -1:
        if isinstance(key, KeySet):
            self._set = key
            self._single = None
        else:
            self._single = (key,)
            self._set = None
        return 0

    @property
    def keys(self):
        """The Key or KeySet in use; assign a new one (same forms as the constructor) to rotate."""
        return self._set if self._set is not None else self._single[0]

    @keys.setter
    def keys(self, value):
        self._set_key(_coerce_key(value))

    def verify(self, token, now=None):
        """Verify a compact JWS/JWT (bytes or str) and return its claims as a dict.

        ``now`` (seconds since the epoch, float) replaces the clock. Raises InvalidTokenError
        subclasses for refused tokens, InvalidKeyError for keys under the RFC 7518 minimum.
        """
        cdef double t = _clock() if now is None else now
        if not isfinite(t):
            raise ValueError("now must be finite")
        return self._verify(token, t)

    cdef tuple _candidates(self, gw_jws *t):
        if self._set is None:
            return self._single
        if t.kid == NULL:
            return self._set.keys
        kid = PyBytes_FromStringAndSize(<const char *>t.kid, t.kid_len)
        cdef PyObject *found = PyDict_GetItem(self._set._by_kid, kid)
        if found != NULL:
            return <tuple>found
        if not self._set._wild:
            raise UnknownKeyIdError("No key with the token's kid")
        return self._set._wild

    def verify_jws(self, token):
        """Verify the signature of a compact JWS (bytes or str) and return its payload bytes.

        No claim is checked and the payload need not be JSON (RFC 7515 5.2). Raises as verify().
        """
        cdef gw_jws t
        cdef const char *buf
        cdef Py_ssize_t n
        token = _token_buffer(token, &buf, &n)
        self._check_signature(&t, buf, n)
        cdef bytes out = PyBytes_FromStringAndSize(NULL, gw_b64url_decoded_len(t.payload_len))
        if gw_b64url_decode(buf + t.payload_off, t.payload_len,
                            <uint8_t *>PyBytes_AS_STRING(out)) < 0:
            raise _error(GW_JWS_E_PAYLOAD_B64)
        return out

    cdef dict _verify(self, object token, double now):
        cdef gw_jws t
        cdef const char *buf
        cdef Py_ssize_t n
        token = _token_buffer(token, &buf, &n)
        self._check_signature(&t, buf, n)
        if gw_jws_payload(&t, buf) < 0:
            raise _error(t.error)
        try:
            claims = _json_decode(PyBytes_FromStringAndSize(<const char *>t.json, t.json_len))
        except _MsgspecError as e:
            raise DecodeError(f"Invalid payload string: {e}", "payload") from None
        self._check_claims(<dict>claims, now)
        return <dict>claims

    cdef int _check_signature(self, gw_jws *t, const char *buf, Py_ssize_t n) except -1:
        """Parse the token into t (strict RFC 7515) and verify its signature with a candidate
        key."""
        if gw_jws_parse(t, buf, n) < 0:
            raise _error(t.error)
        self._check_alg(t.alg)
        return self._verify_with(t, <const uint8_t *>buf, t.signing_input_len, None)

    cdef int _check_alg(self, int alg) except -1:
        """PyJWT's alg checks, before any key is looked at: present, then allowed."""
        if alg >= GW_JWS_ALG__COUNT:
            if alg == GW_JWS_ALG_MISSING:
                raise InvalidAlgorithmError("Algorithm not specified")
            if alg == GW_JWS_ALG_NONE:
                raise InvalidAlgorithmError('Unsecured JWTs (alg "none") are never accepted')
            raise InvalidAlgorithmError("The specified alg value is not allowed")
        if not (self._algs & (1u << alg)):
            raise InvalidAlgorithmError("The specified alg value is not allowed")
        return 0

    cdef int _verify_with(self, gw_jws *t, const uint8_t *msg, size_t msg_len,
                          object given) except -1:
        """Verify t's signature over msg with the candidate keys for t's (allowed) alg.

        When no candidate can verify the alg: InvalidKeyError if ``given`` (the key as the
        caller of a PyJWT function gave it) is raw key material, which PyJWT's prepare_key
        refuses; else InvalidAlgorithmError (a Verifier's keys, or a Key or key set bound to
        other algorithms, like a PyJWK)."""
        cdef int rc, err = 0, sig_err = 0, other_err = 0
        cdef int alg = t.alg
        cdef Key k
        cdef unsigned vflags = GW_JWS_F_ENFORCE_MIN_KEY if self._flags & F_MIN_KEY else 0
        for obj in self._candidates(t):
            k = <Key>obj
            if not (k._algs & (1u << alg)):
                continue
            if alg <= GW_JWS_HS512:  # HMAC keys hold mutable MAC contexts: keep the GIL
                rc = gw_jws_verify(k._k, alg, msg, msg_len, t.sig, t.sig_len, vflags, &err)
            else:
                with nogil:
                    rc = gw_jws_verify(k._k, alg, msg, msg_len, t.sig, t.sig_len, vflags, &err)
            if rc == 0:
                return 0
            if err == GW_JWS_E_SIGNATURE or err == GW_JWS_E_SIG_LENGTH:
                sig_err = err
            else:
                other_err = err
        if sig_err:
            raise _error(sig_err)
        if other_err:
            raise _error(other_err)
        if given is not None and not isinstance(given, (Key, KeySet, Mapping)):
            k = <Key>self._single[0]
            raise InvalidKeyError(
                f"The {k.kty} key cannot verify {gw_jws_alg_name(alg).decode()} signatures")
        raise InvalidAlgorithmError("No key for the token's algorithm")

    cdef int _check_claims(self, dict claims, double now) except -1:
        # PyJWT's order, so the same token fails with the same exception
        cdef PyObject *p
        cdef unsigned flags = self._flags
        cdef double leeway = self._leeway
        for claim in self._require:
            p = PyDict_GetItem(claims, claim)
            if p == NULL or <object>p is None:
                raise MissingRequiredClaimError(claim)
        if flags & F_IAT:
            p = PyDict_GetItem(claims, "iat")
            if p != NULL and _number(<object>p, InvalidIssuedAtError,
                                     "Issued At claim (iat) must be a number") > now + leeway:
                raise ImmatureSignatureError("The token is not yet valid (iat)")
        if flags & F_NBF:
            p = PyDict_GetItem(claims, "nbf")
            if p != NULL and _number(<object>p, DecodeError,
                                     "Not Before claim (nbf) must be a number") > now + leeway:
                raise ImmatureSignatureError("The token is not yet valid (nbf)")
        if flags & F_EXP:
            p = PyDict_GetItem(claims, "exp")
            if p != NULL and _number(<object>p, DecodeError,
                                     "Expiration Time claim (exp) must be a number") <= now - leeway:
                raise ExpiredSignatureError("Signature has expired")
        if flags & F_ISS and self._issuer is not None:
            self._check_iss(claims)
        if flags & F_AUD:
            self._check_aud(claims)
        if flags & F_SUB:
            p = PyDict_GetItem(claims, "sub")
            if p == NULL:
                if self._subject is not None:
                    raise MissingRequiredClaimError("sub")
            elif type(<object>p) is not str:
                raise InvalidSubjectError("Subject must be a string")
            elif self._subject is not None and <object>p != self._subject:
                raise InvalidSubjectError("Invalid subject")
        if flags & F_JTI:
            p = PyDict_GetItem(claims, "jti")
            if p != NULL and type(<object>p) is not str:
                raise InvalidJTIError("JWT ID must be a string")
        return 0

    cdef int _check_iss(self, dict claims) except -1:
        cdef PyObject *p = PyDict_GetItem(claims, "iss")
        if p == NULL:
            raise MissingRequiredClaimError("iss")
        iss = <object>p
        if type(iss) is not str:
            raise InvalidIssuerError("Payload Issuer (iss) must be a string")
        if type(self._issuer) is str:
            if iss != self._issuer:
                raise InvalidIssuerError("Invalid issuer")
            return 0
        try:
            found = iss in self._issuer
        except TypeError:
            raise InvalidIssuerError('Issuer param must be "str" or "Container[str]"') from None
        if not found:
            raise InvalidIssuerError("Invalid issuer")
        return 0

    cdef int _check_aud(self, dict claims) except -1:
        cdef PyObject *p = PyDict_GetItem(claims, "aud")
        aud = None if p == NULL else <object>p
        if self._aud_str is None and self._aud_set is None:
            if aud:  # RFC 7519 4.1.3: a token for some audience, and we are none
                raise InvalidAudienceError("Invalid audience")
            return 0
        if not aud:
            raise MissingRequiredClaimError("aud")
        if self._flags & F_STRICT_AUD:
            if self._aud_str is None:
                raise InvalidAudienceError("Invalid audience (strict)")
            if type(aud) is not str:
                raise InvalidAudienceError("Invalid claim format in token (strict)")
            if aud != self._aud_str:
                raise InvalidAudienceError("Audience doesn't match (strict)")
            return 0
        if type(aud) is str:
            if not self._expects(aud):
                raise InvalidAudienceError("Audience doesn't match")
            return 0
        if type(aud) is not list:
            raise InvalidAudienceError("Invalid claim format in token")
        for a in <list>aud:
            if type(a) is not str:
                raise InvalidAudienceError("Invalid claim format in token")
        for a in <list>aud:
            if self._expects(a):
                return 0
        raise InvalidAudienceError("Audience doesn't match")

    cdef inline bint _expects(self, str aud):
        if self._aud_str is not None:
            return aud == self._aud_str
        return aud in self._aud_set


cdef bytes _detached_bytes(object detached):
    if type(detached) is bytes:
        return <bytes>detached
    if isinstance(detached, (bytearray, memoryview)):
        return bytes(detached)
    raise TypeError(f"detached_payload must be bytes, not {type(detached).__name__}")


cdef object _header_dict(gw_jws *t):
    try:
        return _json_decode(PyBytes_FromStringAndSize(<const char *>t.json, t.header_len))
    except _MsgspecError as e:  # valid JSON msgspec cannot represent, e.g. 1e400
        raise DecodeError(f"Invalid header string: {e}", "header") from None


cdef object _pyjwt_decode(object token, object key, object algorithms, object options,
                          object detached, bint claims, bint complete, object audience,
                          object issuer, object subject, object leeway, object now):
    """The one core of decode, decode_complete and api_jws: PyJWT's checks in PyJWT's order.

    Token structure (segments, base64url, header JSON, payload, signature segment), header
    parameters (kid, crit, b64), the detached payload rule, alg present and allowed, the key,
    the signature; then, for a JWT (claims true), the payload as a strict JSON object and the
    claims. Parsing and verification are the compiled C core; this only sequences it.
    """
    cdef Verifier v = Verifier.__new__(Verifier)
    cdef bint verify = v._configure(algorithms, audience, issuer, subject, leeway, options, True)
    cdef double t_now = 0.0
    if claims:
        t_now = _clock() if now is None else now
        if not isfinite(t_now):
            raise ValueError("now must be finite")
    cdef gw_jws t
    cdef const char *buf
    cdef Py_ssize_t n
    cdef int dup = 0
    token = _token_buffer(token, &buf, &n)
    if gw_jws_parse_ex(&t, buf, n, _PYJWT_FRAMING) < 0:
        raise _error(t.error)

    cdef bytes payload
    if t.b64:
        if detached is not None:
            raise DecodeError('It is only valid to pass "detached_payload" when the header has '
                              '"b64" set to false', "payload")
        payload = PyBytes_FromStringAndSize(NULL, gw_b64url_decoded_len(t.payload_len))
        if gw_b64url_decode(buf + t.payload_off, t.payload_len,
                            <uint8_t *>PyBytes_AS_STRING(payload)) < 0:
            raise _error(GW_JWS_E_PAYLOAD_B64)  # not reached: the parser checked it
    else:
        if detached is None:
            raise DecodeError('A token whose header has "b64" set to false needs the '
                              '"detached_payload" argument', "payload")
        payload = _detached_bytes(detached)
    header = _header_dict(&t) if complete else None

    cdef bytes msg
    if verify:
        v._check_alg(t.alg)
        v._use_key(_coerce_key_cached(key))
        if t.b64:
            v._verify_with(&t, <const uint8_t *>buf, t.signing_input_len, key)
        else:  # RFC 7797 3: the signing input is the header segment, ".", the payload bytes
            msg = PyBytes_FromStringAndSize(buf, t.payload_off) + payload
            v._verify_with(&t, <const uint8_t *>PyBytes_AS_STRING(msg), PyBytes_GET_SIZE(msg),
                           key)

    body = payload
    if claims:
        if PyBytes_GET_SIZE(payload) > GW_JWS_MAX_JSON:
            raise DecodeError(f"Payload larger than {GW_JWS_MAX_JSON} bytes", "payload")
        if gw_json_check_object(<const uint8_t *>PyBytes_AS_STRING(payload),
                                PyBytes_GET_SIZE(payload), &t.scratch, &dup) < 0:
            raise _error(GW_JWS_E_DUPLICATE if dup else GW_JWS_E_PAYLOAD_JSON)
        try:
            body = _json_decode(payload)
        except _MsgspecError as e:
            raise DecodeError(f"Invalid payload string: {e}", "payload") from None
        v._check_claims(<dict>body, t_now)
    if not complete:
        return body
    return {"payload": body, "header": header,
            "signature": PyBytes_FromStringAndSize(<const char *>t.sig, t.sig_len)}


def decode(token, key="", algorithms=None, options=None, audience=None, issuer=None,
           subject=None, leeway=0, *, detached_payload=None, now=None):
    """Verify a JWT and return its claims (dict), with PyJWT's arguments, framing (padded
    segments, RFC 7797 detached payloads) and exceptions in PyJWT's order: DecodeError for the
    structure, InvalidTokenError for kid/crit, InvalidAlgorithmError for an alg missing or not
    in algorithms (before the key is looked at), InvalidKeyError for a key that cannot verify
    it, InvalidSignatureError, then the claim errors. See _jws.pyi for the details.

    See Verifier for the accepted keys and the policy; prepared keys are cached, so repeated
    calls with the same key str/bytes do not re-parse it. Prefer a Verifier for a fixed policy.
    """
    return _pyjwt_decode(token, key, algorithms, options, detached_payload, True, False,
                         audience, issuer, subject, leeway, now)


def decode_complete(token, key="", algorithms=None, options=None, audience=None, issuer=None,
                    subject=None, leeway=0, *, detached_payload=None, now=None):
    """decode(), returning {"payload": claims (dict), "header": dict, "signature": bytes}.

    Raises as decode().
    """
    return _pyjwt_decode(token, key, algorithms, options, detached_payload, True, True,
                         audience, issuer, subject, leeway, now)


def jws_decode(jwt, key="", algorithms=None, options=None, detached_payload=None):
    """PyJWT's api_jws.decode(): verify a compact JWS and return its payload as bytes.

    Any payload: b"" when empty, not necessarily UTF-8 or JSON; ``detached_payload`` (bytes)
    for a "b64": false token. Raises DecodeError, InvalidTokenError, InvalidAlgorithmError,
    InvalidKeyError, InvalidSignatureError in PyJWT's order; TypeError for a detached_payload
    that is not bytes.
    """
    return _pyjwt_decode(jwt, key, algorithms, options, detached_payload, False, False,
                         None, None, None, 0, None)


def jws_decode_complete(jwt, key="", algorithms=None, options=None, detached_payload=None):
    """PyJWT's api_jws.decode_complete(): {"payload": bytes, "header": dict, "signature": bytes}.

    Raises as jws_decode().
    """
    return _pyjwt_decode(jwt, key, algorithms, options, detached_payload, False, True,
                         None, None, None, 0, None)


def get_unverified_header(token):
    """The JOSE header of a token as a dict, WITHOUT verifying the signature.

    The header is checked as decode() checks it (PyJWT's framing; strict JSON, no duplicate
    names, kid a string, crit understood) and every segment must be base64url; as in PyJWT,
    a "b64": false not listed in crit is left for decoding to refuse. Raises DecodeError or
    InvalidTokenError.
    """
    cdef gw_jws t
    cdef const char *buf
    cdef Py_ssize_t n
    token = _token_buffer(token, &buf, &n)
    # the b64-in-crit rule (reported last) belongs to decoding, not to reading the header
    if gw_jws_parse_ex(&t, buf, n, _PYJWT_FRAMING) < 0 and t.error != GW_JWS_E_B64_CRIT:
        raise _error(t.error)
    return _header_dict(&t)
