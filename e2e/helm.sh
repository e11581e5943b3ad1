#!/usr/bin/env bash
# Helm for the chart's tests (charts/steward, e2e/helm.rs), built from its Go
# module (e2e/platform/helm pins the release) with the Go module proxy, once,
# and cached outside the repo keyed by version, like the control plane
# (e2e/control-plane.sh).
#
#   e2e/helm.sh install   build helm into the cache if it is not there yet
#   e2e/helm.sh bin       print the path of the cached helm binary
#   e2e/helm.sh version   print the pinned Helm version
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
MODULE="$HERE/platform/helm"
CACHE="${STEWARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/steward}"
# Bump BUILD_REV whenever the build recipe changes, so caches are rebuilt.
BUILD_REV=1

log() { printf 'helm: %s\n' "$*" >&2; }

VERSION="$(awk '$1 == "helm.sh/helm/v4" && $2 ~ /^v/ {print $2; exit}' "$MODULE/go.mod")"
[ -n "$VERSION" ] || { log "cannot read the pinned Helm version from $MODULE/go.mod"; exit 1; }
DEST="$CACHE/helm-$VERSION-r$BUILD_REV"

build() {
  [ -x "$DEST/helm" ] && return 0
  command -v go >/dev/null || { log "go is not installed (need Go >= 1.26)"; exit 1; }
  log "building helm $VERSION into $DEST (about 2 minutes on 2 cores, once)"
  mkdir -p "$CACHE"
  # Into a temporary directory renamed into place: an interrupted build
  # never leaves a half-filled cache entry.
  local tmp; tmp="$(mktemp -d "$CACHE/build.XXXXXX")"
  trap "rm -rf '$tmp'" EXIT
  # The -X flag Helm's own Makefile stamps, so `helm version` prints the
  # release rather than its minor.
  (cd "$MODULE" && go build -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$VERSION" \
    -o "$tmp/" helm.sh/helm/v4/cmd/helm) || { log "build failed in $MODULE"; exit 1; }
  chmod 755 "$tmp"
  mv -T "$tmp" "$DEST" 2>/dev/null || [ -d "$DEST" ]
  trap - EXIT
  rm -rf "$tmp"
}

case "${1:-}" in
  install) build; log "$("$DEST/helm" version --short) in $DEST" ;;
  bin) echo "$DEST/helm" ;;
  version) echo "$VERSION" ;;
  *) echo "usage: $0 install | bin | version" >&2; exit 2 ;;
esac
