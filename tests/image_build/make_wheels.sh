#!/bin/sh
# Wheels for the Dockerfile: the cnb-lifecycle package and its runtime dependencies.
#
# usage: make_wheels.sh [--package-only] [PYTHON] [OUT_DIR]   (defaults: .venv/bin/python, dist/wheels)
#
#   (default)       the package and all its dependencies; uses pip's configured indexes (PyPI or a
#                   local mirror): this is install-step work (`make image-inputs`), not a test's.
#   --package-only  only the cnb-lifecycle wheel, offline: no index, no dependencies, no build
#                   isolation (PYTHON's own setuptools>=68 and wheel build it; the `test` extras
#                   install them). The tests use this; the dependency wheels come from dist/wheels.
#
# The package is built from a copy of its sources, so the work tree gets no build/ or egg-info litter.
set -eu
mode=all
if [ "${1:-}" = "--package-only" ]; then
    mode=package
    shift
fi
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
if [ "$mode" = package ]; then
    set -- --no-deps --no-build-isolation --no-index
else
    set --
fi
"$python" -m pip wheel -q --disable-pip-version-check "$@" --wheel-dir "$out" "$src" >/dev/null 2>&1 || \
    "$python" -m pip wheel --disable-pip-version-check "$@" --wheel-dir "$out" "$src"
ls "$out"/cnb_lifecycle-*.whl >/dev/null
