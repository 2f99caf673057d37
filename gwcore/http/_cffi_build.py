"""cffi build script (API mode, out-of-line) of ``gwcore.http._cffi_http1``: src_c/http1.c, the
C the Cython binding links, compiled into a module any cffi runtime loads (PyPy above all).

setup.py names it in ``cffi_modules``, so ``pip install`` / ``pip wheel`` / ``build_ext``
compile it beside the Cython extensions (cffi must be in the build requirements). Standalone,
``python gwcore/http/_cffi_build.py OUTDIR`` builds it into ``OUTDIR/gwcore/http/`` with
whatever interpreter runs it (how the PyPy test builds it without installing gwcore).

Runs under Python 3.9 (Debian 12's PyPy): keep the syntax old.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == HERE:
    del sys.path[0]  # run as a script: gwcore/http/cffi.py is not the cffi package

from cffi import FFI

MODULE = "gwcore.http._cffi_http1"
ROOT = os.path.dirname(os.path.dirname(HERE))

# The declarations of src_c/http1.h the wrapper (gwcore/http/cffi.py) uses. "...;" lets the C
# compiler lay the structs out (API mode): Python reads only a failed head's error fields.
CDEF = """
typedef struct { ...; } gw_field;

typedef struct {
    uint32_t max_head_bytes;
    uint32_t max_fields;
    uint32_t max_target_len;
} gw_limits;

typedef struct {
    int error;
    uint32_t error_off;
    ...;
} gw_head;

int gw_parse_request(const char *buf, size_t len, const gw_limits *lim, gw_head *h,
                     gw_field *fields);
int gw_parse_response(const char *buf, size_t len, const gw_limits *lim, gw_head *h,
                      gw_field *fields);
const char *gw_http_error_name(int code);
int gw_http_error_status(int code);
int gw_http1_simd_level(void);
int gw_http1_set_simd(int level);

size_t gw_cffi_unpack(int request, int64_t base, const gw_head *h, const gw_field *fields,
                      int64_t *out);
"""

# gw_cffi_unpack: what the wrapper reads of a parsed head, as one flat int64 array that
# ffi.unpack turns into a list in one call (on CPython, reading struct fields one cffi attribute
# at a time costs more than the parse itself): version_minor, content_length (-1: absent),
# chunked, keep_alive (RFC 9112 9.3, as the Cython binding's Request.keep_alive), then
# expect_continue (request) or status (response), then [a, b) spans of the method and target
# (request) or of the reason and an empty one (response), then of each field's name and value,
# each plus base (where the head starts in the caller's buffer). Returns how many numbers it
# wrote: 9 + 4 * num_fields.
PREAMBLE = """
#include "http1.h"

static size_t gw_cffi_unpack(int request, int64_t base, const gw_head *h, const gw_field *f,
                             int64_t *out) {
    size_t k = 0;
    out[k++] = h->version_minor;
    out[k++] = h->content_length;
    out[k++] = h->chunked != 0;
    out[k++] = !(h->connection & GW_CONN_CLOSE)
               && (h->version_minor == 1 || (h->connection & GW_CONN_KEEP_ALIVE));
    if (request) {
        out[k++] = h->expect_continue != 0;
        out[k++] = base + h->method_off; out[k++] = base + h->method_off + h->method_len;
        out[k++] = base + h->target_off; out[k++] = base + h->target_off + h->target_len;
    } else {
        out[k++] = h->status;
        out[k++] = base + h->reason_off; out[k++] = base + h->reason_off + h->reason_len;
        out[k++] = 0; out[k++] = 0;
    }
    for (uint32_t i = 0; i < h->num_fields; i++) {
        out[k++] = base + f[i].name_off; out[k++] = base + f[i].name_off + f[i].name_len;
        out[k++] = base + f[i].value_off; out[k++] = base + f[i].value_off + f[i].value_len;
    }
    return k;
}
"""

# The flags setup.py gives the Cython extensions (GWCORE_DEBUG=1: the sanitizer build).
DEBUG = os.environ.get("GWCORE_DEBUG") == "1"
SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
CFLAGS = ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wno-unused-function"]
CFLAGS += ["-O1", "-g"] + SANITIZE if DEBUG else ["-O3"]
LDFLAGS = SANITIZE if DEBUG else []


def make_ffi(root: str = "") -> FFI:
    """The builder; paths relative to ``root`` ("" = the working directory, setup.py's: setuptools
    wants relative source paths; cffi's own compile() changes directory, so it needs ROOT)."""
    src = os.path.join(root, "src_c")
    ffi = FFI()
    ffi.cdef(CDEF)
    ffi.set_source(
        MODULE,
        PREAMBLE,
        sources=[os.path.join(src, "http1.c")],
        include_dirs=[src],
        depends=[os.path.join(src, "http1.h")],
        extra_compile_args=CFLAGS,
        extra_link_args=LDFLAGS,
    )
    return ffi


ffibuilder = make_ffi()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUTDIR  (builds OUTDIR/gwcore/http/_cffi_http1.*)")
    out = os.path.abspath(sys.argv[1])
    print(make_ffi(ROOT).compile(tmpdir=out, verbose=True))
