#!/bin/sh
# Build the lifecycle image from a lifecycle tarball (packaging/dist.py tarball), offline.
#
# usage: build_image.sh TARBALL TAG [BASE_IMAGE]    (BASE_IMAGE default lifecycle-base:bookworm)
# env:   DOCKER_HOST picks the daemon; PYTHON (default .venv/bin/python) prints the labels.
#
# The context is staged in a temp dir: the tarball as lifecycle.tgz, cnb/buildpacks, cnb/order.toml
# and the Dockerfile; the labels pack reads come from lifecycle/descriptor.py via --label.
set -eu
[ $# -ge 2 ] || { echo "usage: build_image.sh TARBALL TAG [BASE_IMAGE]" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
tarball=$1 tag=$2 base=${3:-lifecycle-base:bookworm}
python=${PYTHON:-$repo/.venv/bin/python}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT INT TERM
cp "$tarball" "$ctx/lifecycle.tgz"
mkdir "$ctx/cnb"
cp -R "$repo/cnb/buildpacks" "$repo/cnb/order.toml" "$ctx/cnb/"
find "$ctx/cnb" -name __pycache__ -prune -exec rm -rf {} +
cp "$repo/Dockerfile" "$ctx/Dockerfile"
labels=$("$python" "$repo/packaging/dist.py" labels)
set --
while IFS= read -r label; do
    set -- "$@" --label "$label"
done <<LABELS
$labels
LABELS
DOCKER_BUILDKIT=0 docker build -q "$@" --build-arg "BASE_IMAGE=$base" -t "$tag" "$ctx" >/dev/null
echo "$tag"
