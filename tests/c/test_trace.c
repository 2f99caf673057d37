/* test_trace.c - unit tests and a deterministic random loop for src_c/trace.c.
 *
 * traceparent and tracestate values are checked against ref_traceparent / ref_tracestate,
 * plain references written separately from the W3C Trace Context text (split on the
 * delimiters, then each part checked; no fixed offsets, no shared helpers), on a table of
 * cases (with the expected error code), on every prefix of each, and on random values built
 * to sit near the edges (lengths around 55, hex digits with a few wrong bytes, commas,
 * equals signs and spaces). Every value lives in a heap buffer of exactly its length, so
 * ASan catches any read past it. The generator is checked against the xoshiro256** sequence
 * for the state {1, 2, 3, 4} (computed by hand from the algorithm's description), for
 * determinism, seeding (all-zero seeds, short seeds), bit balance and the sampling ratio;
 * gw_trace_begin / gw_traceparent_format for continued and new traces and their round trip.
 * Exit status 0 when every check passes. Argument: random iterations (default 200000).
 */
#include "trace.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define VALID "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

/* ----- references -------------------------------------------------------------------------- */

static int ref_is_hexlc(char c) {
    return strchr("0123456789abcdef", c) != NULL && c != 0;
}

static int ref_all(const char *s, size_t n, int (*pred)(char)) {
    for (size_t i = 0; i < n; i++)
        if (!pred(s[i])) return 0;
    return 1;
}

static int ref_all_zero(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != '0') return 0;
    return 1;
}

/* Splits v on '-' into at most 5 parts and checks them (§3.2.2, §3.2.4). 1 valid, 0 not;
 * *flags set when valid. */
static int ref_traceparent(const char *v, size_t n, unsigned *flags) {
    const char *part[6];
    size_t len[6];
    int parts = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n && parts < 6; i++) {
        if (i == n || v[i] == '-') {
            part[parts] = v + start;
            len[parts] = i - start;
            parts++;
            start = i + 1;
        }
    }
    if (parts < 4) return 0;
    if (len[0] != 2 || !ref_all(part[0], 2, ref_is_hexlc)) return 0;
    if (part[0][0] == 'f' && part[0][1] == 'f') return 0;
    int v00 = part[0][0] == '0' && part[0][1] == '0';
    if (v00 && parts != 4) return 0;               /* version 00 has exactly four fields */
    if (len[1] != 32 || len[2] != 16 || len[3] != 2) return 0;
    if (!ref_all(part[1], 32, ref_is_hexlc) || !ref_all(part[2], 16, ref_is_hexlc) ||
        !ref_all(part[3], 2, ref_is_hexlc))
        return 0;
    if (ref_all_zero(part[1], 32) || ref_all_zero(part[2], 16)) return 0;
    char hex[3] = {part[3][0], part[3][1], 0};
    *flags = (unsigned)strtoul(hex, NULL, 16);
    return 1;   /* higher versions: anything after the fourth field's '-' is not looked at */
}

static int ref_key_first(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
static int ref_key_char(char c) { return ref_key_first(c) || (c != 0 && strchr("_-*/@", c)); }
static int ref_value_char(char c) { return c >= 0x20 && c <= 0x7e && c != ',' && c != '='; }

/* The combined value of `fields` values joined by ','; 1 valid (*members set), 0 not. */
static int ref_tracestate(const char *const *vals, const size_t *lens, int fields,
                          unsigned *members) {
    size_t total = 0;
    for (int f = 0; f < fields; f++) total += lens[f] + (f > 0);
    if (total > 512) return 0;
    char *joined = malloc(total + 1);
    size_t w = 0;
    for (int f = 0; f < fields; f++) {
        if (f > 0) joined[w++] = ',';
        memcpy(joined + w, vals[f], lens[f]);
        w += lens[f];
    }
    unsigned count = 0;
    int ok = 1;
    size_t i = 0;
    while (ok) {
        size_t j = i;
        while (j < total && joined[j] != ',') j++;
        size_t a = i, b = j;       /* trim OWS */
        while (a < b && (joined[a] == ' ' || joined[a] == '\t')) a++;
        while (b > a && (joined[b - 1] == ' ' || joined[b - 1] == '\t')) b--;
        if (b > a) {
            size_t eq = a;
            while (eq < b && joined[eq] != '=') eq++;
            if (eq == b) ok = 0;
            size_t kl = eq - a, vl = ok ? b - eq - 1 : 0;
            if (ok && (kl < 1 || kl > 256 || !ref_key_first(joined[a]) ||
                       !ref_all(joined + a + 1, kl - 1, ref_key_char)))
                ok = 0;
            if (ok && (vl < 1 || vl > 256 || !ref_all(joined + eq + 1, vl, ref_value_char) ||
                       joined[b - 1] == ' '))
                ok = 0;
            if (ok && ++count > 32) ok = 0;
        }
        if (j >= total) break;
        i = j + 1;
    }
    free(joined);
    *members = count;
    return ok;
}

/* ----- helpers ----------------------------------------------------------------------------- */

static char *heap_copy(const char *s, size_t n) {
    char *p = malloc(n ? n : 1);
    memcpy(p, s, n);
    return p;
}

/* gw_traceparent_parse on v[0..n) in an exact heap buffer, compared with the reference;
 * returns the error code. */
static int check_tp(const char *v, size_t n) {
    char *buf = heap_copy(v, n);
    uint8_t flags = 0xAA;
    int err = -7;
    int r = gw_traceparent_parse(buf, n, &flags, &err);
    unsigned ref_flags = 0;
    int ref = ref_traceparent(v, n, &ref_flags);
    CHECK_MSG((r == 0) == ref, "parse %d, reference %d for \"%.*s\" (error %s)", r, ref,
              (int)n, v, gw_trace_error_name(err));
    CHECK_MSG((r == 0) == (err == GW_TRACE_OK), "return %d with error %d", r, err);
    if (r == 0 && ref) CHECK_MSG(flags == ref_flags, "flags %u vs %u", flags, ref_flags);
    free(buf);
    return err;
}

static int check_ts(const char *const *vals, const size_t *lens, int fields) {
    gw_tracestate st;
    gw_tracestate_init(&st);
    int r = 0;
    for (int f = 0; f < fields; f++) {
        char *buf = heap_copy(vals[f], lens[f]);
        int rf = gw_tracestate_add(&st, buf, lens[f]);
        free(buf);
        if (r == 0) r = rf;
        else CHECK_MSG(rf == -1, "an error must be sticky");
    }
    unsigned ref_members = 0;
    int ref = ref_tracestate(vals, lens, fields, &ref_members);
    CHECK_MSG((r == 0) == ref, "tracestate %d (%s), reference %d for \"%.*s\"%s", r,
              gw_trace_error_name(st.error), ref, (int)(fields ? lens[0] : 0),
              fields ? vals[0] : "", fields > 1 ? " ..." : "");
    if (r == 0 && ref) CHECK_MSG(st.members == ref_members, "members %u vs %u", st.members,
                                 ref_members);
    return r == 0 ? GW_TRACE_OK : st.error;
}

static int check_ts1(const char *v) {
    size_t n = strlen(v);
    return check_ts(&v, &n, 1);
}

/* ----- traceparent ------------------------------------------------------------------------- */

static void test_traceparent_table(void) {
    static const struct {
        const char *v;
        int error;
    } cases[] = {
        {VALID, GW_TRACE_OK},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", GW_TRACE_OK},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", GW_TRACE_OK},
        {"00-00000000000000000000000000000001-0000000000000001-01", GW_TRACE_OK},
        {"", GW_TP_E_LENGTH},
        {"00", GW_TP_E_LENGTH},
        {"00-", GW_TP_E_LENGTH},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0", GW_TP_E_LENGTH},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", GW_TP_E_LENGTH},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ", GW_TP_E_LENGTH},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what", GW_TP_E_LENGTH},
        {"00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01", GW_TP_E_FORMAT},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736000f067aa0ba902b7-01", GW_TP_E_FORMAT},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7001", GW_TP_E_FORMAT},
        {"0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011", GW_TP_E_VERSION},
        {"0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", GW_TP_E_VERSION},
        {"0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", GW_TP_E_VERSION},
        {"000-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", GW_TP_E_VERSION},
        {"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", GW_TP_E_VERSION_FF},
        {"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", GW_TP_E_VERSION_FF},
        {"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", GW_TP_E_HEX},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00F067aa0ba902b7-01", GW_TP_E_HEX},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A", GW_TP_E_HEX},
        {"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", GW_TP_E_HEX},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0 ", GW_TP_E_HEX},
        {"00- bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", GW_TP_E_HEX},
        {"00-00000000000000000000000000000000-00f067aa0ba902b7-01", GW_TP_E_TRACE_ID_ZERO},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", GW_TP_E_PARENT_ID_ZERO},
        {"00-00000000000000000000000000000000-0000000000000000-01", GW_TP_E_TRACE_ID_ZERO},
        /* higher versions (§3.2.4): the first 55 bytes, then '-' or the end */
        {"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", GW_TRACE_OK},
        {"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds",
         GW_TRACE_OK},
        {"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", GW_TRACE_OK},
        {"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what", GW_TP_E_LENGTH},
        {"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1", GW_TP_E_LENGTH},
        {"fe-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09", GW_TRACE_OK},
        {"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0G-x", GW_TP_E_HEX},
        {"garbage", GW_TP_E_VERSION},
        {"00-garbage-garbage-garbage-garbage-garbage-garbage-garb", GW_TP_E_FORMAT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = strlen(cases[i].v);
        int err = check_tp(cases[i].v, n);
        CHECK_MSG(err == cases[i].error, "case %zu \"%s\": %s, expected %s", i, cases[i].v,
                  gw_trace_error_name(err), gw_trace_error_name(cases[i].error));
        for (size_t k = 0; k < n; k++) check_tp(cases[i].v, k); /* every prefix */
    }
    /* a NUL byte anywhere in a valid value */
    for (size_t k = 0; k < 55; k++) {
        char v[56];
        memcpy(v, VALID, 55);
        v[k] = 0;
        CHECK_MSG(check_tp(v, 55) != GW_TRACE_OK, "NUL at %zu accepted", k);
    }
    /* flags: bit 0 is the sampled flag; every value parses */
    for (unsigned f = 0; f < 256; f++) {
        char v[56];
        memcpy(v, VALID, 55);
        snprintf(v + 53, 3, "%02x", f);
        uint8_t flags;
        int err;
        CHECK(gw_traceparent_parse(v, 55, &flags, &err) == 0 && flags == f);
    }
}

static uint64_t lcg;
static unsigned rnd(unsigned n) {
    lcg = lcg * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
    return (unsigned)((lcg >> 33) % n);
}

static void test_traceparent_random(long iterations) {
    static const char alphabet[] = "0123456789abcdef-0123456789abcdef-Ff0 g\t";
    char v[80];
    for (long it = 0; it < iterations; it++) {
        size_t n;
        if (rnd(2)) { /* a valid value with a few bytes changed and a length near 55 */
            memcpy(v, VALID, 55);
            if (rnd(4) == 0) v[0] = alphabet[rnd(16)], v[1] = alphabet[rnd(16)];
            for (unsigned k = rnd(3); k > 0; k--) v[rnd(55)] = alphabet[rnd(sizeof(alphabet) - 1)];
            if (rnd(6) == 0) memset(v + 3, '0', 32);
            if (rnd(6) == 0) memset(v + 36, '0', 16);
            n = 52 + rnd(8);
            for (size_t k = 55; k < n; k++) v[k] = k == 55 && rnd(2) ? '-' : alphabet[rnd(40)];
        } else {
            n = rnd(70);
            for (size_t k = 0; k < n; k++) v[k] = alphabet[rnd(sizeof(alphabet) - 1)];
        }
        check_tp(v, n);
    }
}

/* ----- tracestate -------------------------------------------------------------------------- */

static void test_tracestate_table(void) {
    CHECK(check_ts1("congo=t61rcWkgMzE") == GW_TRACE_OK);
    CHECK(check_ts1("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE") == GW_TRACE_OK);
    CHECK(check_ts1("") == GW_TRACE_OK);
    CHECK(check_ts1("  ,\t, ") == GW_TRACE_OK);
    CHECK(check_ts1("a=1 , b=2,, c=3 ") == GW_TRACE_OK);
    CHECK(check_ts1("tenant@system=x,a-b_c*d/e=y,0=z") == GW_TRACE_OK);
    CHECK(check_ts1("k= leading space kept") == GW_TRACE_OK);
    CHECK(check_ts1("k=!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~") == GW_TRACE_OK);
    CHECK(check_ts1("k") == GW_TS_E_MEMBER);
    CHECK(check_ts1("=v") == GW_TS_E_KEY);
    CHECK(check_ts1("Congo=x") == GW_TS_E_KEY);
    CHECK(check_ts1("_x=y") == GW_TS_E_KEY);
    CHECK(check_ts1("k y=v") == GW_TS_E_KEY);
    CHECK(check_ts1("k =v") == GW_TS_E_KEY);
    CHECK(check_ts1("k=") == GW_TS_E_VALUE);
    CHECK(check_ts1("k=   ") == GW_TS_E_VALUE);
    CHECK(check_ts1("k=a=b") == GW_TS_E_VALUE);
    CHECK(check_ts1("k=a\tb") == GW_TS_E_VALUE);
    CHECK(check_ts1("k=caf\xc3\xa9") == GW_TS_E_VALUE);
    /* lengths: key 256 ok, 257 not; value 256 ok, 257 not (within 512 bytes) */
    char big[600];
    memset(big, 'k', 256);
    big[256] = '=';
    big[257] = 'v';
    big[258] = 0;
    CHECK(check_ts1(big) == GW_TRACE_OK);
    memset(big, 'k', 257);
    big[257] = '=';
    big[258] = 'v';
    big[259] = 0;
    CHECK(check_ts1(big) == GW_TS_E_KEY);
    big[0] = 'k';
    big[1] = '=';
    memset(big + 2, 'v', 256);
    big[258] = 0;
    CHECK(check_ts1(big) == GW_TRACE_OK);
    memset(big + 2, 'v', 257);
    big[259] = 0;
    CHECK(check_ts1(big) == GW_TS_E_VALUE);
    /* 512 bytes combined: ok; 513: refused */
    memset(big, 0, sizeof(big));
    size_t w = 0;
    for (int m = 0; m < 2; m++) {
        if (m) big[w++] = ',';
        big[w++] = (char)('a' + m);
        big[w++] = '=';
        memset(big + w, 'v', 253);
        w += 253;
    }
    /* 2 * 255 + 1 = 511: pad with spaces (OWS) to 512 */
    big[w++] = ' ';
    CHECK(w == 512 && check_ts1(big) == GW_TRACE_OK);
    big[w++] = ' ';
    CHECK(check_ts1(big) == GW_TS_E_SIZE);
    /* 32 members ok, 33 not */
    w = 0;
    for (int m = 0; m < 33; m++) {
        w += (size_t)snprintf(big + w, sizeof(big) - w, "%sk%d=v", m ? "," : "", m);
        if (m == 31) CHECK(check_ts1(big) == GW_TRACE_OK);
    }
    CHECK(check_ts1(big) == GW_TS_E_MEMBERS);
    /* several fields are one list joined with ',' */
    const char *two[2] = {"a=1", "b=2"};
    size_t two_len[2] = {3, 3};
    CHECK(check_ts(two, two_len, 2) == GW_TRACE_OK);
    const char *bad_second[2] = {"a=1", "B=2"};
    CHECK(check_ts(bad_second, two_len, 2) == GW_TS_E_KEY);
    gw_tracestate st;
    gw_tracestate_init(&st);
    memset(big, 'v', 256);
    memcpy(big, "a=", 2);
    CHECK(gw_tracestate_add(&st, big, 256) == 0);
    big[0] = 'b';
    CHECK(gw_tracestate_add(&st, big, 255) == 0);    /* 256 + 1 + 255 = 512 */
    CHECK(st.bytes == 512 && st.members == 2 && st.fields == 2);
    CHECK(gw_tracestate_add(&st, "", 0) == -1 && st.error == GW_TS_E_SIZE);   /* the ',' */
    CHECK(gw_tracestate_add(&st, "c=1", 3) == -1);
}

/* Every byte value in each position class: a traceparent hex digit, a key's first and later
 * character, a value character (first, middle, last). */
static void test_every_byte(void) {
    for (unsigned b = 0; b < 256; b++) {
        char v[60];
        memcpy(v, VALID, 55);
        v[10] = (char)b;                                   /* in the trace-id */
        check_tp(v, 55);
        memcpy(v, VALID, 55);
        v[40] = (char)b;                                   /* in the parent-id */
        check_tp(v, 55);
        memcpy(v, VALID, 55);
        v[54] = (char)b;                                   /* in the flags */
        check_tp(v, 55);
        char ts[8][8] = {"?a=v", "a?=v", "ab?=v", "a=?", "a=?v", "a=v?v", "a=v?", "a?"};
        for (int k = 0; k < 8; k++) {
            size_t n = strlen(ts[k]);                      /* before b, which may be NUL */
            *strchr(ts[k], '?') = (char)b;
            const char *val = ts[k];
            check_ts(&val, &n, 1);
        }
    }
}

static void test_tracestate_random(long iterations) {
    static const char alphabet[] = "abz09_-*/@= ,\t=,=Kv~!";
    char v[3][700];
    const char *vals[3];
    size_t lens[3];
    for (long it = 0; it < iterations; it++) {
        int fields = 1 + (int)rnd(3);
        for (int f = 0; f < fields; f++) {
            size_t n = rnd(8) == 0 ? rnd(600) : rnd(40);
            for (size_t k = 0; k < n; k++) v[f][k] = alphabet[rnd(sizeof(alphabet) - 1)];
            vals[f] = v[f];
            lens[f] = n;
        }
        check_ts(vals, lens, fields);
        /* adding the joined value at once gives the same answer as field by field */
        if (fields > 1) {
            char joined[1400];
            memcpy(joined, vals[0], lens[0]);
            joined[lens[0]] = ',';
            memcpy(joined + lens[0] + 1, vals[1], lens[1]);
            const char *one = joined;
            size_t one_len = lens[0] + 1 + lens[1];
            int a = check_ts(&one, &one_len, 1);
            int b = check_ts(vals, lens, 2);
            CHECK_MSG((a == GW_TRACE_OK) == (b == GW_TRACE_OK), "joined %s, split %s",
                      gw_trace_error_name(a), gw_trace_error_name(b));
        }
    }
}

/* ----- ids --------------------------------------------------------------------------------- */

static void test_rng(void) {
    gw_rng r = {{1, 2, 3, 4}};
    static const uint64_t expected[5] = {UINT64_C(11520), UINT64_C(0), UINT64_C(1509978240),
                                         UINT64_C(1215971899390074240),
                                         UINT64_C(1216172134540287360)};
    for (int i = 0; i < 5; i++) {
        uint64_t got = gw_rng_next(&r);
        CHECK_MSG(got == expected[i], "xoshiro256** output %d: %" PRIu64, i, got);
    }
    /* same seed, same stream; another seed, another stream */
    unsigned char seed[32];
    for (int i = 0; i < 32; i++) seed[i] = (unsigned char)(i * 7 + 1);
    gw_rng a, b, c;
    gw_rng_seed(&a, seed, 32);
    gw_rng_seed(&b, seed, 32);
    seed[31] ^= 1;
    gw_rng_seed(&c, seed, 32);
    int same = 1, differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = gw_rng_next(&a), y = gw_rng_next(&b), z = gw_rng_next(&c);
        same &= x == y;
        differ += x != z;
    }
    CHECK(same);
    CHECK(differ > 990);
    /* degenerate seeds still give a working generator */
    memset(seed, 0, sizeof(seed));
    gw_rng_seed(&a, seed, 32);
    CHECK((a.s[0] | a.s[1] | a.s[2] | a.s[3]) != 0);
    gw_rng_seed(&b, NULL, 0);
    CHECK((b.s[0] | b.s[1] | b.s[2] | b.s[3]) != 0);
    /* bit balance: each of the 64 bits set in 50% +- 1% of 200000 outputs */
    gw_rng_seed(&a, (const unsigned char *)"gwcore", 6);
    static long ones[64];
    const long draws = 200000;
    for (long i = 0; i < draws; i++) {
        uint64_t x = gw_rng_next(&a);
        for (int bit = 0; bit < 64; bit++) ones[bit] += (x >> bit) & 1u;
    }
    for (int bit = 0; bit < 64; bit++)
        CHECK_MSG(ones[bit] > draws * 49 / 100 && ones[bit] < draws * 51 / 100,
                  "bit %d set %ld times of %ld", bit, ones[bit], draws);
    /* sampling */
    CHECK(gw_trace_threshold(0.0) == 0 && gw_trace_threshold(-1.0) == 0);
    CHECK(gw_trace_threshold(NAN) == 0);
    CHECK(gw_trace_threshold(1.0) == UINT64_C(1) << 53 && gw_trace_threshold(2.0) == UINT64_C(1) << 53);
    long hits[3] = {0, 0, 0};
    const double ratios[3] = {0.0, 0.25, 1.0};
    for (int k = 0; k < 3; k++)
        for (long i = 0; i < draws; i++)
            hits[k] += gw_rng_sample(&a, gw_trace_threshold(ratios[k]));
    CHECK(hits[0] == 0);
    CHECK_MSG(hits[1] > draws * 24 / 100 && hits[1] < draws * 26 / 100, "0.25: %ld", hits[1]);
    CHECK(hits[2] == draws);
    /* hex */
    char hex[17] = {0};
    gw_hex64(UINT64_C(0x00f067aa0ba902b7), hex);
    CHECK(memcmp(hex, "00f067aa0ba902b7", 16) == 0);
    gw_hex64(UINT64_MAX, hex);
    CHECK(memcmp(hex, "ffffffffffffffff", 16) == 0);
    gw_hex64(0, hex);
    CHECK(memcmp(hex, "0000000000000000", 16) == 0);
}

static void test_begin(void) {
    gw_rng r;
    gw_rng_seed(&r, (const unsigned char *)"begin", 5);
    gw_trace_ctx ctx;
    int err = -1;
    char out[60];
    uint8_t flags;
    int perr;
    /* continued: trace-id and parent-id kept, sampled from bit 0, a new span id */
    const char *in = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03";
    char *buf = heap_copy(in, 55);
    CHECK(gw_trace_begin(&r, buf, 55, 0, &ctx, &err) == 0 && err == GW_TRACE_OK);
    CHECK(ctx.continued == 1 && ctx.sampled == 1);
    CHECK(memcmp(ctx.trace_id, in + 3, 32) == 0 && memcmp(ctx.parent_id, in + 36, 16) == 0);
    CHECK(memcmp(ctx.span_id, ctx.parent_id, 16) != 0);
    CHECK(gw_traceparent_format(&ctx, out, 54) == -1);
    CHECK(gw_traceparent_format(&ctx, out, sizeof(out)) == 55);
    CHECK(gw_traceparent_parse(out, 55, &flags, &perr) == 0 && flags == 1);  /* 03 -> 01 */
    CHECK(memcmp(out + 3, in + 3, 32) == 0 && memcmp(out + 36, ctx.span_id, 16) == 0);
    /* a higher version is downgraded to 00 */
    const char *v2 = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x";
    CHECK(gw_trace_begin(&r, v2, strlen(v2), 0, &ctx, &err) == 0 && ctx.sampled == 0);
    CHECK(gw_traceparent_format(&ctx, out, sizeof(out)) == 55 && memcmp(out, "00-", 3) == 0);
    CHECK(memcmp(out + 52, "-00", 3) == 0);
    free(buf);
    /* new traces: absent or invalid; sampled per threshold; ids non-zero and distinct */
    char seen[2000][16];
    for (int i = 0; i < 2000; i++) {
        const char *bad = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        int rc = i % 2 ? gw_trace_begin(&r, bad, 55, gw_trace_threshold(1.0), &ctx, &err)
                       : gw_trace_begin(&r, NULL, 0, gw_trace_threshold(0.0), &ctx, &err);
        CHECK(rc == 1 && ctx.continued == 0);
        CHECK(err == (i % 2 ? GW_TP_E_TRACE_ID_ZERO : GW_TRACE_OK));
        CHECK(ctx.sampled == (i % 2));
        CHECK(gw_traceparent_format(&ctx, out, sizeof(out)) == 55);
        CHECK_MSG(gw_traceparent_parse(out, 55, &flags, &perr) == 0, "made an invalid %.55s",
                  out);
        CHECK(flags == (i % 2));
        memcpy(seen[i], ctx.span_id, 16);
    }
    int dup = 0;
    for (int i = 0; i < 2000; i++)
        for (int j = 0; j < i; j++) dup += memcmp(seen[i], seen[j], 16) == 0;
    CHECK(dup == 0);
    CHECK(strcmp(gw_trace_error_name(GW_TP_E_VERSION_FF), "traceparent_version_ff") == 0);
    CHECK(strcmp(gw_trace_error_name(-1), "unknown") == 0);
    CHECK(strcmp(gw_trace_error_name(GW_TRACE_E__COUNT), "unknown") == 0);
    for (int code = 0; code < GW_TRACE_E__COUNT; code++)
        CHECK(gw_trace_error_name(code) != NULL);
}

int main(int argc, char **argv) {
    long iterations = argc > 1 ? atol(argv[1]) : 200000;
    lcg = 0x7472616365ULL;
    test_traceparent_table();
    test_traceparent_random(iterations);
    test_tracestate_table();
    test_every_byte();
    test_tracestate_random(iterations);
    test_rng();
    test_begin();
    return check_summary("test_trace");
}
