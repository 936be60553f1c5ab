#!/bin/sh
# Build the package and all its runtime dependencies as wheels for the Dockerfile.
# usage: make_wheels.sh [PYTHON] [OUT_DIR]     (defaults: .venv/bin/python, dist/wheels)
# Uses pip's configured indexes (PyPI or a local mirror). The package is built from a copy of
# its sources, so the work tree gets no build/ or egg-info litter.
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
python=${1:-$repo/.venv/bin/python}
out=${2:-$repo/dist/wheels}
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT INT TERM
cp "$repo/pyproject.toml" "$repo/README.md" "$src/"
cp -r "$repo/lifecycle" "$src/lifecycle"
find "$src" -name __pycache__ -type d -prune -exec rm -rf {} +
mkdir -p "$out"
rm -f "$out"/cnb_lifecycle-*.whl
"$python" -m pip wheel -q --disable-pip-version-check --wheel-dir "$out" "$src" >/dev/null 2>&1 || \
    "$python" -m pip wheel --disable-pip-version-check --wheel-dir "$out" "$src"
ls "$out"/cnb_lifecycle-*.whl >/dev/null
