/* trace.h - W3C Trace Context: traceparent and tracestate checked, ids made, hex written.
 *
 * Contract
 * - Written from W3C Trace Context Level 1 (Recommendation, 2021-11-23): §3.2 traceparent
 *   (version 00 is `00-<32 HEXDIGLC>-<16 HEXDIGLC>-<2 HEXDIGLC>`, exactly 55 bytes; trace-id
 *   and parent-id not all zeros; version ff invalid; a higher version is read for its first
 *   55 bytes when byte 55 is '-' or the value ends there, §3.2.4), §3.3 tracestate (list
 *   syntax, at most 32 list-members, 512 bytes combined: a longer one is refused whole here,
 *   not truncated) and §4 (processing model: an invalid traceparent restarts the trace).
 *   HEXDIGLC is lower-case only: "0A" is as invalid as "0g". The tracestate key rule is the
 *   current editor's draft one, `(lcalpha / DIGIT) 0*255(lcalpha / DIGIT / "_" / "-" / "*" /
 *   "/" / "@")`, which accepts every Level 1 key (simple or multi-tenant); duplicate keys are
 *   not looked for.
 * - Nothing is allocated and no pointer is kept: values are read from value[0..len) only,
 *   every length is checked before a byte is read, results go to the caller's structures.
 *   Field values come as the HTTP/1 parser gives them (OWS around the value already cut).
 * - Ids come from a gw_rng: xoshiro256** (Blackman and Vigna, "Scrambled linear pseudorandom
 *   number generators", ACM TOMS 2021), written here from that description, seeded by
 *   gw_rng_seed with bytes the caller takes from the OS (os.urandom). It is fast and
 *   statistically sound, not cryptographic: trace and span ids identify, they are no
 *   secrets (W3C §8 asks for random-looking ids, not unpredictable ones). The state is the
 *   caller's and NOT safe for concurrent use; a process that forks must reseed in the child,
 *   or parent and child make the same ids.
 * - Return values: 0 valid (parse) or the trace was continued (begin); 1 a new trace was
 *   started (begin); -1 invalid, with the gw_trace_error code in *error or st->error.
 */
#ifndef GW_TRACE_H
#define GW_TRACE_H

#include <stddef.h>
#include <stdint.h>

#define GW_TRACEPARENT_LEN 55u          /* "00-" 32 "-" 16 "-" 2 */
#define GW_TRACESTATE_MAX_BYTES 512u    /* combined value, commas and OWS included */
#define GW_TRACESTATE_MAX_MEMBERS 32u
#define GW_TRACESTATE_MAX_KEY 256u
#define GW_TRACESTATE_MAX_VALUE 256u

enum gw_trace_error {
    GW_TRACE_OK = 0,
    /* traceparent */
    GW_TP_E_LENGTH,          /* version 00 not exactly 55 bytes; a higher one under 55 or
                                with byte 55 other than '-' */
    GW_TP_E_VERSION,         /* version not 2 lower-case hex digits followed by '-' */
    GW_TP_E_VERSION_FF,      /* version ff (forbidden) */
    GW_TP_E_FORMAT,          /* '-' missing after the trace-id or the parent-id */
    GW_TP_E_HEX,             /* trace-id, parent-id or flags not lower-case hex */
    GW_TP_E_TRACE_ID_ZERO,   /* trace-id all zeros */
    GW_TP_E_PARENT_ID_ZERO,  /* parent-id all zeros */
    /* tracestate */
    GW_TS_E_SIZE,            /* combined value over GW_TRACESTATE_MAX_BYTES */
    GW_TS_E_MEMBERS,         /* more than GW_TRACESTATE_MAX_MEMBERS list-members */
    GW_TS_E_MEMBER,          /* a non-empty list-member without '=' */
    GW_TS_E_KEY,             /* key empty, too long or with a byte outside its rule */
    GW_TS_E_VALUE,           /* value empty, too long or with a byte outside its rule */
    GW_TRACE_E__COUNT
};

/* Random number state (xoshiro256**): zero it or not, then gw_rng_seed it. */
typedef struct {
    uint64_t s[4];
} gw_rng;

/* Seeds r from seed[0..n) (n >= 32 gives the generator its whole 256-bit state; fewer bytes
 * are allowed, down to 0, and only give less entropy). Any seed gives a usable state: the
 * bytes are mixed with splitmix64 and an all-zero state is never left. */
void gw_rng_seed(gw_rng *r, const unsigned char *seed, size_t n);

/* The next 64 random bits. */
uint64_t gw_rng_next(gw_rng *r);

/* The sampling threshold for a ratio in [0, 1] (clamped; NaN is 0): gw_rng_sample is 1 with
 * that probability, in steps of 2^-53. */
uint64_t gw_trace_threshold(double ratio);

/* 1 with the probability gw_trace_threshold was made from, else 0 (one gw_rng_next). */
int gw_rng_sample(gw_rng *r, uint64_t threshold);

/* Writes the 16 lower-case hex digits of v (most significant first) to out[0..16). */
void gw_hex64(uint64_t v, char *out);

/* Checks a traceparent value v[0..n). 0: valid; the trace-id is v[3..35), the parent-id
 * v[36..52) and *flags the trace-flags byte. -1: *error says why. flags and error may not be
 * NULL. */
int gw_traceparent_parse(const char *v, size_t n, uint8_t *flags, int *error);

/* This hop's trace context (what gw_trace_begin fills). Hex is lower-case; the arrays are
 * not NUL-terminated. */
typedef struct {
    char trace_id[32];
    char parent_id[16];      /* the received parent-id, when continued */
    char span_id[16];        /* a new non-zero span id: this hop's, sent upstream */
    uint8_t sampled;         /* 1 or 0 */
    uint8_t continued;       /* 1: from a valid received traceparent; 0: a new trace */
} gw_trace_ctx;

/* Continues the trace of a received traceparent tp[0..tp_len), or starts a new one when tp
 * is NULL (absent, or received more than once: the caller's call) or invalid. Continued:
 * trace-id and parent-id from tp, sampled = bit 0 of its flags (other flags are dropped, as
 * §3.2.2.5 has version 00 senders do). New: a random non-zero trace-id, sampled =
 * gw_rng_sample(r, threshold). Either way a new random non-zero span-id. Returns 0
 * (continued) or 1 (new); *error (may be NULL) is why tp was refused, GW_TRACE_OK else. */
int gw_trace_begin(gw_rng *r, const char *tp, size_t tp_len, uint64_t threshold,
                   gw_trace_ctx *ctx, int *error);

/* Writes the traceparent this hop sends, `00-<trace_id>-<span_id>-0<sampled>`, to
 * out[0..55). Returns 55, or -1 (nothing written) when cap < 55. */
int gw_traceparent_format(const gw_trace_ctx *ctx, char *out, size_t cap);

/* tracestate: a combined value checked field value by field value (§3.3.1.4: several
 * tracestate fields are one list joined with ","). Zero it (or gw_tracestate_init), then
 * gw_tracestate_add each received value in order. */
typedef struct {
    size_t bytes;            /* length of the combined value so far */
    unsigned fields;         /* values added */
    unsigned members;        /* non-empty list-members seen */
    int error;               /* first gw_trace_error; sticky */
} gw_tracestate;

void gw_tracestate_init(gw_tracestate *st);

/* Adds the next tracestate field value v[0..n). 0: the combined value is valid so far
 * (st->members may be 0: an empty or whitespace-only list, valid but not worth sending);
 * -1: it is not (st->error), and every later call returns -1 too. */
int gw_tracestate_add(gw_tracestate *st, const char *v, size_t n);

/* Stable machine-readable name of a gw_trace_error ("trace_id_zero"; "unknown" if out of
 * range). */
const char *gw_trace_error_name(int code);

#endif
