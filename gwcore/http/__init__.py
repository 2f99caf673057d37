"""HTTP/1.1 for gwcore: the C head parser and chunked decoder (RFC 9112), the request path
normaliser (RFC 3986 6.2.2) and their Python API.

The API below is the Cython binding (gwcore.http._parser). ``gwcore.http.cffi`` binds the same C
parser with cffi, for interpreters that cannot load the Cython module (PyPy): there this package
imports without the Cython binding, so that ``gwcore.http.cffi`` and ``ParseError`` still do.
"""

import sys

from gwcore.http._errors import ParseError

try:
    from gwcore.http._parser import (
        ChunkedDecoder,
        Request,
        Response,
        normalize_path,
        parse_request,
        parse_response,
        set_simd,
        simd_level,
    )
except ImportError:
    if sys.implementation.name == "cpython":
        raise

__all__ = [
    "ChunkedDecoder",
    "ParseError",
    "Request",
    "Response",
    "normalize_path",
    "parse_request",
    "parse_response",
    "set_simd",
    "simd_level",
]
