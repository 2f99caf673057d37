/* trace.c - W3C Trace Context checks and ids; the contract is in trace.h.
 *
 * traceparent is checked at fixed offsets (every field of version 00 has a fixed width);
 * tracestate is split on ',' and each list-member checked against its ABNF, one byte at a
 * time (values are at most 512 bytes). Byte classes (HEXDIGLC, key and value characters)
 * come from one 256-entry table, so each byte costs a load and a test. The generator is
 * xoshiro256** over a 256-bit state;
 * its seed bytes are spread over the state with splitmix64 (Steele, Lea and Flood, "Fast
 * splittable pseudorandom number generators", OOPSLA 2014), the seeding the xoshiro authors
 * recommend.
 */
#include "trace.h"

#include <string.h>

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

static const char k_hex_lower[16] = "0123456789abcdef";

/* Byte classes: HEXDIGLC; tracestate key first character (lcalpha / DIGIT) and keychar
 * (lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"); value chr (%x20-2B / %x2D-3C / %x3E-7E). */
enum { C_HEX = 1, C_KEY1 = 2, C_KEY = 4, C_VALUE = 8 };

#define R6(f) f, f, f, f, f, f
#define R10(f) R6(f), f, f, f, f
#define R20(f) R10(f), R10(f)
#define R26(f) R20(f), R6(f)
static const uint8_t k_class[256] = {
    [' '] = C_VALUE, ['!'] = C_VALUE, ['"'] = C_VALUE, ['#'] = C_VALUE, ['$'] = C_VALUE,
    ['%'] = C_VALUE, ['&'] = C_VALUE, ['\''] = C_VALUE, ['('] = C_VALUE, [')'] = C_VALUE,
    ['*'] = C_VALUE | C_KEY, ['+'] = C_VALUE, ['-'] = C_VALUE | C_KEY, ['.'] = C_VALUE,
    ['/'] = C_VALUE | C_KEY,
    ['0'] = R10(C_VALUE | C_KEY | C_KEY1 | C_HEX),
    [':'] = C_VALUE, [';'] = C_VALUE, ['<'] = C_VALUE, ['>'] = C_VALUE, ['?'] = C_VALUE,
    ['@'] = C_VALUE | C_KEY,
    ['A'] = R26(C_VALUE),
    ['['] = C_VALUE, ['\\'] = C_VALUE, [']'] = C_VALUE, ['^'] = C_VALUE,
    ['_'] = C_VALUE | C_KEY, ['`'] = C_VALUE,
    ['a'] = R6(C_VALUE | C_KEY | C_KEY1 | C_HEX),
    ['g'] = R20(C_VALUE | C_KEY | C_KEY1),
    ['{'] = C_VALUE, ['|'] = C_VALUE, ['}'] = C_VALUE, ['~'] = C_VALUE,
};
#undef R26
#undef R20
#undef R10
#undef R6

static inline int has_class(unsigned c, unsigned cls) { return (k_class[c & 0xffu] & cls) != 0; }

/* ----- random ids ---------------------------------------------------------------------- */

static inline uint64_t rotate_left(uint64_t x, unsigned k) {
    return (x << k) | (x >> (64u - k));
}

/* splitmix64: a Weyl sequence (step: the odd 64-bit golden-ratio constant) through a
 * bijective mixer, so distinct states give distinct outputs. */
static inline uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

void gw_rng_seed(gw_rng *r, const unsigned char *seed, size_t n) {
    uint64_t words[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < n; i++) words[(i >> 3) & 3u] ^= (uint64_t)seed[i] << ((i & 7u) * 8u);
    uint64_t x = 0;
    for (unsigned k = 0; k < 4; k++) {
        x ^= words[k];
        r->s[k] = splitmix64(&x);
    }
    if (UNLIKELY((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0)) r->s[0] = 1; /* never all zero */
}

/* xoshiro256**: the output scrambles s[1] (multiply, rotate, multiply); the linear engine
 * xors and shifts the four words into each other. */
uint64_t gw_rng_next(gw_rng *r) {
    uint64_t *s = r->s;
    const uint64_t out = rotate_left(s[1] * 5u, 7) * 9u;
    const uint64_t shifted = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= shifted;
    s[3] = rotate_left(s[3], 45);
    return out;
}

uint64_t gw_trace_threshold(double ratio) {
    if (!(ratio > 0.0)) return 0; /* also NaN */
    if (ratio >= 1.0) return UINT64_C(1) << 53;
    return (uint64_t)(ratio * 9007199254740992.0); /* 2^53 */
}

int gw_rng_sample(gw_rng *r, uint64_t threshold) {
    return (gw_rng_next(r) >> 11) < threshold;
}

void gw_hex64(uint64_t v, char *out) {
    for (int i = 15; i >= 0; i--) {
        out[i] = k_hex_lower[v & 15u];
        v >>= 4;
    }
}

/* ----- traceparent --------------------------------------------------------------------- */

/* HEXDIGLC: 0-9 a-f; its value, or -1. */
static inline int hexlc_value(unsigned c) {
    if (!has_class(c, C_HEX)) return -1;
    return c <= '9' ? (int)(c - '0') : (int)(c - 'a' + 10);
}

/* 1 when p[0..n) is all HEXDIGLC; *nonzero is set when one of them is not '0'. */
static inline int hexlc_run(const unsigned char *p, size_t n, int *nonzero) {
    unsigned all = C_HEX, any = 0;
    for (size_t i = 0; i < n; i++) {
        all &= k_class[p[i]];
        any |= p[i] ^ (unsigned)'0';
    }
    *nonzero = any != 0;
    return all != 0;
}

#define TP_FAIL(code)   \
    do {                \
        *error = (code); \
        return -1;      \
    } while (0)

int gw_traceparent_parse(const char *v, size_t n, uint8_t *flags, int *error) {
    const unsigned char *p = (const unsigned char *)v;
    *error = GW_TRACE_OK;
    if (n < 3) TP_FAIL(GW_TP_E_LENGTH);
    int hi = hexlc_value(p[0]), lo = hexlc_value(p[1]);
    if (hi < 0 || lo < 0 || p[2] != '-') TP_FAIL(GW_TP_E_VERSION);
    int version = hi * 16 + lo;
    if (version == 0xff) TP_FAIL(GW_TP_E_VERSION_FF);
    /* 00: exactly 55 bytes. Higher (§3.2.4): at least 55, and then '-' or the end. */
    if (version == 0 ? n != GW_TRACEPARENT_LEN
                     : n < GW_TRACEPARENT_LEN || (n > GW_TRACEPARENT_LEN && p[55] != '-'))
        TP_FAIL(GW_TP_E_LENGTH);
    if (p[35] != '-' || p[52] != '-') TP_FAIL(GW_TP_E_FORMAT);
    int trace_nonzero, parent_nonzero, flags_nonzero;
    if (!hexlc_run(p + 3, 32, &trace_nonzero) || !hexlc_run(p + 36, 16, &parent_nonzero) ||
        !hexlc_run(p + 53, 2, &flags_nonzero))
        TP_FAIL(GW_TP_E_HEX);
    if (!trace_nonzero) TP_FAIL(GW_TP_E_TRACE_ID_ZERO);
    if (!parent_nonzero) TP_FAIL(GW_TP_E_PARENT_ID_ZERO);
    *flags = (uint8_t)(hexlc_value(p[53]) * 16 + hexlc_value(p[54]));
    return 0;
}

int gw_trace_begin(gw_rng *r, const char *tp, size_t tp_len, uint64_t threshold,
                   gw_trace_ctx *ctx, int *error) {
    int err = GW_TRACE_OK;
    uint8_t flags = 0;
    if (tp != NULL && gw_traceparent_parse(tp, tp_len, &flags, &err) == 0) {
        memcpy(ctx->trace_id, tp + 3, 32);
        memcpy(ctx->parent_id, tp + 36, 16);
        ctx->sampled = flags & 1u;
        ctx->continued = 1;
    } else {
        uint64_t high, low;
        do {
            high = gw_rng_next(r);
            low = gw_rng_next(r);
        } while (UNLIKELY((high | low) == 0));
        gw_hex64(high, ctx->trace_id);
        gw_hex64(low, ctx->trace_id + 16);
        memset(ctx->parent_id, '0', 16);
        ctx->sampled = (uint8_t)gw_rng_sample(r, threshold);
        ctx->continued = 0;
    }
    /* non-zero, and never the received parent-id (a hop's span is a new one) */
    do {
        uint64_t span;
        do span = gw_rng_next(r);
        while (UNLIKELY(span == 0));
        gw_hex64(span, ctx->span_id);
    } while (UNLIKELY(ctx->continued && memcmp(ctx->span_id, ctx->parent_id, 16) == 0));
    if (error != NULL) *error = err;
    return ctx->continued ? 0 : 1;
}

int gw_traceparent_format(const gw_trace_ctx *ctx, char *out, size_t cap) {
    if (cap < GW_TRACEPARENT_LEN) return -1;
    memcpy(out, "00-", 3);
    memcpy(out + 3, ctx->trace_id, 32);
    out[35] = '-';
    memcpy(out + 36, ctx->span_id, 16);
    out[52] = '-';
    out[53] = '0';
    out[54] = ctx->sampled ? '1' : '0';
    return (int)GW_TRACEPARENT_LEN;
}

/* ----- tracestate ---------------------------------------------------------------------- */

static inline int is_ows(unsigned c) { return c == ' ' || c == '\t'; }

/* One list-member p[0..n) (between commas, OWS included): key "=" value, or OWS only. */
static int check_member(gw_tracestate *st, const unsigned char *p, size_t n) {
    while (n > 0 && is_ows(p[0])) {
        p++;
        n--;
    }
    while (n > 0 && is_ows(p[n - 1])) n--;
    if (n == 0) return GW_TRACE_OK; /* an empty member is allowed (§3.3.1) */
    const unsigned char *eq = memchr(p, '=', n);
    if (eq == NULL) return GW_TS_E_MEMBER;
    size_t key_len = (size_t)(eq - p), value_len = n - key_len - 1;
    if (key_len == 0 || key_len > GW_TRACESTATE_MAX_KEY || !has_class(p[0], C_KEY1))
        return GW_TS_E_KEY;
    unsigned all = C_KEY;
    for (size_t i = 1; i < key_len; i++) all &= k_class[p[i]];
    if (!all) return GW_TS_E_KEY;
    /* trailing OWS was cut above, so a value never ends with a space here */
    if (value_len == 0 || value_len > GW_TRACESTATE_MAX_VALUE) return GW_TS_E_VALUE;
    all = C_VALUE;
    for (size_t i = 0; i < value_len; i++) all &= k_class[eq[1 + i]];
    if (!all) return GW_TS_E_VALUE;
    if (++st->members > GW_TRACESTATE_MAX_MEMBERS) return GW_TS_E_MEMBERS;
    return GW_TRACE_OK;
}

void gw_tracestate_init(gw_tracestate *st) {
    memset(st, 0, sizeof(*st));
}

int gw_tracestate_add(gw_tracestate *st, const char *v, size_t n) {
    if (st->error != GW_TRACE_OK) return -1;
    size_t joined = n + (st->fields > 0); /* the ',' that joins it to the value before */
    if (n > GW_TRACESTATE_MAX_BYTES || st->bytes + joined > GW_TRACESTATE_MAX_BYTES) {
        st->error = GW_TS_E_SIZE;
        return -1;
    }
    st->bytes += joined;
    st->fields++;
    const unsigned char *p = (const unsigned char *)v;
    size_t start = 0;
    for (;;) {
        size_t end = start;
        while (end < n && p[end] != ',') end++;
        int e = check_member(st, p + start, end - start);
        if (e != GW_TRACE_OK) {
            st->error = e;
            return -1;
        }
        if (end == n) return 0;
        start = end + 1;
    }
}

const char *gw_trace_error_name(int code) {
    static const char *const names[GW_TRACE_E__COUNT] = {
        [GW_TRACE_OK] = "ok",
        [GW_TP_E_LENGTH] = "traceparent_length",
        [GW_TP_E_VERSION] = "traceparent_version",
        [GW_TP_E_VERSION_FF] = "traceparent_version_ff",
        [GW_TP_E_FORMAT] = "traceparent_format",
        [GW_TP_E_HEX] = "traceparent_hex",
        [GW_TP_E_TRACE_ID_ZERO] = "trace_id_zero",
        [GW_TP_E_PARENT_ID_ZERO] = "parent_id_zero",
        [GW_TS_E_SIZE] = "tracestate_size",
        [GW_TS_E_MEMBERS] = "tracestate_members",
        [GW_TS_E_MEMBER] = "tracestate_member",
        [GW_TS_E_KEY] = "tracestate_key",
        [GW_TS_E_VALUE] = "tracestate_value",
    };
    if (code < 0 || code >= GW_TRACE_E__COUNT) return "unknown";
    return names[code];
}
