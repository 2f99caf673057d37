"""The compiled modules that use OpenSSL ask libcrypto.so.3 for OpenSSL 3.0's symbols only.

Release wheels do not bundle libcrypto (README, "Packaging"): they use the host's, and Amazon
Linux 2023 and Debian 12 ship OpenSSL 3.0. A build against newer headers (the manylinux_2_34
image has AlmaLinux 9's OpenSSL 3.x) could pick up a symbol versioned OPENSSL_3.1.0 or later,
which such a host lacks: the wheel would install and then fail to import. So the check runs on
whatever is imported, an in-place build here and each installed wheel in cibuildwheel's
test-command. pyelftools comes with auditwheel (the [test] extra).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

USERS = ["gwcore._ocsp", "gwcore.jwt._jws", "gwcore.proxy._ring"]


def _needs(path: str) -> tuple[set[str], dict[str, set[str]]]:
    """(DT_NEEDED, {library: symbol versions needed from it})"""
    needed: set[str] = set()
    versions: dict[str, set[str]] = {}
    with open(path, "rb") as f:
        for section in ELFFile(f).iter_sections():
            if isinstance(section, DynamicSection):
                needed |= {t.needed for t in section.iter_tags() if t.entry.d_tag == "DT_NEEDED"}
            elif isinstance(section, GNUVerNeedSection):
                for verneed, auxes in section.iter_versions():
                    versions.setdefault(verneed.name, set()).update(a.name for a in auxes)
    return needed, versions


@pytest.mark.parametrize("module", USERS)
def test_libcrypto_symbols_are_openssl_3_0(module: str) -> None:
    needed, versions = _needs(importlib.import_module(module).__file__)
    assert "libcrypto.so.3" in needed
    assert versions["libcrypto.so.3"] == {"OPENSSL_3.0.0"}
    if module == "gwcore._ocsp":        # the only libssl user (the SSL_CTX of Python's ssl)
        assert "libssl.so.3" in needed
        assert versions["libssl.so.3"] == {"OPENSSL_3.0.0"}
    else:
        assert "libssl.so.3" not in needed


def test_no_other_module_links_openssl() -> None:
    src = Path(__file__).resolve().parents[2]          # the checkout: .pyx are not installed
    modules = [".".join(p.relative_to(src).with_suffix("").parts)
               for p in (src / "gwcore").rglob("_*.pyx")] + ["gwcore.http._cffi_http1"]
    assert set(USERS) < set(modules)
    for module in modules:
        if module not in USERS:
            needed, _ = _needs(importlib.import_module(module).__file__)
            assert not {n for n in needed if n.startswith(("libcrypto", "libssl"))}, module
