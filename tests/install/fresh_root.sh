#!/usr/bin/env bash
# Run a command as root inside a fresh root (the fresh-machine check, tests/install).
#
# usage: fresh_root.sh ROOT SCRATCH CMD [ARG...]
#
# CMD runs chrooted into ROOT in private mount, PID and network namespaces: the mounts below and every
# process CMD starts (a dockerd, a registry) are gone when it exits; the network is loopback only.
# Mounted into ROOT:
#   /proc (this PID namespace's), /sys and /dev (the host's; dockerd needs cgroups and devices)
#   /usr/local/go                  the machine's Go (its GOROOT), read-only
#   $GOMODCACHE, $GOCACHE          the host's Go module and build caches as overlays: reads come from the
#                                  host's caches, writes land in SCRATCH, so the tools build offline and fast
#   $LIFECYCLE_BASE_CACHE          the debootstrap'd base tarball cache, read-only
#   $LIFECYCLE_FRESH_CACHE         the check's .deb files and wheels (make install's fresh-inputs), read-only;
#                                  its debs/ is ROOT's apt repository at /srv/debs/pool
# CMD's environment is a clean one: HOME=/root, a standard PATH (no Go on it) and the FRESH_* variables
# of this environment with the prefix dropped (FRESH_PIP_NO_INDEX=1 -> PIP_NO_INDEX=1).
set -euo pipefail
if [[ "${1:-}" != --inside ]]; then
  # --kill-child: if this script is killed, the namespace's first process (and so all in it) dies too.
  exec unshare --mount --pid --net --fork --kill-child --propagation private -- "$0" --inside "$@"
fi
shift
root=$1 scratch=$2
shift 2
go=$(command -v go || echo /usr/local/go/bin/go)
goroot=$("$go" env GOROOT) gomod=$("$go" env GOMODCACHE) gocache=$("$go" env GOCACHE)
base=${LIFECYCLE_BASE_CACHE:-/var/cache/lifecycle-base}
fresh=${LIFECYCLE_FRESH_CACHE:-/var/cache/lifecycle-fresh}

robind() {
  mkdir -p "$root$2"
  mount --bind "$1" "$root$2"
  mount -o remount,bind,ro "$root$2"
}
overlay() {
  local name=$3
  mkdir -p "$root$2" "$scratch/$name.upper" "$scratch/$name.work"
  mount -t overlay overlay -o "lowerdir=$1,upperdir=$scratch/$name.upper,workdir=$scratch/$name.work" "$root$2"
}

# ROOT a mount point of its own: dockerd's layer unpacking pivots into a new root, which needs that.
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
ip link set lo up
robind "$goroot" /usr/local/go
overlay "$gomod" "$gomod" gomodcache
overlay "$gocache" "$gocache" gocache
robind "$base" "$base"
robind "$fresh" "$fresh"
robind "$fresh/debs" /srv/debs/pool

env=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
     "GOMODCACHE=$gomod" "GOCACHE=$gocache")
while IFS='=' read -r name value; do
  [[ $name == FRESH_* ]] && env+=("${name#FRESH_}=$value")
done < <(env)
exec chroot "$root" /usr/bin/env -i "${env[@]}" "$@"
