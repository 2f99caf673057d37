"""gwcore.http.cffi on PyPy: the 400-byte GET of parser_input.py parsed as test_parser_bench.py's
test_gwcore_cffi parses it (one request; 16 pipelined, with the offset argument),
after a warm-up for the JIT; per-parse median and minimum of 30 rounds.

    pypy3 bench/micro/pypy_parse.py

builds gwcore.http._cffi_http1 for the interpreter running it (gwcore/http/_cffi_build.py, into
a temporary directory, beside copies of the pure-Python files gwcore.http.cffi imports), so it
needs gcc and PyPy's headers (Debian: pypy3 pypy3-dev). PyPy only (on CPython gwcore.http needs
its Cython binding: test_parser_bench.py measures the same calls there); pytest-benchmark is
not installed for Debian 12's PyPy (Python 3.9), hence this script.
Python 3.9 syntax.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PURE = ["gwcore/__init__.py", "gwcore/http/__init__.py", "gwcore/http/_errors.py",
        "gwcore/http/cffi.py"]


def build(out: str) -> None:
    subprocess.run([sys.executable, os.path.join(REPO, "gwcore/http/_cffi_build.py"), out],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    for rel in PURE:
        shutil.copy(os.path.join(REPO, rel), os.path.join(out, rel))


def per_call(fn, arg, number: int, rounds: int = 30) -> tuple[float, float]:
    for _ in range(3):                                   # JIT warm-up
        for _ in range(number):
            fn(arg)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            fn(arg)
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times), min(times)


def main() -> None:
    out = tempfile.mkdtemp(prefix="gwcore-cffi-")
    try:
        build(out)
        sys.path[:0] = [out, HERE]
        from parser_input import GET, PIPELINED, TARGET

        from gwcore.http.cffi import Parser

        parser = Parser()

        def one(data: bytes) -> list:
            r = parser.parse_request(data)
            return [(r.method, r.path, r.headers)]

        def pipelined(data: bytes) -> list:
            res, off = [], 0
            while off < len(data):
                r = parser.parse_request(data, off)
                res.append((r.method, r.path, r.headers))
                off += r.consumed
            return res

        assert one(GET)[0][1] == TARGET and len(pipelined(PIPELINED)) == 16
        print(f"{platform.python_implementation()} {platform.python_version()} "
              f"({sys.version.split(chr(10))[-1].strip()})")
        for name, fn, data, number in (("one request", one, GET, 20000),
                                       ("16 pipelined", pipelined, PIPELINED, 2000)):
            median, best = per_call(fn, data, number)
            print(f"gwcore.http.cffi, {name}: median {median * 1e6:.3f} us, "
                  f"min {best * 1e6:.3f} us")
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
