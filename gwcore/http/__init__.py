"""HTTP/1.1 for gwcore: the C head parser and chunked decoder (RFC 9112), the request path
normaliser (RFC 3986 6.2.2) and their Python API."""

from gwcore.http._parser import (
    ChunkedDecoder,
    ParseError,
    Request,
    Response,
    normalize_path,
    parse_request,
    parse_response,
    set_simd,
    simd_level,
)

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
