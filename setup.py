"""Build the compiled hot paths.

Every ``gwcore/**/_*.pyx`` becomes one extension module. A ``.pyx`` names the C files and
libraries it links in its own header (``# distutils: sources = src_c/http1.c``), so adding a
module never means editing this file.

``GWCORE_EXT=gwcore/jwt/_jws.pyx`` (a glob) builds only the matching modules.
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


def extensions() -> list[Extension]:
    exts = []
    only = os.environ.get("GWCORE_EXT", "gwcore/**/_*.pyx")
    for pyx in sorted(glob(only, recursive=True)):
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


setup(ext_modules=extensions())
