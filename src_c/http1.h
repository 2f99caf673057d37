/* http1.h - HTTP/1.1 message-head parser and chunked transfer coding decoder.
 *
 * Contract
 * - Written from RFC 9112 (message syntax) and RFC 9110 (fields). Strict: every deviation the
 *   proxy could be smuggled through is rejected with its own gw_http_error code.
 * - Zero copy: results are offsets and lengths into the caller's buffer; nothing is allocated.
 *   The caller owns every buffer and the gw_field array.
 * - Head parsing is stateless: call it again from the start of the head with more bytes.
 *   Any split of the input gives the same result (-2 until complete, then the same value).
 * - Return values (picohttpparser style): >= 0 bytes consumed; -1 error (code in ->error);
 *   -2 incomplete.
 * - The chunked decoder is streaming: its state must be zero-initialised (gw_chunked_init).
 * - SIMD (AVX2 or SSE4.2) is chosen once at run time; gw_http1_set_simd forces a level so
 *   tests can run the scalar path.
 */
#ifndef GW_HTTP1_H
#define GW_HTTP1_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define GW_LIKELY(x) __builtin_expect(!!(x), 1)
#define GW_UNLIKELY(x) __builtin_expect(!!(x), 0)

enum gw_http_error {
    GW_E_NONE = 0,
    GW_E_METHOD,               /* method is not a token (or empty) */
    GW_E_TARGET,               /* request-target empty or has a CTL, space or non-ASCII byte */
    GW_E_TARGET_TOO_LONG,      /* request-target longer than limits.max_target_len (414) */
    GW_E_VERSION,              /* HTTP-version malformed */
    GW_E_VERSION_UNSUPPORTED,  /* well-formed HTTP-version other than 1.0 / 1.1 (505) */
    GW_E_STATUS,               /* response status-line malformed */
    GW_E_FIELD_NAME,           /* field-name empty or not a token */
    GW_E_SPACE_BEFORE_COLON,   /* whitespace between field-name and ':' (RFC 9112 5.1) */
    GW_E_FIELD_VALUE,          /* CTL (NUL, DEL, ...) in a field value */
    GW_E_BARE_CR,              /* CR not followed by LF */
    GW_E_BARE_LF,              /* LF not preceded by CR */
    GW_E_OBS_FOLD,             /* line folding (RFC 9112 5.2) */
    GW_E_TOO_MANY_FIELDS,      /* more than limits.max_fields field lines (431) */
    GW_E_HEAD_TOO_LARGE,       /* head longer than limits.max_head_bytes (431) */
    GW_E_CONTENT_LENGTH,       /* Content-Length not 1*DIGIT or overflows int64 */
    GW_E_CONTENT_LENGTH_REPEATED, /* more than one Content-Length (lines or list) */
    GW_E_TE_NOT_CHUNKED,       /* Transfer-Encoding whose final coding is not chunked, or
                                  chunked more than once */
    GW_E_TE_UNSUPPORTED,       /* a transfer coding other than chunked before it (501) */
    GW_E_TE_WITH_CL,           /* Transfer-Encoding together with Content-Length */
    GW_E_TE_HTTP10,            /* Transfer-Encoding in an HTTP/1.0 message */
    GW_E_HOST,                 /* HTTP/1.1 request with no Host, more than one, or a Host
                                  value that is not uri-host[:port] (RFC 9112 3.2) */
    GW_E_CHUNK_SIZE,           /* chunk-size missing or not hex */
    GW_E_CHUNK_SIZE_OVERFLOW,  /* chunk-size > 2^63-1 */
    GW_E_CHUNK_EXT,            /* malformed chunk extension, or extensions over 4 KiB */
    GW_E_CHUNK_DATA_CRLF,      /* chunk data not followed by CRLF */
    GW_E_TRAILER,              /* malformed trailer field line, or trailers over 16 KiB */
    GW_E__COUNT
};

/* Field kinds recognised during parsing; anything else is GW_FK_OTHER. */
enum gw_field_kind {
    GW_FK_OTHER = 0,
    GW_FK_HOST,
    GW_FK_CONTENT_LENGTH,
    GW_FK_TRANSFER_ENCODING,
    GW_FK_CONNECTION,
    GW_FK_KEEP_ALIVE,
    GW_FK_PROXY_CONNECTION,
    GW_FK_TE,
    GW_FK_TRAILER,
    GW_FK_UPGRADE,
    GW_FK_EXPECT,
    GW_FK_X_FORWARDED_FOR,
    GW_FK_X_FORWARDED_PROTO,
    GW_FK_X_FORWARDED_HOST,
    GW_FK_X_REQUEST_ID,
    GW_FK_VIA,
    GW_FK__COUNT
};

/* Methods with their own id; others are GW_M_OTHER (still valid tokens). */
enum gw_method {
    GW_M_OTHER = 0, GW_M_GET, GW_M_HEAD, GW_M_POST, GW_M_PUT, GW_M_DELETE,
    GW_M_OPTIONS, GW_M_PATCH, GW_M_CONNECT, GW_M_TRACE
};

/* One field line. value excludes leading and trailing OWS. */
typedef struct {
    uint32_t name_off, name_len;
    uint32_t value_off, value_len;
    uint8_t kind;      /* enum gw_field_kind */
    uint8_t hop;       /* 1 for hop-by-hop fields (RFC 9110 7.6.1), incl. Transfer-Encoding */
} gw_field;

typedef struct {
    uint32_t max_head_bytes;   /* whole head incl. final CRLF; over it -> GW_E_HEAD_TOO_LARGE */
    uint32_t max_fields;       /* must be <= the caller's gw_field array length */
    uint32_t max_target_len;   /* request-target bytes; over it -> GW_E_TARGET_TOO_LONG */
} gw_limits;

/* Connection option bits (RFC 9110 7.6.1). */
#define GW_CONN_CLOSE      1u
#define GW_CONN_KEEP_ALIVE 2u
#define GW_CONN_OTHER      4u  /* Connection names some other field: caller must drop it */

typedef struct {
    /* request-line (requests) */
    uint32_t method_off, method_len;
    uint32_t target_off, target_len;
    uint8_t method;            /* enum gw_method */
    /* status-line (responses) */
    uint16_t status;
    uint32_t reason_off, reason_len;
    /* both */
    uint8_t version_minor;     /* 0 or 1 */
    uint32_t num_fields;
    int64_t content_length;    /* -1 when absent */
    uint8_t chunked;           /* Transfer-Encoding: chunked */
    uint8_t connection;        /* GW_CONN_* bits */
    uint8_t expect_continue;   /* Expect: 100-continue (requests) */
    int32_t host_index;        /* index of the Host field, -1 if none */
    int error;                 /* enum gw_http_error after -1 */
    uint32_t error_off;        /* byte offset where the error was found */
} gw_head;

/* Parses a request head from buf[0..len). fields has room for lim->max_fields entries.
 * Returns the head length (through the empty line), -1 (h->error set) or -2 (incomplete).
 * Framing checks (Content-Length, Transfer-Encoding, Host) run once the head is complete. */
int gw_parse_request(const char *buf, size_t len, const gw_limits *lim, gw_head *h,
                     gw_field *fields);

/* Parses a response head (status-line + fields). Same return convention. A response with
 * Transfer-Encoding and Content-Length, or a non-chunked final coding, is an error. */
int gw_parse_response(const char *buf, size_t len, const gw_limits *lim, gw_head *h,
                      gw_field *fields);

/* Streaming chunked transfer coding decoder (RFC 9112 7.1). Zero-initialise. */
typedef struct {
    uint8_t state;
    uint8_t done;              /* last-chunk and trailer section consumed */
    int error;                 /* enum gw_http_error after -1 */
    uint64_t remaining;        /* data bytes left in the current chunk */
    uint32_t line_bytes;       /* bytes of the current size/extension line so far */
    uint32_t trailer_bytes;    /* bytes of trailer section so far */
    uint32_t digits;           /* hex digits seen in the current chunk-size */
    uint8_t ext_state;         /* chunk-ext sub-state */
} gw_chunked;

static inline void gw_chunked_init(gw_chunked *st) {
    *st = (gw_chunked){0};
}

/* Consumes bytes from buf[0..len). Returns the count consumed (0..len) or -1 (st->error).
 * Stops right after a run of chunk data, when done, or at the end of buf; the data run is
 * buf[*data_off .. *data_off + *data_len), always at the end of the consumed bytes
 * (*data_len may be 0). Call again with the rest. Bytes after done are not consumed. */
ssize_t gw_chunked_decode(gw_chunked *st, const char *buf, size_t len, size_t *data_off,
                          size_t *data_len);

/* Case-insensitive search of fields for name; returns the index or -1. */
int gw_find_field(const char *buf, const gw_field *fields, uint32_t num_fields,
                  const char *name, size_t name_len);

/* Splits a comma-separated list value (RFC 9110 5.6.1) into elements, skipping empty ones
 * and OWS. Starting from *pos, finds the next element: returns 1 and sets *el_off, *el_len
 * (relative to value), or 0 when no more. */
int gw_next_list_element(const char *value, size_t value_len, size_t *pos, size_t *el_off,
                         size_t *el_len);

/* SIMD level: 0 scalar, 1 SSE4.2, 2 AVX2. set clamps to what the CPU supports and returns
 * the level now in force. */
int gw_http1_simd_level(void);
int gw_http1_set_simd(int level);

/* Stable machine-readable name ("obs_fold") and HTTP status (400, 414, 431, 501, 505). */
const char *gw_http_error_name(int code);
int gw_http_error_status(int code);

#endif
