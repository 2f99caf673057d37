from gwcore.http._chttp1 cimport gw_field

cdef class Timed:
    """A connection with one deadline (monotonic seconds, 0 = none), checked by a Clock."""
    cdef double deadline
    cdef void on_deadline(self)

cdef class Clock:
    cdef readonly double now
    cdef set watched
    cdef object loop
    cdef object handle
    cdef double tick
    cdef void watch(self, Timed t)
    cdef void unwatch(self, Timed t)

cdef bytes build_head(const char *buf, bytes prefix, const char *mid, Py_ssize_t mid_len,
                      bytes suffix, const gw_field *fields, Py_ssize_t nfields,
                      unsigned int drop_kinds, const unsigned char *drop, list extra)

cdef bytes connection_options(const char *buf, const gw_field *fields, Py_ssize_t nfields,
                              unsigned char *drop, bint response)
