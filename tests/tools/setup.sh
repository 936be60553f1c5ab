#!/usr/bin/env bash
# `make install`: install what `make test`, `make demo` and `make bench` need; only what is missing.
#
# usage: tests/tools/setup.sh [STEP...]        (no STEP: all of them, in this order)
#   debian        the Debian packages in tests/tools/debian-packages.txt whose command is missing (apt-get;
#                 needs root: otherwise it stops at once and prints the apt-get command to run as root)
#   go            the pinned Go tools (tests/tools/install.sh, pins in tests/tools/go-tools.txt); needs Go 1.26
#                 on PATH or in /usr/local/go
#   launcher      build/launcher/launcher, the app images' launcher (`make launcher`: the Makefile holds its one
#                 recipe), when its sources changed; needs Go
#   venv          .venv: the package (editable) and its test tools; redone when pyproject.toml changes
#   image-inputs  what the lifecycle image is built from offline (tests/image_build): dist/wheels and the
#                 debootstrap'd base rootfs tarball in $LIFECYCLE_BASE_CACHE (needs root)
#   fresh-inputs  what the fresh-machine check (tests/install) installs inside a fresh root with no network,
#                 in $LIFECYCLE_FRESH_CACHE (default /var/cache/lifecycle-fresh; needs root): debs/, the .deb
#                 files the base rootfs lacks for the Debian packages (and make), and wheels/, the venv's
#                 packages as wheels
#
# Each step that installs something prints one line saying what and how long it took; a run that installs
# nothing prints one line saying so. Output of apt, pip and go goes to a log shown only when a step fails.
# This is install-step work, the only place that uses the network (apt, PyPI, the Go module proxy, the Debian
# mirror); the tests never download.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
tools=tests/tools
venv=.venv
py=$venv/bin/python
base_cache=${LIFECYCLE_BASE_CACHE:-/var/cache/lifecycle-base}
base_tar=$base_cache/bookworm-minbase-python3.tar  # the name tests/image_build/make_base.sh writes
fresh=${LIFECYCLE_FRESH_CACHE:-/var/cache/lifecycle-fresh}

all=(debian go launcher venv image-inputs fresh-inputs)
steps=("$@")
((${#steps[@]})) || steps=("${all[@]}")
for s in "${steps[@]}"; do
  [[ " ${all[*]} " == *" $s "* ]] || { echo "ERROR: unknown step '$s' (steps: ${all[*]})" >&2; exit 2; }
done
want() { [[ " ${steps[*]} " == *" $1 "* ]]; }
# Both build from the venv's Python.
if want image-inputs || want fresh-inputs; then want venv || steps=(venv "${steps[@]}"); fi

usec() { echo "${EPOCHREALTIME/[.,]/}"; }
took() { local us=$(( $(usec) - $1 )); printf '%d.%ds' $((us / 1000000)) $((us % 1000000 / 100000)); }
start=$(usec)
log=$(mktemp -t lifecycle-setup.XXXXXX)
trap 'rm -f "$log"' EXIT
# Run a command with its output in the log; on failure show the log's tail and stop.
quietly() {
  if ! "$@" >>"$log" 2>&1; then
    trap - EXIT
    echo "ERROR: setup: '$*' failed; last lines of $log:" >&2
    tail -n 40 "$log" >&2
    exit 2
  fi
}
hash_of() { cat "$@" | sha256sum | cut -c1-16; }
stamp_is() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }

# ---- what is missing (all decided before anything is installed) ---------------------------------------
deb_pkgs=() deb_cmds=() deb_missing=()
while read -r cmd pkg _; do
  [[ -z "$cmd" || "$cmd" == \#* ]] && continue
  deb_cmds+=("$cmd")
  [[ " ${deb_pkgs[*]} " == *" $pkg "* ]] || deb_pkgs+=("$pkg")
  if ! PATH=$PATH:/usr/sbin:/sbin command -v "$cmd" >/dev/null 2>&1; then
    [[ " ${deb_missing[*]} " == *" $pkg "* ]] || deb_missing+=("$pkg")
  fi
done < "$tools/debian-packages.txt"
# Debian's python3 keeps venv's pip bootstrap (ensurepip) in its own package.
if want venv && [[ ! -x $py ]] && ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
  deb_missing+=(python3-venv)
fi
want debian || deb_missing=()

go_missing=()
if want go || want launcher; then
  if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
    export PATH=/usr/local/go/bin:$PATH
  fi
  command -v go >/dev/null 2>&1 || {
    echo "ERROR: setup: Go is not installed; the pinned Go tools and the launcher need Go 1.26 on PATH" \
         "or in /usr/local/go (https://go.dev/dl/)" >&2; exit 2; }
fi
if want go; then
  missing=$("$tools/install.sh" --missing)
  [[ -z $missing ]] || mapfile -t go_missing <<<"$missing"
fi
launcher=build/launcher/launcher
need_launcher=false
if want launcher && ! make -q --no-print-directory "$launcher" >/dev/null 2>&1; then need_launcher=true; fi

venv_key=$(hash_of pyproject.toml)
need_venv=false need_wheels=false need_base=false need_debs=false need_wheelhouse=false
if want venv && ! { [[ -x $py ]] && stamp_is "$venv/.installed" "$venv_key"; }; then need_venv=true; fi
if want image-inputs; then
  stamp_is dist/wheels/.installed "$venv_key" && ls dist/wheels/cnb_lifecycle-*.whl >/dev/null 2>&1 \
    || need_wheels=true
  [[ -s $base_tar ]] || need_base=true
fi
fresh_pkgs=("${deb_pkgs[@]}" make)  # make: what a user runs `make install` with
debs_key() { echo "${fresh_pkgs[*]} $(stat -c '%s %Y' "$base_tar")" | sha256sum | cut -c1-16; }
if want fresh-inputs; then
  if [[ ! -s $base_tar ]] || ! stamp_is "$fresh/debs.installed" "$(debs_key)"; then need_debs=true; fi
  stamp_is "$fresh/wheels.installed" "$venv_key" || need_wheelhouse=true
fi

if ((EUID != 0)); then
  if ((${#deb_missing[@]})); then
    echo "ERROR: setup: missing Debian packages need root; run as root:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends ${deb_missing[*]}" >&2
    exit 2
  fi
  if $need_base || $need_debs; then
    echo "ERROR: setup: the base rootfs tarball and the fresh-machine check's .deb files need root;" \
         "run \`sudo make install\`" >&2
    exit 2
  fi
fi

if ! ((${#deb_missing[@]} + ${#go_missing[@]})) && ! $need_launcher && ! $need_venv && ! $need_wheels \
   && ! $need_base && ! $need_debs && ! $need_wheelhouse; then
  have=()
  want debian && have+=("Debian packages (${deb_pkgs[*]})")
  want go && have+=("Go tools ($(awk '!/^#/ && NF {printf "%s%s", s, $1; s=" "}' "$tools/go-tools.txt"))")
  want launcher && have+=("$launcher")
  want venv && have+=(".venv")
  want image-inputs && have+=("image-build inputs")
  want fresh-inputs && have+=("fresh-machine check inputs")
  echo "setup: nothing to install; in place: $(IFS=,; echo "${have[*]}" | sed 's/,/, /g') ($(took "$start"))"
  exit 0
fi

# ---- install ----------------------------------------------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
apt_updated=false
apt_update() { $apt_updated || quietly apt-get update -q; apt_updated=true; }

if ((${#deb_missing[@]})); then
  t0=$(usec)
  apt_update
  quietly apt-get install -y -q --no-install-recommends "${deb_missing[@]}"
  for cmd in "${deb_cmds[@]}"; do
    PATH=$PATH:/usr/sbin:/sbin command -v "$cmd" >/dev/null 2>&1 || {
      echo "ERROR: setup: $cmd is still missing after installing ${deb_missing[*]}" >&2; exit 2; }
  done
  echo "setup: installed Debian packages ${deb_missing[*]} ($(took "$t0"))"
fi

if ((${#go_missing[@]})); then
  # install.sh prints its own line: what it built, with which Go, and how long it took.
  "$tools/install.sh"
fi

if $need_launcher; then
  t0=$(usec)
  quietly make -s --no-print-directory "$launcher"
  echo "setup: built $launcher (the app images' launcher) with $(go env GOVERSION) ($(took "$t0"))"
fi

if $need_venv; then
  t0=$(usec)
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "ERROR: setup: python3 is $(python3 -V 2>&1); the package needs Python 3.11 or newer" >&2; exit 2; }
  [[ -x $py ]] || quietly python3 -m venv "$venv"
  quietly "$py" -m pip install -q --disable-pip-version-check --upgrade pip
  quietly "$py" -m pip install -q --disable-pip-version-check -e '.[test,freeze]'
  echo "$venv_key" > "$venv/.installed"
  echo "setup: installed $venv (cnb-lifecycle, editable, with its test tools;" \
       "$("$py" -m pip list --format=freeze 2>/dev/null | wc -l) packages) ($(took "$t0"))"
fi

if $need_wheels; then
  t0=$(usec)
  quietly tests/image_build/make_wheels.sh "$py" dist/wheels
  echo "$venv_key" > dist/wheels/.installed
  echo "setup: made dist/wheels ($(ls dist/wheels/*.whl | wc -l) wheels the lifecycle image installs)" \
       "($(took "$t0"))"
fi

if $need_base; then
  t0=$(usec)
  quietly tests/image_build/make_base.sh --tarball-only
  echo "setup: made the lifecycle image's base rootfs $base_tar (debootstrap bookworm," \
       "$(du -m "$base_tar" | cut -f1) MiB) ($(took "$t0"))"
fi

if $need_debs; then
  t0=$(usec)
  mkdir -p "$fresh"
  tmp=$(mktemp -d "$fresh/.debs.XXXXXX")
  trap 'rm -f "$log"; rm -rf "$tmp"' EXIT
  # Exactly what apt would fetch on a machine whose dpkg state is the base rootfs's.
  tar -xOf "$base_tar" ./var/lib/dpkg/status > "$tmp/status"
  mkdir -p "$tmp/debs/partial"
  apt_update
  quietly apt-get install --download-only -y -q --no-install-recommends -o Debug::NoLocking=1 \
    -o Dir::State::status="$tmp/status" -o Dir::Cache::archives="$tmp/debs" "${fresh_pkgs[@]}"
  rm -rf "$tmp/debs/partial" "$tmp/debs/lock"
  rm -rf "$fresh/debs" "$fresh/debs.installed"
  mv "$tmp/debs" "$fresh/debs"
  rm -rf "$tmp"
  debs_key > "$fresh/debs.installed"
  echo "setup: fetched $(ls "$fresh/debs" | wc -l) .deb files ($(du -sm "$fresh/debs" | cut -f1) MiB) into" \
       "$fresh/debs for the fresh-machine check ($(took "$t0"))"
fi

if $need_wheelhouse; then
  t0=$(usec)
  mkdir -p "$fresh"
  tmp=$(mktemp -d "$fresh/.wheels.XXXXXX")
  trap 'rm -f "$log"; rm -rf "$tmp"' EXIT
  # The venv's exact versions (pip, setuptools and wheel too), so the fresh root resolves them offline.
  "$py" -m pip freeze --all --exclude-editable --disable-pip-version-check > "$tmp/requirements.txt"
  quietly "$py" -m pip download -q --disable-pip-version-check --only-binary=:all: -d "$tmp/wheels" \
    -r "$tmp/requirements.txt"
  rm -rf "$fresh/wheels" "$fresh/wheels.installed"
  mv "$tmp/wheels" "$fresh/wheels"
  rm -rf "$tmp"
  echo "$venv_key" > "$fresh/wheels.installed"
  echo "setup: fetched $(ls "$fresh/wheels" | wc -l) wheels into $fresh/wheels for the fresh-machine check" \
       "($(took "$t0"))"
fi

echo "setup: done ($(took "$start"))"
