"""gwcore.http.normalize_path (src_c/path.c): the path routes match (RFC 3986 6.2.2, issue 8).

A table of spellings, then hypothesis against ``reference`` below, an independent pure-Python
normaliser written from RFC 3986 in three passes (decode, merge, remove_dot_segments 5.2.4).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gwcore.http import ParseError, normalize_path

MODES = ("decode", "keep", "reject")

# ----- reference -------------------------------------------------------------------------------

UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
HEXDIG = frozenset(b"0123456789ABCDEFabcdef")


class RefError(Exception):
    def __init__(self, code: str, offset: int) -> None:
        super().__init__(code, offset)
        self.code = code
        self.offset = offset


def _decode(path: bytes, mode: str) -> bytes:
    """RFC 3986 2.4 / 6.2.2.1-2: decode unreserved, upper-case the other escapes."""
    out = bytearray()
    i = 0
    while i < len(path):
        c = path[i]
        if c == 0:
            raise RefError("path_nul", i)
        if c != ord("%"):
            out.append(c)
            i += 1
            continue
        digits = path[i + 1 : i + 3]
        if len(digits) != 2 or not set(digits) <= HEXDIG:
            raise RefError("path_bad_percent", i)
        value = int(digits, 16)
        if value == 0:
            raise RefError("path_nul", i)
        if value in b"/\\" and mode == "reject":
            raise RefError("path_escaped_slash", i)
        if value in UNRESERVED or (value in b"/\\" and mode == "decode"):
            out.append(value)
        else:
            out += b"%%%02X" % value
        i += 3
    return bytes(out)


def _remove_dot_segments(path: bytes) -> bytes:
    """RFC 3986 5.2.4, rule by rule."""
    inp, out = path, b""
    while inp:
        if inp.startswith(b"../"):
            inp = inp[3:]
        elif inp.startswith(b"./"):
            inp = inp[2:]
        elif inp.startswith(b"/./") or inp == b"/.":
            inp = b"/" + inp[3:]
        elif inp.startswith(b"/../") or inp == b"/..":
            inp = b"/" + inp[4:]
            out = out[: max(out.rfind(b"/"), 0)]
        elif inp in (b".", b".."):
            inp = b""
        else:
            end = inp.find(b"/", 1)
            end = len(inp) if end < 0 else end
            out, inp = out + inp[:end], inp[end:]
    return out


def reference(path: bytes, merge_slashes: bool = True, escaped_slashes: str = "decode") -> bytes:
    if not path.startswith(b"/"):
        raise RefError("path_not_absolute", 0)
    decoded = _decode(path, escaped_slashes)
    if merge_slashes:
        decoded = re.sub(rb"/{2,}", b"/", decoded)
    return _remove_dot_segments(decoded)


def outcome(fn, path: bytes, merge: bool, mode: str) -> tuple[str, object]:
    try:
        return ("ok", fn(path, merge_slashes=merge, escaped_slashes=mode))
    except (ParseError, RefError) as e:
        return ("error", (e.code, e.offset))


# ----- table -----------------------------------------------------------------------------------

SPELLINGS = [
    # the bypass of issue 8: every spelling of /v1/x reaches the /v1/ route
    (b"/v1/x", b"/v1/x"),
    (b"/%76%31/x", b"/v1/x"),
    (b"/%76%31%2F%78", b"/v1/x"),
    (b"//v1/x", b"/v1/x"),
    (b"/v1//x", b"/v1/x"),
    (b"/v1/./x", b"/v1/x"),
    (b"/x/../v1/x", b"/v1/x"),
    (b"/v1%2Fx", b"/v1/x"),
    (b"/v1%2fx", b"/v1/x"),
    (b"/v1/%2e/x", b"/v1/x"),
    (b"/x/%2e%2E/v1/x", b"/v1/x"),
    (b"/x/.%2e/v1/x", b"/v1/x"),
    (b"/v1%2F..%2Fadmin", b"/admin"),
    # unreserved, any case
    (b"/%7e", b"/~"),
    (b"/%7E", b"/~"),
    (b"/%41%5a%61%7A%30%39%2D%2E%5F%7E", b"/AZaz09-._~"),
    # other escapes kept, upper-cased, never decoded twice
    (b"/%3f", b"/%3F"),
    (b"/a%20b", b"/a%20b"),
    (b"/%2541", b"/%2541"),
    (b"/%c3%a9", b"/%C3%A9"),
    (b"/%01%7f", b"/%01%7F"),
    # dot segments
    (b"/../../a", b"/a"),
    (b"/..", b"/"),
    (b"/.", b"/"),
    (b"/a/.", b"/a/"),
    (b"/a/..", b"/"),
    (b"/a/b/..", b"/a/"),
    (b"/a/b/c/./../../g", b"/a/g"),
    (b"/a/.../..b/.c", b"/a/.../..b/.c"),
    (b"/.well-known/acme", b"/.well-known/acme"),
    # slashes
    (b"//", b"/"),
    (b"/a//", b"/a/"),
    (b"/a//../b", b"/b"),
    (b"/a%5Cb", b"/a\\b"),
    (b"/a%5c..%5cb", b"/a\\..\\b"),
    (b"/", b"/"),
]


@pytest.mark.parametrize(("path", "want"), SPELLINGS)
def test_spelling(path: bytes, want: bytes) -> None:
    assert normalize_path(path) == want
    assert reference(path) == want


@pytest.mark.parametrize(
    ("path", "merge", "mode", "want"),
    [
        (b"/v1%2Fx", True, "decode", b"/v1/x"),
        (b"/v1%2Fx", True, "keep", b"/v1%2Fx"),
        (b"/v1%2fx", True, "keep", b"/v1%2Fx"),
        (b"/v1%2F..%2Fadmin", True, "keep", b"/v1%2F..%2Fadmin"),
        (b"/a%5cb", True, "keep", b"/a%5Cb"),
        (b"/v1%2F%2Fx", True, "decode", b"/v1/x"),
        (b"/v1%2F%2Fx", False, "decode", b"/v1//x"),
        (b"//v1/x", False, "decode", b"//v1/x"),
        (b"/a//../b", False, "decode", b"/a/b"),
        (b"/a/b", True, "reject", b"/a/b"),
        (b"/%7e/./x", False, "reject", b"/~/x"),
    ],
)
def test_modes(path: bytes, merge: bool, mode: str, want: bytes) -> None:
    assert normalize_path(path, merge_slashes=merge, escaped_slashes=mode) == want


@pytest.mark.parametrize(
    ("path", "mode", "code", "offset"),
    [
        (b"/v1%2Fx", "reject", "path_escaped_slash", 3),
        (b"/v1%2fx", "reject", "path_escaped_slash", 3),
        (b"/a%5Cb", "reject", "path_escaped_slash", 2),
        (b"/a%00", "decode", "path_nul", 2),
        (b"/a/%00/../b", "decode", "path_nul", 3),
        (b"/a\x00b", "keep", "path_nul", 2),
        (b"/%zz", "decode", "path_bad_percent", 1),
        (b"/%G1", "decode", "path_bad_percent", 1),
        (b"/a%4", "decode", "path_bad_percent", 2),
        (b"/a%", "keep", "path_bad_percent", 2),
        (b"", "decode", "path_not_absolute", 0),
        (b"*", "decode", "path_not_absolute", 0),
        (b"v1/x", "decode", "path_not_absolute", 0),
        (b"%2Fv1", "decode", "path_not_absolute", 0),
    ],
)
def test_errors(path: bytes, mode: str, code: str, offset: int) -> None:
    with pytest.raises(ParseError) as info:
        normalize_path(path, escaped_slashes=mode)
    assert (info.value.code, info.value.status, info.value.offset) == (code, 400, offset)
    assert isinstance(info.value, ValueError)


def test_unchanged_path_is_returned_as_is() -> None:
    path = b"/v1/users/42/orders?not-a-query"
    assert normalize_path(path) is path
    encoded = b"/search/a%20b"  # slow path, nothing to change
    assert normalize_path(encoded) is encoded
    assert normalize_path(b"/%7e") == b"/~"


def test_long_path_uses_the_heap_buffer() -> None:
    segment = b"/" + b"%61" * 3000
    assert normalize_path(segment * 3 + b"/..") == (b"/" + b"a" * 3000) * 2 + b"/"
    plain = b"/x" * 5000
    assert normalize_path(plain) is plain


def test_arguments() -> None:
    with pytest.raises(ValueError, match="escaped_slashes"):
        normalize_path(b"/", escaped_slashes="drop")
    with pytest.raises(TypeError):
        normalize_path("/v1/x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        normalize_path(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        normalize_path(b"/", True)  # type: ignore[misc]


# ----- properties ------------------------------------------------------------------------------

# fmt: off
PIECES = [
    b"/", b"/", b"//", b".", b"..", b"...", b"%2e", b"%2E", b".%2e", b"%2f", b"%2F", b"%5c",
    b"%5C", b"a", b"v1", b"%76", b"%7e", b"~", b"%41", b"%3f", b"%25", b"%ff", b"%00", b"%",
    b"%4", b"%g1", b"\\", b"?", b"-", b"\x00", b"\xc3\xa9", b" ",
]
# fmt: on

paths = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=16).map(lambda p: b"/" + b"".join(p)),
    st.lists(st.sampled_from(PIECES), max_size=8).map(b"".join),
    st.binary(max_size=24).map(lambda b: b"/" + b),
)


@settings(derandomize=True, max_examples=3000, deadline=None)
@given(path=paths, merge=st.booleans(), mode=st.sampled_from(MODES))
def test_matches_reference(path: bytes, merge: bool, mode: str) -> None:
    got = outcome(normalize_path, path, merge, mode)
    assert got == outcome(reference, path, merge, mode)
    if got[0] == "ok":
        out = got[1]
        assert isinstance(out, bytes)
        assert len(out) <= len(path)
        assert (out is path) == (out == path)
        again = normalize_path(out, merge_slashes=merge, escaped_slashes=mode)
        assert again is out  # idempotent, and reported unchanged
        assert b"/./" not in out and b"/../" not in out
        assert not out.endswith((b"/.", b"/.."))
        if merge:
            assert b"//" not in out
