/* path.h - normalisation of a request path before route matching (RFC 3986 6.2.2).
 *
 * Contract
 * - Written from RFC 3986 2.3 (unreserved), 2.4 (when to decode), 5.2.4 (remove_dot_segments)
 *   and 6.2.2 (syntax-based normalisation). Routes match the result, so every spelling of a
 *   path (`/%76%31/x`, `//v1/x`, `/v1/./x`, `/x/../v1/x`) reaches the same route.
 * - Input: the path of an origin-form request-target, starting with '/', query excluded (the
 *   caller splits at the first '?'; here '?' and '#' are ordinary bytes). Anything else
 *   (empty, `*`, absolute-form) is GW_PATH_NOT_ABSOLUTE.
 * - Steps, in one pass over the input:
 *   1. Percent-encodings (`%` HEXDIG HEXDIG) of unreserved characters (ALPHA DIGIT - . _ ~)
 *      are decoded; every other one is kept with its hex digits upper-cased (`%3f` -> `%3F`,
 *      control bytes and bytes >= 0x80 included). `%` not followed by two hex digits is
 *      GW_PATH_BAD_PERCENT; `%00` and a raw NUL byte are GW_PATH_NUL. Errors are reported
 *      wherever they are, even inside a segment that `..` later removes.
 *   2. Escaped slashes, by flags: GW_PATH_DECODE_SLASHES decodes `%2F` to a '/' that separates
 *      segments like a raw one (so it takes part in steps 3 and 4: `/v1%2F..%2Fadmin` ->
 *      `/admin`) and `%5C` to a '\' byte (an ordinary byte here, as in NGINX on POSIX).
 *      GW_PATH_REJECT_SLASHES makes either one GW_PATH_ESCAPED_SLASH (it wins over DECODE).
 *      With neither they are kept as `%2F` / `%5C`.
 *   3. GW_PATH_MERGE_SLASHES: runs of '/' count as one (`//v1//x` -> `/v1/x`), before step 4.
 *   4. Dot segments are removed (RFC 3986 5.2.4), after decoding (`%2e%2E` is `..`): `.` is
 *      dropped, `..` drops the segment before it; `..` above the root stays at the root
 *      (`/../a` -> `/a`); a final `.` or `..` leaves a trailing '/' (`/a/.` -> `/a/`).
 *   Other bytes (including CTL, space, '\' and non-ASCII, which the request parser rejects
 *   before) are copied unchanged.
 * - The result is idempotent: normalising it again gives it back unchanged (->same is 1).
 *   It never contains a `.` or `..` segment nor, with GW_PATH_MERGE_SLASHES, `//`.
 * - Never grows: the result is at most in_len bytes, so out_cap >= in_len always suffices
 *   (and is required: out_cap < in_len is GW_PATH_NO_ROOM, with nothing written). out may be
 *   in itself (in place); otherwise the two must not overlap. Nothing is allocated.
 * - Return values: >= 0 length of the result in out[0..ret); -1 error (code and offset in
 *   *st). st->same says whether the result is byte for byte the input, so a caller holding
 *   the input as an object can reuse it; a path with no '%', no `.`/`..` segment and (when
 *   merging) no `//` is found so by a single scan and copied.
 */
#ifndef GW_PATH_H
#define GW_PATH_H

#include <stddef.h>
#include <sys/types.h>

/* Flags (listener config `path_normalization`; the default is MERGE | DECODE). */
#define GW_PATH_MERGE_SLASHES  1u  /* merge_slashes: true */
#define GW_PATH_DECODE_SLASHES 2u  /* escaped_slashes: decode (%2F -> '/', %5C -> '\') */
#define GW_PATH_REJECT_SLASHES 4u  /* escaped_slashes: reject (%2F, %5C -> error) */

enum gw_path_error {
    GW_PATH_OK = 0,
    GW_PATH_NOT_ABSOLUTE,   /* empty or not starting with '/' */
    GW_PATH_BAD_PERCENT,    /* '%' not followed by two hex digits */
    GW_PATH_NUL,            /* %00 or a raw NUL byte */
    GW_PATH_ESCAPED_SLASH,  /* %2F or %5C under GW_PATH_REJECT_SLASHES */
    GW_PATH_NO_ROOM,        /* out_cap < in_len (a caller bug, not the client's) */
    GW_PATH__COUNT
};

typedef struct {
    int error;         /* enum gw_path_error: GW_PATH_OK after >= 0 */
    size_t error_off;  /* after -1: offset in `in` of the offending byte ('%' of an escape) */
    int same;          /* after >= 0: 1 when out[0..ret) equals in[0..in_len) byte for byte */
} gw_path_status;

/* Normalises in[0..in_len) into out (capacity out_cap >= in_len; may be in). Returns the
 * result length, or -1 with st->error and st->error_off set. st needs no initialisation. */
ssize_t gw_normalize_path(const char *in, size_t in_len, char *out, size_t out_cap,
                          unsigned flags, gw_path_status *st);

/* Stable machine-readable name ("path_bad_percent"; "unknown" out of range) and HTTP status
 * (400; 500 for GW_PATH_NO_ROOM). */
const char *gw_path_error_name(int code);
int gw_path_error_status(int code);

#endif
