/* http1.c - HTTP/1.1 message-head parser and chunked decoder (contract: http1.h).
 *
 * Written from RFC 9112 (HTTP/1.1 message syntax) and RFC 9110 (fields, lists, tokens).
 *
 * How it works
 * - The head parser is a single left-to-right pass over buf[0 .. min(len, max_head_bytes)).
 *   Every decision depends only on bytes already read, so a prefix of the input yields -2 or
 *   the very error the whole input yields; a head that has not ended inside the window is
 *   GW_E_HEAD_TOO_LARGE once len exceeds max_head_bytes. The request-target is checked
 *   against max_target_len while it is read, so GW_E_TARGET_TOO_LONG needs no complete line.
 * - Framing checks (Content-Length, Transfer-Encoding, Host) run after the empty line.
 * - Choices where the RFCs leave room: empty lines (CRLF) before the request-line are skipped
 *   (RFC 9112 2.2), any number bounded by max_head_bytes; responses get no such allowance.
 *   A CR or LF inside the request-target (including "GET /\r\n", no HTTP-version) is
 *   GW_E_TARGET. "chunked" twice is GW_E_TE_NOT_CHUNKED (400); a transfer coding parameter
 *   ("chunked;x=1") makes the coding another one. The Host value must be uri-host[:port]
 *   characters (RFC 3986 3.2.2) or empty. In a chunk-size line, CR not followed by LF is
 *   GW_E_BARE_CR and LF alone GW_E_BARE_LF; BWS is accepted only before ';' or '=' and after
 *   them (RFC 9112 7.1.1). Status codes outside 100..599 are GW_E_STATUS.
 * - The request-target and field values are scanned for their first invalid byte with AVX2
 *   (32-byte compares) or SSE4.2 (PCMPESTRI ranges) when the CPU has them, else with a lookup
 *   table. The parser body is compiled once per level (an always_inline template with the level
 *   as a constant) so the SIMD scanners inline into it; gw_parse_* dispatch on the level.
 *   Field names stay on the table scan: names are short, and a SIMD token test measured slower.
 * - The chunked decoder is a byte-wise state machine except for chunk data, which it passes
 *   through as one run per call.
 */
#include "http1.h"

#include <limits.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define GW_X86 1
#include <immintrin.h>
#endif

#define GW_INLINE static inline __attribute__((always_inline))

/* ---------------------------------------------------------------------------------------------
 * Character classes (RFC 9110 5.6.2 tchar, 5.5 field-vchar/obs-text, 5.6.4 qdtext; RFC 3986
 * host characters).
 */
enum {
    C_TOK = 1,   /* tchar */
    C_TGT = 2,   /* request-target byte: VCHAR (0x21-0x7E) */
    C_VAL = 4,   /* field-value byte: HTAB, SP, VCHAR, obs-text */
    C_HOST = 8,  /* uri-host / port byte: unreserved, pct, sub-delims, ':', '[', ']' */
    C_QD = 16,   /* qdtext */
};

static const uint8_t CLS[256] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0, 20,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    20, 31,  6, 23, 31, 31, 31, 31, 30, 30, 31, 31, 30, 31, 31, 22,
    31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 30, 30, 22, 30, 22, 22,
    22, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31,
    31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 30,  6, 30, 23, 31,
    23, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31,
    31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 22, 23, 22, 31,  0,
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
};

#define IS(c, cls) (CLS[(uint8_t)(c)] & (cls))
#define IS_WS(c) ((c) == ' ' || (c) == '\t')

static const uint8_t LOWER[256] = {
#define L4(b) (b), (b) + 1, (b) + 2, (b) + 3
#define L16(b) L4(b), L4((b) + 4), L4((b) + 8), L4((b) + 12)
    L16(0x00), L16(0x10), L16(0x20), L16(0x30),
    0x40, L4(0x61), L4(0x65), L4(0x69), L4(0x6d), L4(0x71), L4(0x75), 0x79, 0x7a,
    0x5b, 0x5c, 0x5d, 0x5e, 0x5f,
    L16(0x60), L16(0x70), L16(0x80), L16(0x90), L16(0xa0), L16(0xb0), L16(0xc0), L16(0xd0),
    L16(0xe0), L16(0xf0),
#undef L16
#undef L4
};

/* ---------------------------------------------------------------------------------------------
 * Scanners: return the first byte in [p, end) outside the class, or end. Never read past end.
 */
GW_INLINE const char *scan_scalar(const char *p, const char *end, uint8_t cls) {
    while (end - p >= 4) {
        if (!IS(p[0], cls)) return p;
        if (!IS(p[1], cls)) return p + 1;
        if (!IS(p[2], cls)) return p + 2;
        if (!IS(p[3], cls)) return p + 3;
        p += 4;
    }
    while (p < end && IS(*p, cls)) p++;
    return p;
}

#ifdef GW_X86
/* Target bytes are 0x21-0x7E: as signed bytes everything else is < 0x21 or equals 0x7F. */
__attribute__((target("avx2"))) static inline const char *scan_target_avx2(const char *p,
                                                                           const char *end) {
    const __m256i lo = _mm256_set1_epi8(0x21), del = _mm256_set1_epi8(0x7f);
    while (end - p >= 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)p);
        __m256i bad = _mm256_or_si256(_mm256_cmpgt_epi8(lo, v), _mm256_cmpeq_epi8(v, del));
        uint32_t m = (uint32_t)_mm256_movemask_epi8(bad);
        if (m) return p + __builtin_ctz(m);
        p += 32;
    }
    if (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i bad = _mm_or_si128(_mm_cmpgt_epi8(_mm_set1_epi8(0x21), v),
                                   _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f)));
        uint32_t m = (uint32_t)_mm_movemask_epi8(bad);
        if (m) return p + __builtin_ctz(m);
        p += 16;
    }
    return scan_scalar(p, end, C_TGT);
}

/* Value stop bytes: 0x00-0x1F except HTAB, and DEL. */
__attribute__((target("avx2"))) static inline const char *scan_value_avx2(const char *p,
                                                                          const char *end) {
    const __m256i ctl = _mm256_set1_epi8(0x1f), tab = _mm256_set1_epi8('\t'),
                  del = _mm256_set1_epi8(0x7f);
    while (end - p >= 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)p);
        __m256i low = _mm256_cmpeq_epi8(_mm256_min_epu8(v, ctl), v);
        __m256i bad = _mm256_or_si256(_mm256_andnot_si256(_mm256_cmpeq_epi8(v, tab), low),
                                      _mm256_cmpeq_epi8(v, del));
        uint32_t m = (uint32_t)_mm256_movemask_epi8(bad);
        if (m) return p + __builtin_ctz(m);
        p += 32;
    }
    if (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i low = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        __m128i bad = _mm_or_si128(_mm_andnot_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\t')), low),
                                   _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f)));
        uint32_t m = (uint32_t)_mm_movemask_epi8(bad);
        if (m) return p + __builtin_ctz(m);
        p += 16;
    }
    return scan_scalar(p, end, C_VAL);
}

/* SSE4.2: PCMPESTRI in "ranges" mode gives the index of the first byte inside any of the
 * listed [lo, hi] ranges (16 when none). */
#define GW_SIDD (_SIDD_UBYTE_OPS | _SIDD_CMP_RANGES | _SIDD_LEAST_SIGNIFICANT)

__attribute__((target("sse4.2"))) static inline const char *scan_target_sse42(const char *p,
                                                                              const char *end) {
    const __m128i ranges = _mm_setr_epi8(0x00, 0x20, 0x7f, (char)0xff, 0, 0, 0, 0, 0, 0, 0, 0,
                                         0, 0, 0, 0);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        int i = _mm_cmpestri(ranges, 4, v, 16, GW_SIDD);
        if (i != 16) return p + i;
        p += 16;
    }
    return scan_scalar(p, end, C_TGT);
}

__attribute__((target("sse4.2"))) static inline const char *scan_value_sse42(const char *p,
                                                                             const char *end) {
    const __m128i ranges = _mm_setr_epi8(0x00, 0x08, 0x0a, 0x1f, 0x7f, 0x7f, 0, 0, 0, 0, 0, 0,
                                         0, 0, 0, 0);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        int i = _mm_cmpestri(ranges, 6, v, 16, GW_SIDD);
        if (i != 16) return p + i;
        p += 16;
    }
    return scan_scalar(p, end, C_VAL);
}
#endif

GW_INLINE const char *scan_target(const char *p, const char *end, const int level) {
#ifdef GW_X86
    if (level == 2) return scan_target_avx2(p, end);
    if (level == 1) return scan_target_sse42(p, end);
#endif
    (void)level;
    return scan_scalar(p, end, C_TGT);
}

GW_INLINE const char *scan_value(const char *p, const char *end, const int level) {
#ifdef GW_X86
    if (level == 2) return scan_value_avx2(p, end);
    if (level == 1) return scan_value_sse42(p, end);
#endif
    (void)level;
    return scan_scalar(p, end, C_VAL);
}

/* ---------------------------------------------------------------------------------------------
 * Names
 */
static inline uint64_t ld8(const char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t ld4(const char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* s (a validated token) equals lit (lower-case letters and '-') ignoring case. OR-ing 0x20
 * folds A-Z onto a-z and maps no other tchar onto a letter or '-'. n is a constant at each call
 * site, so the loads unroll. */
GW_INLINE int tok_ieq(const char *s, const char *lit, size_t n) {
    if (n >= 8) {
        size_t i = 0;
        for (; i + 8 <= n; i += 8)
            if ((ld8(s + i) | 0x2020202020202020ull) != ld8(lit + i)) return 0;
        return i == n || (ld8(s + n - 8) | 0x2020202020202020ull) == ld8(lit + n - 8);
    }
    if (n >= 4)
        return (ld4(s) | 0x20202020u) == ld4(lit) && (ld4(s + n - 4) | 0x20202020u) == ld4(lit + n - 4);
    for (size_t i = 0; i < n; i++)
        if ((s[i] | 0x20) != lit[i]) return 0;
    return 1;
}

#define TOK_IS(s, n, lit) ((n) == sizeof(lit) - 1 && tok_ieq((s), (lit), sizeof(lit) - 1))

GW_INLINE uint8_t field_kind(const char *s, size_t n) {
    switch (n) {
    case 2: return tok_ieq(s, "te", 2) ? GW_FK_TE : GW_FK_OTHER;
    case 3: return tok_ieq(s, "via", 3) ? GW_FK_VIA : GW_FK_OTHER;
    case 4: return tok_ieq(s, "host", 4) ? GW_FK_HOST : GW_FK_OTHER;
    case 6: return tok_ieq(s, "expect", 6) ? GW_FK_EXPECT : GW_FK_OTHER;
    case 7:
        if (tok_ieq(s, "trailer", 7)) return GW_FK_TRAILER;
        if (tok_ieq(s, "upgrade", 7)) return GW_FK_UPGRADE;
        return GW_FK_OTHER;
    case 10:
        if (tok_ieq(s, "connection", 10)) return GW_FK_CONNECTION;
        if (tok_ieq(s, "keep-alive", 10)) return GW_FK_KEEP_ALIVE;
        return GW_FK_OTHER;
    case 12: return tok_ieq(s, "x-request-id", 12) ? GW_FK_X_REQUEST_ID : GW_FK_OTHER;
    case 14: return tok_ieq(s, "content-length", 14) ? GW_FK_CONTENT_LENGTH : GW_FK_OTHER;
    case 15: return tok_ieq(s, "x-forwarded-for", 15) ? GW_FK_X_FORWARDED_FOR : GW_FK_OTHER;
    case 16:
        if (tok_ieq(s, "proxy-connection", 16)) return GW_FK_PROXY_CONNECTION;
        if (tok_ieq(s, "x-forwarded-host", 16)) return GW_FK_X_FORWARDED_HOST;
        return GW_FK_OTHER;
    case 17:
        if (tok_ieq(s, "transfer-encoding", 17)) return GW_FK_TRANSFER_ENCODING;
        if (tok_ieq(s, "x-forwarded-proto", 17)) return GW_FK_X_FORWARDED_PROTO;
        return GW_FK_OTHER;
    default: return GW_FK_OTHER;
    }
}

/* RFC 9110 7.6.1 hop-by-hop fields, plus Transfer-Encoding (re-framed by a proxy). */
static const uint8_t HOP[GW_FK__COUNT] = {
    [GW_FK_CONNECTION] = 1, [GW_FK_KEEP_ALIVE] = 1, [GW_FK_PROXY_CONNECTION] = 1,
    [GW_FK_TE] = 1, [GW_FK_TRAILER] = 1, [GW_FK_UPGRADE] = 1, [GW_FK_TRANSFER_ENCODING] = 1,
};

GW_INLINE uint8_t method_id(const char *m, size_t n) {
    switch (n) {
    case 3:
        if (memcmp(m, "GET", 3) == 0) return GW_M_GET;
        if (memcmp(m, "PUT", 3) == 0) return GW_M_PUT;
        break;
    case 4:
        if (memcmp(m, "POST", 4) == 0) return GW_M_POST;
        if (memcmp(m, "HEAD", 4) == 0) return GW_M_HEAD;
        break;
    case 5:
        if (memcmp(m, "PATCH", 5) == 0) return GW_M_PATCH;
        if (memcmp(m, "TRACE", 5) == 0) return GW_M_TRACE;
        break;
    case 6:
        if (memcmp(m, "DELETE", 6) == 0) return GW_M_DELETE;
        break;
    case 7:
        if (memcmp(m, "OPTIONS", 7) == 0) return GW_M_OPTIONS;
        if (memcmp(m, "CONNECT", 7) == 0) return GW_M_CONNECT;
        break;
    }
    return GW_M_OTHER;
}

/* ---------------------------------------------------------------------------------------------
 * Lists (RFC 9110 5.6.1): elements separated by commas, OWS around them, empty ones skipped.
 * A quoted-string inside an element may contain commas.
 */
GW_INLINE int next_element(const char *value, size_t value_len, size_t *pos, size_t *el_off,
                           size_t *el_len) {
    size_t i = *pos;
    while (i < value_len && (IS_WS(value[i]) || value[i] == ',')) i++;
    if (i >= value_len) {
        *pos = value_len;
        return 0;
    }
    size_t start = i, last = i; /* last: one past the last non-OWS byte */
    int quoted = 0;
    while (i < value_len) {
        char c = value[i];
        if (quoted) {
            if (c == '\\' && i + 1 < value_len) i++;
            else if (c == '"') quoted = 0;
        } else if (c == ',') {
            break;
        } else if (c == '"') {
            quoted = 1;
        }
        i++;
        if (!IS_WS(c)) last = i;
    }
    *pos = i;
    *el_off = start;
    *el_len = last - start;
    return 1;
}

int gw_next_list_element(const char *value, size_t value_len, size_t *pos, size_t *el_off,
                         size_t *el_len) {
    return next_element(value, value_len, pos, el_off, el_len);
}

int gw_find_field(const char *buf, const gw_field *fields, uint32_t num_fields, const char *name,
                  size_t name_len) {
    for (uint32_t i = 0; i < num_fields; i++) {
        if (fields[i].name_len != name_len) continue;
        const uint8_t *a = (const uint8_t *)buf + fields[i].name_off, *b = (const uint8_t *)name;
        size_t j = 0;
        while (j < name_len && LOWER[a[j]] == LOWER[b[j]]) j++;
        if (j == name_len) return (int)i;
    }
    return -1;
}

/* ---------------------------------------------------------------------------------------------
 * Head parser
 */
typedef struct {
    uint32_t cl_count, te_count, host_count;
} field_tally;

#define FAIL(code, at)                                                                           \
    do {                                                                                         \
        h->error = (code);                                                                       \
        h->error_off = (uint32_t)((at) - buf);                                                   \
        return -1;                                                                               \
    } while (0)

static void head_reset(gw_head *h) {
    memset(h, 0, sizeof(*h));
    h->content_length = -1;
    h->host_index = -1;
}

/* Window: the bytes the head may occupy. */
GW_INLINE size_t head_window(size_t len, const gw_limits *lim) {
    size_t cap = lim->max_head_bytes < (uint32_t)INT_MAX ? lim->max_head_bytes : (size_t)INT_MAX;
    return len < cap ? len : cap;
}

/* Incomplete inside the window: -2, or too large when the input already runs past it. */
static int incomplete(const char *buf, size_t len, size_t wlen, gw_head *h) {
    if (len > wlen) FAIL(GW_E_HEAD_TOO_LARGE, buf + wlen);
    return -2;
}

/* HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 2.3), case-sensitive. Returns 8, -2 when
 * fewer bytes are available and all match so far, or -1 with *bad at the first mismatch. */
GW_INLINE int parse_version(const char *p, const char *end, uint8_t *major, uint8_t *minor,
                            const char **bad) {
    static const char pat[8] = {'H', 'T', 'T', 'P', '/', 'd', '.', 'd'};
    if (GW_LIKELY(end - p >= 8) && memcmp(p, "HTTP/1.", 7) == 0 && (p[7] == '0' || p[7] == '1')) {
        *major = 1; /* "HTTP/1.0" or "HTTP/1.1" (a byte-order-independent fast path) */
        *minor = (uint8_t)(p[7] - '0');
        return 8;
    }
    size_t avail = (size_t)(end - p) < 8 ? (size_t)(end - p) : 8;
    for (size_t i = 0; i < avail; i++) {
        int ok = pat[i] == 'd' ? (p[i] >= '0' && p[i] <= '9') : p[i] == pat[i];
        if (!ok) {
            *bad = p + i;
            return -1;
        }
    }
    if (avail < 8) return -2;
    *major = (uint8_t)(p[5] - '0');
    *minor = (uint8_t)(p[7] - '0');
    return 8;
}

/* Field lines up to and including the empty line (RFC 9112 5). p is at the start of the first
 * field line. Returns the head length, -1 or -2. */
GW_INLINE int parse_fields(const char *buf, size_t len, size_t wlen, const char *p,
                           const gw_limits *lim, gw_head *h, gw_field *fields, field_tally *t,
                           const int level) {
    const char *end = buf + wlen;
    uint32_t nf = 0;
    for (;;) {
        if (GW_UNLIKELY(p == end)) return incomplete(buf, len, wlen, h);
        char c = *p;
        if (c == '\r') {
            if (end - p < 2) return incomplete(buf, len, wlen, h);
            if (p[1] != '\n') FAIL(GW_E_BARE_CR, p);
            h->num_fields = nf;
            return (int)(p + 2 - buf);
        }
        if (GW_UNLIKELY(!IS(c, C_TOK))) {
            if (c == '\n') FAIL(GW_E_BARE_LF, p);
            if (IS_WS(c)) FAIL(GW_E_OBS_FOLD, p);
            FAIL(GW_E_FIELD_NAME, p);
        }
        if (GW_UNLIKELY(nf >= lim->max_fields)) FAIL(GW_E_TOO_MANY_FIELDS, p);

        const char *name = p;
        p = scan_scalar(p + 1, end, C_TOK);
        if (GW_UNLIKELY(p == end)) return incomplete(buf, len, wlen, h);
        if (GW_UNLIKELY(*p != ':')) {
            if (IS_WS(*p)) {
                const char *q = p;
                while (q < end && IS_WS(*q)) q++;
                if (q == end) return incomplete(buf, len, wlen, h);
                if (*q == ':') FAIL(GW_E_SPACE_BEFORE_COLON, p);
                FAIL(GW_E_FIELD_NAME, q);
            }
            FAIL(GW_E_FIELD_NAME, p);
        }
        size_t name_len = (size_t)(p - name);
        const char *value = p + 1; /* OWS is trimmed once the CR bounds the value */
        p = scan_value(value, end, level);
        if (GW_UNLIKELY(p == end)) return incomplete(buf, len, wlen, h);
        if (GW_UNLIKELY(*p != '\r')) {
            if (*p == '\n') FAIL(GW_E_BARE_LF, p);
            FAIL(GW_E_FIELD_VALUE, p);
        }
        if (GW_UNLIKELY(end - p < 2)) return incomplete(buf, len, wlen, h);
        if (GW_UNLIKELY(p[1] != '\n')) FAIL(GW_E_BARE_CR, p);
        const char *vend = p;
        while (value < vend && IS_WS(*value)) value++;
        while (vend > value && IS_WS(vend[-1])) vend--;
        p += 2;

        gw_field *f = &fields[nf];
        f->name_off = (uint32_t)(name - buf);
        f->name_len = (uint32_t)name_len;
        f->value_off = (uint32_t)(value - buf);
        f->value_len = (uint32_t)(vend - value);
        uint8_t kind = field_kind(name, name_len);
        f->kind = kind;
        f->hop = HOP[kind];
        if (kind != GW_FK_OTHER) {
            size_t vlen = (size_t)(vend - value);
            switch (kind) {
            case GW_FK_HOST:
                if (t->host_count++ == 0) h->host_index = (int32_t)nf;
                break;
            case GW_FK_CONTENT_LENGTH: t->cl_count++; break;
            case GW_FK_TRANSFER_ENCODING: t->te_count++; break;
            case GW_FK_CONNECTION: {
                if (TOK_IS(value, vlen, "keep-alive")) {
                    h->connection |= GW_CONN_KEEP_ALIVE;
                    break;
                }
                size_t pos = 0, eo, el;
                while (next_element(value, vlen, &pos, &eo, &el)) {
                    if (TOK_IS(value + eo, el, "close")) h->connection |= GW_CONN_CLOSE;
                    else if (TOK_IS(value + eo, el, "keep-alive")) h->connection |= GW_CONN_KEEP_ALIVE;
                    else h->connection |= GW_CONN_OTHER;
                }
                break;
            }
            case GW_FK_EXPECT:
                /* "100-continue" holds a digit, so compare byte-wise through LOWER. */
                if (vlen == 12) {
                    static const char ec[12] = "100-continue";
                    size_t j = 0;
                    while (j < 12 && LOWER[(uint8_t)value[j]] == (uint8_t)ec[j]) j++;
                    if (j == 12) h->expect_continue = 1;
                }
                break;
            default: break;
            }
        }
        nf++;
    }
}

/* Content-Length = 1*DIGIT (RFC 9110 8.6); a list ("5, 5") counts as repeated. */
static int check_content_length(const char *buf, gw_head *h, const gw_field *fields) {
    int seen = 0;
    for (uint32_t i = 0; i < h->num_fields; i++) {
        if (fields[i].kind != GW_FK_CONTENT_LENGTH) continue;
        const char *v = buf + fields[i].value_off;
        size_t n = fields[i].value_len;
        if (seen) FAIL(GW_E_CONTENT_LENGTH_REPEATED, buf + fields[i].name_off);
        seen = 1;
        int64_t cl = 0;
        size_t j = 0;
        for (; j < n && v[j] >= '0' && v[j] <= '9'; j++) {
            int d = v[j] - '0';
            if (cl > (INT64_MAX - d) / 10) FAIL(GW_E_CONTENT_LENGTH, v + j);
            cl = cl * 10 + d;
        }
        if (j == n && n > 0) {
            h->content_length = cl;
            continue;
        }
        size_t pos = 0, eo, el;
        int elements = 0;
        while (next_element(v, n, &pos, &eo, &el)) elements++;
        FAIL(elements > 1 ? GW_E_CONTENT_LENGTH_REPEATED : GW_E_CONTENT_LENGTH, v + j);
    }
    return 0;
}

/* Transfer-Encoding (RFC 9112 6.1): chunked exactly once, as the final coding; any other coding
 * before it is unsupported (501) since a proxy forwards the decoded framing. */
static int check_transfer_encoding(const char *buf, gw_head *h, const gw_field *fields) {
    const char *last = NULL, *twice = NULL, *other = NULL, *first_value = NULL;
    int last_chunked = 0, seen_chunked = 0;
    for (uint32_t i = 0; i < h->num_fields; i++) {
        if (fields[i].kind != GW_FK_TRANSFER_ENCODING) continue;
        const char *v = buf + fields[i].value_off;
        if (!first_value) first_value = v;
        if (h->version_minor == 0) FAIL(GW_E_TE_HTTP10, buf + fields[i].name_off);
        if (h->content_length >= 0) FAIL(GW_E_TE_WITH_CL, buf + fields[i].name_off);
        size_t pos = 0, eo, el;
        while (next_element(v, fields[i].value_len, &pos, &eo, &el)) {
            last = v + eo;
            if (TOK_IS(v + eo, el, "chunked")) {
                if (seen_chunked && !twice) twice = v + eo;
                seen_chunked = 1;
                last_chunked = 1;
            } else {
                if (!other) other = v + eo;
                last_chunked = 0;
            }
        }
    }
    if (!first_value) return 0;
    if (!last_chunked) FAIL(GW_E_TE_NOT_CHUNKED, last ? last : first_value);
    if (twice) FAIL(GW_E_TE_NOT_CHUNKED, twice);
    if (other) FAIL(GW_E_TE_UNSUPPORTED, other);
    h->chunked = 1;
    return 0;
}

/* Host (RFC 9112 3.2): exactly one in HTTP/1.1, never more than one, value a uri-host with an
 * optional port (RFC 3986 3.2.2) or empty. */
static int check_host(const char *buf, gw_head *h, const gw_field *fields,
                      const field_tally *t, int head_len) {
    if (t->host_count == 0) {
        if (h->version_minor == 1) FAIL(GW_E_HOST, buf + head_len - 2);
        return 0;
    }
    const gw_field *f = &fields[h->host_index];
    const char *v = buf + f->value_off, *vend = v + f->value_len;
    const char *bad = scan_scalar(v, vend, C_HOST);
    if (bad != vend) FAIL(GW_E_HOST, bad);
    if (t->host_count > 1) {
        for (uint32_t i = (uint32_t)h->host_index + 1; i < h->num_fields; i++)
            if (fields[i].kind == GW_FK_HOST) FAIL(GW_E_HOST, buf + fields[i].name_off);
    }
    return 0;
}

static int check_framing(const char *buf, gw_head *h, const gw_field *fields,
                         const field_tally *t) {
    if (t->cl_count && check_content_length(buf, h, fields) < 0) return -1;
    if (t->te_count && check_transfer_encoding(buf, h, fields) < 0) return -1;
    return 0;
}

GW_INLINE int parse_request_impl(const char *buf, size_t len, const gw_limits *lim, gw_head *h,
                                 gw_field *fields, const int level) {
    head_reset(h);
    size_t wlen = head_window(len, lim);
    const char *p = buf, *end = buf + wlen;

    /* RFC 9112 2.2: ignore empty lines before the request-line. */
    for (;;) {
        if (p == end) return incomplete(buf, len, wlen, h);
        if (*p == '\r') {
            if (end - p < 2) return incomplete(buf, len, wlen, h);
            if (p[1] != '\n') FAIL(GW_E_BARE_CR, p);
            p += 2;
        } else if (*p == '\n') {
            FAIL(GW_E_BARE_LF, p);
        } else {
            break;
        }
    }

    /* method = token, then SP */
    const char *m = p;
    p = scan_scalar(p, end, C_TOK);
    if (p == end) return incomplete(buf, len, wlen, h);
    if (*p != ' ' || p == m) FAIL(GW_E_METHOD, p);
    h->method_off = (uint32_t)(m - buf);
    h->method_len = (uint32_t)(p - m);
    h->method = method_id(m, (size_t)(p - m));
    p++;

    /* request-target: VCHARs, at most max_target_len of them, then SP */
    const char *tgt = p;
    size_t tmax = lim->max_target_len;
    const char *tend = (size_t)(end - tgt) > tmax ? tgt + tmax + 1 : end;
    p = scan_target(p, tend, level);
    if (p == tend) {
        if ((size_t)(p - tgt) > tmax) FAIL(GW_E_TARGET_TOO_LONG, tgt + tmax);
        return incomplete(buf, len, wlen, h);
    }
    if (*p != ' ' || p == tgt) FAIL(GW_E_TARGET, p);
    h->target_off = (uint32_t)(tgt - buf);
    h->target_len = (uint32_t)(p - tgt);
    p++;

    /* HTTP-version CRLF */
    const char *ver = p, *bad;
    uint8_t major = 0, minor = 0;
    int r = parse_version(p, end, &major, &minor, &bad);
    if (r == -1) FAIL(GW_E_VERSION, bad);
    if (r == -2) return incomplete(buf, len, wlen, h);
    p += 8;
    if (p == end) return incomplete(buf, len, wlen, h);
    if (*p != '\r') FAIL(*p == '\n' ? GW_E_BARE_LF : GW_E_VERSION, p);
    if (end - p < 2) return incomplete(buf, len, wlen, h);
    if (p[1] != '\n') FAIL(GW_E_BARE_CR, p);
    if (major != 1 || minor > 1) FAIL(GW_E_VERSION_UNSUPPORTED, ver);
    h->version_minor = minor;
    p += 2;

    field_tally t = {0, 0, 0};
    int n = parse_fields(buf, len, wlen, p, lim, h, fields, &t, level);
    if (n < 0) return n;
    if (GW_UNLIKELY(t.cl_count | t.te_count) && check_framing(buf, h, fields, &t) < 0) return -1;
    if (check_host(buf, h, fields, &t, n) < 0) return -1;
    return n;
}

GW_INLINE int parse_response_impl(const char *buf, size_t len, const gw_limits *lim, gw_head *h,
                                  gw_field *fields, const int level) {
    head_reset(h);
    size_t wlen = head_window(len, lim);
    const char *p = buf, *end = buf + wlen;

    /* status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 4) */
    const char *bad;
    uint8_t major = 0, minor = 0;
    int r = parse_version(p, end, &major, &minor, &bad);
    if (r == -1) FAIL(GW_E_VERSION, bad);
    if (r == -2) return incomplete(buf, len, wlen, h);
    p += 8;
    if (p == end) return incomplete(buf, len, wlen, h);
    if (*p != ' ') FAIL(GW_E_VERSION, p);
    if (major != 1 || minor > 1) FAIL(GW_E_VERSION_UNSUPPORTED, buf);
    h->version_minor = minor;
    p++;

    int status = 0;
    for (int i = 0; i < 3; i++, p++) {
        if (p == end) return incomplete(buf, len, wlen, h);
        if (*p < '0' || *p > '9') FAIL(GW_E_STATUS, p);
        status = status * 10 + (*p - '0');
    }
    if (status < 100 || status > 599) FAIL(GW_E_STATUS, p - 3);
    h->status = (uint16_t)status;
    if (p == end) return incomplete(buf, len, wlen, h);
    /* A missing SP before an empty reason-phrase is tolerated (RFC 9112 4 allows leniency). */
    if (*p == ' ') {
        p++;
        h->reason_off = (uint32_t)(p - buf);
        p = scan_value(p, end, level);
        if (p == end) return incomplete(buf, len, wlen, h);
        h->reason_len = (uint32_t)(p - buf - h->reason_off);
    } else {
        h->reason_off = (uint32_t)(p - buf);
    }
    if (*p != '\r') FAIL(*p == '\n' ? GW_E_BARE_LF : GW_E_STATUS, p);
    if (end - p < 2) return incomplete(buf, len, wlen, h);
    if (p[1] != '\n') FAIL(GW_E_BARE_CR, p);
    p += 2;

    field_tally t = {0, 0, 0};
    int n = parse_fields(buf, len, wlen, p, lim, h, fields, &t, level);
    if (n < 0) return n;
    if (GW_UNLIKELY(t.cl_count | t.te_count) && check_framing(buf, h, fields, &t) < 0) return -1;
    return n;
}

/* One copy of each parser per SIMD level; the level is a constant inside each. */
#define GW_PARSERS(suffix, level, attr)                                                          \
    attr static int parse_request_##suffix(const char *buf, size_t len, const gw_limits *lim,    \
                                           gw_head *h, gw_field *fields) {                       \
        return parse_request_impl(buf, len, lim, h, fields, level);                              \
    }                                                                                            \
    attr static int parse_response_##suffix(const char *buf, size_t len, const gw_limits *lim,   \
                                            gw_head *h, gw_field *fields) {                      \
        return parse_response_impl(buf, len, lim, h, fields, level);                             \
    }

GW_PARSERS(scalar, 0, )
#ifdef GW_X86
GW_PARSERS(sse42, 1, __attribute__((target("sse4.2"))))
GW_PARSERS(avx2, 2, __attribute__((target("avx2"))))
#endif

/* ---------------------------------------------------------------------------------------------
 * SIMD level selection
 */
static int g_level = -1;

static int cpu_level(void) {
#ifdef GW_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) return 2;
    if (__builtin_cpu_supports("sse4.2")) return 1;
#endif
    return 0;
}

static inline int current_level(void) {
    int lv = __atomic_load_n(&g_level, __ATOMIC_RELAXED);
    if (GW_UNLIKELY(lv < 0)) {
        lv = cpu_level();
        __atomic_store_n(&g_level, lv, __ATOMIC_RELAXED);
    }
    return lv;
}

int gw_http1_simd_level(void) {
    return current_level();
}

int gw_http1_set_simd(int level) {
    int max = cpu_level();
    if (level < 0) level = 0;
    if (level > max) level = max;
    __atomic_store_n(&g_level, level, __ATOMIC_RELAXED);
    return level;
}

int gw_parse_request(const char *buf, size_t len, const gw_limits *lim, gw_head *h,
                     gw_field *fields) {
    switch (current_level()) {
#ifdef GW_X86
    case 2: return parse_request_avx2(buf, len, lim, h, fields);
    case 1: return parse_request_sse42(buf, len, lim, h, fields);
#endif
    default: return parse_request_scalar(buf, len, lim, h, fields);
    }
}

int gw_parse_response(const char *buf, size_t len, const gw_limits *lim, gw_head *h,
                      gw_field *fields) {
    switch (current_level()) {
#ifdef GW_X86
    case 2: return parse_response_avx2(buf, len, lim, h, fields);
    case 1: return parse_response_sse42(buf, len, lim, h, fields);
#endif
    default: return parse_response_scalar(buf, len, lim, h, fields);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Chunked transfer coding (RFC 9112 7.1)
 *
 * chunk      = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 * chunk-ext  = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
 * last-chunk = 1*("0") [ chunk-ext ] CRLF, then trailer-section CRLF
 * Whitespace (BWS) is accepted only where the grammar puts it: before ';' or '=' and after them.
 */
enum {
    CS_SIZE = 0, /* zero-initialised state */
    CS_EXT,
    CS_SIZE_LF,
    CS_DATA,
    CS_DATA_CR,
    CS_DATA_LF,
    CS_TR_START,
    CS_TR_NAME,
    CS_TR_VALUE,
    CS_TR_LF,
    CS_TR_END_LF,
    CS_DONE,
};

enum {
    X_WS_SEMI,   /* BWS seen: only more BWS or ';' */
    X_PRE_NAME,  /* after ';' */
    X_NAME,
    X_NAME_WS,   /* BWS after a name: ';' or '=' */
    X_PRE_VAL,   /* after '=' */
    X_TVAL,      /* token value */
    X_QVAL,      /* quoted-string value */
    X_QESC,      /* after '\' in a quoted-string */
    X_AFTER_Q,   /* after the closing quote */
};

#define GW_CHUNK_LINE_MAX 4096u
#define GW_TRAILER_MAX 16384u

static inline int hexval(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* One byte of a chunk extension; returns the next ext state, -1 for CRLF-start, -2 on error. */
static int chunk_ext_step(uint8_t xs, uint8_t c) {
    int tok = IS(c, C_TOK) != 0, ws = IS_WS(c);
    switch (xs) {
    case X_WS_SEMI:
        if (ws) return X_WS_SEMI;
        return c == ';' ? X_PRE_NAME : -2;
    case X_PRE_NAME:
        if (ws) return X_PRE_NAME;
        return tok ? X_NAME : -2;
    case X_NAME:
    case X_NAME_WS:
        if (tok && xs == X_NAME) return X_NAME;
        if (ws) return X_NAME_WS;
        if (c == ';') return X_PRE_NAME;
        if (c == '=') return X_PRE_VAL;
        return c == '\r' && xs == X_NAME ? -1 : -2;
    case X_PRE_VAL:
        if (ws) return X_PRE_VAL;
        if (c == '"') return X_QVAL;
        return tok ? X_TVAL : -2;
    case X_TVAL:
    case X_AFTER_Q:
        if (tok && xs == X_TVAL) return X_TVAL;
        if (ws) return X_WS_SEMI;
        if (c == ';') return X_PRE_NAME;
        return c == '\r' ? -1 : -2;
    case X_QVAL:
        if (c == '"') return X_AFTER_Q;
        if (c == '\\') return X_QESC;
        return IS(c, C_QD) ? X_QVAL : -2;
    case X_QESC:
        return (IS(c, C_VAL)) ? X_QVAL : -2;
    }
    return -2;
}

#define CFAIL(code)                                                                              \
    do {                                                                                         \
        st->error = (code);                                                                      \
        return -1;                                                                               \
    } while (0)

ssize_t gw_chunked_decode(gw_chunked *st, const char *buf, size_t len, size_t *data_off,
                          size_t *data_len) {
    size_t i = 0;
    *data_len = 0;
    *data_off = 0;
    if (st->error) return -1;
    while (i < len && st->state != CS_DONE) {
        uint8_t c = (uint8_t)buf[i];
        switch (st->state) {
        case CS_SIZE: {
            if (++st->line_bytes > GW_CHUNK_LINE_MAX) CFAIL(GW_E_CHUNK_SIZE);
            int d = hexval(c);
            if (d >= 0) {
                if (st->remaining > ((uint64_t)INT64_MAX - (uint64_t)d) / 16)
                    CFAIL(GW_E_CHUNK_SIZE_OVERFLOW);
                st->remaining = st->remaining * 16 + (uint64_t)d;
                st->digits++;
                i++;
                break;
            }
            if (st->digits == 0) CFAIL(GW_E_CHUNK_SIZE);
            if (c == '\r') st->state = CS_SIZE_LF;
            else if (c == ';') st->state = CS_EXT, st->ext_state = X_PRE_NAME;
            else if (IS_WS(c)) st->state = CS_EXT, st->ext_state = X_WS_SEMI;
            else CFAIL(c == '\n' ? GW_E_BARE_LF : GW_E_CHUNK_SIZE);
            i++;
            break;
        }
        case CS_EXT: {
            if (++st->line_bytes > GW_CHUNK_LINE_MAX) CFAIL(GW_E_CHUNK_EXT);
            if (c == '\n') CFAIL(GW_E_BARE_LF);
            int next = chunk_ext_step(st->ext_state, c);
            if (next == -2) CFAIL(GW_E_CHUNK_EXT);
            if (next == -1) st->state = CS_SIZE_LF;
            else st->ext_state = (uint8_t)next;
            i++;
            break;
        }
        case CS_SIZE_LF:
            if (c != '\n') CFAIL(GW_E_BARE_CR);
            st->line_bytes = 0;
            st->digits = 0;
            st->state = st->remaining ? CS_DATA : CS_TR_START;
            i++;
            break;
        case CS_DATA: {
            size_t n = len - i;
            if ((uint64_t)n > st->remaining) n = (size_t)st->remaining;
            st->remaining -= n;
            if (st->remaining == 0) st->state = CS_DATA_CR;
            *data_off = i;
            *data_len = n;
            return (ssize_t)(i + n);
        }
        case CS_DATA_CR:
            if (c != '\r') CFAIL(GW_E_CHUNK_DATA_CRLF);
            st->state = CS_DATA_LF;
            i++;
            break;
        case CS_DATA_LF:
            if (c != '\n') CFAIL(GW_E_CHUNK_DATA_CRLF);
            st->state = CS_SIZE;
            i++;
            break;
        default: /* trailer section: field lines then CRLF (RFC 9112 7.1.2) */
            if (++st->trailer_bytes > GW_TRAILER_MAX) CFAIL(GW_E_TRAILER);
            switch (st->state) {
            case CS_TR_START:
                if (c == '\r') st->state = CS_TR_END_LF;
                else if (IS(c, C_TOK)) st->state = CS_TR_NAME;
                else CFAIL(GW_E_TRAILER);
                break;
            case CS_TR_NAME:
                if (c == ':') st->state = CS_TR_VALUE;
                else if (!IS(c, C_TOK)) CFAIL(GW_E_TRAILER);
                break;
            case CS_TR_VALUE:
                if (c == '\r') st->state = CS_TR_LF;
                else if (!IS(c, C_VAL)) CFAIL(GW_E_TRAILER);
                break;
            case CS_TR_LF:
                if (c != '\n') CFAIL(GW_E_TRAILER);
                st->state = CS_TR_START;
                break;
            case CS_TR_END_LF:
                if (c != '\n') CFAIL(GW_E_TRAILER);
                st->state = CS_DONE;
                st->done = 1;
                break;
            }
            i++;
            break;
        }
    }
    *data_off = i;
    return (ssize_t)i;
}

/* ---------------------------------------------------------------------------------------------
 * Error names and statuses
 */
static const char *const ERROR_NAMES[GW_E__COUNT] = {
    [GW_E_NONE] = "none",
    [GW_E_METHOD] = "method",
    [GW_E_TARGET] = "target",
    [GW_E_TARGET_TOO_LONG] = "target_too_long",
    [GW_E_VERSION] = "version",
    [GW_E_VERSION_UNSUPPORTED] = "version_unsupported",
    [GW_E_STATUS] = "status",
    [GW_E_FIELD_NAME] = "field_name",
    [GW_E_SPACE_BEFORE_COLON] = "space_before_colon",
    [GW_E_FIELD_VALUE] = "field_value",
    [GW_E_BARE_CR] = "bare_cr",
    [GW_E_BARE_LF] = "bare_lf",
    [GW_E_OBS_FOLD] = "obs_fold",
    [GW_E_TOO_MANY_FIELDS] = "too_many_fields",
    [GW_E_HEAD_TOO_LARGE] = "head_too_large",
    [GW_E_CONTENT_LENGTH] = "content_length",
    [GW_E_CONTENT_LENGTH_REPEATED] = "content_length_repeated",
    [GW_E_TE_NOT_CHUNKED] = "te_not_chunked",
    [GW_E_TE_UNSUPPORTED] = "te_unsupported",
    [GW_E_TE_WITH_CL] = "te_with_cl",
    [GW_E_TE_HTTP10] = "te_http10",
    [GW_E_HOST] = "host",
    [GW_E_CHUNK_SIZE] = "chunk_size",
    [GW_E_CHUNK_SIZE_OVERFLOW] = "chunk_size_overflow",
    [GW_E_CHUNK_EXT] = "chunk_ext",
    [GW_E_CHUNK_DATA_CRLF] = "chunk_data_crlf",
    [GW_E_TRAILER] = "trailer",
};

const char *gw_http_error_name(int code) {
    if (code < 0 || code >= GW_E__COUNT) return "unknown";
    return ERROR_NAMES[code];
}

int gw_http_error_status(int code) {
    switch (code) {
    case GW_E_NONE: return 0;
    case GW_E_TARGET_TOO_LONG: return 414;
    case GW_E_TOO_MANY_FIELDS:
    case GW_E_HEAD_TOO_LARGE: return 431;
    case GW_E_TE_UNSUPPORTED: return 501;
    case GW_E_VERSION_UNSUPPORTED: return 505;
    default: return 400;
    }
}
