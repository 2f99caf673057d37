"""Builds and runs every tests/c/test_<name>.c against src_c/<name>.c (or, for a header-only
module, src_c/<name>.h alone) under ASan and UBSan.

Each test program must exit 0. Build output goes to a temporary directory, never the repo.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTS = sorted((ROOT / "tests" / "c").glob("test_*.c"))
CFLAGS = [
    "-std=c11",
    "-D_GNU_SOURCE",
    "-O1",
    "-g",
    "-Wall",
    "-fno-omit-frame-pointer",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
]


@pytest.mark.parametrize("test_c", TESTS, ids=[p.stem for p in TESTS])
def test_c_program(test_c: Path, tmp_path: Path) -> None:
    source = ROOT / "src_c" / (test_c.stem.removeprefix("test_") + ".c")
    header = source.with_suffix(".h")
    assert source.exists() or header.exists(), f"{test_c.name} has no matching src_c module"
    exe = tmp_path / test_c.stem
    build = subprocess.run(
        [
            "gcc",
            *CFLAGS,
            f"-I{ROOT / 'src_c'}",
            str(test_c),
            *([str(source)] if source.exists() else []),
            "-o",
            str(exe),
            "-lssl",  # src_c/ocsp.c; the other programs need libcrypto only
            "-lcrypto",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    run = subprocess.run(
        [str(exe)],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
        env={
            **os.environ,
            "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
            "UBSAN_OPTIONS": "print_stacktrace=1",
        },
    )
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout[-4000:]}\n{run.stderr[-8000:]}"
