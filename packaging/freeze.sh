#!/bin/sh
# Freeze the phases into one self-contained executable: OUT_DIR/lifecycle (PyInstaller, one file, the
# interpreter and every dependency inside) plus OUT_DIR/<phase> symlinks to it; the name a phase is
# called by picks it (lifecycle/cli/main.py). It needs only glibc (2.36 or newer, the build machine's).
#
# usage: freeze.sh [PYTHON] [OUT_DIR]   (defaults: .venv/bin/python, build/frozen)
#
# Offline: PyInstaller comes from the `freeze` extras (`make install`). Reproducible: fixed hash seed
# and SOURCE_DATE_EPOCH, a fresh work directory, so two builds from one tree give the same bytes
# (spec/image.md lists what that depends on).
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${1:-$repo/.venv/bin/python}
out=${2:-$repo/build/frozen}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
export PYTHONHASHSEED=0 SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0} PYTHONDONTWRITEBYTECODE=1
"$python" -m PyInstaller --noconfirm --log-level WARN \
    --distpath "$work/dist" --workpath "$work/build" "$repo/packaging/lifecycle.spec" >"$work/log" 2>&1 || {
    cat "$work/log" >&2; exit 1; }
mkdir -p "$out"
mv -f "$work/dist/lifecycle" "$out/lifecycle"
for phase in analyzer detector restorer builder exporter creator rebaser extender; do
    ln -sfn lifecycle "$out/$phase"
done
echo "$out/lifecycle"
