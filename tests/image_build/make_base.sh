#!/bin/sh
# Make an offline base image for the lifecycle Dockerfile: a minimal Debian bookworm with python3,
# imported into a Docker daemon as lifecycle-base:bookworm (or $2).
#
# usage: make_base.sh [--tarball-only | --import-only] [DOCKER_HOST] [IMAGE_NAME]
#   --tarball-only  only make the cached rootfs tarball (debootstrap from the Debian mirror) and exit;
#                   install-step work (`make image-inputs`), needs root, debootstrap and the mirror
#   --import-only   only import the cached tarball; fail when it is missing (never downloads)
#   (neither)       make the tarball when it is missing, then import it
#   DOCKER_HOST     daemon to import into (default: $DOCKER_HOST, else the docker default)
#   IMAGE_NAME      default lifecycle-base:bookworm
# env:
#   LIFECYCLE_BASE_CACHE  directory for the cached rootfs tarball (default /var/cache/lifecycle-base)
#   DEBIAN_MIRROR         default http://deb.debian.org/debian
#
# The debootstrap'd rootfs is cached as a tarball; later runs only `docker import` it.
# Needs root and debootstrap (apt-get install -y --no-install-recommends debootstrap).
set -eu

mode=both
case "${1:-}" in
    --tarball-only) mode=tarball; shift ;;
    --import-only) mode=import; shift ;;
esac
host=${1:-${DOCKER_HOST:-}}
name=${2:-lifecycle-base:bookworm}
cache=${LIFECYCLE_BASE_CACHE:-/var/cache/lifecycle-base}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
tarball="$cache/bookworm-minbase-python3.tar"

if [ ! -s "$tarball" ] && [ "$mode" = import ]; then
    echo "make_base.sh: no cached base rootfs at $tarball; run \`make image-inputs\` first" >&2
    exit 1
fi
if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null 2>&1 || {
        echo "make_base.sh: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
    mkdir -p "$cache"
    work=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap 'rm -rf "$work"' EXIT INT TERM
    debootstrap --variant=minbase --include=python3,python3-venv bookworm "$work" "$mirror" \
        > "$cache/debootstrap.log" 2>&1 || { tail -n 30 "$cache/debootstrap.log" >&2; exit 1; }
    # Smaller image: drop apt lists, caches, docs; keep everything python3 needs.
    rm -rf "$work"/var/cache/apt/archives/*.deb "$work"/var/lib/apt/lists/* \
           "$work"/usr/share/doc/* "$work"/usr/share/man/* "$work"/usr/share/locale/*
    chmod 0755 "$work"  # mktemp made it 0700: it becomes the image's /
    tar --numeric-owner --xattrs -C "$work" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$work"
    trap - EXIT INT TERM
fi

if [ "$mode" = tarball ]; then
    echo "$tarball"
    exit 0
fi

if [ -n "$host" ]; then
    set -- -H "$host"
else
    set --
fi
docker "$@" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/sh"]' \
    - "$name" < "$tarball" >/dev/null
echo "$name"
