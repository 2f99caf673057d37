/* test_path.c - unit tests and a deterministic random loop for src_c/path.c.
 *
 * Every input is checked (check_one) under each of the 8 flag sets against ref_normalize, a
 * plain three-pass reference written straight from RFC 3986 (decode, merge, then the 5.2.4
 * buffer loop with its rules A-E): same return value, error code and offset, output bytes and
 * `same` flag. It is also checked in place, for idempotence, for the output invariants, and
 * with a buffer one byte short (GW_PATH_NO_ROOM, nothing written). Inputs and outputs live in
 * heap buffers of exactly their length so ASan catches any access past them, and every table
 * case is also fed as each of its prefixes (every place a path can be cut).
 * Exit status 0 when every check passes. Argument: random iterations (default 300000).
 */
#include "path.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define IN(s) (s), (sizeof(s) - 1)
#define MERGE GW_PATH_MERGE_SLASHES
#define DECODE GW_PATH_DECODE_SLASHES
#define REJECT GW_PATH_REJECT_SLASHES
#define DEFAULT (MERGE | DECODE)

static const unsigned k_flag_sets[8] = {0,      MERGE,          DECODE, MERGE | DECODE,
                                        REJECT, MERGE | REJECT, DECODE | REJECT,
                                        MERGE | DECODE | REJECT};

/* ----- reference: three passes over plain buffers, no cleverness ---------------------------- */
typedef struct {
    long ret;  /* length or -1 */
    int error;
    size_t error_off;
    char *out; /* malloc'd, len + 1 bytes */
} ref_result;

static int unreserved(int v) {
    return (v >= 'A' && v <= 'Z') || (v >= 'a' && v <= 'z') || (v >= '0' && v <= '9') ||
           v == '-' || v == '.' || v == '_' || v == '~';
}

static void ref_normalize(const char *in, size_t n, unsigned flags, ref_result *r) {
    r->out = malloc(n + 1);
    r->ret = -1;
    r->error = GW_PATH_OK;
    r->error_off = 0;
    if (n == 0 || in[0] != '/') {
        r->error = GW_PATH_NOT_ABSOLUTE;
        return;
    }
    /* Pass 1 (RFC 3986 2.4, 6.2.2.1, 6.2.2.2): decode unreserved, upper-case the rest. */
    char *t = malloc(n + 1);
    size_t tn = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)in[i];
        if (c == 0) {
            r->error = GW_PATH_NUL;
            r->error_off = i;
            free(t);
            return;
        }
        if (c != '%') {
            t[tn++] = (char)c;
            i++;
            continue;
        }
        if (i + 2 >= n || !isxdigit((unsigned char)in[i + 1]) ||
            !isxdigit((unsigned char)in[i + 2])) {
            r->error = GW_PATH_BAD_PERCENT;
            r->error_off = i;
            free(t);
            return;
        }
        char hex[3] = {in[i + 1], in[i + 2], 0};
        int v = (int)strtol(hex, NULL, 16);
        if (v == 0) {
            r->error = GW_PATH_NUL;
            r->error_off = i;
            free(t);
            return;
        }
        if ((v == '/' || v == '\\') && (flags & REJECT)) {
            r->error = GW_PATH_ESCAPED_SLASH;
            r->error_off = i;
            free(t);
            return;
        }
        if (unreserved(v) || ((v == '/' || v == '\\') && (flags & DECODE))) {
            t[tn++] = (char)v;
        } else {
            snprintf(t + tn, 4, "%%%02X", v); /* tn + 3 <= i + 3 <= n: fits in n + 1 */
            tn += 3;
        }
        i += 3;
    }
    /* Pass 2: merge runs of '/'. */
    if (flags & MERGE) {
        size_t m = 0;
        for (size_t i = 0; i < tn; i++)
            if (!(t[i] == '/' && m > 0 && t[m - 1] == '/')) t[m++] = t[i];
        tn = m;
    }
    /* Pass 3: RFC 3986 5.2.4, rule by rule; t is the input buffer (rewritten in place where
     * a rule says "replace that prefix with '/'"). */
    size_t i = 0, o = 0;
    char *out = r->out;
#define REST (tn - i)
#define STARTS(s) (REST >= sizeof(s) - 1 && memcmp(t + i, s, sizeof(s) - 1) == 0)
#define IS(s) (REST == sizeof(s) - 1 && memcmp(t + i, s, sizeof(s) - 1) == 0)
    while (i < tn) {
        if (STARTS("../")) {                       /* A */
            i += 3;
        } else if (STARTS("./")) {                 /* A */
            i += 2;
        } else if (STARTS("/./")) {                /* B */
            i += 2;
        } else if (IS("/.")) {                     /* B */
            i += 1;
            t[i] = '/';
        } else if (STARTS("/../") || IS("/..")) {  /* C */
            if (IS("/..")) {
                i += 2;
                t[i] = '/';
            } else {
                i += 3;
            }
            while (o > 0 && out[o - 1] != '/') o--;
            if (o > 0) o--;
        } else if (IS(".") || IS("..")) {          /* D */
            i = tn;
        } else {                                   /* E */
            do out[o++] = t[i++];
            while (i < tn && t[i] != '/');
        }
    }
#undef REST
#undef STARTS
#undef IS
    free(t);
    r->ret = (long)o;
}

/* ----- checks of one input ------------------------------------------------------------------ */
static long outcomes[3]; /* unchanged, changed, error */

static int has(const char *p, size_t n, const char *s) {
    size_t k = strlen(s);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(p + i, s, k) == 0) return 1;
    return 0;
}

static int ends(const char *p, size_t n, const char *s) {
    size_t k = strlen(s);
    return n >= k && memcmp(p + n - k, s, k) == 0;
}

static void show(char *dst, size_t cap, const char *p, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c < 0x7f) dst[o++] = (char)c;
        else o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", c);
    }
    dst[o] = 0;
}

/* Invariants of a successful result. */
static void check_output(const char *name, const char *out, size_t m, unsigned flags) {
    CHECK_MSG(m >= 1 && out[0] == '/', "%s: output not absolute", name);
    CHECK_MSG(!has(out, m, "/./") && !has(out, m, "/../") && !ends(out, m, "/.") &&
                  !ends(out, m, "/.."),
              "%s: dot segment left", name);
    if (flags & MERGE) CHECK_MSG(!has(out, m, "//"), "%s: // left", name);
    for (size_t i = 0; i < m; i++) {
        CHECK_MSG(out[i] != 0, "%s: NUL in output", name);
        if (out[i] != '%') continue;
        CHECK_MSG(i + 2 < m, "%s: truncated escape", name);
        if (i + 2 >= m) break;
        char hex[3] = {out[i + 1], out[i + 2], 0};
        int ok = isxdigit((unsigned char)hex[0]) && isxdigit((unsigned char)hex[1]) &&
                 !islower((unsigned char)hex[0]) && !islower((unsigned char)hex[1]);
        CHECK_MSG(ok, "%s: escape not upper-case hex", name);
        int v = (int)strtol(hex, NULL, 16);
        CHECK_MSG(!unreserved(v) && v != 0, "%s: %%%s left encoded", name, hex);
        if (flags & (DECODE | REJECT))
            CHECK_MSG(v != '/' && v != '\\', "%s: escaped slash left", name);
    }
}

/* Runs gw_normalize_path on exact-size copies and checks it against the reference. Returns
 * the result length (-1 on error); *res receives a malloc'd copy of the output if res. */
static long check_one(const char *name, const char *in, size_t n, unsigned flags, char **res) {
    char label[200];
    char shown[120];
    show(shown, sizeof shown, in, n);
    snprintf(label, sizeof label, "%s [%s] flags %u", name, shown, flags);

    ref_result ref;
    ref_normalize(in, n, flags, &ref);

    char *src = malloc(n ? n : 1);
    char *out = malloc(n ? n : 1);
    memcpy(src, in, n);
    gw_path_status st = {.error = -7, .error_off = 99, .same = -3};
    ssize_t ret = gw_normalize_path(src, n, out, n, flags, &st);
    CHECK_MSG(memcmp(src, in, n) == 0, "%s: input modified", label);
    CHECK_MSG(ret == ref.ret, "%s: ret %zd (%s at %zu), reference %ld (%s at %zu)", label, ret,
              gw_path_error_name(st.error), st.error_off, ref.ret,
              gw_path_error_name(ref.error), ref.error_off);
    if (ret < 0 && ref.ret < 0)
        CHECK_MSG(st.error == ref.error && st.error_off == ref.error_off,
                  "%s: error %s at %zu, reference %s at %zu", label, gw_path_error_name(st.error),
                  st.error_off, gw_path_error_name(ref.error), ref.error_off);
    if (ret >= 0) {
        CHECK_MSG(st.error == GW_PATH_OK, "%s: error %d after success", label, st.error);
        CHECK_MSG((size_t)ret <= n, "%s: grew %zd > %zu", label, ret, n);
    }
    if (ret >= 0 && ret == ref.ret) {
        char got[120], want[120];
        show(got, sizeof got, out, (size_t)ret);
        show(want, sizeof want, ref.out, (size_t)ret);
        CHECK_MSG(memcmp(out, ref.out, (size_t)ret) == 0, "%s: [%s], reference [%s]", label, got,
                  want);
        int same = (size_t)ret == n && memcmp(out, in, n) == 0;
        CHECK_MSG(st.same == same, "%s: same %d, want %d", label, st.same, same);
        outcomes[same ? 0 : 1]++;
        check_output(label, out, (size_t)ret, flags);

        /* Idempotence: the output normalises to itself, reported as unchanged. */
        size_t m = (size_t)ret;
        char *again_in = malloc(m), *again = malloc(m);
        memcpy(again_in, out, m);
        gw_path_status st2;
        ssize_t ret2 = gw_normalize_path(again_in, m, again, m, flags, &st2);
        CHECK_MSG(ret2 == ret && st2.same == 1 && memcmp(again, out, m) == 0,
                  "%s: not idempotent (%zd, same %d, %s)", label, ret2, st2.same,
                  gw_path_error_name(st2.error));
        free(again_in);
        free(again);
    } else if (ret < 0) {
        outcomes[2]++;
    }

    /* In place gives the same. */
    memcpy(src, in, n);
    gw_path_status st3;
    ssize_t ret3 = gw_normalize_path(src, n, src, n, flags, &st3);
    CHECK_MSG(ret3 == ret && st3.error == st.error && st3.error_off == st.error_off,
              "%s: in place ret %zd (%s), not %zd", label, ret3, gw_path_error_name(st3.error),
              ret);
    if (ret3 >= 0 && ret3 == ret)
        CHECK_MSG(memcmp(src, out, (size_t)ret) == 0 && st3.same == st.same,
                  "%s: in place output differs", label);

    if (res) { /* before the next check overwrites out */
        *res = NULL;
        if (ret >= 0) {
            *res = malloc((size_t)ret + 1);
            memcpy(*res, out, (size_t)ret);
            (*res)[ret] = 0;
        }
    }

    /* One byte short of in_len: GW_PATH_NO_ROOM, out untouched. */
    if (n > 0 && in[0] == '/') {
        memset(out, 0x5a, n);
        gw_path_status st4;
        ssize_t ret4 = gw_normalize_path(in, n, out, n - 1, flags, &st4);
        int untouched = 1;
        for (size_t i = 0; i < n; i++) untouched &= out[i] == 0x5a;
        CHECK_MSG(ret4 == -1 && st4.error == GW_PATH_NO_ROOM && untouched, "%s: short out_cap",
                  label);
    }

    free(src);
    free(out);
    free(ref.out);
    return (long)ret;
}

/* Every prefix and every flag set, against the reference. */
static void check_all(const char *in, size_t n) {
    for (size_t p = 0; p <= n; p++)
        for (int f = 0; f < 8; f++) check_one("prefix", in, p, k_flag_sets[f], NULL);
}

static void expect_path(unsigned flags, const char *in, size_t n, const char *want) {
    char *got = NULL;
    char shown[120];
    show(shown, sizeof shown, in, n);
    check_all(in, n);
    long ret = check_one("case", in, n, flags, &got);
    CHECK_MSG(ret >= 0 && strlen(want) == (size_t)ret && memcmp(got, want, (size_t)ret) == 0,
              "[%s] flags %u: got [%s], want [%s]", shown, flags, got ? got : "(error)", want);
    free(got);
}

static void expect_error(unsigned flags, const char *in, size_t n, int code, size_t off) {
    char shown[120];
    show(shown, sizeof shown, in, n);
    check_all(in, n);
    char *src = malloc(n ? n : 1), *out = malloc(n ? n : 1);
    memcpy(src, in, n);
    gw_path_status st;
    ssize_t ret = gw_normalize_path(src, n, out, n, flags, &st);
    CHECK_MSG(ret == -1 && st.error == code && st.error_off == off,
              "[%s] flags %u: got %zd %s at %zu, want %s at %zu", shown, flags, ret,
              gw_path_error_name(st.error), st.error_off, gw_path_error_name(code), off);
    free(src);
    free(out);
}

#define EXPECT(flags, in, want) expect_path(flags, IN(in), want)
#define EXPECT_ERR(flags, in, code, off) expect_error(flags, IN(in), code, off)

/* ----- rules -------------------------------------------------------------------------------- */
static void test_fast_path(void) {
    static const char *normal[] = {"/", "/v1/x", "/v1/users/42/orders", "/a/", "/.well-known/x",
                                   "/a.b/c..d/...", "/a/.b/..c", "/~u/-_.", "/a?b=c"};
    for (size_t i = 0; i < sizeof normal / sizeof *normal; i++) {
        const char *p = normal[i];
        expect_path(DEFAULT, p, strlen(p), p);
        gw_path_status st;
        char out[64];
        ssize_t ret = gw_normalize_path(p, strlen(p), out, sizeof out, DEFAULT, &st);
        CHECK_MSG(ret == (ssize_t)strlen(p) && st.same == 1, "%s: not reported unchanged", p);
    }
    /* The first scan goes eight bytes at a time: put each thing it must find at every offset
     * of a word, with clean words before and after. */
    static const char *const probes[] = {"/./b", "//b", "/../b", "%41", "/.", "/..", "%2F",
                                         "/.x", "/..x", "/a.", "%", "#", "/"}; /* '#': NUL */
    char buf[64];
    for (size_t pre = 0; pre < 18; pre++)
        for (size_t t = 0; t < sizeof probes / sizeof *probes; t++)
            for (size_t post = 0; post < 18; post += 7) {
                size_t n = 0;
                buf[n++] = '/';
                for (size_t i = 0; i < pre; i++) buf[n++] = (char)('a' + i % 26);
                for (const char *q = probes[t]; *q; q++)
                    buf[n++] = *q == '#' ? '\0' : *q;
                for (size_t i = 0; i < post; i++) buf[n++] = i % 5 == 4 ? '/' : 'z';
                for (int f = 0; f < 8; f++) check_one("offsets", buf, n, k_flag_sets[f], NULL);
            }
    /* "//" is normal only without merging. */
    EXPECT(0, "/a//b", "/a//b");
    EXPECT(MERGE, "/a//b", "/a/b");
}

static void test_percent(void) {
    /* unreserved decoded, in every spelling */
    EXPECT(DEFAULT, "/%76%31/x", "/v1/x");
    EXPECT(DEFAULT, "/%76%31%2F%78", "/v1/x");
    EXPECT(DEFAULT, "/v%31/x", "/v1/x");
    EXPECT(DEFAULT, "/%7e", "/~");
    EXPECT(DEFAULT, "/%7E", "/~");
    EXPECT(DEFAULT, "/%41%5a%61%7A%30%39%2D%2E%5F%7E", "/AZaz09-._~");
    EXPECT(DEFAULT, "/%2d%5f", "/-_");
    /* others kept, upper-cased */
    EXPECT(DEFAULT, "/%3f", "/%3F");
    EXPECT(DEFAULT, "/%3F", "/%3F");
    EXPECT(DEFAULT, "/a%20b", "/a%20b");
    EXPECT(DEFAULT, "/%25", "/%25");
    EXPECT(DEFAULT, "/%2541", "/%2541"); /* no double decoding */
    EXPECT(DEFAULT, "/%c3%a9", "/%C3%A9");
    EXPECT(DEFAULT, "/%ff%7f%01%1f", "/%FF%7F%01%1F"); /* control bytes stay encoded */
    EXPECT(DEFAULT, "/%3b%40%21%2a%2B", "/%3B%40%21%2A%2B");
    /* invalid */
    EXPECT_ERR(DEFAULT, "/%", GW_PATH_BAD_PERCENT, 1);
    EXPECT_ERR(DEFAULT, "/a%4", GW_PATH_BAD_PERCENT, 2);
    EXPECT_ERR(DEFAULT, "/%G1", GW_PATH_BAD_PERCENT, 1);
    EXPECT_ERR(DEFAULT, "/%1g", GW_PATH_BAD_PERCENT, 1);
    EXPECT_ERR(DEFAULT, "/%zz", GW_PATH_BAD_PERCENT, 1);
    EXPECT_ERR(DEFAULT, "/ok/%7e%", GW_PATH_BAD_PERCENT, 7);
    EXPECT_ERR(DEFAULT, "/%%41", GW_PATH_BAD_PERCENT, 1);
    EXPECT_ERR(DEFAULT, "/% 1", GW_PATH_BAD_PERCENT, 1);
    /* NUL, encoded or raw, even in a segment `..` removes */
    EXPECT_ERR(DEFAULT, "/a%00", GW_PATH_NUL, 2);
    EXPECT_ERR(DEFAULT, "/a/%00/../b", GW_PATH_NUL, 3);
    EXPECT_ERR(DEFAULT, "/a\0b", GW_PATH_NUL, 2);
    EXPECT_ERR(0, "/\0", GW_PATH_NUL, 1);
    /* the first error wins */
    EXPECT_ERR(DEFAULT, "/%00%zz", GW_PATH_NUL, 1);
    EXPECT_ERR(DEFAULT, "/%zz%00", GW_PATH_BAD_PERCENT, 1);
    EXPECT_ERR(REJECT, "/%2F%00", GW_PATH_ESCAPED_SLASH, 1);
}

static void test_dot_segments(void) {
    EXPECT(DEFAULT, "/v1/./x", "/v1/x");
    EXPECT(DEFAULT, "/x/../v1/x", "/v1/x");
    EXPECT(DEFAULT, "/a/b/c/./../../g", "/a/g"); /* RFC 3986 5.2.4 example */
    EXPECT(0, "/a/b/c/./../../g", "/a/g");
    EXPECT(DEFAULT, "/../../a", "/a");          /* above the root: clamped */
    EXPECT(DEFAULT, "/..", "/");
    EXPECT(DEFAULT, "/.", "/");
    EXPECT(DEFAULT, "/a/.", "/a/");
    EXPECT(DEFAULT, "/a/..", "/");
    EXPECT(DEFAULT, "/a/b/..", "/a/");
    EXPECT(DEFAULT, "/a/./", "/a/");
    EXPECT(DEFAULT, "/a/../", "/");
    EXPECT(DEFAULT, "/./././", "/");
    EXPECT(DEFAULT, "/../../..", "/");
    EXPECT(DEFAULT, "/a/b/../../../../c/", "/c/");
    EXPECT(DEFAULT, "/%2e/x", "/x");
    EXPECT(DEFAULT, "/a/%2e%2E/v1", "/v1");
    EXPECT(DEFAULT, "/a/.%2e/v1", "/v1");
    EXPECT(DEFAULT, "/a/%2E./v1", "/v1");
    EXPECT(DEFAULT, "/%2e%2e/%2e%2e/etc", "/etc");
    /* not dot segments */
    EXPECT(DEFAULT, "/a/.../b", "/a/.../b");
    EXPECT(DEFAULT, "/a/..b/.c/", "/a/..b/.c/");
    EXPECT(DEFAULT, "/a/%2e%2e%2e", "/a/...");
    /* '?' is an ordinary byte here: the caller passes the path without the query */
    EXPECT(DEFAULT, "/a?b=/../c", "/c");
    /* `..` pops an empty segment when not merging */
    EXPECT(0, "/a//..", "/a/");
    EXPECT(0, "/a//../b", "/a/b");
    EXPECT(MERGE, "/a//../b", "/b");
}

static void test_slashes(void) {
    EXPECT(DEFAULT, "//v1/x", "/v1/x");
    EXPECT(DEFAULT, "/v1//x", "/v1/x");
    EXPECT(DEFAULT, "/v1///x//", "/v1/x/");
    EXPECT(DEFAULT, "//", "/");
    EXPECT(DEFAULT, "////", "/");
    EXPECT(0, "//v1/x", "//v1/x");
    EXPECT(0, "//", "//");
    EXPECT(DECODE, "//v1/x", "//v1/x");
    /* escaped slashes: decode */
    EXPECT(DEFAULT, "/v1%2Fx", "/v1/x");
    EXPECT(DEFAULT, "/v1%2fx", "/v1/x");
    EXPECT(DEFAULT, "/v1%2F%2Fx", "/v1/x");
    EXPECT(DECODE, "/v1%2F%2Fx", "/v1//x");
    EXPECT(DEFAULT, "/v1%2F..%2Fadmin", "/admin");
    EXPECT(DEFAULT, "/v1%2F%2e%2e%2Fadmin", "/admin");
    EXPECT(DEFAULT, "/a%5Cb", "/a\\b");
    EXPECT(DEFAULT, "/a%5c..%5cb", "/a\\..\\b"); /* '\' is no separator */
    EXPECT(DEFAULT, "/a/%2e%2e%5c", "/a/..\\");
    EXPECT(DEFAULT, "/x/..%2F", "/");
    /* keep */
    EXPECT(MERGE, "/v1%2Fx", "/v1%2Fx");
    EXPECT(MERGE, "/v1%2fx", "/v1%2Fx");
    EXPECT(MERGE, "/v1%2F..%2Fadmin", "/v1%2F..%2Fadmin");
    EXPECT(MERGE, "/a%5cb", "/a%5Cb");
    /* reject (wins over decode) */
    EXPECT_ERR(MERGE | REJECT, "/v1%2Fx", GW_PATH_ESCAPED_SLASH, 3);
    EXPECT_ERR(MERGE | REJECT, "/v1%2fx", GW_PATH_ESCAPED_SLASH, 3);
    EXPECT_ERR(REJECT, "/a%5Cb", GW_PATH_ESCAPED_SLASH, 2);
    EXPECT_ERR(DECODE | REJECT, "/a%5cb", GW_PATH_ESCAPED_SLASH, 2);
    EXPECT(REJECT, "/a/b", "/a/b");
}

static void test_not_a_path(void) {
    EXPECT_ERR(DEFAULT, "", GW_PATH_NOT_ABSOLUTE, 0);
    EXPECT_ERR(DEFAULT, "*", GW_PATH_NOT_ABSOLUTE, 0);
    EXPECT_ERR(DEFAULT, "a/b", GW_PATH_NOT_ABSOLUTE, 0);
    EXPECT_ERR(DEFAULT, "http://h/a", GW_PATH_NOT_ABSOLUTE, 0);
    EXPECT_ERR(DEFAULT, "%2Fa", GW_PATH_NOT_ABSOLUTE, 0);
    EXPECT_ERR(DEFAULT, "../a", GW_PATH_NOT_ABSOLUTE, 0);
    /* raw bytes other than NUL pass through (the request parser rejects them before) */
    EXPECT(DEFAULT, "/a b/\x01\x7f\xff/\\", "/a b/\x01\x7f\xff/\\");
}

static void test_names(void) {
    CHECK(strcmp(gw_path_error_name(GW_PATH_OK), "ok") == 0);
    CHECK(strcmp(gw_path_error_name(GW_PATH_NOT_ABSOLUTE), "path_not_absolute") == 0);
    CHECK(strcmp(gw_path_error_name(GW_PATH_BAD_PERCENT), "path_bad_percent") == 0);
    CHECK(strcmp(gw_path_error_name(GW_PATH_NUL), "path_nul") == 0);
    CHECK(strcmp(gw_path_error_name(GW_PATH_ESCAPED_SLASH), "path_escaped_slash") == 0);
    CHECK(strcmp(gw_path_error_name(GW_PATH_NO_ROOM), "path_no_room") == 0);
    CHECK(strcmp(gw_path_error_name(GW_PATH__COUNT), "unknown") == 0);
    CHECK(strcmp(gw_path_error_name(-1), "unknown") == 0);
    for (int c = GW_PATH_NOT_ABSOLUTE; c < GW_PATH__COUNT; c++)
        CHECK(gw_path_error_status(c) == (c == GW_PATH_NO_ROOM ? 500 : 400));
}

/* ----- deterministic random inputs ---------------------------------------------------------- */
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static const char *const k_pieces[] = {
    "/", "/", "/", "//", ".", "..", "...", "%2e", "%2E", "%2e%2e", ".%2e", "%2f", "%2F", "%5c",
    "%5C", "a", "b", "v1", "%76", "%31", "%7e", "%7E", "~", "%41", "%3f", "%3F", "%25", "%ff",
    "%00", "%", "%4", "%g1", "%zz", "\\", "?", "x", "-", "_", "%2d", "%20"};

/* Builds a path from pieces, or from raw bytes of a small alphabet. */
static size_t random_path(char *buf, size_t cap) {
    size_t n = 0;
    if (rnd() % 16) buf[n++] = '/';
    if (rnd() % 4 == 0) {
        static const char alpha[] = "/./%2eEfF5cC0a~g\0";
        size_t len = rnd() % 24;
        for (size_t i = 0; i < len && n < cap; i++) buf[n++] = alpha[rnd() % (sizeof alpha)];
        return n;
    }
    size_t pieces = rnd() % 14;
    for (size_t i = 0; i < pieces; i++) {
        const char *p = k_pieces[rnd() % (sizeof k_pieces / sizeof *k_pieces)];
        size_t k = strlen(p);
        if (n + k > cap) break;
        memcpy(buf + n, p, k);
        n += k;
    }
    return n;
}

static void test_random(long iterations) {
    char buf[128];
    for (long i = 0; i < iterations; i++) {
        size_t n = random_path(buf, sizeof buf);
        check_one("random", buf, n, k_flag_sets[rnd() % 8], NULL);
    }
}

#ifndef GW_PATH_NO_MAIN /* tests/c/fuzz_path.c reuses the harness above */
int main(int argc, char **argv) {
    long iterations = argc > 1 ? atol(argv[1]) : 300000;
    test_fast_path();
    test_percent();
    test_dot_segments();
    test_slashes();
    test_not_a_path();
    test_names();
    test_random(iterations);
    printf("outcomes: %ld unchanged, %ld changed, %ld errors\n", outcomes[0], outcomes[1],
           outcomes[2]);
    return check_summary("test_path");
}
#endif
