"""One copy of the C HTTP/1.1 parser per process (issue 9 item 5).

src_c/http1.c is linked into gwcore.http._parser only; the gateway's own extensions
(_connection, _upstream, _wire) call its functions through gwcore/http/_parser.pxd. So the SIMD
level that ``set_simd()`` forces (static state in http1.c) is the one the gateway parses with:
there is no second copy of the code or of the level anywhere in the gateway's process. (The
cffi binding, gwcore.http.cffi, is a second copy for other interpreters; the gateway never
imports it: tests/conformance/test_cffi_parser.py.)
"""

from __future__ import annotations

import ctypes
import importlib
import re
from pathlib import Path

import pytest

from gwcore.http import _parser, set_simd, simd_level

# the sources are read from the checkout, the compiled modules imported from wherever gwcore is
# installed (a wheel holds no .pyx nor src_c/)
SRC = Path(__file__).resolve().parents[2]
ROOT = SRC / "gwcore"
HEADER = SRC / "src_c" / "http1.h"
SIBLINGS = ("gwcore.http._connection", "gwcore.http._wire", "gwcore.proxy._upstream")

# Functions http1.h declares with external linkage (static inline ones are header-only).
LINKED = sorted(set(re.findall(r"^(?!static)[a-z][\w ]*?\**\b(gw_\w+)\(", HEADER.read_text(),
                               re.MULTILINE)))


def extension_modules() -> list[str]:
    """Every compiled gwcore module, by dotted name."""
    names = []
    for pyx in sorted(ROOT.rglob("_*.pyx")):
        names.append(".".join(pyx.relative_to(ROOT.parent).with_suffix("").parts))
    return names


def defines(module: str, symbol: str) -> bool:
    """Whether the loaded .so of ``module`` defines ``symbol`` (dlsym on its own handle searches
    that object and its DT_NEEDED libraries, not the interpreter or the other extensions)."""
    path = importlib.import_module(module).__file__
    return hasattr(ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL), symbol)


def test_header_functions_found() -> None:
    assert {"gw_parse_request", "gw_parse_response", "gw_chunked_decode", "gw_find_field",
            "gw_http1_set_simd", "gw_http1_simd_level"} <= set(LINKED)
    assert "gw_chunked_init" not in LINKED  # static inline in the header


def test_only_the_parser_links_http1_c() -> None:
    linking = []
    for pyx in sorted(ROOT.rglob("_*.pyx")):
        first = pyx.read_text().splitlines()[0]
        if first.startswith("# distutils: sources") and "src_c/http1.c" in first.split():
            linking.append(pyx.relative_to(ROOT.parent).as_posix())
    assert linking == ["gwcore/http/_parser.pyx"]


@pytest.mark.parametrize("symbol", LINKED)
def test_symbol_in_exactly_one_extension(symbol: str) -> None:
    mods = extension_modules()
    assert set(SIBLINGS) <= set(mods)
    assert [m for m in mods if defines(m, symbol)] == ["gwcore.http._parser"]


def test_siblings_cimport_from_the_parser() -> None:
    # the function table Cython fills in each sibling at import comes from these capsules
    exported = set(_parser.__pyx_capi__)
    for name in ("gw_parse_request", "gw_parse_response", "gw_chunked_init", "gw_chunked_decode",
                 "gw_find_field", "gw_next_list_element", "gw_http_error_name",
                 "gw_http_error_status"):
        assert name in exported
    # no other module sees an http1.h function as an extern (a call would bind to its own copy):
    # _chttp1.pxd declares types and constants only, _parser.pxd cdef functions
    chttp1 = (ROOT / "http" / "_chttp1.pxd").read_text()
    assert not set(re.findall(r"\b(gw_\w+)\s*\(", chttp1)) & set(LINKED)
    assert "extern" not in (ROOT / "http" / "_parser.pxd").read_text()
    for src in sorted(ROOT.rglob("_*.p[yx][xd]")):
        if src.name not in ("_parser.pyx", "_chttp1.pxd"):
            assert 'extern from "http1.h"' not in src.read_text(), src
    for mod in SIBLINGS:
        importlib.import_module(mod)  # resolves its imported functions against the capsules


def test_set_simd_changes_the_one_copy() -> None:
    lib = ctypes.CDLL(_parser.__file__, mode=ctypes.RTLD_LOCAL)
    c_level = lib.gw_http1_simd_level
    top = set_simd(2)
    try:
        for level in range(top + 1):
            assert set_simd(level) == level
            assert simd_level() == level == c_level()
    finally:
        set_simd(top)
    assert c_level() == top
