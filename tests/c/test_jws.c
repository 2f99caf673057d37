/* test_jws.c - unit tests of src_c/jws.c, run under ASan/UBSan by tests/c/test_c.py.
 *
 * Covers strict base64url (RFC 4648 vectors, exhaustive canonical-bits check), the JSON scanner
 * (grammar, UTF-8, surrogates, depth, duplicate names after unescaping), JOSE header checks,
 * the RFC 7515 Appendix A and RFC 8037 A.4 vectors with every prefix and every one-character
 * change of each token, ECDSA signature shapes (DER, wrong lengths, zero R or S), HMAC tag
 * lengths and minimum key sizes, and keys built from PEM and JWK parameters. Keys other than
 * the RFC examples are generated at run time. Exits 0 when every check passes.
 */
#include "jws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "check.h"

/* ---------------------------------------------------------------------------------------- */
/* helpers                                                                                  */

static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64url_encode(const uint8_t *in, size_t len, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = ALPHABET[v >> 18];
        out[o++] = ALPHABET[(v >> 12) & 63];
        out[o++] = ALPHABET[(v >> 6) & 63];
        out[o++] = ALPHABET[v & 63];
    }
    if (len - i == 1) {
        out[o++] = ALPHABET[in[i] >> 2];
        out[o++] = ALPHABET[(in[i] & 3) << 4];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
        out[o++] = ALPHABET[v >> 10];
        out[o++] = ALPHABET[(v >> 4) & 63];
        out[o++] = ALPHABET[(v & 15) << 2];
    }
    out[o] = 0;
    return o;
}

static size_t b64(const char *s, uint8_t *out)
{
    long n = gw_b64url_decode(s, strlen(s), out);
    if (n < 0) {
        fprintf(stderr, "bad base64url in test data: %s\n", s);
        exit(2);
    }
    return (size_t)n;
}

/* "<b64(header)>.<b64(payload)>." followed by b64(sig); returns strlen. */
static size_t make_token(char *out, const char *header, const char *payload, const uint8_t *sig,
                         size_t sig_len)
{
    size_t o = b64url_encode((const uint8_t *)header, strlen(header), out);
    out[o++] = '.';
    o += b64url_encode((const uint8_t *)payload, strlen(payload), out + o);
    out[o++] = '.';
    o += b64url_encode(sig, sig_len, out + o);
    return o;
}

static gw_jws T;  /* 50 KiB: static rather than on the test's stack */

static int parse(const char *tok, size_t len) { return gw_jws_parse(&T, tok, len); }

/* Full verification of a token with one key: 0 ok, else the gw_jws_error. */
static int verify_token(gw_jws_key *key, const char *tok, size_t len, unsigned flags)
{
    int err = 0;
    if (gw_jws_parse(&T, tok, len) < 0)
        return T.error;
    if (T.alg >= GW_JWS_ALG__COUNT)
        return -T.alg;
    if (gw_jws_verify(key, T.alg, (const uint8_t *)tok, T.signing_input_len, T.sig, T.sig_len,
                      flags, &err) < 0)
        return err;
    return 0;
}

static EVP_PKEY *keygen(const char *type, const char *param)
{
    EVP_PKEY *pkey;
    if (strcmp(type, "RSA") == 0)
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)atoi(param));
    else if (strcmp(type, "EC") == 0)
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", param);
    else
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, type);
    if (pkey == NULL) {
        fprintf(stderr, "keygen %s %s failed\n", type, param ? param : "");
        exit(2);
    }
    return pkey;
}

static char *public_pem(EVP_PKEY *pkey, const char *structure, size_t *len)
{
    OSSL_ENCODER_CTX *ctx =
        OSSL_ENCODER_CTX_new_for_pkey(pkey, EVP_PKEY_PUBLIC_KEY, "PEM", structure, NULL);
    unsigned char *data = NULL;
    if (ctx == NULL || OSSL_ENCODER_to_data(ctx, &data, len) != 1) {
        fprintf(stderr, "PEM encoding failed\n");
        exit(2);
    }
    OSSL_ENCODER_CTX_free(ctx);
    return (char *)data;
}

/* Sign "h.p" with pkey as JWS alg wants (R||S for ECDSA), append the signature to tok. */
static size_t sign_token(EVP_PKEY *pkey, const char *md, int pss, size_t ec_half, char *tok,
                         size_t len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    uint8_t sig[1024], raw[256];
    size_t sig_len = sizeof sig;
    if (EVP_DigestSignInit_ex(ctx, &pctx, md, NULL, NULL, pkey, NULL) != 1)
        exit(2);
    if (pss) {
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    }
    if (EVP_DigestSign(ctx, sig, &sig_len, (const uint8_t *)tok, len) != 1)
        exit(2);
    EVP_MD_CTX_free(ctx);
    const uint8_t *out = sig;
    if (ec_half) {
        const uint8_t *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
        BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, (int)ec_half);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + ec_half, (int)ec_half);
        ECDSA_SIG_free(es);
        out = raw;
        sig_len = 2 * ec_half;
    }
    tok[len] = '.';
    return len + 1 + b64url_encode(out, sig_len, tok + len + 1);
}

/* ---------------------------------------------------------------------------------------- */
/* base64url                                                                                */

static void test_b64(void)
{
    static const struct { const char *in, *out; } vec[] = {  /* RFC 4648 section 10 */
        {"", ""}, {"Zg", "f"}, {"Zm8", "fo"}, {"Zm9v", "foo"}, {"Zm9vYg", "foob"},
        {"Zm9vYmE", "fooba"}, {"Zm9vYmFy", "foobar"},
    };
    uint8_t out[64];
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        long n = gw_b64url_decode(vec[i].in, strlen(vec[i].in), out);
        CHECK(n == (long)strlen(vec[i].out) && memcmp(out, vec[i].out, (size_t)n) == 0);
        CHECK(gw_b64url_decoded_len(strlen(vec[i].in)) == strlen(vec[i].out));
    }
    static const char *bad[] = {
        "Zg==", "Zm8=", "Z", "Zm9vY", "Zm+v", "Zm/v", "Zm9 ", "Zm9\n", "Zh", "Zm9", "Zm9vYR",
        "Zm9vYmF", "=Zm9", "Zm=v",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(gw_b64url_decode(bad[i], strlen(bad[i]), out) == -1);
    }
    /* Zm9vYmF decodes 'fooba' + 2 non-zero bits: "Zm9vYmE" is the canonical form, checked above */

    /* every byte value in every position of a 4-character group */
    for (int pos = 0; pos < 4; pos++)
        for (int c = 0; c < 256; c++) {
            char s[4] = {'Q', 'U', 'J', 'D'};  /* "ABC" */
            s[pos] = (char)c;
            int valid = c != 0 && strchr(ALPHABET, c) != NULL;
            CHECK((gw_b64url_decode(s, 4, out) == 3) == valid);
        }
    /* every 2- and 3-character tail: accepted exactly when re-encoding gives it back */
    char s[3], enc[8];
    for (int a = 0; a < 64; a++)
        for (int b = 0; b < 64; b++) {
            s[0] = ALPHABET[a];
            s[1] = ALPHABET[b];
            long n = gw_b64url_decode(s, 2, out);
            CHECK((n == 1) == ((b & 15) == 0));
            if (n == 1)
                CHECK(b64url_encode(out, 1, enc) == 2 && memcmp(enc, s, 2) == 0);
            for (int c = 0; c < 64; c++) {
                s[2] = ALPHABET[c];
                n = gw_b64url_decode(s, 3, out);
                CHECK((n == 2) == ((c & 3) == 0));
                if (n == 2)
                    CHECK(b64url_encode(out, 2, enc) == 3 && memcmp(enc, s, 3) == 0);
            }
        }
    /* round trip of pseudo-random data of every length up to 300 */
    uint8_t data[300], back[300];
    char text[420];
    uint32_t x = 2463534242u;
    for (size_t len = 0; len <= sizeof data; len++) {
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            data[i] = (uint8_t)x;
        }
        size_t tl = b64url_encode(data, len, text);
        CHECK(gw_b64url_decode(text, tl, back) == (long)len && memcmp(back, data, len) == 0);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* JSON scanner                                                                             */

static gw_json_scratch S;

static int json(const char *s, int *dup)
{
    return gw_json_check_object((const uint8_t *)s, strlen(s), &S, dup);
}

static void test_json(void)
{
    static const char *good[] = {
        "{}", " {} ", "\t{\r\n}\n", "{\"a\":1}", "{\"a\":-0.5e+10,\"b\":[1,2,{\"c\":null}]}",
        "{\"a\":true,\"b\":false,\"c\":null}", "{\"\":0}", "{\"a\":\"\\u00e9\\n\\\"\\\\\\/\"}",
        "{\"a\":\"\\ud83d\\ude00\"}", "{\"a\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}",
        "{\"a\":{\"a\":{\"a\":1}}}", "{\"a\":[{\"x\":1},{\"x\":2}]}", "{\"a\":0,\"A\":0}",
        "{\"a\":1E5,\"b\":0.0,\"c\":-1}", "{\"a\":[]}", "{\"a\":[[],{}]}",
    };
    static const char *bad[] = {
        "", "[]", "\"a\"", "1", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{,\"a\":1}",
        "{\"a\":1}x", "{\"a\":1}{}", "{a:1}", "{'a':1}", "{\"a\":01}", "{\"a\":1.}",
        "{\"a\":.5}", "{\"a\":+1}", "{\"a\":1e}", "{\"a\":-}", "{\"a\":tru}", "{\"a\":True}",
        "{\"a\":nul}", "{\"a\":\"\x01\"}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}",
        "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\"}", "{\"a\":\"\\ud800\\u0041\"}",
        "{\"a\":\"\xff\"}", "{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xe0\x80\xaf\"}",
        "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":\"\xc3\"}",
        "{\"a\":[1,]}", "{\"a\":[1 2]}", "{\"a\":\"x}", "\xef\xbb\xbf{}", "{\"a\":1 \"b\":2}",
        "{\"a\":NaN}", "{\"a\":Infinity}",
    };
    static const char *dups[] = {
        "{\"a\":1,\"a\":2}", "{\"a\":1,\"b\":2,\"a\":3}", "{\"a\":1,\"\\u0061\":2}",
        "{\"\\/\":1,\"/\":2}", "{\"x\":{\"k\":1,\"k\":2}}", "{\"x\":[{\"k\":1,\"k\":2}]}",
        "{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}",
    };
    int dup;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int rc = json(good[i], &dup);
        CHECK_MSG(rc == 0, "good[%zu] rejected: %s", i, good[i]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = json(bad[i], &dup);
        CHECK_MSG(rc == -1 && dup == 0, "bad[%zu]: rc %d dup %d: %s", i, rc, dup, bad[i]);
    }
    for (size_t i = 0; i < sizeof dups / sizeof dups[0]; i++)
        CHECK(json(dups[i], &dup) == -1 && dup == 1);

    /* one special byte at every position of strings of every length up to 40, so both the
     * eight-bytes-at-a-time path and the byte path see it (and strings ending anywhere) */
    static const struct { const char *bytes; int valid; } specials[] = {
        {"\x01", 0}, {"\x1f", 0}, {"\"", 0}, {"\xff", 0}, {"\x80", 0}, {"\xc3", 0},
        {"\x7f", 1}, {"\xc3\xa9", 1}, {"\\n", 1}, {"\\u00e9", 1}, {"\xf0\x9f\x98\x80", 1},
        {" ", 1}, {"~", 1},
    };
    for (size_t sp = 0; sp < sizeof specials / sizeof specials[0]; sp++)
        for (size_t len = 1; len <= 40; len++)
            for (size_t at = 0; at < len; at++) {
                char text[128];
                size_t o = 0;
                memcpy(text, "{\"k\":\"", 6);
                o = 6;
                for (size_t i = 0; i < len; i++) {
                    if (i == at) {
                        size_t sl = strlen(specials[sp].bytes);
                        memcpy(text + o, specials[sp].bytes, sl);
                        o += sl;
                    } else {
                        text[o++] = 'a';
                    }
                }
                memcpy(text + o, "\"}", 3);
                CHECK((json(text, &dup) == 0) == specials[sp].valid);
            }

    /* the same inner names in sibling objects are not duplicates */
    CHECK(json("{\"x\":{\"k\":1},\"y\":{\"k\":2},\"k\":3}", &dup) == 0 && S.top_count == 3);

    /* top-level members are reported with unescaped names and raw values */
    CHECK(json("{\"\\u0061lg\":\"HS256\", \"n\" : [1, 2]}", &dup) == 0 && S.top_count == 2);
    for (uint32_t k = 0; k < S.top_count; k++) {
        const gw_json_member *m = &S.members[k];
        if (m->name_len == 3)
            CHECK(memcmp(m->name, "alg", 3) == 0 && m->value_len == 7);
        else
            CHECK(m->name_len == 1 && m->value_len == 6);
    }

    /* nesting depth: 64 levels accepted, 65 refused */
    static char deep[512];
    for (int levels = 64; levels <= 65; levels++) {
        size_t o = 0;
        for (int i = 0; i < levels - 1; i++) {
            memcpy(deep + o, "{\"a\":", 5);
            o += 5;
        }
        deep[o++] = '{';
        deep[o++] = '}';
        for (int i = 0; i < levels - 1; i++)
            deep[o++] = '}';
        deep[o] = 0;
        CHECK((json(deep, &dup) == 0) == (levels == 64));
    }
    static char arrays[256];
    memset(arrays, '[', 100);
    strcpy(arrays + 100, "]");
    char obj[300];
    snprintf(obj, sizeof obj, "{\"a\":%s}", arrays);
    CHECK(json(obj, &dup) == -1);

    /* many members: duplicate detection on the sorted path, both outcomes */
    static char big[GW_JWS_MAX_JSON + 64];
    size_t o = 0;
    big[o++] = '{';
    for (int i = 0; i < 400; i++)
        o += (size_t)sprintf(big + o, "%s\"k%d\":%d", i ? "," : "", i, i);
    big[o++] = '}';
    big[o] = 0;
    CHECK(json(big, &dup) == 0 && S.top_count == 400);
    memcpy(big + o - 1, ",\"k399\":1}", 11);
    CHECK(json(big, &dup) == -1 && dup == 1);
    /* the smallest members fill the member table exactly */
    o = 0;
    big[o++] = '{';
    int count = 0;
    while (o + 6 < GW_JWS_MAX_JSON) {
        o += (size_t)sprintf(big + o, "%s\"%c\":%d", count ? "," : "", 'a' + count % 26,
                             count / 26 % 10);
        count++;
    }
    big[o++] = '}';
    big[o] = 0;
    CHECK(json(big, &dup) == -1 && dup == 1);  /* names repeat after 26 */
    CHECK(gw_json_check_object((const uint8_t *)big, GW_JWS_MAX_JSON + 1, &S, &dup) == -1);
}

/* ---------------------------------------------------------------------------------------- */
/* compact serialization and JOSE header                                                    */

static void test_header(void)
{
    static char tok[GW_JWS_MAX_TOKEN + 64];
    const uint8_t sig[32] = {1};
    size_t n;

    n = make_token(tok, "{\"alg\":\"HS256\",\"kid\":\"k1\",\"typ\":\"JWT\"}", "{}", sig, 32);
    CHECK(parse(tok, n) == 0 && T.alg == GW_JWS_HS256 && T.sig_len == 32);
    CHECK(T.kid_len == 2 && memcmp(T.kid, "k1", 2) == 0);
    CHECK(T.typ_len == 3 && memcmp(T.typ, "JWT", 3) == 0);
    CHECK(T.signing_input_len == (uint32_t)(strchr(strchr(tok, '.') + 1, '.') - tok));

    n = make_token(tok, "{\"alg\":\"\\u0045S256\",\"kid\":\"a\\\"b\\u00e9\"}", "{}", sig, 0);
    CHECK(parse(tok, n) == 0 && T.alg == GW_JWS_ES256 && T.sig_len == 0);
    CHECK(T.kid_len == 5 && memcmp(T.kid, "a\"b\xc3\xa9", 5) == 0);

    static const struct { const char *header; int alg; } algs[] = {
        {"{\"alg\":\"none\"}", GW_JWS_ALG_NONE}, {"{\"alg\":\"None\"}", GW_JWS_ALG_NONE},
        {"{\"alg\":\"NONE\"}", GW_JWS_ALG_NONE}, {"{\"alg\":\"nOnE\"}", GW_JWS_ALG_NONE},
        {"{\"alg\":\"hs256\"}", GW_JWS_ALG_UNKNOWN}, {"{\"alg\":\"\"}", GW_JWS_ALG_UNKNOWN},
        {"{\"alg\":\"HS256 \"}", GW_JWS_ALG_UNKNOWN}, {"{\"alg\":\"EdDSA\"}", GW_JWS_EDDSA},
        {"{\"typ\":\"JWT\"}", GW_JWS_ALG_MISSING}, {"{\"alg\":\"PS512\"}", GW_JWS_PS512},
        {"{\"alg\":\"non\\u0065\"}", GW_JWS_ALG_NONE},
    };
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
        n = make_token(tok, algs[i].header, "{}", sig, 1);
        CHECK(parse(tok, n) == 0 && T.alg == algs[i].alg);
    }

    static const struct { const char *header; int error; } errs[] = {
        {"{\"alg\":\"HS256\",\"alg\":\"none\"}", GW_JWS_E_DUPLICATE},
        {"{\"alg\":\"HS256\",\"\\u0061lg\":\"none\"}", GW_JWS_E_DUPLICATE},
        {"{\"alg\":\"HS256\",\"x\":{\"a\":1,\"a\":1}}", GW_JWS_E_DUPLICATE},
        {"{\"alg\":256}", GW_JWS_E_HEADER_PARAM}, {"{\"alg\":null}", GW_JWS_E_HEADER_PARAM},
        {"{\"alg\":\"HS256\",\"kid\":1}", GW_JWS_E_HEADER_PARAM},
        {"{\"alg\":\"HS256\",\"kid\":[\"a\"]}", GW_JWS_E_HEADER_PARAM},
        {"{\"alg\":\"HS256\",\"typ\":{}}", GW_JWS_E_HEADER_PARAM},
        {"{\"alg\":\"HS256\",\"b64\":\"false\"}", GW_JWS_E_HEADER_PARAM},
        {"{\"alg\":\"HS256\",\"b64\":false,\"crit\":[\"b64\"]}", GW_JWS_E_B64_FALSE},
        {"{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", GW_JWS_E_CRIT_UNSUPPORTED},
        {"{\"alg\":\"HS256\",\"crit\":[\"a\\\"\",\"b\"]}", GW_JWS_E_CRIT_UNSUPPORTED},
        {"{\"alg\":\"HS256\",\"crit\":[]}", GW_JWS_E_CRIT},
        {"{\"alg\":\"HS256\",\"crit\":\"exp\"}", GW_JWS_E_CRIT},
        {"{\"alg\":\"HS256\",\"crit\":[1]}", GW_JWS_E_CRIT},
        {"{\"alg\":\"HS256\",\"crit\":[\"a\",[]]}", GW_JWS_E_CRIT},
        {"[\"alg\",\"HS256\"]", GW_JWS_E_HEADER_JSON}, {"", GW_JWS_E_HEADER_JSON},
        {"{\"alg\":\"HS256\"", GW_JWS_E_HEADER_JSON},
    };
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        n = make_token(tok, errs[i].header, "{}", sig, 1);
        CHECK_MSG(parse(tok, n) == -1 && T.error == errs[i].error, "errs[%zu]: got %d", i,
                  T.error);
    }
    /* a header carrying a NUL byte inside the JSON text */
    {
        const uint8_t h[] = "{\"alg\":\"HS256\"}";
        uint8_t with_nul[sizeof h + 1];
        memcpy(with_nul, h, sizeof h - 1);
        with_nul[sizeof h - 1] = 0;
        size_t o = b64url_encode(with_nul, sizeof h, tok);
        memcpy(tok + o, ".e30.AQ", 8);
        CHECK(parse(tok, o + 7) == -1 && T.error == GW_JWS_E_HEADER_JSON);
    }

    static const struct { const char *token; int error; } shapes[] = {
        {"", GW_JWS_E_SEGMENTS}, {"abc", GW_JWS_E_SEGMENTS}, {"a.b", GW_JWS_E_SEGMENTS},
        {"eyJhbGciOiJIUzI1NiJ9.e30.AQ.x", GW_JWS_E_SEGMENTS},
        {"eyJhbGciOiJIUzI1NiJ9.e30.AQ.x.y", GW_JWS_E_SEGMENTS},
        {"eyJhbGciOiJIUzI1NiJ9=.e30.AQ", GW_JWS_E_HEADER_B64},
        {"eyJhbGciOiJIUzI1NiJ9.e30.AQ==", GW_JWS_E_SIG_B64},
        {"eyJhbGciOiJIUzI1NiJ9.e30.AR", GW_JWS_E_SIG_B64},
        {"eyJhbGciOiJIUzI1NiJ9.e30.A+", GW_JWS_E_SIG_B64},
        {" eyJhbGciOiJIUzI1NiJ9.e30.AQ", GW_JWS_E_HEADER_B64},
        {"eyJhbGciOiJIUzI1NiJ9.e30.AQ\n", GW_JWS_E_SIG_B64},
        {"eyJhbGciOiJIUzI1NiJ9.e30.", 0}, {"eyJhbGciOiJIUzI1NiJ9..AQ", 0},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int rc = parse(shapes[i].token, strlen(shapes[i].token));
        CHECK(shapes[i].error ? rc == -1 && T.error == shapes[i].error : rc == 0);
    }
    /* the payload is decoded and checked only on request */
    n = make_token(tok, "{\"alg\":\"HS256\"}", "{\"a\":1,\"a\":2}", sig, 32);
    CHECK(parse(tok, n) == 0 && gw_jws_payload(&T, tok) == -1 && T.error == GW_JWS_E_DUPLICATE);
    n = make_token(tok, "{\"alg\":\"HS256\"}", "[1]", sig, 32);
    CHECK(parse(tok, n) == 0 && gw_jws_payload(&T, tok) == -1 &&
          T.error == GW_JWS_E_PAYLOAD_JSON);
    static const char odd[] = "eyJhbGciOiJIUzI1NiJ9.e30x.AQ";  /* payload "{}" + junk */
    CHECK(parse(odd, sizeof odd - 1) == 0 && gw_jws_payload(&T, odd) == -1 &&
          T.error == GW_JWS_E_PAYLOAD_JSON);
    n = make_token(tok, "{\"alg\":\"HS256\"}", "{\"sub\":\"\xc3\xa9\"}", sig, 32);
    CHECK(parse(tok, n) == 0 && gw_jws_payload(&T, tok) == 0 && T.json_len == 12);

    /* size limits: 8192 bytes pass the length check, 8193 do not; long signatures refused */
    memset(tok, 'A', sizeof tok);
    memcpy(tok, "eyJhbGciOiJIUzI1NiJ9.", 21);
    tok[8000] = '.';
    CHECK(parse(tok, GW_JWS_MAX_TOKEN + 1) == -1 && T.error == GW_JWS_E_TOO_LONG);
    CHECK(parse(tok, GW_JWS_MAX_TOKEN) == 0 && T.sig_len == 143);  /* 191 characters */
    tok[21 + 1000] = '.';
    tok[8000] = 'A';
    CHECK(parse(tok, GW_JWS_MAX_TOKEN) == -1 && T.error == GW_JWS_E_SIG_LENGTH);
}

/* ---------------------------------------------------------------------------------------- */
/* RFC vectors                                                                              */

#define RFC7515_PAYLOAD                                                                    \
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp" \
    "0cnVlfQ"

static const char A1[] = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9." RFC7515_PAYLOAD
                         ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
static const char A1_K[] =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
static const char A2[] =
    "eyJhbGciOiJSUzI1NiJ9." RFC7515_PAYLOAD
    ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5"
    "jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L"
    "07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUi"
    "pUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
static const char A2_N[] =
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4"
    "QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdb"
    "BYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-D"
    "WNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
static const char A3[] = "eyJhbGciOiJFUzI1NiJ9." RFC7515_PAYLOAD
                         ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxf"
                         "KTUJqPP3-Kg6NU1Q";
static const char A3_X[] = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
static const char A3_Y[] = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
static const char A4[] =
    "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA.AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZ"
    "qwqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW"
    "9ERBXukOXolLzeO_Jn";
static const char A4_X[] =
    "AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk";
static const char A4_Y[] =
    "ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2";
static const char ED[] = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0"
                         "JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
static const char ED_X[] = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

/* The vector verifies; no prefix and no single-character change of it does. */
static void check_vector(gw_jws_key *key, const char *vec, int alg, int payload_is_json)
{
    static char tok[2048];
    size_t len = strlen(vec);
    CHECK(verify_token(key, vec, len, GW_JWS_F_ENFORCE_MIN_KEY) == 0 && T.alg == alg);
    CHECK((gw_jws_payload(&T, vec) == 0) == payload_is_json);
    for (size_t cut = 0; cut < len; cut++) {
        memcpy(tok, vec, cut);  /* a copy, so ASan sees reads past the prefix */
        CHECK(verify_token(key, tok, cut, 0) != 0);
    }
    memcpy(tok, vec, len);
    for (size_t i = 0; i < len; i++) {
        char orig = tok[i];
        tok[i] = orig == 'A' ? 'B' : orig == '.' ? 'x' : 'A';
        CHECK(verify_token(key, tok, len, 0) != 0);
        tok[i] = orig;
    }
    /* an extra signature character, or three extra bytes */
    memcpy(tok, vec, len);
    tok[len] = 'A';
    CHECK(verify_token(key, tok, len + 1, 0) != 0);
    memcpy(tok + len, "AAAA", 4);
    CHECK(verify_token(key, tok, len + 4, 0) == GW_JWS_E_SIG_LENGTH);
}

static void test_vectors(void)
{
    uint8_t a[600], b[600];
    gw_jws_key *key;
    int err;
    size_t n;

    n = b64(A1_K, a);
    CHECK(gw_jws_key_secret(a, n, &key, &err) == 0 && gw_jws_key_kty(key) == GW_JWS_KTY_OCT);
    check_vector(key, A1, GW_JWS_HS256, 1);
    gw_jws_key_free(key);

    n = b64(A2_N, a);
    size_t m = b64("AQAB", b);
    CHECK(gw_jws_key_rsa(a, n, b, m, &key, &err) == 0 && gw_jws_key_bits(key) == 2048);
    check_vector(key, A2, GW_JWS_RS256, 1);
    CHECK(gw_jws_key_algs(key) == 0x1F8u);
    gw_jws_key_free(key);

    n = b64(A3_X, a);
    m = b64(A3_Y, b);
    CHECK(gw_jws_key_ec(GW_JWS_CRV_P256, a, n, b, m, &key, &err) == 0);
    CHECK(gw_jws_key_algs(key) == 1u << GW_JWS_ES256 && gw_jws_key_crv(key) == GW_JWS_CRV_P256);
    check_vector(key, A3, GW_JWS_ES256, 1);
    gw_jws_key_free(key);
    /* the same point with one coordinate bit changed is off the curve */
    b[5] ^= 1;
    CHECK(gw_jws_key_ec(GW_JWS_CRV_P256, a, n, b, m, &key, &err) == -1 &&
          err == GW_JWS_E_KEY_INVALID);
    CHECK(gw_jws_key_ec(GW_JWS_CRV_P256, a, n - 1, b, m, &key, &err) == -1 &&
          err == GW_JWS_E_KEY_INVALID);
    CHECK(gw_jws_key_ec(GW_JWS_CRV_P384, a, n, b, m, &key, &err) == -1);

    n = b64(A4_X, a);
    m = b64(A4_Y, b);
    CHECK(gw_jws_key_ec(GW_JWS_CRV_P521, a, n, b, m, &key, &err) == 0);
    check_vector(key, A4, GW_JWS_ES512, 0);
    gw_jws_key_free(key);

    n = b64(ED_X, a);
    CHECK(gw_jws_key_okp(GW_JWS_CRV_ED25519, a, n, &key, &err) == 0);
    check_vector(key, ED, GW_JWS_EDDSA, 0);
    gw_jws_key_free(key);
    CHECK(gw_jws_key_okp(GW_JWS_CRV_ED25519, a, 31, &key, &err) == -1);
    CHECK(gw_jws_key_okp(GW_JWS_CRV_P256, a, 32, &key, &err) == -1 &&
          err == GW_JWS_E_KEY_UNSUPPORTED);
}

/* ---------------------------------------------------------------------------------------- */
/* signature shapes                                                                         */

static void test_hmac(void)
{
    static char tok[512];
    uint8_t k[64], mac[64];
    unsigned int mac_len;
    gw_jws_key *key, *short_key;
    int err;
    memset(k, 0x5a, sizeof k);
    CHECK(gw_jws_key_secret(k, 0, &key, &err) == -1 && err == GW_JWS_E_KEY_INVALID);
    CHECK(gw_jws_key_secret(k, 64, &key, &err) == 0);
    CHECK(gw_jws_key_secret(k, 20, &short_key, &err) == 0);

    static const struct { const char *header, *md; size_t len; } hs[] = {
        {"{\"alg\":\"HS256\"}", "SHA256", 32}, {"{\"alg\":\"HS384\"}", "SHA384", 48},
        {"{\"alg\":\"HS512\"}", "SHA512", 64},
    };
    for (size_t i = 0; i < 3; i++) {
        size_t n = make_token(tok, hs[i].header, "{\"sub\":\"x\"}", (const uint8_t *)"", 0);
        HMAC(EVP_get_digestbyname(hs[i].md), k, 64, (const uint8_t *)tok, n - 1, mac, &mac_len);
        CHECK(mac_len == hs[i].len);
        size_t base = n;
        n = base + b64url_encode(mac, mac_len, tok + base);
        /* alternate valid and invalid checks: the keyed context must restart every time */
        for (int round = 0; round < 3; round++) {
            CHECK(verify_token(key, tok, n, GW_JWS_F_ENFORCE_MIN_KEY) == 0);
            tok[base] ^= 1;
            CHECK(verify_token(key, tok, n, 0) != 0);
            tok[base] ^= 1;
        }
        /* truncated and extended tags */
        size_t t = base + b64url_encode(mac, mac_len - 1, tok + base);
        CHECK(verify_token(key, tok, t, 0) == GW_JWS_E_SIG_LENGTH);
        t = base + b64url_encode(mac, 16, tok + base);
        CHECK(verify_token(key, tok, t, 0) == GW_JWS_E_SIG_LENGTH);
        uint8_t ext[65];
        memcpy(ext, mac, mac_len);
        ext[mac_len] = 0;
        t = base + b64url_encode(ext, mac_len + 1, tok + base);
        CHECK(verify_token(key, tok, t, 0) == GW_JWS_E_SIG_LENGTH);
        /* a 20-byte secret is under the RFC 7518 3.2 minimum for every HS algorithm */
        n = make_token(tok, hs[i].header, "{}", (const uint8_t *)"", 0);
        HMAC(EVP_get_digestbyname(hs[i].md), k, 20, (const uint8_t *)tok, n - 1, mac, &mac_len);
        n += b64url_encode(mac, mac_len, tok + n);
        CHECK(verify_token(short_key, tok, n, GW_JWS_F_ENFORCE_MIN_KEY) ==
              GW_JWS_E_KEY_TOO_SHORT);
        CHECK(verify_token(short_key, tok, n, 0) == 0);
    }
    /* an HMAC key refuses every other algorithm */
    for (int alg = GW_JWS_RS256; alg < GW_JWS_ALG__COUNT; alg++)
        CHECK(gw_jws_verify(key, alg, (const uint8_t *)"x", 1, mac, 32, 0, &err) == -1 &&
              err == GW_JWS_E_KEY_ALG);
    gw_jws_key_free(key);
    gw_jws_key_free(short_key);
}

static void test_ecdsa_shapes(void)
{
    static char tok[1024];
    EVP_PKEY *pkey = keygen("EC", "P-256");
    size_t pem_len;
    char *pem = public_pem(pkey, "SubjectPublicKeyInfo", &pem_len);
    gw_jws_key *key;
    int err;
    CHECK(gw_jws_key_pem(pem, pem_len, &key, &err) == 0 && gw_jws_key_kty(key) == GW_JWS_KTY_EC);
    size_t base = make_token(tok, "{\"alg\":\"ES256\"}", "{}", (const uint8_t *)"", 0) - 1;
    size_t n = sign_token(pkey, "SHA256", 0, 32, tok, base);
    CHECK(verify_token(key, tok, n, GW_JWS_F_ENFORCE_MIN_KEY) == 0);

    uint8_t raw[66], sig[160];
    size_t raw_len = (size_t)gw_b64url_decode(tok + base + 1, n - base - 1, raw);
    CHECK(raw_len == 64);
    /* the same signature DER-encoded, as libcrypto produces it, is not a JWS signature */
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL));
    uint8_t *pp = sig;
    int der_len = i2d_ECDSA_SIG(es, &pp);
    ECDSA_SIG_free(es);
    n = base + 1 + b64url_encode(sig, (size_t)der_len, tok + base + 1);
    CHECK(verify_token(key, tok, n, 0) == GW_JWS_E_SIG_LENGTH);
    /* wrong lengths: one byte short, one byte long (leading zero), empty */
    n = base + 1 + b64url_encode(raw, 63, tok + base + 1);
    CHECK(verify_token(key, tok, n, 0) == GW_JWS_E_SIG_LENGTH);
    sig[0] = 0;
    memcpy(sig + 1, raw, 64);
    n = base + 1 + b64url_encode(sig, 65, tok + base + 1);
    CHECK(verify_token(key, tok, n, 0) == GW_JWS_E_SIG_LENGTH);
    CHECK(verify_token(key, tok, base + 1, 0) == GW_JWS_E_SIG_LENGTH);
    /* R or S zero, R or S equal to all ones (above the group order) */
    for (int part = 0; part < 2; part++)
        for (int fill = 0; fill < 2; fill++) {
            memcpy(sig, raw, 64);
            memset(sig + 32 * part, fill ? 0xFF : 0, 32);
            n = base + 1 + b64url_encode(sig, 64, tok + base + 1);
            CHECK(verify_token(key, tok, n, 0) == GW_JWS_E_SIGNATURE);
        }
    /* S replaced by n - S verifies in plain ECDSA too: JWS does not forbid it, and the
     * verification must still succeed rather than crash */
    BIGNUM *order = BN_new(), *s = BN_bin2bn(raw + 32, 32, NULL);
    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_ORDER, &order);
    BN_sub(s, order, s);
    memcpy(sig, raw, 32);
    BN_bn2binpad(s, sig + 32, 32);
    n = base + 1 + b64url_encode(sig, 64, tok + base + 1);
    CHECK(verify_token(key, tok, n, 0) == 0);
    BN_free(order);
    BN_free(s);
    /* an ES256 key refuses ES384 and ES512 */
    CHECK(gw_jws_verify(key, GW_JWS_ES384, (const uint8_t *)tok, base, raw, 64, 0, &err) == -1 &&
          err == GW_JWS_E_KEY_ALG);
    gw_jws_key_free(key);
    OPENSSL_free(pem);
    EVP_PKEY_free(pkey);
}

/* ---------------------------------------------------------------------------------------- */
/* keys from PEM                                                                            */

static void sign_and_verify(EVP_PKEY *pkey, gw_jws_key *key, const char *header, const char *md,
                            int pss, size_t ec_half, int expect)
{
    static char tok[2048];
    size_t base = make_token(tok, header, "{\"sub\":\"s\"}", (const uint8_t *)"", 0) - 1;
    size_t n = sign_token(pkey, md, pss, ec_half, tok, base);
    int rc = verify_token(key, tok, n, GW_JWS_F_ENFORCE_MIN_KEY);
    CHECK_MSG(rc == expect, "%s: got %d, expected %d", header, rc, expect);
    if (expect == 0) {  /* and a changed payload character fails */
        tok[base - 2] = tok[base - 2] == 'A' ? 'B' : 'A';
        CHECK(verify_token(key, tok, n, 0) != 0);
    }
}

static void test_pem_keys(void)
{
    size_t len;
    char *pem;
    gw_jws_key *key;
    int err;

    EVP_PKEY *rsa = keygen("RSA", "2048");
    pem = public_pem(rsa, "SubjectPublicKeyInfo", &len);
    CHECK(gw_jws_key_pem(pem, len, &key, &err) == 0 && gw_jws_key_bits(key) == 2048);
    OPENSSL_free(pem);
    sign_and_verify(rsa, key, "{\"alg\":\"RS256\"}", "SHA256", 0, 0, 0);
    sign_and_verify(rsa, key, "{\"alg\":\"RS384\"}", "SHA384", 0, 0, 0);
    sign_and_verify(rsa, key, "{\"alg\":\"RS512\"}", "SHA512", 0, 0, 0);
    sign_and_verify(rsa, key, "{\"alg\":\"PS256\"}", "SHA256", 1, 0, 0);
    sign_and_verify(rsa, key, "{\"alg\":\"PS384\"}", "SHA384", 1, 0, 0);
    sign_and_verify(rsa, key, "{\"alg\":\"PS512\"}", "SHA512", 1, 0, 0);
    /* a PKCS #1 v1.5 signature presented as PSS, and the other way round */
    sign_and_verify(rsa, key, "{\"alg\":\"PS256\"}", "SHA256", 0, 0, GW_JWS_E_SIGNATURE);
    sign_and_verify(rsa, key, "{\"alg\":\"RS256\"}", "SHA256", 1, 0, GW_JWS_E_SIGNATURE);
    /* the hash named by alg is the one used */
    sign_and_verify(rsa, key, "{\"alg\":\"RS256\"}", "SHA384", 0, 0, GW_JWS_E_SIGNATURE);
    sign_and_verify(rsa, key, "{\"alg\":\"ES256\"}", "SHA256", 0, 0, GW_JWS_E_KEY_ALG);
    sign_and_verify(rsa, key, "{\"alg\":\"HS256\"}", "SHA256", 0, 0, GW_JWS_E_KEY_ALG);
    gw_jws_key_free(key);
    /* PKCS #1 "RSA PUBLIC KEY" */
    pem = public_pem(rsa, "type-specific", &len);
    CHECK(strstr(pem, "BEGIN RSA PUBLIC KEY") != NULL);
    CHECK(gw_jws_key_pem(pem, len, &key, &err) == 0);
    sign_and_verify(rsa, key, "{\"alg\":\"RS256\"}", "SHA256", 0, 0, 0);
    gw_jws_key_free(key);
    OPENSSL_free(pem);
    /* private keys are refused, whatever the PEM label */
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, rsa, NULL, NULL, 0, NULL, NULL);
    char *data;
    long dlen = BIO_get_mem_data(bio, &data);
    CHECK(gw_jws_key_pem(data, (size_t)dlen, &key, &err) == -1 && err == GW_JWS_E_KEY_PRIVATE);
    BIO_free(bio);
    static const char rsa_priv[] = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE "
                                   "KEY-----\n";
    CHECK(gw_jws_key_pem(rsa_priv, sizeof rsa_priv - 1, &key, &err) == -1 &&
          err == GW_JWS_E_KEY_PRIVATE);
    EVP_PKEY_free(rsa);

    /* RSA under 2048 bits: refused when the minimum is enforced */
    EVP_PKEY *small = keygen("RSA", "1024");
    pem = public_pem(small, "SubjectPublicKeyInfo", &len);
    CHECK(gw_jws_key_pem(pem, len, &key, &err) == 0);
    sign_and_verify(small, key, "{\"alg\":\"RS256\"}", "SHA256", 0, 0, GW_JWS_E_KEY_TOO_SHORT);
    gw_jws_key_free(key);
    OPENSSL_free(pem);
    EVP_PKEY_free(small);

    static const struct { const char *curve, *header, *md; size_t half; } ec[] = {
        {"P-256", "{\"alg\":\"ES256\"}", "SHA256", 32},
        {"P-384", "{\"alg\":\"ES384\"}", "SHA384", 48},
        {"P-521", "{\"alg\":\"ES512\"}", "SHA512", 66},
    };
    for (size_t i = 0; i < 3; i++) {
        EVP_PKEY *pk = keygen("EC", ec[i].curve);
        pem = public_pem(pk, "SubjectPublicKeyInfo", &len);
        CHECK(gw_jws_key_pem(pem, len, &key, &err) == 0);
        sign_and_verify(pk, key, ec[i].header, ec[i].md, 0, ec[i].half, 0);
        /* a curve must be used with its own hash: ES256 over a P-384 key is refused */
        sign_and_verify(pk, key, i ? "{\"alg\":\"ES256\"}" : "{\"alg\":\"ES384\"}", "SHA256", 0,
                        ec[i].half, GW_JWS_E_KEY_ALG);
        gw_jws_key_free(key);
        OPENSSL_free(pem);
        EVP_PKEY_free(pk);
    }
    /* curves JWS does not define */
    EVP_PKEY *k1 = keygen("EC", "secp256k1");
    pem = public_pem(k1, "SubjectPublicKeyInfo", &len);
    CHECK(gw_jws_key_pem(pem, len, &key, &err) == -1 && err == GW_JWS_E_KEY_UNSUPPORTED);
    OPENSSL_free(pem);
    EVP_PKEY_free(k1);
    EVP_PKEY *x = keygen("X25519", NULL);
    pem = public_pem(x, "SubjectPublicKeyInfo", &len);
    CHECK(gw_jws_key_pem(pem, len, &key, &err) == -1 && err == GW_JWS_E_KEY_UNSUPPORTED);
    OPENSSL_free(pem);
    EVP_PKEY_free(x);

    static const struct { const char *type; } ed[] = {{"ED25519"}, {"ED448"}};
    for (size_t i = 0; i < 2; i++) {
        EVP_PKEY *pk = keygen(ed[i].type, NULL);
        pem = public_pem(pk, "SubjectPublicKeyInfo", &len);
        CHECK(gw_jws_key_pem(pem, len, &key, &err) == 0 && gw_jws_key_kty(key) == GW_JWS_KTY_OKP);
        sign_and_verify(pk, key, "{\"alg\":\"EdDSA\"}", NULL, 0, 0, 0);
        gw_jws_key_free(key);
        OPENSSL_free(pem);
        EVP_PKEY_free(pk);
    }

    /* malformed PEM */
    static const char *junk[] = {
        "", "hello", "-----BEGIN PUBLIC KEY-----", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END "
        "PUBLIC KEY-----\n", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n",
    };
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        CHECK(gw_jws_key_pem(junk[i], strlen(junk[i]), &key, &err) == -1);

    /* RSA from JWK parameters: even modulus, even or unit exponent refused */
    uint8_t nb[256], e[3] = {1, 0, 1};
    memset(nb, 0xC5, sizeof nb);
    CHECK(gw_jws_key_rsa(nb, 256, e, 3, &key, &err) == 0);
    gw_jws_key_free(key);
    nb[255] = 0xC4;
    CHECK(gw_jws_key_rsa(nb, 256, e, 3, &key, &err) == -1 && err == GW_JWS_E_KEY_INVALID);
    nb[255] = 0xC5;
    CHECK(gw_jws_key_rsa(nb, 256, (const uint8_t *)"\x01", 1, &key, &err) == -1);
    CHECK(gw_jws_key_rsa(nb, 256, (const uint8_t *)"\x02", 1, &key, &err) == -1);
    CHECK(gw_jws_key_rsa(nb, 0, e, 3, &key, &err) == -1);
    CHECK(ERR_peek_error() == 0);  /* nothing left in the OpenSSL error queue */
}

static void test_alg_names(void)
{
    for (int a = 0; a < GW_JWS_ALG__COUNT; a++) {
        const char *name = gw_jws_alg_name(a);
        CHECK(gw_jws_alg_from_name((const uint8_t *)name, strlen(name)) == a);
    }
    CHECK(gw_jws_alg_name(GW_JWS_ALG__COUNT) == NULL && gw_jws_alg_name(-1) == NULL);
    CHECK(gw_jws_alg_from_name((const uint8_t *)"HS25", 4) == GW_JWS_ALG_UNKNOWN);
    CHECK(gw_jws_alg_from_name((const uint8_t *)"nonf", 4) == GW_JWS_ALG_UNKNOWN);
    CHECK(gw_jws_alg_from_name((const uint8_t *)"NoNe", 4) == GW_JWS_ALG_NONE);
}

/* FIPS 180-2 B.1 and B.2 message digests. */
static void test_sha256(void)
{
    static const uint8_t abc[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
        0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61,
        0xf2, 0x00, 0x15, 0xad};
    static const uint8_t two_blocks[32] = {
        0x24, 0x8d, 0x6a, 0x61, 0xd2, 0x06, 0x38, 0xb8, 0xe5, 0xc0, 0x26, 0x93, 0x0c, 0x3e,
        0x60, 0x39, 0xa3, 0x3c, 0xe4, 0x59, 0x64, 0xff, 0x21, 0x67, 0xf6, 0xec, 0xed, 0xd4,
        0x19, 0xdb, 0x06, 0xc1};
    static const char msg2[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    uint8_t out[32];
    for (int round = 0; round < 2; round++) {   /* the context is reused */
        CHECK(gw_jws_sha256((const uint8_t *)"abc", 3, out) == 0 && memcmp(out, abc, 32) == 0);
        CHECK(gw_jws_sha256((const uint8_t *)msg2, sizeof msg2 - 1, out) == 0
              && memcmp(out, two_blocks, 32) == 0);
    }
}

int main(void)
{
    if (gw_jws_init() != 0 || gw_jws_init() != 0) {
        fprintf(stderr, "gw_jws_init failed\n");
        return 2;
    }
    test_b64();
    test_json();
    test_header();
    test_alg_names();
    test_sha256();
    test_vectors();
    test_hmac();
    test_ecdsa_shapes();
    test_pem_keys();
    return check_summary("test_jws");
}
