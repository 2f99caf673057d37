/* test_http1.c - unit tests and a deterministic mutation fuzz loop for src_c/http1.c.
 *
 * Every head case runs at every SIMD level the CPU has, on the whole input and on every
 * prefix (the head parser is stateless, so "split at byte k" and "one byte at a time" both
 * reduce to: each prefix yields -2 or exactly the whole input's result). Each prefix is copied
 * into a buffer of exactly its length so ASan catches any read past the end.
 * Chunked cases are fed whole, split in two at every byte, and one byte at a time.
 * Exit status 0 when every check passes. Argument: fuzz iterations (default 300000).
 */
#include "http1.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define IN(s) (s), (sizeof(s) - 1)

static int levels[3], nlevels;

static const gw_limits DEF = {16384, 100, 8192};

typedef enum { REQ, RESP } kind_t;

#define MAXF 256

typedef struct {
    int ret;
    gw_head h;
    gw_field f[MAXF];
} result;

/* ----- seed corpus for the fuzz loop: every input a case uses ----------------------------- */
typedef struct {
    char *data;
    size_t len;
    int kind; /* 0 request, 1 response, 2 chunked */
} seed;

static seed seeds[1024];
static size_t nseeds;

static void add_seed(int kind, const char *in, size_t len) {
    if (nseeds == sizeof(seeds) / sizeof(seeds[0]) || len > 2048) return;
    seeds[nseeds].data = malloc(len ? len : 1);
    memcpy(seeds[nseeds].data, in, len);
    seeds[nseeds].len = len;
    seeds[nseeds].kind = kind;
    nseeds++;
}

/* ----- head parsing harness ---------------------------------------------------------------- */
static void run(kind_t k, const char *in, size_t len, const gw_limits *lim, result *r) {
    char *copy = malloc(len ? len : 1);
    memcpy(copy, in, len);
    size_t nf = lim->max_fields ? lim->max_fields : 1;
    gw_field *f = malloc(nf * sizeof(gw_field)); /* exact size: ASan flags overruns */
    memset(r, 0, sizeof(*r));
    r->ret = k == REQ ? gw_parse_request(copy, len, lim, &r->h, f)
                      : gw_parse_response(copy, len, lim, &r->h, f);
    if (r->ret >= 0) memcpy(r->f, f, r->h.num_fields * sizeof(gw_field));
    free(f);
    free(copy);
}

static int same_head(const gw_head *a, const gw_head *b) {
    return a->method_off == b->method_off && a->method_len == b->method_len &&
           a->target_off == b->target_off && a->target_len == b->target_len &&
           a->method == b->method && a->status == b->status && a->reason_off == b->reason_off &&
           a->reason_len == b->reason_len && a->version_minor == b->version_minor &&
           a->num_fields == b->num_fields && a->content_length == b->content_length &&
           a->chunked == b->chunked && a->connection == b->connection &&
           a->expect_continue == b->expect_continue && a->host_index == b->host_index;
}

static int same_result(const result *a, const result *b) {
    if (a->ret != b->ret) return 0;
    if (a->ret == -1) return a->h.error == b->h.error && a->h.error_off == b->h.error_off;
    if (a->ret == -2) return 1;
    if (!same_head(&a->h, &b->h)) return 0;
    for (uint32_t i = 0; i < a->h.num_fields; i++) {
        const gw_field *x = &a->f[i], *y = &b->f[i];
        if (x->name_off != y->name_off || x->name_len != y->name_len ||
            x->value_off != y->value_off || x->value_len != y->value_len ||
            x->kind != y->kind || x->hop != y->hop)
            return 0;
    }
    return 1;
}

static int is_tchar(uint8_t c) {
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int is_vchar_or_obs(uint8_t c) {
    return (c >= 0x21 && c != 0x7f) || c == ' ' || c == '\t';
}

/* Structural invariants of any result: offsets inside the input, names are tokens, values
 * are trimmed field-value bytes. */
static void check_invariants(kind_t k, const char *in, size_t len, const gw_limits *lim,
                             const result *r, const char *name) {
    CHECK_MSG(r->ret >= -2, "%s: ret %d", name, r->ret);
    if (r->ret == -1) {
        CHECK_MSG(r->h.error > 0 && r->h.error < GW_E__COUNT, "%s: error %d", name, r->h.error);
        CHECK_MSG(r->h.error_off <= len, "%s: error_off %u > %zu", name, r->h.error_off, len);
        return;
    }
    if (r->ret < 0) return;
    size_t n = (size_t)r->ret;
    const gw_head *h = &r->h;
    CHECK_MSG(n <= len && n <= lim->max_head_bytes, "%s: ret %d len %zu", name, r->ret, len);
    CHECK_MSG(n >= 4 && memcmp(in + n - 4, "\r\n\r\n", 4) == 0, "%s: no CRLFCRLF", name);
    CHECK_MSG(h->version_minor <= 1, "%s: minor %u", name, h->version_minor);
    CHECK_MSG(h->num_fields <= lim->max_fields, "%s: %u fields", name, h->num_fields);
    if (k == REQ) {
        CHECK_MSG(h->method_len > 0 && h->method_off + h->method_len < n, "%s: method", name);
        CHECK_MSG(h->target_len > 0 && h->target_len <= lim->max_target_len &&
                      h->target_off + h->target_len < n,
                  "%s: target", name);
        for (uint32_t i = 0; i < h->method_len; i++)
            CHECK_MSG(is_tchar((uint8_t)in[h->method_off + i]), "%s: method byte", name);
        for (uint32_t i = 0; i < h->target_len; i++) {
            uint8_t c = (uint8_t)in[h->target_off + i];
            CHECK_MSG(c > 0x20 && c < 0x7f, "%s: target byte %02x", name, c);
        }
        if (h->version_minor == 1) CHECK_MSG(h->host_index >= 0, "%s: no host", name);
    } else {
        CHECK_MSG(h->status >= 100 && h->status <= 599, "%s: status %u", name, h->status);
        CHECK_MSG(h->reason_off + h->reason_len < n, "%s: reason", name);
    }
    if (h->host_index >= 0)
        CHECK_MSG((uint32_t)h->host_index < h->num_fields &&
                      r->f[h->host_index].kind == GW_FK_HOST,
                  "%s: host_index", name);
    CHECK_MSG(!(h->chunked && h->content_length >= 0), "%s: CL and chunked", name);
    for (uint32_t i = 0; i < h->num_fields; i++) {
        const gw_field *f = &r->f[i];
        CHECK_MSG(f->name_len > 0 && f->name_off + f->name_len < n, "%s: name %u", name, i);
        CHECK_MSG(f->value_off + f->value_len <= n, "%s: value %u", name, i);
        CHECK_MSG(in[f->name_off + f->name_len] == ':', "%s: no colon", name);
        for (uint32_t j = 0; j < f->name_len; j++)
            CHECK_MSG(is_tchar((uint8_t)in[f->name_off + j]), "%s: name byte", name);
        for (uint32_t j = 0; j < f->value_len; j++)
            CHECK_MSG(is_vchar_or_obs((uint8_t)in[f->value_off + j]), "%s: value byte", name);
        if (f->value_len) {
            char a = in[f->value_off], b = in[f->value_off + f->value_len - 1];
            CHECK_MSG(a != ' ' && a != '\t' && b != ' ' && b != '\t', "%s: untrimmed", name);
        }
        CHECK_MSG(f->kind < GW_FK__COUNT, "%s: kind", name);
    }
}

/* Parses the whole input at every level: *whole gets the level-0 result, whose invariants are
 * checked, and every other level must give the same. Leaves the last level selected. */
static void parse_levels(kind_t k, const char *in, size_t len, const gw_limits *lim,
                         result *whole, const char *name) {
    static result r;
    for (int li = 0; li < nlevels; li++) {
        gw_http1_set_simd(levels[li]);
        run(k, in, len, lim, li == 0 ? whole : &r);
        if (li == 0)
            check_invariants(k, in, len, lim, whole, name);
        else
            CHECK_MSG(same_result(whole, &r), "%s: level %d differs: %d/%s vs %d/%s at %u/%u",
                      name, levels[li], r.ret, gw_http_error_name(r.h.error), whole->ret,
                      gw_http_error_name(whole->h.error), r.h.error_off, whole->h.error_off);
    }
}

/* Parses at every level, whole and every prefix; returns the whole result (level 0). */
static void parse_all(kind_t k, const char *in, size_t len, const gw_limits *lim, result *whole,
                      const char *name) {
    static result r;
    add_seed(k == REQ ? 0 : 1, in, len);
    parse_levels(k, in, len, lim, whole, name);
    for (int li = 0; li < nlevels; li++) {
        gw_http1_set_simd(levels[li]);
        for (size_t p = 0; p < len; p++) {
            run(k, in, p, lim, &r);
            CHECK_MSG(r.ret == -2 || same_result(whole, &r),
                      "%s: level %d prefix %zu gives %d/%s, whole %d/%s", name, levels[li], p,
                      r.ret, gw_http_error_name(r.h.error), whole->ret,
                      gw_http_error_name(whole->h.error));
        }
    }
}

static void expect_err_lim(kind_t k, const char *name, const char *in, size_t len,
                           const gw_limits *lim, int code, long off) {
    result r;
    parse_all(k, in, len, lim, &r, name);
    CHECK_MSG(r.ret == -1 && r.h.error == code, "%s: got ret %d error %s, want %s", name, r.ret,
              gw_http_error_name(r.h.error), gw_http_error_name(code));
    if (off >= 0) CHECK_MSG(r.h.error_off == (uint32_t)off, "%s: error_off %u, want %ld", name,
                            r.h.error_off, off);
}

#define REQ_ERR(name, s, code, off) expect_err_lim(REQ, name, IN(s), &DEF, code, off)
#define RESP_ERR(name, s, code, off) expect_err_lim(RESP, name, IN(s), &DEF, code, off)

static void expect_ok_lim(kind_t k, const char *name, const char *in, size_t len,
                          const gw_limits *lim, size_t head_len, result *r) {
    parse_all(k, in, len, lim, r, name);
    CHECK_MSG(r->ret == (int)head_len, "%s: ret %d (%s at %u), want %zu", name, r->ret,
              gw_http_error_name(r->h.error), r->h.error_off, head_len);
}

static void expect_ok(kind_t k, const char *name, const char *in, size_t len, result *r) {
    const char *end = NULL;
    for (size_t i = 0; i + 4 <= len; i++)
        if (memcmp(in + i, "\r\n\r\n", 4) == 0 && (k == RESP || i > 0)) {
            end = in + i + 4;
            break;
        }
    expect_ok_lim(k, name, in, len, &DEF, end ? (size_t)(end - in) : 0, r);
}

static int eqs(const char *buf, uint32_t off, uint32_t len, const char *want) {
    return strlen(want) == len && memcmp(buf + off, want, len) == 0;
}

static void check_field(const char *in, const result *r, uint32_t i, const char *name,
                        const char *value, int kind, int hop) {
    CHECK_MSG(i < r->h.num_fields, "field %u missing", i);
    if (i >= r->h.num_fields) return;
    const gw_field *f = &r->f[i];
    CHECK_MSG(eqs(in, f->name_off, f->name_len, name), "field %u name %.*s want %s", i,
              (int)f->name_len, in + f->name_off, name);
    CHECK_MSG(eqs(in, f->value_off, f->value_len, value), "field %u value [%.*s] want [%s]", i,
              (int)f->value_len, in + f->value_off, value);
    CHECK_MSG(f->kind == kind, "field %s kind %u want %d", name, f->kind, kind);
    CHECK_MSG(f->hop == hop, "field %s hop %u want %d", name, f->hop, hop);
}

/* ----- request cases ------------------------------------------------------------------------ */
static void test_request_valid(void) {
    result r;
    static const char a[] = "GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n";
    expect_ok(REQ, "simple", IN(a), &r);
    CHECK_MSG(r.h.method == GW_M_GET && eqs(a, r.h.method_off, r.h.method_len, "GET"), "method");
    CHECK_MSG(eqs(a, r.h.target_off, r.h.target_len, "/index.html?x=1"), "target");
    CHECK_MSG(r.h.version_minor == 1 && r.h.num_fields == 1 && r.h.host_index == 0, "simple head");
    CHECK_MSG(r.h.content_length == -1 && !r.h.chunked && !r.h.connection && !r.h.expect_continue,
              "simple framing");
    check_field(a, &r, 0, "Host", "example.com", GW_FK_HOST, 0);

    /* trailing body bytes and a pipelined request are not consumed */
    static const char b[] = "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET";
    expect_ok(REQ, "body after head", IN(b), &r);
    CHECK_MSG(r.h.method == GW_M_POST && r.h.content_length == 5, "post cl");

    /* RFC 9112 2.2: empty lines before the request-line are skipped */
    static const char c[] = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    expect_ok_lim(REQ, "leading CRLF", IN(c), &DEF, sizeof(c) - 1, &r);
    CHECK_MSG(r.h.method_off == 4 && r.h.target_off == 8, "leading CRLF offsets");

    /* OWS trimmed; HTAB and obs-text allowed inside values; empty values */
    static const char d[] = "GET / HTTP/1.1\r\nHost: a\r\nX-A: \t a\tb\x80\xff c \t\r\n"
                            "X-Empty:\r\nX-Blank:  \t \r\nX-Colon: a:b: c\r\n\r\n";
    expect_ok(REQ, "values", IN(d), &r);
    check_field(d, &r, 1, "X-A", "a\tb\x80\xff c", GW_FK_OTHER, 0);
    check_field(d, &r, 2, "X-Empty", "", GW_FK_OTHER, 0);
    check_field(d, &r, 3, "X-Blank", "", GW_FK_OTHER, 0);
    check_field(d, &r, 4, "X-Colon", "a:b: c", GW_FK_OTHER, 0);

    /* every tchar in a name, every VCHAR in the target */
    static const char e[] = "M-S.E_A~R!C#H$ /!\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~ HTTP/1.1\r\n"
                            "!#$%&'*+-.^_`|~09AZaz: v\r\nHost: a\r\n\r\n";
    expect_ok(REQ, "all tchars", IN(e), &r);
    CHECK_MSG(r.h.method == GW_M_OTHER && r.h.method_len == 14, "token method");
    CHECK_MSG(r.h.target_len == 39, "vchar target len %u", r.h.target_len);
    check_field(e, &r, 0, "!#$%&'*+-.^_`|~09AZaz", "v", GW_FK_OTHER, 0);

    /* HTTP/1.0 needs no Host; keep-alive option */
    static const char f[] = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
    expect_ok(REQ, "http/1.0", IN(f), &r);
    CHECK_MSG(r.h.version_minor == 0 && r.h.host_index == -1 &&
                  r.h.connection == GW_CONN_KEEP_ALIVE,
              "1.0 keep-alive");
    static const char g[] = "GET / HTTP/1.0\r\n\r\n";
    expect_ok(REQ, "http/1.0 bare", IN(g), &r);
    CHECK_MSG(r.h.num_fields == 0, "no fields");

    /* Connection options across lines and list forms */
    static const char h[] = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                            "connection: ,Upgrade , keep-alive,,\r\n\r\n";
    expect_ok(REQ, "connection", IN(h), &r);
    CHECK_MSG(r.h.connection == (GW_CONN_CLOSE | GW_CONN_KEEP_ALIVE | GW_CONN_OTHER), "conn %u",
              r.h.connection);
    check_field(h, &r, 2, "connection", ",Upgrade , keep-alive,,", GW_FK_CONNECTION, 1);

    /* Expect */
    static const char i1[] = "PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
                             "Content-Length: 10\r\n\r\n";
    expect_ok(REQ, "expect", IN(i1), &r);
    CHECK_MSG(r.h.expect_continue == 1 && r.h.method == GW_M_PUT && r.h.content_length == 10,
              "expect");
    static const char i2[] = "PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continues\r\n\r\n";
    expect_ok(REQ, "expect other", IN(i2), &r);
    CHECK_MSG(r.h.expect_continue == 0, "expect other");

    /* chunked framing */
    static const char j[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , Chunked\r\n\r\n";
    expect_ok(REQ, "chunked", IN(j), &r);
    CHECK_MSG(r.h.chunked == 1 && r.h.content_length == -1, "chunked");
    check_field(j, &r, 1, "Transfer-Encoding", ", Chunked", GW_FK_TRANSFER_ENCODING, 1);

    /* Content-Length: leading zeros, maximum value */
    static const char k1[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n";
    expect_ok(REQ, "cl zeros", IN(k1), &r);
    CHECK_MSG(r.h.content_length == 7, "cl 7");
    static const char k2[] =
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n";
    expect_ok(REQ, "cl max", IN(k2), &r);
    CHECK_MSG(r.h.content_length == INT64_MAX, "cl max");
    static const char k3[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:0\r\n\r\n";
    expect_ok(REQ, "cl 0", IN(k3), &r);
    CHECK_MSG(r.h.content_length == 0, "cl 0");

    /* Host forms */
    static const char l1[] = "GET / HTTP/1.1\r\nHost:\r\n\r\n";
    expect_ok(REQ, "empty host", IN(l1), &r);
    CHECK_MSG(r.h.host_index == 0, "empty host");
    static const char l2[] = "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n";
    expect_ok(REQ, "ipv6 host", IN(l2), &r);
    static const char l3[] = "CONNECT a.b:443 HTTP/1.1\r\nHost: a.b:443\r\n\r\n";
    expect_ok(REQ, "connect", IN(l3), &r);
    CHECK_MSG(r.h.method == GW_M_CONNECT, "connect id");
    static const char l4[] = "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n";
    expect_ok(REQ, "options", IN(l4), &r);
    CHECK_MSG(r.h.method == GW_M_OPTIONS && r.h.target_len == 1, "options *");
    static const char l5[] = "GET http://u:p@a.b/c?d#e HTTP/1.1\r\nHost: a.b\r\n\r\n";
    expect_ok(REQ, "absolute form", IN(l5), &r);

    /* method ids (case-sensitive) */
    static const struct {
        const char *m;
        int id;
    } methods[] = {{"GET", GW_M_GET},         {"HEAD", GW_M_HEAD},       {"POST", GW_M_POST},
                   {"PUT", GW_M_PUT},         {"DELETE", GW_M_DELETE},   {"OPTIONS", GW_M_OPTIONS},
                   {"PATCH", GW_M_PATCH},     {"CONNECT", GW_M_CONNECT}, {"TRACE", GW_M_TRACE},
                   {"get", GW_M_OTHER},       {"PROPFIND", GW_M_OTHER},  {"GETS", GW_M_OTHER},
                   {"PUTT", GW_M_OTHER},      {"X", GW_M_OTHER}};
    for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
        char buf[128];
        int n = snprintf(buf, sizeof buf, "%s / HTTP/1.1\r\nHost: a\r\n\r\n", methods[m].m);
        expect_ok_lim(REQ, methods[m].m, buf, (size_t)n, &DEF, (size_t)n, &r);
        CHECK_MSG(r.h.method == methods[m].id, "method %s id %u", methods[m].m, r.h.method);
    }

    /* field kinds and hop-by-hop flags, any case */
    static const struct {
        const char *name;
        int kind, hop;
    } kinds[] = {
        {"hOST", GW_FK_HOST, 0},
        {"CONTENT-LENGTH", GW_FK_CONTENT_LENGTH, 0},
        {"Connection", GW_FK_CONNECTION, 1},
        {"KEEP-alive", GW_FK_KEEP_ALIVE, 1},
        {"Proxy-Connection", GW_FK_PROXY_CONNECTION, 1},
        {"TE", GW_FK_TE, 1},
        {"Trailer", GW_FK_TRAILER, 1},
        {"UPGRADE", GW_FK_UPGRADE, 1},
        {"expect", GW_FK_EXPECT, 0},
        {"X-Forwarded-For", GW_FK_X_FORWARDED_FOR, 0},
        {"x-forwarded-proto", GW_FK_X_FORWARDED_PROTO, 0},
        {"X-FORWARDED-HOST", GW_FK_X_FORWARDED_HOST, 0},
        {"X-Request-ID", GW_FK_X_REQUEST_ID, 0},
        {"Via", GW_FK_VIA, 0},
        {"Hosts", GW_FK_OTHER, 0},
        {"Hos", GW_FK_OTHER, 0},
        {"TEE", GW_FK_OTHER, 0},
        {"Content-Lengths", GW_FK_OTHER, 0},
        {"Content_Length", GW_FK_OTHER, 0},
        {"Connectio_", GW_FK_OTHER, 0},
        {"X-Request-Ie", GW_FK_OTHER, 0},
        {"Upgrad3", GW_FK_OTHER, 0},
        {"Keep-Alivf", GW_FK_OTHER, 0},
        {"Transfer-Encodinh", GW_FK_OTHER, 0},
        {"X-Forwarded-Prot0", GW_FK_OTHER, 0},
    };
    for (size_t q = 0; q < sizeof(kinds) / sizeof(kinds[0]); q++) {
        char buf[256];
        const char *v = kinds[q].kind == GW_FK_CONTENT_LENGTH ? "3" : "a";
        int n = snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: a\r\n%s: %s\r\n\r\n",
                         kinds[q].name, v);
        if (kinds[q].kind == GW_FK_HOST)
            n = snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\n%s: a\r\n\r\n", kinds[q].name);
        expect_ok_lim(REQ, kinds[q].name, buf, (size_t)n, &DEF, (size_t)n, &r);
        uint32_t idx = kinds[q].kind == GW_FK_HOST ? 0 : 1;
        check_field(buf, &r, idx, kinds[q].name, v, kinds[q].kind, kinds[q].hop);
    }

    /* long values and targets cross every SIMD block boundary */
    for (size_t n = 0; n < 140; n++) {
        char buf[512], t[160], v[160];
        memset(t, 't', n);
        memset(v, 'v', n);
        t[n] = v[n] = 0;
        if (n > 2) v[n / 2] = '\t', v[n / 3] = (char)0xe9;
        int len = snprintf(buf, sizeof buf, "GET /%s HTTP/1.1\r\nHost: a\r\nX: %s\r\n\r\n", t,
                           v);
        parse_all(REQ, buf, (size_t)len, &DEF, &r, "long");
        CHECK_MSG(r.ret == len && r.h.target_len == n + 1 && r.f[1].value_len == n, "long %zu", n);
        if (n > 2) {
            t[n / 3] = (char)0xe9;
            len = snprintf(buf, sizeof buf, "GET /%s HTTP/1.1\r\nHost: a\r\n\r\n", t);
            parse_all(REQ, buf, (size_t)len, &DEF, &r, "long target");
            CHECK_MSG(r.ret == -1 && r.h.error == GW_E_TARGET && r.h.error_off == 5 + n / 3,
                      "long target %zu", n);
        }
    }

    /* limits at their exact values are accepted */
    static const char m1[] = "GET /1234567 HTTP/1.1\r\nHost: a\r\nA: b\r\n\r\n";
    gw_limits lim = {sizeof(m1) - 1, 2, 8};
    expect_ok_lim(REQ, "limits exact", IN(m1), &lim, sizeof(m1) - 1, &r);
}

static void test_request_errors(void) {
    /* method */
    REQ_ERR("method char", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", GW_E_METHOD, 1);
    REQ_ERR("method empty", " / HTTP/1.1\r\nHost: a\r\n\r\n", GW_E_METHOD, 0);
    REQ_ERR("method tab", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", GW_E_METHOD, 3);
    REQ_ERR("tls hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", GW_E_METHOD, 0);
    REQ_ERR("method nul", "GE\0T / HTTP/1.1\r\n", GW_E_METHOD, 2);
    REQ_ERR("method crlf", "GET\r\n", GW_E_METHOD, 3);
    /* target */
    REQ_ERR("target empty", "GET  HTTP/1.1\r\nHost: a\r\n\r\n", GW_E_TARGET, 4);
    REQ_ERR("target nul", "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n", GW_E_TARGET, 6);
    REQ_ERR("target del", "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", GW_E_TARGET, 6);
    REQ_ERR("target obs-text", "GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n", GW_E_TARGET, 5);
    REQ_ERR("target htab", "GET /\tx HTTP/1.1\r\nHost: a\r\n\r\n", GW_E_TARGET, 5);
    REQ_ERR("target bare cr", "GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n", GW_E_TARGET, 6);
    REQ_ERR("target bare lf", "GET /a\nb HTTP/1.1\r\nHost: a\r\n\r\n", GW_E_TARGET, 6);
    REQ_ERR("no version", "GET /\r\n\r\n", GW_E_TARGET, 5);
    /* target too long: reported before the target ends */
    gw_limits lim = {16384, 100, 8};
    expect_err_lim(REQ, "target too long", IN("GET /12345678 HTTP/1.1\r\nHost: a\r\n\r\n"), &lim,
                   GW_E_TARGET_TOO_LONG, 12);
    expect_err_lim(REQ, "target too long, incomplete", IN("GET /12345678"), &lim,
                   GW_E_TARGET_TOO_LONG, 12);
    expect_err_lim(REQ, "bad byte before limit", IN("GET /123\x01"), &lim, GW_E_TARGET, 8);
    /* version */
    REQ_ERR("version junk", "GET / HTTP/1.1x\r\nHost: a\r\n\r\n", GW_E_VERSION, 14);
    REQ_ERR("version case", "GET / http/1.1\r\nHost: a\r\n\r\n", GW_E_VERSION, 6);
    REQ_ERR("version trailing sp", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", GW_E_VERSION, 14);
    REQ_ERR("version 2 digits", "GET / HTTP/11\r\nHost: a\r\n\r\n", GW_E_VERSION, 12);
    REQ_ERR("version short", "GET / HTTP/1.\r\nHost: a\r\n\r\n", GW_E_VERSION, 13);
    REQ_ERR("version extra sp", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", GW_E_VERSION, 6);
    REQ_ERR("version 2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", GW_E_VERSION_UNSUPPORTED, 6);
    REQ_ERR("version 1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", GW_E_VERSION_UNSUPPORTED, 6);
    REQ_ERR("version 0.9", "GET / HTTP/0.9\r\n\r\n", GW_E_VERSION_UNSUPPORTED, 6);
    REQ_ERR("version bare lf", "GET / HTTP/1.1\nHost: a\r\n\r\n", GW_E_BARE_LF, 14);
    REQ_ERR("version bare cr", "GET / HTTP/1.1\rHost: a\r\n\r\n", GW_E_BARE_CR, 14);
    /* leading empty lines */
    REQ_ERR("leading bare lf", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", GW_E_BARE_LF, 0);
    REQ_ERR("leading bare cr", "\r\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", GW_E_BARE_CR, 0);
    /* field names */
    REQ_ERR("name empty", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", GW_E_FIELD_NAME, 25);
    REQ_ERR("name char", "GET / HTTP/1.1\r\nHost: a\r\nX@Y: b\r\n\r\n", GW_E_FIELD_NAME, 26);
    REQ_ERR("name nul", "GET / HTTP/1.1\r\nHost: a\r\nX\0: b\r\n\r\n", GW_E_FIELD_NAME, 26);
    REQ_ERR("name obs-text", "GET / HTTP/1.1\r\nHost: a\r\n\xc3\xa9: b\r\n\r\n", GW_E_FIELD_NAME, 25);
    REQ_ERR("no colon", "GET / HTTP/1.1\r\nHost: a\r\nXYZ\r\n\r\n", GW_E_FIELD_NAME, 28);
    REQ_ERR("name with space", "GET / HTTP/1.1\r\nHost: a\r\nX Y: b\r\n\r\n", GW_E_FIELD_NAME, 27);
    REQ_ERR("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", GW_E_SPACE_BEFORE_COLON,
            20);
    REQ_ERR("tab before colon", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length\t : 5\r\n\r\n",
            GW_E_SPACE_BEFORE_COLON, 39);
    /* field values */
    REQ_ERR("value nul", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", GW_E_FIELD_VALUE, 29);
    REQ_ERR("value del", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", GW_E_FIELD_VALUE, 29);
    REQ_ERR("value ctl", "GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n", GW_E_FIELD_VALUE, 28);
    REQ_ERR("value esc", "GET / HTTP/1.1\r\nHost: a\r\nX: \x1b[0m\r\n\r\n", GW_E_FIELD_VALUE, 28);
    REQ_ERR("value bare cr", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", GW_E_BARE_CR, 23);
    REQ_ERR("value bare lf", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", GW_E_BARE_LF, 23);
    REQ_ERR("value cr cr lf", "GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", GW_E_BARE_CR, 23);
    REQ_ERR("end bare cr", "GET / HTTP/1.1\r\nHost: a\r\n\rX", GW_E_BARE_CR, 25);
    REQ_ERR("end bare lf", "GET / HTTP/1.1\r\nHost: a\r\n\n", GW_E_BARE_LF, 25);
    /* obs-fold (RFC 9112 5.2) and whitespace before the first field */
    REQ_ERR("obs-fold sp", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", GW_E_OBS_FOLD, 31);
    REQ_ERR("obs-fold tab", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", GW_E_OBS_FOLD,
            31);
    REQ_ERR("ws first line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", GW_E_OBS_FOLD, 16);
    /* counts and sizes */
    gw_limits two = {16384, 2, 8192};
    expect_err_lim(REQ, "too many fields", IN("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"),
                   &two, GW_E_TOO_MANY_FIELDS, 31);
    gw_limits small = {32, 100, 8192};
    expect_err_lim(REQ, "head too large",
                   IN("GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789\r\n\r\n"), &small,
                   GW_E_HEAD_TOO_LARGE, 32);
    expect_err_lim(REQ, "head too large, incomplete", IN("GET / HTTP/1.1\r\nHost: abcdefghijklmn"),
                   &small, GW_E_HEAD_TOO_LARGE, 32);
    expect_err_lim(REQ, "error inside the window wins",
                   IN("GET / HTTP/1.1\r\nX : abcdefghijklmnopqrstuvwxyz"), &small,
                   GW_E_SPACE_BEFORE_COLON, 17);
    gw_limits exact = {33, 100, 8192};
    expect_err_lim(REQ, "head one byte over", IN("GET / HTTP/1.1\r\nHost: abcdefghi\r\n\r\n"),
                   &exact, GW_E_HEAD_TOO_LARGE, 33);
    /* Content-Length */
    REQ_ERR("cl alpha", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n",
            GW_E_CONTENT_LENGTH, 42);
    REQ_ERR("cl empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
            GW_E_CONTENT_LENGTH, 41);
    REQ_ERR("cl negative", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
            GW_E_CONTENT_LENGTH, 42);
    REQ_ERR("cl plus", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
            GW_E_CONTENT_LENGTH, 42);
    REQ_ERR("cl hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n",
            GW_E_CONTENT_LENGTH, 43);
    REQ_ERR("cl inner space", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n",
            GW_E_CONTENT_LENGTH, 43);
    REQ_ERR("cl overflow",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n",
            GW_E_CONTENT_LENGTH, 60);
    REQ_ERR("cl overflow long",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            GW_E_CONTENT_LENGTH, 60);
    REQ_ERR("cl list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
            GW_E_CONTENT_LENGTH_REPEATED, 43);
    REQ_ERR("cl list differ", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,6\r\n\r\n",
            GW_E_CONTENT_LENGTH_REPEATED, 43);
    REQ_ERR("cl trailing comma", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n",
            GW_E_CONTENT_LENGTH, 43);
    REQ_ERR("cl two lines",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            GW_E_CONTENT_LENGTH_REPEATED, 45);
    REQ_ERR("cl two lines differ",
            "POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 5\r\nCONTENT-LENGTH: 50\r\n\r\n",
            GW_E_CONTENT_LENGTH_REPEATED, 45);
    /* Transfer-Encoding */
    REQ_ERR("te gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            GW_E_TE_NOT_CHUNKED, 45);
    REQ_ERR("te chunked then gzip",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            GW_E_TE_NOT_CHUNKED, 54);
    REQ_ERR("te chunked twice",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            GW_E_TE_NOT_CHUNKED, 54);
    REQ_ERR("te chunked twice lines",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
            "Transfer-Encoding: chunked\r\n\r\n",
            GW_E_TE_NOT_CHUNKED, 73);
    REQ_ERR("te empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n",
            GW_E_TE_NOT_CHUNKED, 44);
    REQ_ERR("te chunked param",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n",
            GW_E_TE_NOT_CHUNKED, 45);
    REQ_ERR("te chunkedx", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n",
            GW_E_TE_NOT_CHUNKED, 45);
    REQ_ERR("te gzip chunked",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            GW_E_TE_UNSUPPORTED, 45);
    REQ_ERR("te gzip lines",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"
            "\r\n",
            GW_E_TE_UNSUPPORTED, 45);
    REQ_ERR("te with cl",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            GW_E_TE_WITH_CL, 45);
    REQ_ERR("cl after te",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            GW_E_TE_WITH_CL, 26);
    REQ_ERR("te http/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", GW_E_TE_HTTP10,
            17);
    /* Host */
    REQ_ERR("no host", "GET / HTTP/1.1\r\nX: a\r\n\r\n", GW_E_HOST, 22);
    REQ_ERR("no host no fields", "GET / HTTP/1.1\r\n\r\n", GW_E_HOST, 16);
    REQ_ERR("two hosts", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", GW_E_HOST, 25);
    REQ_ERR("two hosts 1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", GW_E_HOST, 25);
    REQ_ERR("host space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", GW_E_HOST, 23);
    REQ_ERR("host slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", GW_E_HOST, 23);
    REQ_ERR("host userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", GW_E_HOST, 23);
}

/* ----- response cases ----------------------------------------------------------------------- */
static void test_responses(void) {
    result r;
    static const char a[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello";
    expect_ok(RESP, "200", IN(a), &r);
    CHECK_MSG(r.h.status == 200 && eqs(a, r.h.reason_off, r.h.reason_len, "OK"), "200 ok");
    CHECK_MSG(r.h.content_length == 5 && r.h.version_minor == 1 && r.h.num_fields == 2, "200 head");
    CHECK_MSG(r.h.method_len == 0 && r.h.target_len == 0, "no request-line");
    static const char b[] = "HTTP/1.0 404 Not \tFound \x80\r\nConnection: keep-alive\r\n\r\n";
    expect_ok(RESP, "404", IN(b), &r);
    CHECK_MSG(r.h.status == 404 && eqs(b, r.h.reason_off, r.h.reason_len, "Not \tFound \x80"),
              "reason %.*s", (int)r.h.reason_len, b + r.h.reason_off);
    CHECK_MSG(r.h.version_minor == 0 && r.h.connection == GW_CONN_KEEP_ALIVE, "404 head");
    static const char c[] = "HTTP/1.1 204 \r\n\r\n";
    expect_ok(RESP, "empty reason", IN(c), &r);
    CHECK_MSG(r.h.status == 204 && r.h.reason_len == 0, "204");
    static const char d[] = "HTTP/1.1 304\r\nETag: \"x\"\r\n\r\n";
    expect_ok(RESP, "no reason no sp", IN(d), &r);
    CHECK_MSG(r.h.status == 304 && r.h.reason_len == 0 && r.h.num_fields == 1, "304");
    static const char e[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    expect_ok(RESP, "chunked", IN(e), &r);
    CHECK_MSG(r.h.chunked, "chunked response");
    static const char f[] = "HTTP/1.1 100 Continue\r\n\r\n";
    expect_ok(RESP, "100", IN(f), &r);
    CHECK_MSG(r.h.status == 100, "100");
    static const char g[] = "HTTP/1.1 599 x\r\n\r\n";
    expect_ok(RESP, "599", IN(g), &r);

    RESP_ERR("no sp after version", "HTTP/1.1200 OK\r\n\r\n", GW_E_VERSION, 8);
    RESP_ERR("bad name", "HTTX/1.1 200 OK\r\n\r\n", GW_E_VERSION, 3);
    RESP_ERR("leading crlf", "\r\nHTTP/1.1 200 OK\r\n\r\n", GW_E_VERSION, 0);
    RESP_ERR("version 2", "HTTP/2.0 200 OK\r\n\r\n", GW_E_VERSION_UNSUPPORTED, 0);
    RESP_ERR("status 2 digits", "HTTP/1.1 20 OK\r\n\r\n", GW_E_STATUS, 11);
    RESP_ERR("status 4 digits", "HTTP/1.1 2000 OK\r\n\r\n", GW_E_STATUS, 12);
    RESP_ERR("status 099", "HTTP/1.1 099 x\r\n\r\n", GW_E_STATUS, 9);
    RESP_ERR("status 600", "HTTP/1.1 600 x\r\n\r\n", GW_E_STATUS, 9);
    RESP_ERR("status alpha", "HTTP/1.1 2x0 OK\r\n\r\n", GW_E_STATUS, 10);
    RESP_ERR("reason ctl", "HTTP/1.1 200 O\x01K\r\n\r\n", GW_E_STATUS, 14);
    RESP_ERR("reason bare lf", "HTTP/1.1 200 OK\n\r\n", GW_E_BARE_LF, 15);
    RESP_ERR("reason bare cr", "HTTP/1.1 200 OK\rX\r\n\r\n", GW_E_BARE_CR, 15);
    RESP_ERR("status bare lf", "HTTP/1.1 200\n\r\n", GW_E_BARE_LF, 12);
    RESP_ERR("obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", GW_E_OBS_FOLD, 23);
    RESP_ERR("te with cl", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
             GW_E_TE_WITH_CL, 36);
    RESP_ERR("te not chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
             GW_E_TE_NOT_CHUNKED, 36);
    RESP_ERR("te http/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
             GW_E_TE_HTTP10, 17);
    RESP_ERR("cl repeated", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
             GW_E_CONTENT_LENGTH_REPEATED, 36);
    gw_limits small = {20, 100, 0};
    expect_err_lim(RESP, "too large", IN("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n"), &small,
                   GW_E_HEAD_TOO_LARGE, 20);
}

/* ----- SIMD scanners: every byte value at positions around every block edge ------------------ */
static void test_byte_classes(void) {
    static const size_t pos[] = {0, 1, 14, 15, 16, 17, 30, 31, 32, 33, 47, 48, 63, 64, 65, 80};
    char buf[512];
    result r, r2;
    for (size_t pi = 0; pi < sizeof(pos) / sizeof(pos[0]); pi++) {
        for (int b = 0; b < 256; b++) {
            size_t p = pos[pi];
            /* in the target */
            static const char rest[] = "z HTTP/1.1\r\nHost: a\r\n\r\n";
            size_t tl = p + 1 + (p % 7);
            memcpy(buf, "GET /", 5);
            memset(buf + 5, 'a', tl);
            buf[5 + p] = (char)b;
            memcpy(buf + 5 + tl, rest, sizeof(rest) - 1);
            int n = (int)(5 + tl + sizeof(rest) - 1);
            int want_err = b == ' ' ? GW_E_VERSION : (b > 0x20 && b < 0x7f) ? 0 : GW_E_TARGET;
            for (int li = 0; li < nlevels; li++) {
                gw_http1_set_simd(levels[li]);
                run(REQ, buf, (size_t)n, &DEF, li ? &r2 : &r);
                if (li) CHECK_MSG(same_result(&r, &r2), "target byte %02x at %zu level %d", b, p,
                                  levels[li]);
            }
            if (want_err) {
                CHECK_MSG(r.ret == -1 && r.h.error == want_err, "target byte %02x at %zu: %d %s", b,
                          p, r.ret, gw_http_error_name(r.h.error));
                if (want_err == GW_E_TARGET) CHECK_MSG(r.h.error_off == 5 + p, "target off");
            } else {
                CHECK_MSG(r.ret == n, "target byte %02x at %zu: %d", b, p, r.ret);
            }
            /* in a field value, followed by a non-CR byte */
            memcpy(buf, "GET / HTTP/1.1\r\nHost: a\r\nX: y", 29);
            memset(buf + 29, 'v', p);
            buf[29 + p] = (char)b;
            memcpy(buf + 30 + p, "w\r\n\r\n", 5);
            n = (int)(35 + p);
            for (int li = 0; li < nlevels; li++) {
                gw_http1_set_simd(levels[li]);
                run(REQ, buf, (size_t)n, &DEF, li ? &r2 : &r);
                if (li) CHECK_MSG(same_result(&r, &r2), "value byte %02x at %zu level %d", b, p,
                                  levels[li]);
            }
            want_err = b == '\r' ? GW_E_BARE_CR : b == '\n' ? GW_E_BARE_LF
                       : (b < 0x20 && b != '\t') || b == 0x7f ? GW_E_FIELD_VALUE : 0;
            if (want_err) {
                CHECK_MSG(r.ret == -1 && r.h.error == want_err && r.h.error_off == 29 + p,
                          "value byte %02x at %zu: %d %s", b, p, r.ret,
                          gw_http_error_name(r.h.error));
            } else {
                CHECK_MSG(r.ret == n && r.f[1].value_len == p + 3, "value byte %02x at %zu: %d", b,
                          p, r.ret);
            }
        }
    }
    gw_http1_set_simd(levels[nlevels - 1]);
}

/* ----- chunked decoder ----------------------------------------------------------------------- */
typedef struct {
    int ret;       /* 0 ok (done or waiting), -1 error */
    int error;
    int done;
    size_t consumed; /* bytes consumed in total */
    char data[20000];
    size_t data_len;
} cresult;

/* Feeds in[0..len) in pieces cut at the given split points (sorted, may be empty). */
static void chunked_feed(const char *in, size_t len, const size_t *cuts, size_t ncuts,
                         cresult *out) {
    gw_chunked st;
    gw_chunked_init(&st);
    memset(out, 0, sizeof(*out));
    size_t start = 0;
    for (size_t c = 0; c <= ncuts && !out->ret; c++) {
        size_t stop = c < ncuts ? cuts[c] : len;
        if (stop < start) continue;
        size_t seglen = stop - start;
        char *seg = malloc(seglen ? seglen : 1);
        memcpy(seg, in + start, seglen);
        size_t pos = 0;
        while (pos < seglen && !st.done) {
            size_t doff = 99999, dlen = 99999;
            ssize_t r = gw_chunked_decode(&st, seg + pos, seglen - pos, &doff, &dlen);
            if (r < 0) {
                out->ret = -1;
                out->error = st.error;
                break;
            }
            CHECK_MSG((size_t)r <= seglen - pos, "consumed %zd of %zu", r, seglen - pos);
            CHECK_MSG(dlen == 0 || doff + dlen == (size_t)r, "data run not at the end");
            if (dlen) {
                CHECK_MSG(out->data_len + dlen <= sizeof(out->data), "data overflow");
                if (out->data_len + dlen <= sizeof(out->data))
                    memcpy(out->data + out->data_len, seg + pos + doff, dlen);
                out->data_len += dlen;
            }
            pos += (size_t)r;
            if (r == 0) break;
        }
        out->consumed = start + pos;
        free(seg);
        if (st.done) break;
        start = stop;
    }
    out->done = st.done;
    if (!out->ret) out->consumed = st.done ? out->consumed : len;
}

/* Feeds in[0..len) one byte at a time. */
static void chunked_feed_bytewise(const char *in, size_t len, cresult *out) {
    size_t *cuts = malloc((len + 1) * sizeof(size_t));
    for (size_t k = 0; k < len; k++) cuts[k] = k + 1;
    chunked_feed(in, len, cuts, len, out);
    free(cuts);
}

/* Feeds in[0..len) in up to four pieces, the three ascending cuts drawn from r0, r1, r2. */
static void chunked_feed_3cuts(const char *in, size_t len, uint64_t r0, uint64_t r1, uint64_t r2,
                               cresult *out) {
    size_t cuts[3];
    cuts[0] = r0 % (len + 1);
    cuts[1] = cuts[0] + r1 % (len + 1 - cuts[0]);
    cuts[2] = cuts[1] + r2 % (len + 1 - cuts[1]);
    chunked_feed(in, len, cuts, 3, out);
}

/* Same error, end and decoded data as the whole-input result (consumed not compared). */
static int same_chunked_data(const cresult *whole, const cresult *r) {
    return r->error == whole->error && r->done == whole->done &&
           r->data_len == whole->data_len && memcmp(r->data, whole->data, whole->data_len) == 0;
}

/* same_chunked_data and, unless decoding failed, the same number of bytes consumed. */
static int same_chunked(const cresult *whole, const cresult *r) {
    return same_chunked_data(whole, r) && (whole->error || r->consumed == whole->consumed);
}

static size_t ccases_count;

/* want_err 0: expect done with `unused` leftover bytes, or not done when want_done is 0. */
static void chunked_case(const char *name, const char *in, size_t len, const char *want_data,
                         size_t want_len, int want_done, int want_err, size_t unused) {
    static cresult whole, r;
    ccases_count++;
    add_seed(2, in, len);
    chunked_feed(in, len, NULL, 0, &whole);
    CHECK_MSG(whole.error == want_err, "%s: error %s want %s", name,
              gw_http_error_name(whole.error), gw_http_error_name(want_err));
    if (!want_err) {
        CHECK_MSG(whole.done == want_done, "%s: done %d", name, whole.done);
        CHECK_MSG(whole.data_len == want_len && memcmp(whole.data, want_data, want_len) == 0,
                  "%s: data [%.*s] want [%.*s]", name, (int)whole.data_len, whole.data,
                  (int)want_len, want_data);
        if (want_done) CHECK_MSG(whole.consumed == len - unused, "%s: consumed %zu want %zu", name,
                                 whole.consumed, len - unused);
    }
    /* split in two at every byte */
    for (size_t k = 0; k <= len; k++) {
        chunked_feed(in, len, &k, 1, &r);
        CHECK_MSG(same_chunked(&whole, &r), "%s: split at %zu differs (err %s done %d len %zu)",
                  name, k, gw_http_error_name(r.error), r.done, r.data_len);
    }
    /* one byte at a time */
    chunked_feed_bytewise(in, len, &r);
    CHECK_MSG(same_chunked_data(&whole, &r), "%s: byte at a time differs", name);
}

#define CH_OK(name, s, data, unused)                                                             \
    chunked_case(name, IN(s), data, sizeof(data) - 1, 1, 0, unused)
#define CH_ERR(name, s, code) chunked_case(name, IN(s), "", 0, 0, code, 0)

static void test_chunked(void) {
    CH_OK("simple", "5\r\nhello\r\n0\r\n\r\n", "hello", 0);
    CH_OK("two chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", 0);
    CH_OK("hex", "a\r\n0123456789\r\nB\r\nabcdefghijk\r\n0\r\n\r\n", "0123456789abcdefghijk", 0);
    CH_OK("leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello", 0);
    CH_OK("data with crlf", "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n", 0);
    CH_OK("ext name", "5;a\r\nhello\r\n0\r\n\r\n", "hello", 0);
    CH_OK("ext value", "5;a=b;c=d\r\nhello\r\n0;last=1\r\n\r\n", "hello", 0);
    CH_OK("ext bws", "5 ;\ta = b ; c\r\nhello\r\n0\r\n\r\n", "hello", 0);
    CH_OK("ext quoted", "5;a=\"x;y=\\\"z\\\\\" ;b=\"\"\r\nhello\r\n0\r\n\r\n", "hello", 0);
    CH_OK("ext quoted obs-text", "5;a=\"\xe9\t \"\r\nhello\r\n0\r\n\r\n", "hello", 0);
    CH_OK("trailers", "5\r\nhello\r\n0\r\nX-Sum: abc\r\nY:\r\nZ: \t\x80\r\n\r\n", "hello", 0);
    CH_OK("unused after", "1\r\nA\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "A", 16);
    CH_OK("empty body", "0\r\n\r\n", "", 0);
    chunked_case("incomplete", IN("5\r\nhel"), "hel", 3, 0, 0, 0);
    chunked_case("incomplete trailer", IN("0\r\nX: y\r\n"), "", 0, 0, 0, 0);
    chunked_case("huge size", IN("7fffffffffffffff\r\nabc"), "abc", 3, 0, 0, 0);

    CH_ERR("no digits", "\r\nhello\r\n", GW_E_CHUNK_SIZE);
    CH_ERR("junk size", "x\r\n", GW_E_CHUNK_SIZE);
    CH_ERR("negative", "-5\r\n", GW_E_CHUNK_SIZE);
    CH_ERR("size junk after", "5x\r\nhello\r\n", GW_E_CHUNK_SIZE);
    CH_ERR("leading space", " 5\r\nhello\r\n", GW_E_CHUNK_SIZE);
    CH_ERR("0x prefix", "0x5\r\nhello\r\n", GW_E_CHUNK_SIZE);
    CH_ERR("overflow", "8000000000000000\r\n", GW_E_CHUNK_SIZE_OVERFLOW);
    CH_ERR("overflow long", "10000000000000000\r\n", GW_E_CHUNK_SIZE_OVERFLOW);
    CH_ERR("size bare lf", "5\nhello\r\n", GW_E_BARE_LF);
    CH_ERR("size bare cr", "5\rhello\r\n", GW_E_BARE_CR);
    CH_ERR("ext empty name", "5;\r\nhello\r\n", GW_E_CHUNK_EXT);
    CH_ERR("ext no name", "5;=b\r\nhello\r\n", GW_E_CHUNK_EXT);
    CH_ERR("ext empty value", "5;a=\r\nhello\r\n", GW_E_CHUNK_EXT);
    CH_ERR("ext trailing ws", "5 \r\nhello\r\n", GW_E_CHUNK_EXT);
    CH_ERR("ext name trailing ws", "5;a \r\nhello\r\n", GW_E_CHUNK_EXT);
    CH_ERR("ext value trailing ws", "5;a=b \r\nhello\r\n", GW_E_CHUNK_EXT);
    CH_ERR("ext value space", "5;a=b c\r\nhello\r\n", GW_E_CHUNK_EXT);
    CH_ERR("ext name char", "5;a@b\r\nhello\r\n", GW_E_CHUNK_EXT);
    CH_ERR("ext unterminated quote", "5;a=\"x\r\nhello\r\n", GW_E_CHUNK_EXT);
    CH_ERR("ext quoted ctl", "5;a=\"\x01\"\r\nhello\r\n", GW_E_CHUNK_EXT);
    CH_ERR("ext after quote", "5;a=\"x\"y\r\nhello\r\n", GW_E_CHUNK_EXT);
    CH_ERR("ext bare lf", "5;a\nhello\r\n", GW_E_BARE_LF);
    CH_ERR("ext bare cr", "5;a\rhello\r\n", GW_E_BARE_CR);
    CH_ERR("data no crlf", "5\r\nhelloX\r\n0\r\n\r\n", GW_E_CHUNK_DATA_CRLF);
    CH_ERR("data cr only", "5\r\nhello\rX0\r\n\r\n", GW_E_CHUNK_DATA_CRLF);
    CH_ERR("data lf only", "5\r\nhello\n0\r\n\r\n", GW_E_CHUNK_DATA_CRLF);
    CH_ERR("trailer no colon", "0\r\nX\r\n\r\n", GW_E_TRAILER);
    CH_ERR("trailer obs-fold", "0\r\nX: a\r\n b\r\n\r\n", GW_E_TRAILER);
    CH_ERR("trailer leading ws", "0\r\n X: a\r\n\r\n", GW_E_TRAILER);
    CH_ERR("trailer space before colon", "0\r\nX : a\r\n\r\n", GW_E_TRAILER);
    CH_ERR("trailer nul", "0\r\nX: a\0\r\n\r\n", GW_E_TRAILER);
    CH_ERR("trailer bare cr", "0\r\nX: a\rb\r\n\r\n", GW_E_TRAILER);
    CH_ERR("trailer bare lf", "0\r\nX: a\n\r\n", GW_E_TRAILER);
    CH_ERR("end bare cr", "0\r\n\rX", GW_E_TRAILER);
    CH_ERR("end bare lf", "0\r\n\n", GW_E_TRAILER);

    /* size lines and trailer sections over their limits */
    static char big[20000];
    size_t n = 0;
    big[n++] = '5';
    big[n++] = ';';
    memset(big + n, 'a', 5000);
    n += 5000;
    memcpy(big + n, "\r\nhello\r\n", 9);
    n += 9;
    cresult r;
    chunked_feed(big, n, NULL, 0, &r);
    CHECK_MSG(r.ret == -1 && r.error == GW_E_CHUNK_EXT, "long ext: %s",
              gw_http_error_name(r.error));
    memset(big, '0', 5000);
    chunked_feed(big, 5000, NULL, 0, &r);
    CHECK_MSG(r.ret == -1 && r.error == GW_E_CHUNK_SIZE, "long size: %s",
              gw_http_error_name(r.error));
    memcpy(big, "0\r\n", 3);
    n = 3;
    while (n < 17000) {
        memcpy(big + n, "X-Trailer: 0123456789\r\n", 23);
        n += 23;
    }
    memcpy(big + n, "\r\n", 2);
    n += 2;
    chunked_feed(big, n, NULL, 0, &r);
    CHECK_MSG(r.ret == -1 && r.error == GW_E_TRAILER, "big trailers: %s",
              gw_http_error_name(r.error));

    /* errors are sticky; done stops consuming */
    gw_chunked st;
    gw_chunked_init(&st);
    size_t doff, dlen;
    CHECK_MSG(gw_chunked_decode(&st, "zz", 2, &doff, &dlen) == -1, "error");
    CHECK_MSG(gw_chunked_decode(&st, "5\r\n", 3, &doff, &dlen) == -1, "sticky");
    gw_chunked_init(&st);
    CHECK_MSG(gw_chunked_decode(&st, "0\r\n\r\nXY", 7, &doff, &dlen) == 5 && st.done, "done at 5");
    CHECK_MSG(gw_chunked_decode(&st, "XY", 2, &doff, &dlen) == 0 && dlen == 0,
              "done consumes none");
}

/* ----- helpers ------------------------------------------------------------------------------ */
static void test_helpers(void) {
    static const char v[] = " a , ,b;q=\"x,y\" ,, c\t";
    size_t pos = 0, off, len;
    const char *want[] = {"a", "b;q=\"x,y\"", "c"};
    for (int i = 0; i < 3; i++) {
        int r = gw_next_list_element(v, sizeof(v) - 1, &pos, &off, &len);
        CHECK_MSG(r == 1 && strlen(want[i]) == len && memcmp(v + off, want[i], len) == 0,
                  "element %d: %.*s", i, (int)len, v + off);
    }
    CHECK_MSG(gw_next_list_element(v, sizeof(v) - 1, &pos, &off, &len) == 0, "no more elements");
    pos = 0;
    CHECK_MSG(gw_next_list_element(" , ,", 4, &pos, &off, &len) == 0, "only commas");
    pos = 0;
    CHECK_MSG(gw_next_list_element("", 0, &pos, &off, &len) == 0, "empty");
    pos = 0;
    CHECK_MSG(gw_next_list_element("\"a\\\"", 4, &pos, &off, &len) == 1 && len == 4,
              "unterminated quote stays in bounds");

    static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Y-Z: 1\r\nx-y-z: 2\r\n\r\n";
    gw_field f[8];
    gw_head h;
    CHECK_MSG(gw_parse_request(IN(req), &DEF, &h, f) == (int)sizeof(req) - 1, "parse");
    CHECK_MSG(gw_find_field(req, f, h.num_fields, "x-Y-z", 5) == 1, "find first");
    CHECK_MSG(gw_find_field(req, f, h.num_fields, "HOST", 4) == 0, "find host");
    CHECK_MSG(gw_find_field(req, f, h.num_fields, "X-Y", 3) == -1, "find missing");
    CHECK_MSG(gw_find_field(req, f, 0, "Host", 4) == -1, "find none");

    CHECK_MSG(strcmp(gw_http_error_name(GW_E_OBS_FOLD), "obs_fold") == 0, "name");
    CHECK_MSG(strcmp(gw_http_error_name(GW_E__COUNT), "unknown") == 0, "unknown name");
    CHECK_MSG(strcmp(gw_http_error_name(-1), "unknown") == 0, "negative name");
    for (int e = 1; e < GW_E__COUNT; e++) {
        int s = gw_http_error_status(e);
        int want = e == GW_E_TARGET_TOO_LONG                                   ? 414
                   : e == GW_E_TOO_MANY_FIELDS || e == GW_E_HEAD_TOO_LARGE     ? 431
                   : e == GW_E_TE_UNSUPPORTED                                  ? 501
                   : e == GW_E_VERSION_UNSUPPORTED                             ? 505
                                                                               : 400;
        CHECK_MSG(s == want, "status of %s: %d", gw_http_error_name(e), s);
        CHECK_MSG(strcmp(gw_http_error_name(e), "unknown") != 0, "name of %d", e);
    }
    CHECK_MSG(gw_http1_set_simd(-3) == 0 && gw_http1_simd_level() == 0, "clamp low");
    int max = gw_http1_set_simd(99);
    CHECK_MSG(max >= 0 && max <= 2 && gw_http1_simd_level() == max, "clamp high");
}

/* ----- mutation fuzz loop --------------------------------------------------------------------- */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static size_t mutate(char *buf, size_t len, size_t cap) {
    static const char interesting[] = "\r\n \t:;,\"\\=0aA\x7f\x80\xff\x00-9fF/";
    int rounds = 1 + (int)(rnd() % 4);
    for (int i = 0; i < rounds; i++) {
        size_t p = len ? rnd() % len : 0;
        switch (rnd() % 7) {
        case 0: /* replace */
            if (len) buf[p] = interesting[rnd() % (sizeof(interesting) - 1)];
            break;
        case 1: /* random byte */
            if (len) buf[p] = (char)rnd();
            break;
        case 2: /* insert */
            if (len < cap) {
                memmove(buf + p + 1, buf + p, len - p);
                buf[p] = interesting[rnd() % (sizeof(interesting) - 1)];
                len++;
            }
            break;
        case 3: /* delete */
            if (len) {
                memmove(buf + p, buf + p + 1, len - p - 1);
                len--;
            }
            break;
        case 4: { /* duplicate a slice */
            size_t n = len ? 1 + rnd() % 16 : 0;
            if (p + n > len) n = len - p;
            if (len + n <= cap) {
                memmove(buf + p + n, buf + p, len - p);
                len += n;
            }
            break;
        }
        case 5: /* truncate */
            len = p;
            break;
        default: /* CRLF pair */
            if (len + 2 <= cap) {
                memmove(buf + p + 2, buf + p, len - p);
                buf[p] = '\r';
                buf[p + 1] = '\n';
                len += 2;
            }
        }
    }
    return len;
}

static long fuzz_outcomes[3]; /* parsed, error, incomplete */

static void fuzz_one(const char *in, size_t len, int kind) {
    static result whole, r;
    static cresult cw, cr;
    gw_limits lim = DEF;
    if (rnd() % 4 == 0) {
        lim.max_head_bytes = (uint32_t)(rnd() % (len + 8));
        lim.max_fields = (uint32_t)(rnd() % 8);
        lim.max_target_len = (uint32_t)(rnd() % 40);
    }
    if (kind == 2) {
        chunked_feed(in, len, NULL, 0, &cw);
        uint64_t r0 = rnd(), r1 = rnd(), r2 = rnd(); /* in this order: the run is seeded */
        chunked_feed_3cuts(in, len, r0, r1, r2, &cr);
        CHECK_MSG(same_chunked(&cw, &cr), "fuzz chunked split differs (%s vs %s)",
                  gw_http_error_name(cr.error), gw_http_error_name(cw.error));
        return;
    }
    for (kind_t k = REQ; k <= RESP; k++) {
        parse_levels(k, in, len, &lim, &whole, "fuzz");
        fuzz_outcomes[whole.ret >= 0 ? 0 : whole.ret == -1 ? 1 : 2]++;
        size_t p = len ? rnd() % len : 0;
        run(k, in, p, &lim, &r);
        CHECK_MSG(r.ret == -2 || same_result(&whole, &r), "fuzz: prefix %zu of %zu: %d/%s vs %d/%s",
                  p, len, r.ret, gw_http_error_name(r.h.error), whole.ret,
                  gw_http_error_name(whole.h.error));
        if (kind == 0) break; /* requests only as requests; responses seeds try both */
    }
}

static void test_fuzz(long iterations) {
    static char buf[4096];
    size_t base = nseeds;
    for (long i = 0; i < iterations; i++) {
        const seed *s = &seeds[rnd() % base];
        size_t len = s->len < sizeof buf ? s->len : sizeof buf;
        memcpy(buf, s->data, len);
        len = mutate(buf, len, sizeof buf);
        fuzz_one(buf, len, s->kind);
        /* Also feed chunked framing to the head parsers and vice versa now and then. */
        if (i % 16 == 0) fuzz_one(buf, len, s->kind == 2 ? 0 : 2);
    }
}

#ifndef GW_HTTP1_NO_MAIN /* tests/c/fuzz_http1.c reuses the harness above */
int main(int argc, char **argv) {
    long iterations = argc > 1 ? atol(argv[1]) : 300000;
    int max = gw_http1_set_simd(2);
    for (int l = 0; l <= max; l++) levels[nlevels++] = l;
    printf("SIMD levels tested: %d (max %d)\n", nlevels, max);

    test_request_valid();
    test_request_errors();
    test_responses();
    test_byte_classes();
    test_chunked();
    test_helpers();
    gw_http1_set_simd(max);
    printf("seeds: %zu (chunked cases %zu); fuzzing %ld inputs\n", nseeds, ccases_count,
           iterations);
    test_fuzz(iterations);
    printf("fuzz heads: %ld parsed, %ld errors, %ld incomplete\n", fuzz_outcomes[0],
           fuzz_outcomes[1], fuzz_outcomes[2]);
    for (size_t i = 0; i < nseeds; i++) free(seeds[i].data);
    return check_summary("test_http1");
}
#endif
