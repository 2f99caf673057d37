"""The cffi binding on PyPy: built by Debian's ``pypy3`` from the same src_c/http1.c, imported
where the Cython binding cannot be, checked by cffi_cases.py's API checks and by a corpus of
2,000 messages (and every prefix of 100 of them) whose outcomes must equal the Cython binding's
on CPython, field by field and error by error.

Needs ``pypy3`` and its headers (Debian: ``apt-get install pypy3 pypy3-dev``; .ci/run installs
them); skipped with that reason when they are missing. Debian 12's PyPy is Python 3.9, below
gwcore's ``requires-python``, so gwcore is not installed there: the module is built with
``pypy3 gwcore/http/_cffi_build.py OUTDIR`` and imported beside copies of the few pure-Python
files ``gwcore.http.cffi`` needs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cffi_cases import API_CHECKS, corpus, cython_outcome, prefixes, to_json

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SEED, COUNT = 9112, 2000
# what gwcore.http.cffi imports, besides the compiled module
PURE = ["gwcore/__init__.py", "gwcore/http/__init__.py", "gwcore/http/_errors.py",
        "gwcore/http/cffi.py"]


def _pypy() -> str:
    pypy = shutil.which("pypy3")
    if pypy is None:
        pytest.skip("pypy3 is not installed (Debian: apt-get install pypy3 pypy3-dev)")
    probe = ("import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join("
             "sysconfig.get_paths()['include'], 'Python.h')))")
    has_headers = subprocess.run([pypy, "-c", probe], capture_output=True, timeout=60,
                                 check=False).returncode == 0
    if not has_headers:
        pytest.skip("PyPy's C headers are missing, cffi cannot compile the module (Debian: "
                    "apt-get install pypy3-dev)")
    return pypy


@pytest.fixture(scope="module")
def pypy_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(pypy3, a directory holding gwcore.http.cffi and its module compiled for PyPy)."""
    pypy = _pypy()
    out = tmp_path_factory.mktemp("pypy-cffi")
    built = subprocess.run([pypy, "gwcore/http/_cffi_build.py", str(out)], cwd=REPO,
                           capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    for rel in PURE:
        shutil.copy(REPO / rel, out / rel)
    assert list((out / "gwcore" / "http").glob("_cffi_http1.pypy*.so")), built.stdout[-2000:]
    return pypy, out


@pytest.fixture(scope="module")
def pypy_rows(pypy_build: tuple[str, Path]) -> list[dict]:
    pypy, out = pypy_build
    run = subprocess.run([pypy, str(HERE / "cffi_cases.py"), str(SEED), str(COUNT)],
                         cwd=out, env={"PYTHONPATH": str(out), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    return [json.loads(line) for line in run.stdout.splitlines()]


def test_runs_on_pypy_without_the_cython_binding(pypy_build: tuple[str, Path]) -> None:
    pypy, out = pypy_build
    code = ("import platform, gwcore.http, gwcore.http.cffi as c; "
            "print(platform.python_implementation(), hasattr(gwcore.http, 'parse_request'), "
            "c.Parser().parse_request(b'GET / HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n').consumed)")
    run = subprocess.run([pypy, "-c", code], cwd=out, env={"PYTHONPATH": str(out)},
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.stdout.split() == ["PyPy", "False", "27"], run.stderr


def test_api_checks_pass_on_pypy(pypy_rows: list[dict]) -> None:
    assert [r["check"] for r in pypy_rows if "check" in r] == [c.__name__ for c in API_CHECKS]


def test_pypy_outcomes_equal_cpython_cython(pypy_rows: list[dict]) -> None:
    rows = [r for r in pypy_rows if "i" in r]
    assert len(rows) == COUNT
    for row, (kind, data, limits) in zip(rows, corpus(SEED, COUNT)):
        assert row["whole"] == to_json(cython_outcome(kind, data, limits)), (kind, data, limits)
        if "prefixes" in row:
            want = [to_json(cython_outcome(kind, d, limits)) for d in prefixes(data)]
            assert row["prefixes"] == want, (kind, data, limits)
    assert sum("prefixes" in r for r in rows) == 100
