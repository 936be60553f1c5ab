#!/usr/bin/env bash
# Install the pinned Go tools (tests/tools/go-tools.txt) into ${LIFECYCLE_TOOLS:-/var/cache/lifecycle-tools}.
# Each lands at <dir>/<name>-<version>/<name> with a stamp holding its pin line; a tool whose stamp matches
# its pin is kept, so a second run installs nothing. Install-step work (the Go module proxy): `make tools`
# runs it, the tests never do.
# usage: install.sh [--missing]   --missing: only print the names of the tools not at their pins (one a line)
set -euo pipefail
missing_only=false
[[ "${1:-}" == --missing ]] && missing_only=true
here=$(cd "$(dirname "$0")" && pwd)
dest=${LIFECYCLE_TOOLS:-/var/cache/lifecycle-tools}
command -v go >/dev/null || { echo "ERROR: go is not installed (Go 1.26 builds the pinned tools)" >&2; exit 2; }
$missing_only || mkdir -p "$dest"
# The machine's own toolchain, never one fetched behind our back; no cgo, so the tools are static.
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0
start=$(date +%s)
installed=() kept=()
while read -r name module pkg version var; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  pin="$name $module $pkg $version $var stub=$(cat "$here"/kaniko-stub/go.mod "$here"/kaniko-stub/pkg/*/*.go "$here"/kaniko-stub/pkg/util/proc/*.go | sha256sum | cut -c1-12)"
  out="$dest/$name-$version/$name"
  if [[ -x "$out" && -f "$out.pin" && "$(cat "$out.pin")" == "$pin" ]]; then
    kept+=("$name")
    continue
  fi
  if $missing_only; then
    echo "$name"
    continue
  fi
  t0=$(date +%s)
  tmp=$(mktemp -d "$dest/.build-$name.XXXXXX")
  trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
  dir=$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -d "$dir" ]] || { echo "ERROR: go mod download $module@$version gave no directory" >&2; exit 2; }
  cp -r "$dir" "$tmp/src" && chmod -R u+w "$tmp/src"
  # The proxy here refuses kaniko (needed only by upstream's extender): build against our stand-in.
  if grep -q 'github.com/osscontainertools/kaniko ' "$tmp/src/go.mod"; then
    (cd "$tmp/src" && go mod edit -replace "github.com/osscontainertools/kaniko=$here/kaniko-stub")
  fi
  ldflags="-s -w"
  [[ "$var" != "-" ]] && ldflags+=" -X $var=${version#v}"
  (cd "$tmp/src" && go build -trimpath -ldflags "$ldflags" -o "$tmp/$name" "$pkg")
  mkdir -p "$dest/$name-$version"
  mv -f "$tmp/$name" "$out"
  printf '%s\n' "$pin" > "$out.pin"
  chmod -R u+w "$tmp"; rm -rf "$tmp"; trap - EXIT
  installed+=("$name@$version($(( $(date +%s) - t0 ))s)")
done < "$here/go-tools.txt"
$missing_only && exit 0
if ((${#installed[@]})); then
  echo "go tools: installed ${installed[*]} into $dest with $(go env GOVERSION) in $(( $(date +%s) - start ))s"
else
  echo "go tools: ${kept[*]} already at their pinned versions in $dest; nothing installed"
fi
