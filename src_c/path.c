/* path.c - request path normalisation (RFC 3986 6.2.2, 5.2.4); the contract is in path.h.
 *
 * Method: the output buffer is the stack of remove_dot_segments (RFC 3986 5.2.4), holding
 * "/seg/seg..." with '/' only as separators. Each input segment is decoded straight onto it
 * after a '/', then looked at: `.` is taken off again, `..` also takes off the segment
 * before it, an empty one goes under merging (unless it is the last: the trailing '/').
 * Separators are raw '/' and, when decoding, %2F. Merging before dot removal is what merging
 * the input's '/' runs first and then applying RFC 3986 5.2.4 gives (NGINX does the same).
 * Every output byte comes from at least as many input bytes read at or after it, so w <= r
 * throughout and the output may overwrite the input (in place).
 * A first scan, eight bytes at a time, finds the longest prefix, ending before a '/', that
 * needs no change (no '%', no NUL, no dot segment, no "//" when merging); it is copied as it
 * is, and when it is the whole path the output is the input.
 */
#include "path.h"

#include <stdint.h>
#include <string.h>

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

static const char k_hex_upper[16] = "0123456789ABCDEF";

static inline int hex_value(unsigned c) {
    if (c - '0' < 10u) return (int)(c - '0');
    c |= 0x20u;
    if (c - 'a' < 6u) return (int)(c - 'a' + 10);
    return -1;
}

/* RFC 3986 2.3: ALPHA / DIGIT / "-" / "." / "_" / "~" */
static inline int is_unreserved(unsigned v) {
    return v - '0' < 10u || (v | 0x20u) - 'a' < 26u || v == '-' || v == '.' || v == '_' ||
           v == '~';
}

/* 1 when position j of p[0..n) needs work: '%' or NUL, or a '/' starting a `.` or `..`
 * segment or (merging) followed by another '/'. */
static inline int needs_work(const unsigned char *p, size_t n, size_t j, unsigned merge) {
    unsigned c = p[j];
    if (c == '%' || c == 0) return 1;
    if (c != '/' || j + 1 == n) return 0;
    unsigned d = p[j + 1];
    if (d == '/') return merge != 0;
    if (d != '.') return 0;
    if (j + 2 == n || p[j + 2] == '/') return 1;
    return p[j + 2] == '.' && (j + 3 == n || p[j + 3] == '/');
}

/* Scalar check of positions [from, to): the offset of the '/' that starts the segment of the
 * first position needing work, or n if none. */
static size_t scan_bytes(const unsigned char *p, size_t n, size_t from, size_t to,
                         unsigned merge) {
    for (size_t j = from; j < to; j++) {
        if (LIKELY(!needs_work(p, n, j, merge))) continue;
        while (p[j] != '/') j--; /* p[0] == '/' and p[j] != '/' implies j > 0 */
        return j;
    }
    return n;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define GW_PATH_SWAR 1
/* High bit set in each byte of v that is zero, exactly (no borrow between bytes). */
static inline uint64_t zero_bytes(uint64_t v) {
    const uint64_t lo7 = 0x7f7f7f7f7f7f7f7full;
    return ~(((v & lo7) + lo7) | v | lo7);
}
static inline uint64_t bytes_equal(uint64_t v, unsigned char c) {
    return zero_bytes(v ^ (0x0101010101010101ull * c));
}
#endif

/* Length of the prefix of p[0..n) (p[0] == '/') that is copied unchanged: n when the whole
 * path is already normal, else the offset of the '/' that starts the first segment needing
 * work. Eight bytes at a time (SWAR): a word with no '%', NUL or '.' and (merging) no "//",
 * also across its first byte, has no position needing work; the others are checked byte by
 * byte from the byte before them (a '/' there may start a dot segment in this word). */
static size_t normal_prefix(const unsigned char *p, size_t n, unsigned merge) {
    size_t i = 0;
#ifdef GW_PATH_SWAR
    for (; n - i >= 8; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        uint64_t work = bytes_equal(v, '%') | zero_bytes(v) | bytes_equal(v, '.');
        if (merge) {
            uint64_t s = bytes_equal(v, '/');
            work |= (s & (s >> 8)) | (i > 0 && p[i - 1] == '/' ? s & 0x80u : 0);
        }
        if (UNLIKELY(work)) {
            size_t k = scan_bytes(p, n, i ? i - 1 : 0, i + 8, merge);
            if (k != n) return k;
        }
    }
#endif
    return scan_bytes(p, n, i ? i - 1 : 0, n, merge);
}

static ssize_t fail(gw_path_status *st, int code, size_t off) {
    st->error = code;
    st->error_off = off;
    return -1;
}

ssize_t gw_normalize_path(const char *in_, size_t n, char *out_, size_t out_cap,
                          unsigned flags, gw_path_status *st) {
    const unsigned char *in = (const unsigned char *)in_;
    unsigned char *out = (unsigned char *)out_;
    st->error = GW_PATH_OK;
    st->error_off = 0;
    st->same = 0;
    if (UNLIKELY(n == 0 || in[0] != '/')) return fail(st, GW_PATH_NOT_ABSOLUTE, 0);
    if (UNLIKELY(out_cap < n || n > (size_t)PTRDIFF_MAX)) return fail(st, GW_PATH_NO_ROOM, 0);

    const unsigned merge = flags & GW_PATH_MERGE_SLASHES;
    size_t k = normal_prefix(in, n, merge);
    if (out != in && k) memcpy(out, in, k);
    if (LIKELY(k == n)) {
        st->same = 1;
        return (ssize_t)n;
    }

    const int reject = (flags & GW_PATH_REJECT_SLASHES) != 0;
    const int decode = !reject && (flags & GW_PATH_DECODE_SLASHES) != 0;
    int changed = 0;
    size_t r = k, w = k; /* read and write offsets, w <= r */
    size_t sep = 1;      /* length of the separator at in[r]: '/' (1) or %2F (3) */
    while (r < n) {
        r += sep;
        sep = 0;
        const size_t seg = w; /* this segment's '/' in out */
        out[w++] = '/';
        while (r < n) {
            unsigned c = in[r];
            if (c == '/') {
                sep = 1;
                break;
            }
            if (c == '%') {
                if (n - r < 3) return fail(st, GW_PATH_BAD_PERCENT, r);
                const unsigned char a = in[r + 1], b = in[r + 2]; /* read before any write */
                int hi = hex_value(a), lo = hex_value(b);
                if (hi < 0 || lo < 0) return fail(st, GW_PATH_BAD_PERCENT, r);
                unsigned v = (unsigned)hi << 4 | (unsigned)lo;
                if (v == 0) return fail(st, GW_PATH_NUL, r);
                if (v == '/' || v == '\\') {
                    if (reject) return fail(st, GW_PATH_ESCAPED_SLASH, r);
                    if (decode) {
                        changed = 1;
                        if (v == '/') {
                            sep = 3;
                            break;
                        }
                        out[w++] = '\\';
                        r += 3;
                        continue;
                    }
                } else if (is_unreserved(v)) {
                    out[w++] = (unsigned char)v;
                    r += 3;
                    changed = 1;
                    continue;
                }
                out[w] = '%';
                out[w + 1] = (unsigned char)k_hex_upper[hi];
                out[w + 2] = (unsigned char)k_hex_upper[lo];
                if (out[w + 1] != a || out[w + 2] != b) changed = 1;
                w += 3;
                r += 3;
                continue;
            }
            if (UNLIKELY(c == 0)) return fail(st, GW_PATH_NUL, r);
            out[w++] = (unsigned char)c;
            r++;
        }
        /* The segment is out[seg + 1 .. w); it is the last one when no separator follows. */
        const size_t len = w - seg - 1;
        const int last = sep == 0;
        if (len == 0) {
            if (merge && !last) {
                w = seg;
                changed = 1;
            }
        } else if (len <= 2 && out[seg + 1] == '.' && (len == 1 || out[seg + 2] == '.')) {
            changed = 1;
            w = seg;
            if (len == 2) /* `..`: back to the '/' of the previous segment, if any */
                while (w > 0 && out[--w] != '/') {
                }
            if (last) out[w++] = '/';
        }
    }
    st->same = !changed;
    return (ssize_t)w;
}

static const char *const k_names[GW_PATH__COUNT] = {
    [GW_PATH_OK] = "ok",
    [GW_PATH_NOT_ABSOLUTE] = "path_not_absolute",
    [GW_PATH_BAD_PERCENT] = "path_bad_percent",
    [GW_PATH_NUL] = "path_nul",
    [GW_PATH_ESCAPED_SLASH] = "path_escaped_slash",
    [GW_PATH_NO_ROOM] = "path_no_room",
};

const char *gw_path_error_name(int code) {
    if (code < 0 || code >= GW_PATH__COUNT) return "unknown";
    return k_names[code];
}

int gw_path_error_status(int code) {
    return code == GW_PATH_NO_ROOM ? 500 : 400;
}
