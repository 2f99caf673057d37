# Extern declarations of the types and constants of src_c/http1.h (header only: no code).
#
# The functions of http1.h are linked into one extension, gwcore.http._parser, so that its
# static state (the SIMD level set by gw_http1_set_simd) is one for the whole gateway process
# (the cffi binding, gwcore.http.cffi, has its own copy and is never imported by it). Siblings
# cimport the functions from gwcore/http/_parser.pxd (called through the function table Cython
# imports at module init), never from here, and never list src_c/http1.c in their sources.
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

    ctypedef struct gw_chunked:
        uint8_t state, done
        int error
        uint64_t remaining
