"""gwcore.http.ParseError, in plain Python so that every binding of the C parser raises the same
class: the Cython one (gwcore.http._parser) and the cffi one (gwcore.http.cffi), which must also
import where the Cython module cannot (PyPy). Keep it importable by Python 3.9 (Debian 12's PyPy).
"""

from __future__ import annotations


class ParseError(ValueError):
    """Malformed or unsupported HTTP/1.1 input; the message is rejected.

    ``code``: stable machine-readable name, e.g. ``"obs_fold"``, ``"content_length_repeated"``
    (see ``gw_http_error_name`` in src_c/http1.c; the path normaliser's start with ``path_``).
    ``status``: the HTTP status a server answers with: 400, 414 (target too long), 431 (head too
    large, too many fields), 501 (transfer coding other than chunked) or 505 (HTTP version).
    ``offset``: index of the offending byte in the data passed to the parser (for
    ChunkedDecoder: in the whole stream fed so far).
    """

    code: str
    status: int
    offset: int

    def __init__(self, code: str, status: int, offset: int) -> None:
        super().__init__(f"{code} (HTTP {status}) at byte {offset}")
        self.code = code
        self.status = status
        self.offset = offset
