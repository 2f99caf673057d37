"""The sdist (``python -m build --sdist``, through scripts/build-wheel.sh): everything a build
needs and nothing else. It is complete because the wheel is built from it (conftest.py); here,
its members are held to the list: the package's Python, Cython (.pyx, .pxd) and stub (.pyi)
sources, src_c/, setup.py, pyproject.toml, MANIFEST.in, README.md and the metadata setuptools
writes; no tests, benchmarks (bench/RESULTS.md), docs, deployment files, scripts, generated C
or build products.
"""

from __future__ import annotations

import re
import subprocess
import tarfile

from conftest import REPO, Artefacts

METADATA = re.compile(r"PKG-INFO|setup\.cfg|gwcore\.egg-info/[\w.-]+")
SOURCE = re.compile(r"gwcore/.*\.(py|pyx|pxd|pyi)|src_c/[\w.]+\.[ch]")


def _members(art: Artefacts) -> set[str]:
    with tarfile.open(art.sdist) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
    top = {n.split("/", 1)[0] for n in names}
    assert top == {art.sdist.name.removesuffix(".tar.gz")}, top
    return {n.split("/", 1)[1] for n in names}


def _tracked() -> set[str]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout
    return {p for p in listed.splitlines() if (REPO / p).is_file()}


def test_sdist_holds_every_source_a_build_needs(artefacts: Artefacts) -> None:
    members = _members(artefacts)
    needed = {p for p in _tracked() if SOURCE.fullmatch(p)}
    needed |= {"setup.py", "pyproject.toml", "MANIFEST.in", "README.md"}
    assert {"src_c/http1.c", "src_c/http1.h", "gwcore/http/_parser.pyx",
            "gwcore/http/_parser.pxd", "gwcore/http/_parser.pyi",
            "gwcore/http/_cffi_build.py"} <= needed
    assert needed - members == set()


def test_sdist_holds_nothing_else(artefacts: Artefacts) -> None:
    members = _members(artefacts)
    extra = {m for m in members if not (SOURCE.fullmatch(m) or METADATA.fullmatch(m))}
    assert extra == {"setup.py", "pyproject.toml", "MANIFEST.in", "README.md"}
    assert not [m for m in members if m.startswith(("tests/", "bench/", "docs/", "deploy/",
                                                    "examples/", "scripts/", "build/"))]
    generated = {m for m in members if m.startswith("gwcore/") and m.endswith((".c", ".so"))}
    assert generated == set()
    print(f"\nsdist {artefacts.sdist.name}: {len(members)} files, "
          f"{artefacts.sdist.stat().st_size:,} bytes")


def test_the_wheel_was_built_from_the_sdist(artefacts: Artefacts) -> None:
    log = artefacts.log
    assert "== sdist" in log and f"Successfully built {artefacts.sdist.name}" in log
    assert f"== wheel from {artefacts.sdist.name}" in log
    assert re.search(r"Processing \S*" + re.escape(artefacts.sdist.name), log), log[-3000:]
