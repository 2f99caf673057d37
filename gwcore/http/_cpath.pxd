# Extern declarations of src_c/path.h (request path normalisation, RFC 3986 6.2.2) for the
# extensions that cimport it. A module that cimports this must also list src_c/path.c in its
# own `# distutils: sources =` header line (each extension links its own copy of the C code).

cdef extern from "path.h" nogil:
    enum:
        GW_PATH_MERGE_SLASHES       # merge_slashes: true
        GW_PATH_DECODE_SLASHES      # escaped_slashes: decode (%2F -> '/', %5C -> '\')
        GW_PATH_REJECT_SLASHES      # escaped_slashes: reject (wins over DECODE)

    enum gw_path_error:
        GW_PATH_OK, GW_PATH_NOT_ABSOLUTE, GW_PATH_BAD_PERCENT, GW_PATH_NUL,
        GW_PATH_ESCAPED_SLASH, GW_PATH_NO_ROOM, GW_PATH__COUNT

    ctypedef struct gw_path_status:
        int error           # enum gw_path_error; GW_PATH_OK after >= 0
        size_t error_off    # after -1: offset in `in` of the offending byte
        int same            # after >= 0: 1 when out[0..ret) equals the input byte for byte

    # >= 0: length of the result in out; -1: st.error / st.error_off. out_cap >= in_len
    # (the result never grows); out may be in (in place).
    ssize_t gw_normalize_path(const char *in_, size_t in_len, char *out, size_t out_cap,
                              unsigned flags, gw_path_status *st)
    const char *gw_path_error_name(int code)
    int gw_path_error_status(int code)
