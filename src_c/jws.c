/* jws.c - JWS compact serialization verification (see jws.h for the contract).
 *
 * Layout: strict base64url; a validating JSON scanner (RFC 8259) that records object members so
 * duplicates are found and the JOSE header can be read; the compact serialization split
 * (RFC 7515 7.1) and header checks (RFC 7515 4, 5.2); key construction from PEM or JWK
 * parameters (RFC 7517, 7518 6, 8037 2) with OSSL_PARAM_BLD/EVP_PKEY_fromdata; and verification
 * through EVP_MAC / EVP_DigestVerify (RFC 7518 3, RFC 8037 3.1).
 */
#define _GNU_SOURCE     /* memmem */
#include "jws.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

/* ------------------------------------------------------------------------------------------ */
/* Algorithms                                                                                  */

enum { FAM_HMAC, FAM_RSA, FAM_PSS, FAM_EC, FAM_EDDSA };

static const struct {
    char name[6];
    uint8_t len, family, hash;  /* hash: index into g_md (SHA-256, -384, -512) */
} ALG[GW_JWS_ALG__COUNT] = {
    {"HS256", 5, FAM_HMAC, 0}, {"HS384", 5, FAM_HMAC, 1}, {"HS512", 5, FAM_HMAC, 2},
    {"RS256", 5, FAM_RSA, 0},  {"RS384", 5, FAM_RSA, 1},  {"RS512", 5, FAM_RSA, 2},
    {"PS256", 5, FAM_PSS, 0},  {"PS384", 5, FAM_PSS, 1},  {"PS512", 5, FAM_PSS, 2},
    {"ES256", 5, FAM_EC, 0},   {"ES384", 5, FAM_EC, 1},   {"ES512", 5, FAM_EC, 2},
    {"EdDSA", 5, FAM_EDDSA, 0},
};

static const size_t HASH_LEN[3] = {32, 48, 64};
static const char *const HASH_NAME[3] = {"SHA256", "SHA384", "SHA512"};

#define ALGS_HMAC ((1u << GW_JWS_HS256) | (1u << GW_JWS_HS384) | (1u << GW_JWS_HS512))
#define ALGS_PSS ((1u << GW_JWS_PS256) | (1u << GW_JWS_PS384) | (1u << GW_JWS_PS512))
#define ALGS_RSA ((1u << GW_JWS_RS256) | (1u << GW_JWS_RS384) | (1u << GW_JWS_RS512) | ALGS_PSS)

static EVP_MAC *g_hmac;
static EVP_MD *g_md[3];

int gw_jws_init(void)
{
    if (g_hmac != NULL)
        return 0;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MD *md[3] = {NULL, NULL, NULL};
    int ok = mac != NULL;
    for (int i = 0; i < 3 && ok; i++)
        ok = (md[i] = EVP_MD_fetch(NULL, HASH_NAME[i], NULL)) != NULL;
    if (!ok) {
        EVP_MAC_free(mac);
        for (int i = 0; i < 3; i++)
            EVP_MD_free(md[i]);
        ERR_clear_error();
        return -1;
    }
    for (int i = 0; i < 3; i++)
        g_md[i] = md[i];
    g_hmac = mac;
    return 0;
}

int gw_jws_sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
    static EVP_MD_CTX *ctx;     /* reused: spares an EVP_MD_CTX allocation per call */
    unsigned int n = 0;
    if (ctx == NULL && (ctx = EVP_MD_CTX_new()) == NULL) {
        ERR_clear_error();
        return -1;
    }
    if (EVP_DigestInit_ex2(ctx, g_md[0], NULL) != 1 || EVP_DigestUpdate(ctx, data, len) != 1
        || EVP_DigestFinal_ex(ctx, out, &n) != 1 || n != 32) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

int gw_jws_alg_from_name(const uint8_t *name, size_t len)
{
    for (int a = 0; a < GW_JWS_ALG__COUNT; a++)
        if (len == ALG[a].len && memcmp(name, ALG[a].name, len) == 0)
            return a;
    if (len == 4) {
        static const char none[4] = {'n', 'o', 'n', 'e'};
        int same = 1;
        for (size_t i = 0; i < 4; i++)
            same &= (name[i] | 0x20) == none[i];
        if (same)
            return GW_JWS_ALG_NONE;
    }
    return GW_JWS_ALG_UNKNOWN;
}

const char *gw_jws_alg_name(int alg)
{
    return alg >= 0 && alg < GW_JWS_ALG__COUNT ? ALG[alg].name : NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* base64url (RFC 4648 section 5, without padding as RFC 7515 section 2 requires)              */

#define XX 0xFF
static const uint8_t B64[256] = {
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, 62, XX, XX,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, XX, XX, XX, XX, XX, XX,
    XX, 0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, XX, XX, XX, XX, 63,
    XX, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
};
#undef XX

size_t gw_b64url_decoded_len(size_t len)
{
    static const uint8_t tail[4] = {0, 0, 1, 2};
    return len / 4 * 3 + tail[len % 4];
}

long gw_b64url_decode(const char *in, size_t len, uint8_t *out)
{
    /* restrict: the output never overlaps the input, so stores need not force reloads */
    const uint8_t *restrict s = (const uint8_t *)in;
    uint8_t *restrict o = out;
    size_t full = len / 4, rem = len % 4;
    if (rem == 1)
        return -1;
    uint32_t bad = 0;
    for (size_t g = 0; g < full; g++, s += 4, o += 3) {
        uint32_t a = B64[s[0]], b = B64[s[1]], c = B64[s[2]], d = B64[s[3]];
        bad |= a | b | c | d;  /* XX has the top bit set, valid sextets never do */
        uint32_t v = a << 18 | b << 12 | c << 6 | d;
        o[0] = (uint8_t)(v >> 16);
        o[1] = (uint8_t)(v >> 8);
        o[2] = (uint8_t)v;
    }
    if (rem >= 2) {
        uint32_t a = B64[s[0]], b = B64[s[1]], c = rem == 3 ? B64[s[2]] : 0;
        bad |= a | b | c;
        if (bad & 0x80)
            return -1;
        /* RFC 4648 3.5: the unused low bits of the last character must be zero */
        if (rem == 2 ? (b & 0x0F) : (c & 0x03))
            return -1;
        *o++ = (uint8_t)(a << 2 | b >> 4);
        if (rem == 3)
            *o++ = (uint8_t)(b << 4 | c >> 2);
    }
    return (bad & 0x80) ? -1 : (long)(o - out);
}

/* The length of in[0..len) without RFC 4648 3.2 padding: one or two '=' that make len a multiple
 * of 4 (the text before them then has 2 or 3 characters past a multiple of 4). -1 otherwise. */
static long unpadded_len(const char *in, size_t len)
{
    size_t n = len;
    while (n > 0 && len - n < 3 && in[n - 1] == '=')
        n--;
    size_t pad = len - n;
    if (pad == 0)
        return (long)len;
    if (pad > 2 || len % 4 != 0)
        return -1;
    return (long)n;
}

/* gw_b64url_decode's acceptance test without its output: 1 valid, 0 not. */
static int b64url_valid(const char *in, size_t len)
{
    const uint8_t *s = (const uint8_t *)in;
    size_t rem = len % 4;
    if (rem == 1)
        return 0;
    uint32_t bad = 0;
    for (size_t i = 0; i < len; i++)
        bad |= B64[s[i]];
    if (bad & 0x80)
        return 0;
    if (rem == 2)
        return (B64[s[len - 1]] & 0x0F) == 0;
    if (rem == 3)
        return (B64[s[len - 1]] & 0x03) == 0;
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* JSON scanner (RFC 8259; UTF-8 per RFC 3629; I-JSON's no-lone-surrogates rule, RFC 7493 2.1) */

typedef struct {
    const uint8_t *p;
    size_t n, i;
    gw_json_scratch *s;
    uint32_t nm;   /* members in use */
    int depth;
    int dup;
} jscan;

static inline void skip_ws(jscan *j)
{
    while (j->i < j->n) {
        uint8_t c = j->p[j->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        j->i++;
    }
}

static inline int hex4(const uint8_t *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        uint8_t c = p[k], d;
        if (c >= '0' && c <= '9')
            d = (uint8_t)(c - '0');
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (uint8_t)((c | 0x20) - 'a' + 10);
        else
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

/* Length of the valid UTF-8 sequence at p[0..avail), or 0 (RFC 3629 section 4). */
static inline size_t utf8_seq(const uint8_t *p, size_t avail)
{
    uint8_t c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return avail >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (avail < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F))
            return 0;  /* overlong, or a UTF-16 surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (avail < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 ||
            (p[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F))
            return 0;  /* overlong, or above U+10FFFF */
        return 4;
    }
    return 0;
}

/* 1 for the bytes a JSON string holds as they are: printable ASCII but '"' and '\\'. */
static const uint8_t PLAIN[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* Non-zero when one of the 8 bytes of x is not PLAIN: a control byte, '"', '\\' or a byte
 * >= 0x80. Exact as an "any" test (the borrow tricks can only add bits, never drop them). */
static inline uint64_t swar_special(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t quote = x ^ (ones * '"'), backslash = x ^ (ones * '\\');
    uint64_t control = (x - ones * 0x20) & ~x;
    return (((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) | control | x) & highs;
}

/* At an opening quote: validate the string and move past its closing quote. */
static int scan_string(jscan *j, int *escaped)
{
    const uint8_t *p = j->p;
    size_t i = j->i + 1, n = j->n;
    int esc = 0;
    for (;;) {
        for (uint64_t x; i + 8 <= n; i += 8) {  /* eight plain bytes at a time */
            memcpy(&x, p + i, 8);
            if (swar_special(x))
                break;
        }
        while (i < n && PLAIN[p[i]])
            i++;
        if (GW_UNLIKELY(i >= n))
            return -1;
        uint8_t c = p[i];
        if (c == '"')
            break;
        if (c == '\\') {
            esc = 1;
            if (i + 1 >= n)
                return -1;
            uint8_t e = p[i + 1];
            if (e == 'u') {
                uint32_t cp, lo;
                if (i + 6 > n || hex4(p + i + 2, &cp) < 0)
                    return -1;
                i += 6;
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return -1;  /* lone low surrogate */
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (i + 6 > n || p[i] != '\\' || p[i + 1] != 'u' || hex4(p + i + 2, &lo) < 0 ||
                        lo < 0xDC00 || lo > 0xDFFF)
                        return -1;
                    i += 6;
                }
                continue;
            }
            if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' &&
                e != 'r' && e != 't')
                return -1;
            i += 2;
            continue;
        }
        if (c < 0x20)
            return -1;
        size_t k = utf8_seq(p + i, n - i);
        if (k == 0)
            return -1;
        i += k;
    }
    j->i = i + 1;
    *escaped = esc;
    return 0;
}

/* Unescape the content of a string already validated by scan_string; returns bytes written
 * (never more than len). */
static size_t unescape(const uint8_t *p, size_t len, uint8_t *out)
{
    size_t i = 0, o = 0;
    while (i < len) {
        uint8_t c = p[i];
        if (c != '\\') {
            out[o++] = c;
            i++;
            continue;
        }
        uint8_t e = p[i + 1];
        if (e != 'u') {
            static const uint8_t from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            out[o++] = to[(const uint8_t *)strchr((const char *)from, e) - from];
            i += 2;
            continue;
        }
        uint32_t cp = 0, lo = 0xDC00;
        hex4(p + i + 2, &cp);
        i += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            hex4(p + i + 2, &lo);
            i += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (cp < 0x80) {
            out[o++] = (uint8_t)cp;
        } else if (cp < 0x800) {
            out[o++] = (uint8_t)(0xC0 | cp >> 6);
            out[o++] = (uint8_t)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out[o++] = (uint8_t)(0xE0 | cp >> 12);
            out[o++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            out[o++] = (uint8_t)(0x80 | (cp & 0x3F));
        } else {
            out[o++] = (uint8_t)(0xF0 | cp >> 18);
            out[o++] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
            out[o++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            out[o++] = (uint8_t)(0x80 | (cp & 0x3F));
        }
    }
    return o;
}

static inline int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

static int scan_number(jscan *j)
{
    const uint8_t *p = j->p;
    size_t i = j->i, n = j->n;
    if (p[i] == '-')
        i++;
    if (i >= n || !is_digit(p[i]))
        return -1;
    if (p[i] == '0')
        i++;
    else
        while (i < n && is_digit(p[i]))
            i++;
    if (i < n && p[i] == '.') {
        i++;
        if (i >= n || !is_digit(p[i]))
            return -1;
        while (i < n && is_digit(p[i]))
            i++;
    }
    if (i < n && (p[i] | 0x20) == 'e') {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-'))
            i++;
        if (i >= n || !is_digit(p[i]))
            return -1;
        while (i < n && is_digit(p[i]))
            i++;
    }
    j->i = i;
    return 0;
}

static int scan_literal(jscan *j, const char *lit, size_t len)
{
    if (j->n - j->i < len || memcmp(j->p + j->i, lit, len) != 0)
        return -1;
    j->i += len;
    return 0;
}

static int member_cmp(const void *a, const void *b)
{
    const gw_json_member *x = a, *y = b;
    if (x->name_len != y->name_len)
        return x->name_len < y->name_len ? -1 : 1;
    return memcmp(x->name, y->name, x->name_len);
}

static inline int same_name(const gw_json_member *x, const gw_json_member *y)
{
    /* most names differ in length or first byte: spare the memcmp call */
    return x->name_len == y->name_len &&
           (x->name_len == 0 ||
            (x->name[0] == y->name[0] && memcmp(x->name, y->name, x->name_len) == 0));
}

/* Duplicate names among m[0..count): quadratic for the usual handful, sorted beyond. */
static int has_duplicate(gw_json_member *m, uint32_t count)
{
    if (count <= 16) {
        for (uint32_t a = 1; a < count; a++)
            for (uint32_t b = 0; b < a; b++)
                if (same_name(&m[a], &m[b]))
                    return 1;
        return 0;
    }
    qsort(m, count, sizeof *m, member_cmp);
    for (uint32_t a = 1; a < count; a++)
        if (same_name(&m[a], &m[a - 1]))
            return 1;
    return 0;
}

static int scan_value(jscan *j);

static int scan_object(jscan *j)
{
    gw_json_scratch *s = j->s;
    if (++j->depth > GW_JWS_MAX_DEPTH)
        return -1;
    uint32_t start = j->nm, unesc_mark = s->unesc_len;
    j->i++;
    skip_ws(j);
    if (j->i < j->n && j->p[j->i] == '}') {
        j->i++;
    } else {
        for (;;) {
            if (j->i >= j->n || j->p[j->i] != '"' || j->nm >= GW_JWS_MAX_MEMBERS)
                return -1;
            size_t name_off = j->i + 1;
            int esc;
            if (scan_string(j, &esc) < 0)
                return -1;
            size_t raw_len = j->i - 1 - name_off;
            gw_json_member *m = &s->members[j->nm++];
            if (esc) {
                /* unescaped names never outgrow their raw text, and raw names are disjoint
                 * parts of an input of at most GW_JWS_MAX_JSON bytes */
                m->name = s->unesc + s->unesc_len;
                m->name_len = (uint32_t)unescape(j->p + name_off, raw_len, s->unesc + s->unesc_len);
                s->unesc_len += m->name_len;
            } else {
                m->name = j->p + name_off;
                m->name_len = (uint32_t)raw_len;
            }
            skip_ws(j);
            if (j->i >= j->n || j->p[j->i] != ':')
                return -1;
            j->i++;
            skip_ws(j);
            size_t value_off = j->i;
            if (scan_value(j) < 0)
                return -1;
            m->value_off = (uint32_t)value_off;
            m->value_len = (uint32_t)(j->i - value_off);
            skip_ws(j);
            if (j->i >= j->n)
                return -1;
            if (j->p[j->i] == '}') {
                j->i++;
                break;
            }
            if (j->p[j->i] != ',')
                return -1;
            j->i++;
            skip_ws(j);
        }
    }
    if (has_duplicate(&s->members[start], j->nm - start)) {
        j->dup = 1;
        return -1;
    }
    if (j->depth > 1) {  /* only the top-level members are kept for the caller */
        j->nm = start;
        s->unesc_len = unesc_mark;
    }
    j->depth--;
    return 0;
}

static int scan_array(jscan *j)
{
    if (++j->depth > GW_JWS_MAX_DEPTH)
        return -1;
    j->i++;
    skip_ws(j);
    if (j->i < j->n && j->p[j->i] == ']') {
        j->i++;
        j->depth--;
        return 0;
    }
    for (;;) {
        if (scan_value(j) < 0)
            return -1;
        skip_ws(j);
        if (j->i >= j->n)
            return -1;
        if (j->p[j->i] == ']') {
            j->i++;
            j->depth--;
            return 0;
        }
        if (j->p[j->i] != ',')
            return -1;
        j->i++;
        skip_ws(j);
    }
}

static int scan_value(jscan *j)
{
    if (j->i >= j->n)
        return -1;
    int esc;
    switch (j->p[j->i]) {
    case '{': return scan_object(j);
    case '[': return scan_array(j);
    case '"': return scan_string(j, &esc);
    case 't': return scan_literal(j, "true", 4);
    case 'f': return scan_literal(j, "false", 5);
    case 'n': return scan_literal(j, "null", 4);
    default: return scan_number(j);
    }
}

int gw_json_check_object(const uint8_t *buf, size_t len, gw_json_scratch *s, int *dup)
{
    jscan j = {buf, len, 0, s, 0, 0, 0};
    *dup = 0;
    s->top_count = 0;
    s->unesc_len = 0;
    if (len > GW_JWS_MAX_JSON)
        return -1;
    skip_ws(&j);
    if (j.i >= len || buf[j.i] != '{' || scan_object(&j) < 0) {
        *dup = j.dup;
        return -1;
    }
    skip_ws(&j);
    if (j.i != len)
        return -1;
    s->top_count = j.nm;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Compact serialization and JOSE header                                                       */

static inline int fail(gw_jws *t, int error)
{
    t->error = error;
    return -1;
}

static inline int name_is(const gw_json_member *m, const char *lit, size_t len)
{
    return m->name_len == len && memcmp(m->name, lit, len) == 0;
}

/* The unescaped content of a string member value, into the scratch space when it has escapes. */
static int string_value(const uint8_t *json, gw_json_scratch *s, const gw_json_member *m,
                        const uint8_t **out, uint32_t *out_len)
{
    const uint8_t *raw = json + m->value_off + 1;
    if (json[m->value_off] != '"')
        return -1;
    size_t raw_len = m->value_len - 2;
    if (memchr(raw, '\\', raw_len) == NULL) {
        *out = raw;
        *out_len = (uint32_t)raw_len;
        return 0;
    }
    *out = s->unesc + s->unesc_len;
    *out_len = (uint32_t)unescape(raw, raw_len, s->unesc + s->unesc_len);
    s->unesc_len += *out_len;
    return 0;
}

/* A crit entry (raw JSON string content, already validated by the scanner) that names "b64".
 * The escaped forms of three characters are at most 18 bytes, and unescaping never grows. */
static int crit_names_b64(const uint8_t *raw, size_t len)
{
    uint8_t buf[18];
    if (len == 3)
        return memcmp(raw, "b64", 3) == 0;
    if (len > sizeof buf || memchr(raw, '\\', len) == NULL)
        return 0;
    return unescape(raw, len, buf) == 3 && memcmp(buf, "b64", 3) == 0;
}

/* crit (RFC 7515 4.1.11): a non-empty array of strings. Without GW_JWS_P_B64 every entry is
 * unsupported; with it, "b64" is supported and *lists_b64 says whether it was named.
 * The value already passed the scanner, so only its shape is examined. */
static int check_crit(const uint8_t *v, size_t len, unsigned flags, int *lists_b64)
{
    size_t i = 1, count = 0;
    int unsupported = 0;
    if (len < 2 || v[0] != '[')
        return GW_JWS_E_CRIT;
    while (i < len) {
        uint8_t c = v[i];
        if (c == ']') {
            if (count == 0)
                return GW_JWS_E_CRIT;
            return unsupported ? GW_JWS_E_CRIT_UNSUPPORTED : 0;
        }
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',') {
            i++;
            continue;
        }
        if (c != '"')
            return GW_JWS_E_CRIT;
        size_t start = ++i;
        for (; i < len && v[i] != '"'; i++)
            if (v[i] == '\\')
                i++;
        if (i >= len)
            return GW_JWS_E_CRIT;
        if ((flags & GW_JWS_P_B64) && crit_names_b64(v + start, i - start))
            *lists_b64 = 1;
        else
            unsupported = 1;
        i++;
        count++;
    }
    return GW_JWS_E_CRIT;
}

/* Check the JSON of the decoded header and read alg, kid, typ and b64. A JSON fault fails at
 * once (-1, t->error); a header parameter fault is returned as an error code (0 when none) for
 * the caller to report: alg/kid/typ/b64 types first, then crit, then RFC 7797's b64-in-crit. */
static int parse_header(gw_jws *t, unsigned flags, int *param_error)
{
    gw_json_scratch *s = &t->scratch;
    int dup;
    *param_error = 0;
    if (gw_json_check_object(t->json, t->header_len, s, &dup) < 0)
        return fail(t, dup ? GW_JWS_E_DUPLICATE : GW_JWS_E_HEADER_JSON);
    int type_error = 0, crit_error = 0, has_b64 = 0, lists_b64 = 0;
    for (uint32_t k = 0; k < s->top_count; k++) {
        const gw_json_member *m = &s->members[k];
        const uint8_t *v = t->json + m->value_off;
        int e = 0;
        if (name_is(m, "alg", 3)) {
            const uint8_t *a;
            uint32_t a_len;
            if (string_value(t->json, s, m, &a, &a_len) < 0) {
                if (flags & GW_JWS_P_ALG_ANY_JSON)
                    t->alg = GW_JWS_ALG_UNKNOWN;
                else
                    e = GW_JWS_E_HEADER_PARAM;
            } else {
                t->alg = gw_jws_alg_from_name(a, a_len);
            }
        } else if (name_is(m, "kid", 3)) {
            if (string_value(t->json, s, m, &t->kid, &t->kid_len) < 0)
                e = GW_JWS_E_HEADER_PARAM;
        } else if (name_is(m, "typ", 3)) {
            if (string_value(t->json, s, m, &t->typ, &t->typ_len) < 0)
                e = GW_JWS_E_HEADER_PARAM;
        } else if (name_is(m, "b64", 3)) {
            has_b64 = 1;
            if (m->value_len == 5 && memcmp(v, "false", 5) == 0)
                t->b64 = 0;
            else if (!(m->value_len == 4 && memcmp(v, "true", 4) == 0))
                e = GW_JWS_E_HEADER_PARAM;
        } else if (name_is(m, "crit", 4)) {
            crit_error = check_crit(v, m->value_len, flags, &lists_b64);
        }
        if (e && !type_error)
            type_error = e;
    }
    if (!(flags & GW_JWS_P_B64) && t->b64 == 0 && !type_error)
        type_error = GW_JWS_E_B64_FALSE;
    if (type_error)
        *param_error = type_error;
    else if (crit_error)
        *param_error = crit_error;
    else if (lists_b64 && !has_b64)
        *param_error = GW_JWS_E_CRIT_ABSENT;
    else if (t->b64 == 0 && !lists_b64)
        *param_error = GW_JWS_E_B64_CRIT;
    return 0;
}

int gw_jws_parse(gw_jws *t, const char *token, size_t len)
{
    return gw_jws_parse_ex(t, token, len, 0);
}

int gw_jws_parse_ex(gw_jws *t, const char *token, size_t len, unsigned flags)
{
    t->alg = GW_JWS_ALG_MISSING;
    t->b64 = 1;
    t->kid = t->typ = NULL;
    t->kid_len = t->typ_len = 0;
    t->header_len = t->sig_len = t->json_len = 0;
    t->signing_input_len = t->payload_off = t->payload_len = 0;
    t->error = GW_JWS_E_NONE;
    if (len > GW_JWS_MAX_TOKEN)
        return fail(t, GW_JWS_E_TOO_LONG);
    const char *d1 = memchr(token, '.', len);
    if (d1 == NULL)
        return fail(t, GW_JWS_E_SEGMENTS);
    const char *end = token + len;
    const char *d2 = memchr(d1 + 1, '.', (size_t)(end - d1 - 1));
    if (d2 == NULL || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)) != NULL)
        return fail(t, GW_JWS_E_SEGMENTS);
    int padded = (flags & GW_JWS_P_PADDED) != 0;

    /* header: at most (8192 / 4) * 3 = GW_JWS_MAX_JSON bytes, the size of t->json */
    long text = padded ? unpadded_len(token, (size_t)(d1 - token)) : (long)(d1 - token);
    long n = text < 0 ? -1 : gw_b64url_decode(token, (size_t)text, t->json);
    if (n < 0)
        return fail(t, GW_JWS_E_HEADER_B64);
    t->header_len = (uint32_t)n;
    int param_error;
    if (parse_header(t, flags, &param_error) < 0)
        return -1;
    int late = (flags & GW_JWS_P_SEGMENTS_FIRST) != 0;
    if (param_error && !late)
        return fail(t, param_error);

    size_t payload_text = (size_t)(d2 - d1 - 1);
    if (t->b64 == 0) {
        if (payload_text != 0)
            return fail(t, GW_JWS_E_B64_PAYLOAD);
    } else if (padded || late) {
        text = padded ? unpadded_len(d1 + 1, payload_text) : (long)payload_text;
        if (text < 0 || (late && !b64url_valid(d1 + 1, (size_t)text)))
            return fail(t, GW_JWS_E_PAYLOAD_B64);
        payload_text = (size_t)text;
    }

    text = padded ? unpadded_len(d2 + 1, (size_t)(end - d2 - 1)) : (long)(end - d2 - 1);
    if (text < 0)
        return fail(t, GW_JWS_E_SIG_B64);
    if (gw_b64url_decoded_len((size_t)text) > GW_JWS_MAX_SIG)
        return fail(t, GW_JWS_E_SIG_LENGTH);
    n = gw_b64url_decode(d2 + 1, (size_t)text, t->sig);
    if (n < 0)
        return fail(t, GW_JWS_E_SIG_B64);
    if (param_error)
        return fail(t, param_error);
    t->sig_len = (uint32_t)n;
    t->signing_input_len = (uint32_t)(d2 - token);
    t->payload_off = (uint32_t)(d1 + 1 - token);
    t->payload_len = (uint32_t)payload_text;
    return 0;
}

int gw_jws_payload(gw_jws *t, const char *token)
{
    t->kid = t->typ = NULL;
    t->kid_len = t->typ_len = 0;
    if (gw_b64url_decoded_len(t->payload_len) > GW_JWS_MAX_JSON)
        return fail(t, GW_JWS_E_PAYLOAD_JSON);
    long n = gw_b64url_decode(token + t->payload_off, t->payload_len, t->json);
    if (n < 0)
        return fail(t, GW_JWS_E_PAYLOAD_B64);
    t->json_len = (uint32_t)n;
    int dup;
    if (gw_json_check_object(t->json, t->json_len, &t->scratch, &dup) < 0)
        return fail(t, dup ? GW_JWS_E_DUPLICATE : GW_JWS_E_PAYLOAD_JSON);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Keys                                                                                        */

struct gw_jws_key {
    int kty, crv, bits;
    uint32_t algs;
    EVP_PKEY *pkey;           /* RSA, EC, OKP */
    EVP_MAC_CTX *mac[3];      /* oct: keyed HMAC-SHA-256/384/512 contexts */
    size_t secret_len;
};

static const struct {
    const char *group;        /* OpenSSL group name */
    size_t coord;             /* field element bytes (RFC 7518 6.2.1.2) */
    int alg;
} CURVE[] = {
    [GW_JWS_CRV_P256] = {"prime256v1", 32, GW_JWS_ES256},
    [GW_JWS_CRV_P384] = {"secp384r1", 48, GW_JWS_ES384},
    [GW_JWS_CRV_P521] = {"secp521r1", 66, GW_JWS_ES512},
};

static inline int key_fail(int *error, int code)
{
    ERR_clear_error();
    *error = code;
    return -1;
}

void gw_jws_key_free(gw_jws_key *key)
{
    if (key == NULL)
        return;
    EVP_PKEY_free(key->pkey);
    for (int i = 0; i < 3; i++)
        EVP_MAC_CTX_free(key->mac[i]);  /* clears the key material it holds */
    free(key);
}

int gw_jws_key_secret(const uint8_t *k, size_t len, gw_jws_key **out, int *error)
{
    if (len == 0)
        return key_fail(error, GW_JWS_E_KEY_INVALID);
    gw_jws_key *key = calloc(1, sizeof *key);
    if (key == NULL)
        return key_fail(error, GW_JWS_E_CRYPTO);
    key->kty = GW_JWS_KTY_OCT;
    key->secret_len = len;
    key->bits = len > (size_t)(INT32_MAX / 8) ? INT32_MAX : (int)(len * 8);
    key->algs = ALGS_HMAC;
    for (int i = 0; i < 3; i++) {
        OSSL_PARAM params[2] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)HASH_NAME[i], 0),
            OSSL_PARAM_construct_end(),
        };
        key->mac[i] = EVP_MAC_CTX_new(g_hmac);
        if (key->mac[i] == NULL || EVP_MAC_init(key->mac[i], k, len, params) != 1) {
            gw_jws_key_free(key);
            return key_fail(error, GW_JWS_E_CRYPTO);
        }
    }
    *out = key;
    return 0;
}

static int curve_of_group(const char *name)
{
    for (int c = GW_JWS_CRV_P256; c <= GW_JWS_CRV_P521; c++)
        if (strcmp(name, CURVE[c].group) == 0)
            return c;
    return GW_JWS_CRV_NONE;
}

/* Wrap an EVP_PKEY (ownership taken) after checking it is a usable public key. */
static int key_from_pkey(EVP_PKEY *pkey, gw_jws_key **out, int *error)
{
    int kty, crv = GW_JWS_CRV_NONE, code = GW_JWS_E_KEY_UNSUPPORTED;
    uint32_t algs;
    switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA:
        kty = GW_JWS_KTY_RSA;
        algs = ALGS_RSA;
        break;
    case EVP_PKEY_RSA_PSS:
        kty = GW_JWS_KTY_RSA;
        algs = ALGS_PSS;
        break;
    case EVP_PKEY_EC: {
        char group[64];
        size_t glen;
        kty = GW_JWS_KTY_EC;
        if (EVP_PKEY_get_group_name(pkey, group, sizeof group, &glen) != 1 ||
            (crv = curve_of_group(group)) == GW_JWS_CRV_NONE)
            goto bad;  /* explicit parameters or a curve JWS does not define */
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        int valid = ctx != NULL && EVP_PKEY_public_check(ctx) == 1;
        EVP_PKEY_CTX_free(ctx);
        if (!valid) {
            code = GW_JWS_E_KEY_INVALID;
            goto bad;
        }
        algs = 1u << CURVE[crv].alg;
        break;
    }
    case EVP_PKEY_ED25519:
        kty = GW_JWS_KTY_OKP;
        crv = GW_JWS_CRV_ED25519;
        algs = 1u << GW_JWS_EDDSA;
        break;
    case EVP_PKEY_ED448:
        kty = GW_JWS_KTY_OKP;
        crv = GW_JWS_CRV_ED448;
        algs = 1u << GW_JWS_EDDSA;
        break;
    default:
        goto bad;
    }
    int bits = EVP_PKEY_get_bits(pkey);
    if (kty == GW_JWS_KTY_RSA && (bits <= 0 || EVP_PKEY_get_size(pkey) > GW_JWS_MAX_SIG))
        goto bad;
    gw_jws_key *key = calloc(1, sizeof *key);
    if (key == NULL) {
        code = GW_JWS_E_CRYPTO;
        goto bad;
    }
    key->kty = kty;
    key->crv = crv;
    key->bits = bits;
    key->algs = algs;
    key->pkey = pkey;
    *out = key;
    ERR_clear_error();
    return 0;
bad:
    EVP_PKEY_free(pkey);
    return key_fail(error, code);
}

int gw_jws_key_pem(const char *pem, size_t len, gw_jws_key **out, int *error)
{
    static const char begin[] = "-----BEGIN ";
    const char *b = memmem(pem, len, begin, sizeof begin - 1);
    if (b == NULL || len > INT32_MAX)
        return key_fail(error, GW_JWS_E_KEY_INVALID);
    const char *label = b + sizeof begin - 1, *end = pem + len;
    const char *close = memmem(label, (size_t)(end - label), "-----", 5);
    if (close == NULL)
        return key_fail(error, GW_JWS_E_KEY_INVALID);
    size_t label_len = (size_t)(close - label);
    if (memmem(close, (size_t)(end - close), begin, sizeof begin - 1) != NULL)
        return key_fail(error, GW_JWS_E_KEY_INVALID);     /* one PEM block only */
#define LABEL_IS(s) (label_len == sizeof(s) - 1 && memcmp(label, s, label_len) == 0)
    static const char private[] = "PRIVATE KEY";
    if (label_len >= sizeof private - 1 &&
        memcmp(close - (sizeof private - 1), private, sizeof private - 1) == 0)
        return key_fail(error, GW_JWS_E_KEY_PRIVATE);
    EVP_PKEY *pkey = NULL;
    if (LABEL_IS("CERTIFICATE")) {
        BIO *bio = BIO_new_mem_buf(pem, (int)len);
        X509 *cert = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
        pkey = cert != NULL ? X509_get_pubkey(cert) : NULL;
        X509_free(cert);
        BIO_free(bio);
    } else if (LABEL_IS("PUBLIC KEY") || LABEL_IS("RSA PUBLIC KEY")) {
        OSSL_DECODER_CTX *dctx = OSSL_DECODER_CTX_new_for_pkey(
            &pkey, "PEM", NULL, NULL, OSSL_KEYMGMT_SELECT_PUBLIC_KEY, NULL, NULL);
        const unsigned char *data = (const unsigned char *)pem;
        size_t left = len;
        if (dctx == NULL || OSSL_DECODER_from_data(dctx, &data, &left) != 1)
            pkey = NULL;
        OSSL_DECODER_CTX_free(dctx);
    } else {
        return key_fail(error, GW_JWS_E_KEY_UNSUPPORTED);
    }
#undef LABEL_IS
    if (pkey == NULL)
        return key_fail(error, GW_JWS_E_KEY_INVALID);
    return key_from_pkey(pkey, out, error);
}

/* EVP_PKEY_fromdata for a public key of type name from the built parameters. */
static EVP_PKEY *pkey_fromdata(const char *name, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, name, NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

int gw_jws_key_rsa(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len,
                   gw_jws_key **out, int *error)
{
    if (n_len == 0 || e_len == 0 || n_len > GW_JWS_MAX_SIG + 1 || e_len > 64)
        return key_fail(error, GW_JWS_E_KEY_INVALID);
    BIGNUM *bn_n = BN_bin2bn(n, (int)n_len, NULL), *bn_e = BN_bin2bn(e, (int)e_len, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    int code = GW_JWS_E_CRYPTO;
    if (bn_n != NULL && bn_e != NULL && bld != NULL) {
        code = GW_JWS_E_KEY_INVALID;
        if (BN_is_odd(bn_n) && BN_is_odd(bn_e) && !BN_is_one(bn_e) &&
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1 &&
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1)
            pkey = pkey_fromdata("RSA", bld);
    }
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    if (pkey == NULL)
        return key_fail(error, code);
    return key_from_pkey(pkey, out, error);
}

int gw_jws_key_ec(int crv, const uint8_t *x, size_t x_len, const uint8_t *y, size_t y_len,
                  gw_jws_key **out, int *error)
{
    if (crv < GW_JWS_CRV_P256 || crv > GW_JWS_CRV_P521)
        return key_fail(error, GW_JWS_E_KEY_UNSUPPORTED);
    size_t c = CURVE[crv].coord;
    if (x_len != c || y_len != c)
        return key_fail(error, GW_JWS_E_KEY_INVALID);
    uint8_t point[1 + 2 * 66];  /* SEC 1 2.3.3 uncompressed point */
    point[0] = 0x04;
    memcpy(point + 1, x, c);
    memcpy(point + 1 + c, y, c);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    if (bld == NULL)
        return key_fail(error, GW_JWS_E_CRYPTO);
    if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, CURVE[crv].group, 0) ==
            1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * c) == 1)
        pkey = pkey_fromdata("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    if (pkey == NULL)  /* also a point off the curve */
        return key_fail(error, GW_JWS_E_KEY_INVALID);
    return key_from_pkey(pkey, out, error);
}

int gw_jws_key_okp(int crv, const uint8_t *x, size_t x_len, gw_jws_key **out, int *error)
{
    int type;
    size_t want;
    if (crv == GW_JWS_CRV_ED25519) {
        type = EVP_PKEY_ED25519;
        want = 32;
    } else if (crv == GW_JWS_CRV_ED448) {
        type = EVP_PKEY_ED448;
        want = 57;
    } else {
        return key_fail(error, GW_JWS_E_KEY_UNSUPPORTED);
    }
    if (x_len != want)
        return key_fail(error, GW_JWS_E_KEY_INVALID);
    EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(type, NULL, x, x_len);
    if (pkey == NULL)
        return key_fail(error, GW_JWS_E_KEY_INVALID);
    return key_from_pkey(pkey, out, error);
}

int gw_jws_key_kty(const gw_jws_key *key) { return key->kty; }
int gw_jws_key_crv(const gw_jws_key *key) { return key->crv; }
int gw_jws_key_bits(const gw_jws_key *key) { return key->bits; }
uint32_t gw_jws_key_algs(const gw_jws_key *key) { return key->algs; }

/* ------------------------------------------------------------------------------------------ */
/* Verification                                                                                */

static int verify_hmac(gw_jws_key *key, int hash, const uint8_t *msg, size_t msg_len,
                       const uint8_t *sig, size_t sig_len, unsigned flags)
{
    size_t want = HASH_LEN[hash], got = 0;
    uint8_t mac[EVP_MAX_MD_SIZE];
    if ((flags & GW_JWS_F_ENFORCE_MIN_KEY) && key->secret_len < want)
        return GW_JWS_E_KEY_TOO_SHORT;
    if (sig_len != want)
        return GW_JWS_E_SIG_LENGTH;  /* truncated MACs are not JWS (RFC 7518 3.2) */
    EVP_MAC_CTX *ctx = key->mac[hash];
    /* init without a key restarts from the keyed state: no key schedule per token */
    if (EVP_MAC_init(ctx, NULL, 0, NULL) != 1 || EVP_MAC_update(ctx, msg, msg_len) != 1 ||
        EVP_MAC_final(ctx, mac, &got, sizeof mac) != 1 || got != want)
        return GW_JWS_E_CRYPTO;
    int same = CRYPTO_memcmp(mac, sig, want) == 0;
    OPENSSL_cleanse(mac, sizeof mac);
    return same ? 0 : GW_JWS_E_SIGNATURE;
}

static int digest_verify(EVP_PKEY *pkey, const EVP_MD *md, int pss, const uint8_t *msg,
                         size_t msg_len, const uint8_t *sig, size_t sig_len)
{
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    if (mctx == NULL)
        return GW_JWS_E_CRYPTO;
    int code = GW_JWS_E_KEY_ALG;  /* e.g. an RSA-PSS key restricted to another hash */
    if (EVP_DigestVerifyInit(mctx, &pctx, md, NULL, pkey) == 1 &&
        (!pss || (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
                  EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
                  EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) == 1)))
        code = EVP_DigestVerify(mctx, sig, sig_len, msg, msg_len) == 1 ? 0 : GW_JWS_E_SIGNATURE;
    EVP_MD_CTX_free(mctx);
    return code;
}

/* JWS carries ECDSA signatures as R||S (RFC 7518 3.4); libcrypto wants DER (SEC 1 C.8). */
static int verify_ec(gw_jws_key *key, int hash, const uint8_t *msg, size_t msg_len,
                     const uint8_t *sig, size_t sig_len)
{
    size_t half = CURVE[key->crv].coord;
    if (sig_len != 2 * half)
        return GW_JWS_E_SIG_LENGTH;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)half, NULL), *s = BN_bin2bn(sig + half, (int)half, NULL);
    if (es == NULL || r == NULL || s == NULL) {
        ECDSA_SIG_free(es);
        BN_free(r);
        BN_free(s);
        return GW_JWS_E_CRYPTO;
    }
    ECDSA_SIG_set0(es, r, s);
    uint8_t der[2 * (66 + 4) + 4];  /* SEQUENCE of two INTEGERs of at most 67 bytes */
    int der_len = i2d_ECDSA_SIG(es, NULL);
    int code = GW_JWS_E_CRYPTO;
    if (der_len > 0 && (size_t)der_len <= sizeof der) {
        uint8_t *pp = der;
        i2d_ECDSA_SIG(es, &pp);
        code = digest_verify(key->pkey, g_md[hash], 0, msg, msg_len, der, (size_t)der_len);
    }
    ECDSA_SIG_free(es);
    return code;
}

int gw_jws_verify(gw_jws_key *key, int alg, const uint8_t *msg, size_t msg_len,
                  const uint8_t *sig, size_t sig_len, unsigned flags, int *error)
{
    int code;
    if (alg < 0 || alg >= GW_JWS_ALG__COUNT || !(key->algs & (1u << alg))) {
        *error = GW_JWS_E_KEY_ALG;
        return -1;
    }
    int hash = ALG[alg].hash;
    switch (ALG[alg].family) {
    case FAM_HMAC:
        code = verify_hmac(key, hash, msg, msg_len, sig, sig_len, flags);
        break;
    case FAM_RSA:
    case FAM_PSS:
        if ((flags & GW_JWS_F_ENFORCE_MIN_KEY) && key->bits < 2048)
            code = GW_JWS_E_KEY_TOO_SHORT;
        else if (sig_len != (size_t)EVP_PKEY_get_size(key->pkey))
            code = GW_JWS_E_SIG_LENGTH;
        else
            code = digest_verify(key->pkey, g_md[hash], ALG[alg].family == FAM_PSS, msg, msg_len,
                                 sig, sig_len);
        break;
    case FAM_EC:
        code = verify_ec(key, hash, msg, msg_len, sig, sig_len);
        break;
    default: /* FAM_EDDSA: RFC 8037 3.1, the message is signed as is */
        if (sig_len != (key->crv == GW_JWS_CRV_ED25519 ? 64u : 114u))
            code = GW_JWS_E_SIG_LENGTH;
        else
            code = digest_verify(key->pkey, NULL, 0, msg, msg_len, sig, sig_len);
        break;
    }
    if (code == 0)
        return 0;
    ERR_clear_error();
    *error = code;
    return -1;
}
