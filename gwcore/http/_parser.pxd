# C-level API of the HTTP/1.1 parser for sibling extensions.
#
# src_c/http1.c is linked into this extension only, so the process has one copy of its code and
# of its static state: the SIMD level that gwcore.http.set_simd() changes governs the gateway's
# own parsing (_connection, _upstream, _wire) too. A sibling cimports these functions from here;
# Cython fills a function-pointer table from this module's __pyx_capi__ when the sibling is
# imported, and each call is one indirect call into a wrapper that tail-calls the C function.
# Contracts (return codes, ownership, zero-initialisation) are those of src_c/http1.h; types and
# constants come from _chttp1.pxd.
from libc.stdint cimport uint32_t

from gwcore.http._chttp1 cimport gw_chunked, gw_field, gw_head, gw_limits

cdef int gw_parse_request(const char *buf, size_t len, const gw_limits *lim, gw_head *h,
                          gw_field *fields) noexcept nogil
cdef int gw_parse_response(const char *buf, size_t len, const gw_limits *lim, gw_head *h,
                           gw_field *fields) noexcept nogil
cdef void gw_chunked_init(gw_chunked *st) noexcept nogil
cdef ssize_t gw_chunked_decode(gw_chunked *st, const char *buf, size_t len, size_t *data_off,
                               size_t *data_len) noexcept nogil
cdef int gw_find_field(const char *buf, const gw_field *fields, uint32_t num_fields,
                       const char *name, size_t name_len) noexcept nogil
cdef int gw_next_list_element(const char *value, size_t value_len, size_t *pos,
                              size_t *el_off, size_t *el_len) noexcept nogil
cdef const char *gw_http_error_name(int code) noexcept nogil
cdef int gw_http_error_status(int code) noexcept nogil

# A Request (the Python view filters read) for a head the caller parsed, without parsing it
# again, and back: its head and fields copied into the caller's arrays.
cdef object request_view(bytes buf, Py_ssize_t base, const gw_head *h, int length,
                         const gw_field *fields)
cdef const char *request_fields(object request, gw_head *h, gw_field *fields) noexcept
