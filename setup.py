"""Build the compiled hot paths.

Every ``gwcore/**/_*.pyx`` becomes one extension module. A ``.pyx`` names the C files and
libraries it links in its own header (``# distutils: sources = src_c/http1.c``), so adding a
module never means editing this file.

``gwcore/http/_cffi_build.py`` adds ``gwcore.http._cffi_http1``, the cffi (API mode) binding of
src_c/http1.c (``gwcore.http.cffi``), through cffi's ``cffi_modules`` keyword.

``GWCORE_EXT=gwcore/jwt/_jws.pyx`` (a glob) builds only the matching modules (the cffi one when
the glob matches its build script).
``GWCORE_DEBUG=1`` builds with ``-O1 -g -fsanitize=address,undefined`` instead of ``-O3``
(run Python with ``LD_PRELOAD=$(gcc -print-file-name=libasan.so)`` to load such a build).
"""

import os
from glob import glob

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("GWCORE_DEBUG") == "1"
SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
CFLAGS = ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wno-unused-function"]
CFLAGS += ["-O1", "-g"] + SANITIZE if DEBUG else ["-O3"]
LDFLAGS = SANITIZE if DEBUG else []
CFFI_BUILD = "gwcore/http/_cffi_build.py"   # same flags, set there: it runs in its own namespace


def extensions() -> list[Extension]:
    exts = []
    only = os.environ.get("GWCORE_EXT", "gwcore/**/_*.pyx")
    for pyx in sorted(glob(only, recursive=True)):
        if not pyx.endswith(".pyx"):
            continue
        name = pyx[:-4].replace(os.sep, ".")
        exts.append(
            Extension(
                name,
                [pyx],
                include_dirs=["src_c"],
                extra_compile_args=CFLAGS,
                extra_link_args=LDFLAGS,
            )
        )
    return cythonize(
        exts,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
        gdb_debug=False,
    )


def cffi_modules() -> list[str]:
    only = os.environ.get("GWCORE_EXT")
    if only is not None and CFFI_BUILD not in glob(only, recursive=True):
        return []
    # without cffi, setuptools would only warn about an unknown "cffi_modules" and skip the module
    import cffi  # noqa: F401  (a build requirement in pyproject.toml)
    return [f"{CFFI_BUILD}:ffibuilder"]


setup(ext_modules=extensions(), cffi_modules=cffi_modules())
