"""Python API of the C HTTP/1.1 parser (src_c/http1.c), written from RFC 9112 and RFC 9110, and
of the request path normaliser (src_c/path.c), written from RFC 3986.

Heads are parsed without copying: a Request/Response keeps a reference to the ``bytes`` it was
parsed from and stores offsets; ``bytes`` for a field are built only when asked for. Input
that is not ``bytes`` (bytearray, memoryview) may change later, so its head is copied once.
Not thread-safe: a module-level scratch field array is reused between calls.
"""

from typing import Literal, TypeAlias

# ParseError is plain Python (gwcore/http/_errors.py): the cffi binding raises the same class.
from gwcore.http._errors import ParseError as ParseError

Buffer: TypeAlias = bytes | bytearray | memoryview

METHOD_NAMES: tuple[bytes | None, ...]
"""Interned method tokens indexed by the C parser's method id (index 0: other methods)."""

class _Head:
    @property
    def version_minor(self) -> int:
        """0 for HTTP/1.0, 1 for HTTP/1.1."""
    @property
    def head_length(self) -> int:
        """Bytes of the head from the offset given to the parser, through the empty line
        (including any empty lines skipped before a request-line)."""
    @property
    def content_length(self) -> int | None:
        """Content-Length in bytes, or None when the field is absent."""
    @property
    def chunked(self) -> bool:
        """Transfer-Encoding: chunked (the only transfer coding accepted)."""
    @property
    def keep_alive(self) -> bool:
        """Connection persists after this message (RFC 9112 9.3): HTTP/1.1 unless
        ``Connection: close``; HTTP/1.0 only with ``Connection: keep-alive``."""
    def get(self, name: bytes, default: bytes | None = None) -> bytes | None:
        """Value of the first field called ``name`` (ASCII case-insensitive), OWS trimmed; the
        default when absent. Builds no object for other fields. TypeError if name is not bytes."""
    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """All field lines in order as (name, value) bytes, names as received; built on first
        access and cached."""
    def __len__(self) -> int:
        """Number of field lines."""

class Request(_Head):
    """A parsed request head (RFC 9112 3). Only parse_request creates them."""

    @property
    def method(self) -> bytes:
        """Method token, case preserved (e.g. b"GET")."""
    @property
    def target(self) -> bytes:
        """request-target as received (origin, absolute, authority or asterisk form)."""
    @property
    def path(self) -> bytes:
        """The path routes match: normalised by the gateway (RFC 3986 §6.2.2, the listener's
        path_normalization), else the request-target's path as received (up to "?")."""
    @path.setter
    def path(self, value: bytes) -> None: ...
    @property
    def query(self) -> bytes:
        """The request-target's query: the bytes after the first ``?``, without it (``b""``
        when there is none); not decoded."""
    def header(self, name: bytes) -> bytes | None:
        """The first value of the field ``name`` (ASCII case-insensitive), OWS trimmed, or
        None: ``get(name)`` under the name filters use. TypeError if name is not bytes."""
    @property
    def expect_continue(self) -> bool:
        """``Expect: 100-continue`` was sent (case-insensitive)."""

class Response(_Head):
    """A parsed response head (RFC 9112 4). Only parse_response creates them. Whether a body
    follows (1xx, 204, 304, responses to HEAD) is the caller's decision."""

    @property
    def status(self) -> int:
        """Status code, 100..599."""
    @property
    def reason(self) -> bytes:
        """reason-phrase (may be empty)."""

def parse_request(
    data: Buffer,
    offset: int = 0,
    *,
    max_head_bytes: int = 16384,
    max_fields: int = 100,
    max_target_len: int = 8192,
) -> Request | None:
    """Parses the request head at data[offset:].

    Returns None while the head is incomplete (call again with more data from the same offset),
    else a Request whose ``head_length`` says where the body or the next request starts. Any
    split of the input gives the same outcome. An empty line (CRLF) before the request-line is
    skipped (RFC 9112 2.2).

    Limits: ``max_head_bytes`` (bytes, whole head incl. the empty line; over it -> 431
    "head_too_large" as soon as more bytes than that arrived without a complete head),
    ``max_fields`` (field lines; 431 "too_many_fields"), ``max_target_len`` (bytes of the
    request-target; 414 "target_too_long", reported as soon as it is exceeded).

    Raises ParseError for malformed input (RFC 9112 3, 5, 6; RFC 9110 5, 8.6), including:
    invalid method or field-name token, CTL/space/non-ASCII in the target, CTL (other than
    HTAB) in a value, bare CR or LF, whitespace before a colon, obs-fold, bad or repeated
    Content-Length, Transfer-Encoding other than a single final "chunked" (501 when another
    coding precedes it), Transfer-Encoding with Content-Length or in HTTP/1.0, missing Host
    in HTTP/1.1 or several Host fields or an invalid Host value, HTTP versions other than 1.0
    and 1.1 (505). ValueError if offset is outside data.
    """

def parse_response(
    data: Buffer,
    offset: int = 0,
    *,
    max_head_bytes: int = 16384,
    max_fields: int = 100,
) -> Response | None:
    """Parses the response head (status-line and fields, RFC 9112 4) at data[offset:].

    Same conventions as parse_request. A missing SP before an empty reason-phrase is
    tolerated. ParseError "status" for a status-code that is not 3 digits in 100..599.
    """

class ChunkedDecoder:
    """Streaming decoder of the chunked transfer coding (RFC 9112 7.1).

    Chunk extensions are validated and dropped; trailer fields are validated and dropped.
    Limits: 4 KiB per chunk-size line, 16 KiB of trailer section.
    """

    def __init__(self) -> None: ...
    def feed(self, data: Buffer) -> list[bytes]:
        """Decodes the next bytes of the body; returns the data runs found (possibly empty).

        After the last chunk and trailer section, ``done`` is True and further bytes go to
        ``unused``. Raises ParseError (codes "chunk_size", "chunk_size_overflow", "chunk_ext",
        "chunk_data_crlf", "trailer", "bare_cr", "bare_lf"); the decoder then stays failed.
        """
    @property
    def done(self) -> bool:
        """The terminating last-chunk and trailer section were consumed."""
    @property
    def unused(self) -> bytes:
        """Bytes fed after the end of the chunked body (e.g. the next pipelined message)."""

def simd_level() -> int:
    """Scanning level in use: 0 scalar, 1 SSE4.2, 2 AVX2 (detected at first use)."""

def set_simd(level: int) -> int:
    """Forces a scanning level (clamped to what the CPU supports); returns the level now in
    force. Process-wide; meant for tests and benchmarks."""

def normalize_path(
    path: bytes,
    *,
    merge_slashes: bool = True,
    escaped_slashes: Literal["decode", "keep", "reject"] = "decode",
) -> bytes:
    """The path routes match (RFC 3986 6.2.2), so every spelling of a path reaches one route.

    ``path``: the path of an origin-form request-target, starting with ``/``, without the query
    (split at the first ``?`` before; here ``?`` is an ordinary byte). In order:

    - percent-encoded unreserved characters (ALPHA DIGIT ``-._~``) are decoded
      (``/%76%31/x`` -> ``/v1/x``, ``%7e`` -> ``~``); every other escape is kept with upper-case
      hex (``%3f`` -> ``%3F``, control bytes and bytes >= 0x80 included);
    - ``escaped_slashes``: ``"decode"`` turns ``%2F`` into a ``/`` that separates segments like
      a raw one (``/v1%2F..%2Fadmin`` -> ``/admin``) and ``%5C`` into a backslash byte (not a
      separator); ``"keep"`` leaves ``%2F``/``%5C`` (upper-cased) inside their segment;
      ``"reject"`` raises ParseError ``"path_escaped_slash"``;
    - ``merge_slashes``: runs of ``/`` count as one (``//v1//x`` -> ``/v1/x``), before
    - dot segments are removed (RFC 3986 5.2.4), after decoding (``%2e%2E`` is ``..``); ``..``
      above the root stays at the root (``/../a`` -> ``/a``); a final ``.`` or ``..`` leaves a
      trailing ``/`` (``/a/.`` -> ``/a/``).

    Other bytes are copied unchanged. The result is never longer than ``path`` and is
    idempotent; when nothing changes, ``path`` itself is returned (no new object).

    Raises ParseError (status 400, ``offset``: index of the offending byte in ``path``) with
    code ``"path_bad_percent"`` (``%`` not followed by two hex digits), ``"path_nul"``
    (``%00`` or a NUL byte), ``"path_escaped_slash"`` (reject mode) or ``"path_not_absolute"``
    (empty or not starting with ``/``); errors count wherever they are, even in a segment a
    ``..`` removes. ValueError for another ``escaped_slashes``; TypeError if path is not bytes.
    C API: gw_normalize_path in src_c/path.h, cimported from gwcore/http/_cpath.pxd.
    """
