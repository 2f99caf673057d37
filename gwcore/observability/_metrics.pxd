from libc.stdint cimport uint64_t


cdef class Row:
    cdef uint64_t *p            # this process's row, or NULL (metrics off)
    cdef object owner           # keeps the mapping alive


cdef class Region:
    cdef object mem
    cdef object view
    cdef uint64_t *base
    cdef readonly Py_ssize_t rows, cols
