# Extern declarations of src_c/http1.h for the extensions that cimport the C parser.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int32_t, int64_t, uint64_t

cdef extern from "http1.h" nogil:
    enum gw_http_error:
        GW_E_NONE, GW_E_METHOD, GW_E_TARGET, GW_E_TARGET_TOO_LONG, GW_E_VERSION,
        GW_E_VERSION_UNSUPPORTED, GW_E_STATUS, GW_E_FIELD_NAME, GW_E_SPACE_BEFORE_COLON,
        GW_E_FIELD_VALUE, GW_E_BARE_CR, GW_E_BARE_LF, GW_E_OBS_FOLD, GW_E_TOO_MANY_FIELDS,
        GW_E_HEAD_TOO_LARGE, GW_E_CONTENT_LENGTH, GW_E_CONTENT_LENGTH_REPEATED,
        GW_E_TE_NOT_CHUNKED, GW_E_TE_UNSUPPORTED, GW_E_TE_WITH_CL, GW_E_TE_HTTP10, GW_E_HOST,
        GW_E_CHUNK_SIZE, GW_E_CHUNK_SIZE_OVERFLOW, GW_E_CHUNK_EXT, GW_E_CHUNK_DATA_CRLF,
        GW_E_TRAILER, GW_E__COUNT

    enum gw_field_kind:
        GW_FK_OTHER, GW_FK_HOST, GW_FK_CONTENT_LENGTH, GW_FK_TRANSFER_ENCODING,
        GW_FK_CONNECTION, GW_FK_KEEP_ALIVE, GW_FK_PROXY_CONNECTION, GW_FK_TE, GW_FK_TRAILER,
        GW_FK_UPGRADE, GW_FK_EXPECT, GW_FK_X_FORWARDED_FOR, GW_FK_X_FORWARDED_PROTO,
        GW_FK_X_FORWARDED_HOST, GW_FK_X_REQUEST_ID, GW_FK_VIA, GW_FK__COUNT

    enum gw_method:
        GW_M_OTHER, GW_M_GET, GW_M_HEAD, GW_M_POST, GW_M_PUT, GW_M_DELETE, GW_M_OPTIONS,
        GW_M_PATCH, GW_M_CONNECT, GW_M_TRACE

    ctypedef struct gw_field:
        uint32_t name_off, name_len, value_off, value_len
        uint8_t kind, hop

    ctypedef struct gw_limits:
        uint32_t max_head_bytes, max_fields, max_target_len

    unsigned int GW_CONN_CLOSE, GW_CONN_KEEP_ALIVE, GW_CONN_OTHER

    ctypedef struct gw_head:
        uint32_t method_off, method_len, target_off, target_len
        uint8_t method
        uint16_t status
        uint32_t reason_off, reason_len
        uint8_t version_minor
        uint32_t num_fields
        int64_t content_length
        uint8_t chunked, connection, expect_continue
        int32_t host_index
        int error
        uint32_t error_off

    int gw_parse_request(const char *buf, size_t len, const gw_limits *lim, gw_head *h,
                         gw_field *fields)
    int gw_parse_response(const char *buf, size_t len, const gw_limits *lim, gw_head *h,
                          gw_field *fields)

    ctypedef struct gw_chunked:
        uint8_t state, done
        int error
        uint64_t remaining

    void gw_chunked_init(gw_chunked *st)
    ssize_t gw_chunked_decode(gw_chunked *st, const char *buf, size_t len, size_t *data_off,
                              size_t *data_len)
    int gw_find_field(const char *buf, const gw_field *fields, uint32_t num_fields,
                      const char *name, size_t name_len)
    int gw_next_list_element(const char *value, size_t value_len, size_t *pos,
                             size_t *el_off, size_t *el_len)
    int gw_http1_simd_level()
    int gw_http1_set_simd(int level)
    const char *gw_http_error_name(int code)
    int gw_http_error_status(int code)
