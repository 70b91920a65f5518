#!/usr/bin/env bash
# The helm binaries the chart tests use (tests/e2e_chart.rs, .ci/run): Helm v4.3.2, and Helm
# v3.21.4 (users still on Helm 3: the chart is linted, rendered and schema-checked with both),
# each built from the Go module proxy once, then cached.
#
#   scripts/helm.sh      prints the path of helm 4 (one line); progress goes to stderr
#   scripts/helm.sh 3    the same for helm 3
#
# Cache: ${TESTENV_CACHE:-$HOME/.cache/certboot-testenv}/helm-<version>/helm, next to the test beds.
# A second run prints the cached path at once. The first takes about 5 minutes of CPU on 2 cores;
# it needs `go` (the first on PATH, else /usr/local/go/bin/go) recent enough for Helm's go.mod.
set -euo pipefail

case "${1:-4}" in
  4) helm_version=v4.3.2 ;;
  3) helm_version=v3.21.4 ;;
  *) echo "usage: scripts/helm.sh [4|3]" >&2; exit 2 ;;
esac
helm_module="helm.sh/helm/${helm_version%%.*}"
cache="${TESTENV_CACHE:-$HOME/.cache/certboot-testenv}"
dir="$cache/helm-$helm_version"
bin="$dir/helm"

log() { echo "helm.sh: $*" >&2; }
die() { log "$*"; exit 1; }

said_version() { "$1" version --template '{{.Version}}' 2>/dev/null || true; }

if [ -x "$bin" ] && [ "$(said_version "$bin")" = "$helm_version" ]; then
  echo "$bin"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  [ -x /usr/local/go/bin/go ] || die "no Go toolchain: install Go (https://go.dev/dl/) or put it on PATH, then rerun"
  export PATH="/usr/local/go/bin:$PATH"
fi

mkdir -p "$dir"
# Build in a scratch GOBIN and move into place, so an interrupted build never leaves a half binary.
work="$(mktemp -d "$dir/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log "building helm $helm_version with $(go version) (about 5 minutes the first time)"
start=$SECONDS
# -mod=mod: `go install pkg@version` ignores any go.work/vendor around the caller. The -X sets what
# `helm version` says, as Helm's own Makefile does (a plain `go install` says only "v4.3").
GOFLAGS=-mod=mod GOBIN="$work" CGO_ENABLED=0 go install -trimpath \
  -ldflags "-s -w -X $helm_module/internal/version.version=$helm_version" \
  "$helm_module/cmd/helm@$helm_version" >&2 ||
  die "go install $helm_module/cmd/helm@$helm_version failed (see above); check that the Go module proxy is reachable (go env GOPROXY)"
mv -f "$work/helm" "$bin"
said="$(said_version "$bin")"
[ "$said" = "$helm_version" ] || die "$bin says version '$said', expected $helm_version"
log "built helm $helm_version in $((SECONDS - start)) s: $bin"
echo "$bin"
