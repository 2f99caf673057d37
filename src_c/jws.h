/* jws.h - JWS compact serialization verification over OpenSSL libcrypto.
 *
 * Contract
 * - Written from RFC 7515 (JWS), RFC 7518 (algorithms), RFC 7519 (JWT), RFC 8037 (EdDSA),
 *   RFC 7517 (key material), RFC 8259 (JSON) and RFC 8725 (JWT best practices).
 * - Strict: base64url without padding and with canonical trailing bits; JSON texts are validated
 *   in full (grammar, UTF-8, no lone surrogates, nesting depth) and a duplicate member name in
 *   any object is an error, compared after unescaping. gw_jws_parse_ex relaxes exactly what its
 *   GW_JWS_P_* flags name (RFC 4648 padding, RFC 7797 "b64") and nothing else.
 * - Every cryptographic operation goes through libcrypto EVP (EVP_MAC for HMAC,
 *   EVP_DigestVerify for RSA, RSA-PSS, ECDSA and EdDSA); MACs are compared with CRYPTO_memcmp.
 * - Nothing here allocates per token itself; OpenSSL 3.0 does inside EVP: the short-lived
 *   contexts of an asymmetric verification, and two small copies in EVP_MAC_init for HS*.
 *   A gw_jws is the caller's (usually on the stack); keys are created once by the
 *   gw_jws_key_* constructors and freed with gw_jws_key_free.
 * - Return values: >= 0 success, -1 error with a gw_jws_error code (in ->error or *error).
 * - Threads: gw_jws_init must have returned 0 before anything else is called. A gw_jws_key is
 *   read-only for RSA/EC/OKP keys (any number of threads may verify with it at once); an HMAC
 *   key holds prepared MAC contexts, so calls with the same HMAC key must be serialised by the
 *   caller (the Python binding holds the GIL during them).
 * - The OpenSSL error queue is left empty by every function.
 */
#ifndef GW_JWS_H
#define GW_JWS_H

#include <stddef.h>
#include <stdint.h>

#ifndef GW_LIKELY
#define GW_LIKELY(x) __builtin_expect(!!(x), 1)
#define GW_UNLIKELY(x) __builtin_expect(!!(x), 0)
#endif

/* Limits. A token longer than GW_JWS_MAX_TOKEN is rejected before anything is decoded. */
#define GW_JWS_MAX_TOKEN 8192
#define GW_JWS_MAX_JSON ((GW_JWS_MAX_TOKEN / 4) * 3)  /* largest decoded header or payload */
#define GW_JWS_MAX_SIG 2048                            /* RSA-16384 signature bytes */
#define GW_JWS_MAX_DEPTH 64                            /* JSON nesting depth */
#define GW_JWS_MAX_MEMBERS (GW_JWS_MAX_JSON / 4 + 1)   /* `"":0` is the shortest member */

enum gw_jws_error {
    GW_JWS_E_NONE = 0,
    GW_JWS_E_TOO_LONG,          /* token longer than GW_JWS_MAX_TOKEN */
    GW_JWS_E_SEGMENTS,          /* not exactly three '.'-separated segments */
    GW_JWS_E_HEADER_B64,        /* header segment is not strict base64url */
    GW_JWS_E_HEADER_JSON,       /* header is not a valid JSON object (RFC 8259) */
    GW_JWS_E_HEADER_PARAM,      /* alg, kid or typ not a string; b64 not a boolean */
    GW_JWS_E_CRIT,              /* crit not a non-empty array of strings (RFC 7515 4.1.11) */
    GW_JWS_E_CRIT_UNSUPPORTED,  /* crit names an extension this verifier does not implement */
    GW_JWS_E_B64_FALSE,         /* unencoded payload (RFC 7797) is not supported */
    GW_JWS_E_SIG_B64,           /* signature segment is not strict base64url */
    GW_JWS_E_SIG_LENGTH,        /* signature length wrong for the algorithm and key */
    GW_JWS_E_SIGNATURE,         /* signature does not verify */
    GW_JWS_E_KEY_ALG,           /* the key cannot be used with this algorithm */
    GW_JWS_E_KEY_TOO_SHORT,     /* key under the RFC 7518 minimum (HMAC: hash size; RSA: 2048) */
    GW_JWS_E_PAYLOAD_B64,       /* payload segment is not strict base64url */
    GW_JWS_E_PAYLOAD_JSON,      /* payload is not a valid JSON object */
    GW_JWS_E_DUPLICATE,         /* duplicate member name in a header or payload object */
    GW_JWS_E_KEY_INVALID,       /* key material malformed (constructors) */
    GW_JWS_E_KEY_UNSUPPORTED,   /* key type or curve not supported (constructors) */
    GW_JWS_E_KEY_PRIVATE,       /* PEM holds a private key: only public keys are accepted */
    GW_JWS_E_CRYPTO,            /* libcrypto failed (allocation, missing algorithm) */
    GW_JWS_E_CRIT_ABSENT,       /* crit names a parameter the header lacks (GW_JWS_P_B64) */
    GW_JWS_E_B64_CRIT,          /* b64 false but "b64" not listed in crit (RFC 7797 3) */
    GW_JWS_E_B64_PAYLOAD,       /* b64 false but the payload segment is not empty (detached) */
    GW_JWS_E__COUNT
};

/* JWS "alg" values (RFC 7518 3.1, RFC 8037 3.1). Values are bit positions in key masks. */
enum gw_jws_alg {
    GW_JWS_HS256 = 0, GW_JWS_HS384, GW_JWS_HS512,
    GW_JWS_RS256, GW_JWS_RS384, GW_JWS_RS512,
    GW_JWS_PS256, GW_JWS_PS384, GW_JWS_PS512,
    GW_JWS_ES256, GW_JWS_ES384, GW_JWS_ES512,
    GW_JWS_EDDSA,
    GW_JWS_ALG__COUNT,
    /* header classifications that are not algorithms */
    GW_JWS_ALG_MISSING = 100,   /* no "alg" member */
    GW_JWS_ALG_NONE,            /* "none" in any letter case (RFC 8725 3.1: never accepted) */
    GW_JWS_ALG_UNKNOWN          /* any other value */
};

/* Key kinds (RFC 7517 "kty") and curves. */
enum gw_jws_kty { GW_JWS_KTY_OCT = 0, GW_JWS_KTY_RSA, GW_JWS_KTY_EC, GW_JWS_KTY_OKP };
enum gw_jws_crv {
    GW_JWS_CRV_NONE = 0, GW_JWS_CRV_P256, GW_JWS_CRV_P384, GW_JWS_CRV_P521,
    GW_JWS_CRV_ED25519, GW_JWS_CRV_ED448
};

/* gw_jws_verify flags */
#define GW_JWS_F_ENFORCE_MIN_KEY 1u  /* apply RFC 7518 minimum key sizes (3.2, 3.3, 3.5) */

/* gw_jws_parse_ex flags (0 is gw_jws_parse: strict RFC 7515, no extension) */
#define GW_JWS_P_PADDED 1u   /* accept RFC 4648 3.2 padding on each segment: one or two '='
                                making the segment a multiple of 4 characters, nothing else */
#define GW_JWS_P_B64 2u      /* implement RFC 7797 "b64" in its detached form: crit may list
                                "b64" (which must then be present); b64 false requires "b64" in
                                crit and an empty payload segment, and sets t->b64 = 0 */
#define GW_JWS_P_SEGMENTS_FIRST 4u  /* report a header parameter error (alg, kid, typ, b64 types;
                                crit) only after the payload and signature segments passed their
                                base64url checks; the payload is checked, not decoded */
#define GW_JWS_P_ALG_ANY_JSON 8u  /* an alg that is not a JSON string is classified
                                GW_JWS_ALG_UNKNOWN (for the caller's policy to refuse) instead of
                                failing with GW_JWS_E_HEADER_PARAM */

/* One member of a JSON object seen by the scanner: the unescaped name and the raw value text. */
typedef struct {
    const uint8_t *name;        /* into the input or into gw_json_scratch.unesc */
    uint32_t name_len;
    uint32_t value_off, value_len;  /* raw JSON text of the value within the input */
} gw_json_member;

/* Scratch space of the JSON scanner; the caller's, contents undefined between calls.
 * After a successful gw_json_check_object, members[0..top_count) are the top-level members
 * (in no particular order). */
typedef struct {
    uint32_t top_count;
    uint32_t unesc_len;
    gw_json_member members[GW_JWS_MAX_MEMBERS];
    uint8_t unesc[GW_JWS_MAX_JSON];
} gw_json_scratch;

/* A parsed token. Needs no initialisation; about 44 KiB, fine on the stack.
 * Pointers (kid, typ) point into the token or into this structure and stay valid until
 * gw_jws_payload is called on it. */
typedef struct {
    int error;                    /* gw_jws_error of the last failed call */
    int alg;                      /* gw_jws_alg, or GW_JWS_ALG_MISSING/_NONE/_UNKNOWN */
    int b64;                      /* 1; 0 for an unencoded detached payload (GW_JWS_P_B64) */
    uint32_t signing_input_len;   /* token[0 .. signing_input_len) is "header.payload" */
    uint32_t payload_off, payload_len;  /* base64url payload text within the token, without
                                           its padding (GW_JWS_P_PADDED) */
    uint32_t header_len;          /* decoded header JSON in json[] */
    uint32_t sig_len;             /* decoded signature in sig[] */
    const uint8_t *kid;           /* unescaped UTF-8, or NULL if absent */
    uint32_t kid_len;
    const uint8_t *typ;           /* unescaped UTF-8, or NULL if absent */
    uint32_t typ_len;
    uint32_t json_len;            /* decoded payload JSON in json[] after gw_jws_payload */
    uint8_t json[GW_JWS_MAX_JSON];
    uint8_t sig[GW_JWS_MAX_SIG];
    gw_json_scratch scratch;
} gw_jws;

typedef struct gw_jws_key gw_jws_key;

/* Fetch the algorithms once. 0 ok, -1 if libcrypto lacks one. Idempotent, not thread-safe. */
int gw_jws_init(void);

/* SHA-256 of data[0..len) into out[32] with the digest fetched by gw_jws_init (the token
 * cache's key). 0 ok, -1 on a libcrypto failure (error queue cleared). Reuses one static
 * EVP_MD_CTX: not thread-safe (callers hold the GIL); OpenSSL 3.0 still allocates its
 * provider context once per call. */
int gw_jws_sha256(const uint8_t *data, size_t len, uint8_t out[32]);

/* Strict base64url (RFC 4648 5, RFC 7515 2 and C): no padding, alphabet only, length % 4 != 1,
 * unused trailing bits zero. Writes at most gw_b64url_decoded_len(len) bytes to out (which
 * must hold that many). Returns the decoded length, or -1. */
size_t gw_b64url_decoded_len(size_t len);
long gw_b64url_decode(const char *in, size_t len, uint8_t *out);

/* Validate a JSON text whose top-level value must be an object; see the contract above.
 * 0 ok (s->members[0..s->top_count) filled), -1 invalid (*dup set to 1 when the only fault
 * found is a duplicate member name). len <= GW_JWS_MAX_JSON. */
int gw_json_check_object(const uint8_t *buf, size_t len, gw_json_scratch *s, int *dup);

/* Split a compact JWS, decode and check the JOSE header (RFC 7515 4) and the signature.
 * Header checks: strict JSON object without duplicate names; alg, kid and typ strings when
 * present; crit, when present, a non-empty array of strings, all of which are unsupported
 * (no extension is implemented, so any crit is GW_JWS_E_CRIT_UNSUPPORTED); b64 false rejected.
 * The alg value is classified in t->alg but not judged (the caller applies its policy).
 * The payload is left encoded. 0 ok, -1 error in t->error. */
int gw_jws_parse(gw_jws *t, const char *token, size_t len);

/* gw_jws_parse with GW_JWS_P_* flags. Order of the checks with GW_JWS_P_SEGMENTS_FIRST: length,
 * segments, header base64url, header JSON, payload segment (empty when b64 is false, else
 * base64url), signature base64url, then header parameters (alg/kid/typ/b64 types, then crit,
 * then the b64-in-crit rule). For an unencoded payload (t->b64 == 0) the signing input is
 * token[0 .. payload_off) followed by the caller's detached payload. 0 ok, -1 in t->error. */
int gw_jws_parse_ex(gw_jws *t, const char *token, size_t len, unsigned flags);

/* Decode the payload of a parsed token into t->json and check it is a strict JSON object
 * (RFC 7519 7.2 steps 9-10, duplicate claim names rejected per RFC 7519 4). Not for an
 * unencoded payload (t->b64 == 0: the caller holds it; use gw_json_check_object).
 * Invalidates t->kid and t->typ. 0 ok, -1 error in t->error. */
int gw_jws_payload(gw_jws *t, const char *token);

/* Verify sig over msg with key under alg. 0 valid; -1 with *error one of GW_JWS_E_KEY_ALG,
 * GW_JWS_E_KEY_TOO_SHORT, GW_JWS_E_SIG_LENGTH, GW_JWS_E_SIGNATURE, GW_JWS_E_CRYPTO.
 * ES signatures are raw R||S of exactly twice the curve's coordinate size (RFC 7518 3.4);
 * PS salt length equals the hash size (RFC 7518 3.5); HMAC tags must be full length. */
int gw_jws_verify(gw_jws_key *key, int alg, const uint8_t *msg, size_t msg_len,
                  const uint8_t *sig, size_t sig_len, unsigned flags, int *error);

/* Key constructors: 0 and *out set (free with gw_jws_key_free), or -1 with *error.
 * - secret: HMAC key bytes (copied), non-empty.
 * - pem: one PEM block, "PUBLIC KEY" (SPKI), "RSA PUBLIC KEY" (PKCS #1) or "CERTIFICATE";
 *   private keys are refused (GW_JWS_E_KEY_PRIVATE).
 * - rsa: big-endian unsigned n and e (RFC 7518 6.3.1); n and e odd, e > 1.
 * - ec: x and y of exactly the curve's coordinate size (RFC 7518 6.2.1); point checked.
 * - okp: Ed25519 (32 bytes) or Ed448 (57 bytes) public key x (RFC 8037 2). */
int gw_jws_key_secret(const uint8_t *k, size_t len, gw_jws_key **out, int *error);
int gw_jws_key_pem(const char *pem, size_t len, gw_jws_key **out, int *error);
int gw_jws_key_rsa(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len,
                   gw_jws_key **out, int *error);
int gw_jws_key_ec(int crv, const uint8_t *x, size_t x_len, const uint8_t *y, size_t y_len,
                  gw_jws_key **out, int *error);
int gw_jws_key_okp(int crv, const uint8_t *x, size_t x_len, gw_jws_key **out, int *error);
void gw_jws_key_free(gw_jws_key *key);

/* Introspection: kind (gw_jws_kty), curve (gw_jws_crv), size in bits (HMAC: key bits),
 * and the mask (1u << gw_jws_alg) of the algorithms this key can verify. */
int gw_jws_key_kty(const gw_jws_key *key);
int gw_jws_key_crv(const gw_jws_key *key);
int gw_jws_key_bits(const gw_jws_key *key);
uint32_t gw_jws_key_algs(const gw_jws_key *key);

/* "HS256" ... "EdDSA" -> gw_jws_alg; "none" in any case -> GW_JWS_ALG_NONE; else UNKNOWN. */
int gw_jws_alg_from_name(const uint8_t *name, size_t len);
const char *gw_jws_alg_name(int alg);

#endif
