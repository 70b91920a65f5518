#!/usr/bin/env bash
# certboot's test bed: a real etcd + kube-apiserver + kube-controller-manager per Kubernetes
# version, built from source once and then cached, for the end-to-end tests and the benchmark.
#
#   scripts/testenv.sh [oldest|newest|all]      (default: newest)
#
# Prints, for each version asked for, one line: a directory holding `etcd`, `kube-apiserver`,
# `kube-controller-manager` and `kube-scheduler` (the layout controller-runtime's envtest expects
# in KUBEBUILDER_ASSETS, plus the scheduler for tests that run Deployments on the test node);
# `all` prints the oldest first, then the newest. Progress goes to stderr.
#
#   oldest  Kubernetes v1.20.2, built from Debian's `kubernetes` source package with Debian's
#           own Go (/usr/lib/go, 1.19), whatever other `go` is first on PATH; etcd from
#           Debian's etcd-server (3.4); plus kube-scheduler and the kubelet (for tests on a
#           real node). About 11-15 minutes on 2 cores.
#   newest  The Kubernetes release pinned in testenv/newest/go.mod (k8s.io/kubernetes from the
#           Go module proxy, each staging module replaced by the same release), etcd pinned
#           there too (go.etcd.io/etcd/server/v3), plus kube-scheduler and the kubelet. Needs the
#           Go release named by that go.mod's `go` line: the first `go` on PATH or
#           /usr/local/go/bin/go if recent enough, otherwise that toolchain is fetched through
#           the Go module proxy (golang.org/toolchain, what `go` itself does with GOTOOLCHAIN).
#           Also kubectl (about 1 minute more), for the `kubectl apply -k` install test.
#           About 25 minutes on 2 cores the first time (Go's build cache makes later rebuilds
#           quick).
#
# Cache: ${TESTENV_CACHE:-$HOME/.cache/certboot-testenv}/v<version>/. A cached version is reused
# as long as its binaries are there and (newest) testenv/newest/ is unchanged; a cache that lacks
# only some binaries (e.g. one made before kube-scheduler was added) gets only those built.
# Needs root for apt-get (Debian bookworm); nothing outside this repository.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${TESTENV_CACHE:-$HOME/.cache/certboot-testenv}"
oldest_version="$(cat "$repo/testenv/oldest/VERSION")"
newest_dir="$repo/testenv/newest"
newest_version="$(awk '$1 == "k8s.io/kubernetes" { sub(/^v/, "", $2); print $2; exit }' "$newest_dir/go.mod")"
# The Go release used when no suitable `go` is installed (must satisfy go.mod's `go` line).
newest_toolchain=go1.26.8

log() { echo "testenv: $*" >&2; }
die() { log "$*"; exit 1; }

# The Kubernetes binaries each version's directory holds (etcd comes separately).
kube_binaries=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
# The newest also holds kubectl (as envtest's assets do), for the `kubectl apply -k` install test
# on the node (tests/e2e_node_install.rs, 1.22+ only, so the oldest needs none).
newest_binaries=("${kube_binaries[@]}" kubectl)

# Whether directory $1 holds etcd and every binary named after it (default: kube_binaries).
have_all() {
  local dir="$1" b
  shift
  [ $# -gt 0 ] || set -- "${kube_binaries[@]}"
  for b in etcd "$@"; do [ -x "$dir/$b" ] || return 1; done
}

# The binaries named after directory $1 (default: kube_binaries) missing from it, space-separated.
missing_in() {
  local dir="$1" b out=()
  shift
  [ $# -gt 0 ] || set -- "${kube_binaries[@]}"
  for b in "$@"; do [ -x "$dir/$b" ] || out+=("$b"); done
  echo "${out[*]}"
}

# The API server must say the version the tests and the README name.
check_version() {
  local said
  said="$("$1/kube-apiserver" --version 2>&1 || true)"
  [ "$said" = "Kubernetes v$2" ] || die "$1/kube-apiserver --version says '$said', expected 'Kubernetes v$2'"
}

export DEBIAN_FRONTEND=noninteractive
apt_updated=
apt_update() {
  [ -n "$apt_updated" ] && return 0
  log "apt-get update"
  apt-get update -qq >&2
  apt_updated=1
}
apt_install() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  apt_update
  log "installing ${missing[*]}"
  apt-get install -y -qq "${missing[@]}" >&2
}

# ---- oldest: v1.20.2 from Debian's source package ----------------------------------------------

build_oldest() {
  local assets="$cache/v$oldest_version"
  if have_all "$assets"; then echo "$assets"; return 0; fi
  mkdir -p "$assets"
  apt_install etcd-server
  ln -sfn "$(command -v etcd)" "$assets/etcd"
  local missing
  missing="$(missing_in "$assets")"
  if [ -n "$missing" ]; then
    apt_install golang-go rsync dpkg-dev
    if ! apt-get source --print-uris kubernetes >/dev/null 2>&1; then
      local codename
      codename="$(. /etc/os-release && echo "$VERSION_CODENAME")"
      log "adding Debian source packages (deb-src) for $codename"
      printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$codename" >/etc/apt/sources.list.d/certboot-testenv-debsrc.sources
      apt_updated=
      apt_update
    fi
    local work tree start
    work="$(mktemp -d)"
    log "downloading Debian's kubernetes source package"
    (cd "$work" && apt-get source --download-only kubernetes >&2)
    tar -xzf "$work"/kubernetes_*.orig.tar.gz -C "$work"
    tree="$(find "$work" -maxdepth 1 -type d -name 'kubernetes-*' | head -1)"
    [ -f "$tree/cmd/kube-apiserver/apiserver.go" ] || die "unexpected source layout in $work"
    mkdir -p "$tree/.go/src/k8s.io"
    ln -sfn ../../.. "$tree/.go/src/k8s.io/kubernetes"
    # Debian's Go (1.19) whatever else is on PATH: v1.20's vendored code predates newer releases.
    local debian_go
    debian_go="$(readlink -f /usr/lib/go)/bin"
    [ -x "$debian_go/go" ] || die "Debian's Go is missing at /usr/lib/go (apt-get install golang-go)"
    local b what=()
    for b in $missing; do what+=("cmd/$b"); done
    log "building $missing v$oldest_version with $("$debian_go/go" version) (10-15 minutes for all four)"
    start=$SECONDS
    (cd "$tree" && env PATH="$debian_go:$PATH" GOTOOLCHAIN=local GOFLAGS= GOPATH="$tree/.go" \
      GOCACHE="$work/gocache" HOME="$work" CGO_ENABLED=0 \
      make WHAT="${what[*]}" GOLDFLAGS="-s -w" >&2)
    for b in $missing; do
      install -m 0755 "$tree/_output/local/bin/linux/amd64/$b" "$assets/$b"
    done
    log "built v$oldest_version in $((SECONDS - start)) s"
    rm -rf "$work"
    check_version "$assets" "$oldest_version"
  fi
  have_all "$assets" || die "build finished but binaries are missing in $assets"
  echo "$assets"
}

# ---- newest: from the Go module proxy through testenv/newest/ --------------------------------

# "1.26.0" → "1026000", for comparing Go versions.
go_number() { awk -F. '{ printf "%d%03d%03d\n", $1, $2, $3 }' <<<"${1#go}"; }

# A `go` command recent enough for testenv/newest/go.mod.
newest_go() {
  local need candidate have
  need="$(awk '$1 == "go" { print $2; exit }' "$newest_dir/go.mod")"
  for candidate in "$(command -v go || true)" /usr/local/go/bin/go; do
    [ -n "$candidate" ] && [ -x "$candidate" ] || continue
    have="$(GOTOOLCHAIN=local "$candidate" env GOVERSION 2>/dev/null || true)"
    have="${have%%[!0-9.go]*}"
    if [ -n "$have" ] && [ "$(go_number "$have")" -ge "$(go_number "$need")" ]; then
      echo "$candidate"
      return 0
    fi
  done
  # As `go` does for GOTOOLCHAIN: the toolchain is a module on the Go module proxy. Any Go can
  # download it (Debian's 1.19 included); module zips carry no file modes, hence the chmod.
  log "no Go >= $need found; fetching $newest_toolchain through the Go module proxy"
  apt_install golang-go ca-certificates
  local module="golang.org/toolchain@v0.0.1-$newest_toolchain.linux-amd64" dir
  # Outside any module: Go 1.19 cannot parse go.mod's three-part `go` line.
  dir="$(cd / && GO111MODULE=on GOFLAGS= /usr/lib/go/bin/go mod download -json "$module" |
    awk -F'"' '$2 == "Dir" { print $4 }')"
  [ -n "$dir" ] && [ -f "$dir/bin/go" ] || die "could not download $module"
  chmod -R u+w "$dir"
  chmod +x "$dir/bin/"* "$dir/pkg/tool/"*/*
  echo "$dir/bin/go"
}

build_newest() {
  local assets="$cache/v$newest_version" stamp
  stamp="$(cat "$newest_dir/go.mod" "$newest_dir/go.sum" "$newest_dir/tools.go" | sha256sum | cut -c1-16)"
  # What to build: everything when testenv/newest/ changed, else only the binaries missing.
  local missing b packages=()
  if [ -x "$assets/etcd" ] && [ "$(cat "$assets/.stamp" 2>/dev/null)" = "$stamp" ]; then
    missing="$(missing_in "$assets" "${newest_binaries[@]}")"
  else
    missing="etcd ${newest_binaries[*]}"
  fi
  if [ -z "$missing" ]; then
    echo "$assets"
    return 0
  fi
  for b in $missing; do
    if [ "$b" = etcd ]; then packages+=(go.etcd.io/etcd/server/v3); else packages+=("k8s.io/kubernetes/cmd/$b"); fi
  done
  apt_install ca-certificates
  local go minor work start
  go="$(newest_go)"
  minor="$(cut -d. -f2 <<<"$newest_version")"
  work="$(mktemp -d)"
  log "building $missing v$newest_version with $("$go" version) (about 25 minutes for all the first time)"
  start=$SECONDS
  # The version the binaries report (/version, --version): what `make` would stamp from git.
  local v=k8s.io/component-base/version
  local ldflags="-s -w -X $v.gitVersion=v$newest_version -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
  # Built in a scratch copy of testenv/newest/: kubectl needs modules (kustomize) the pinned
  # go.sum does not list, and -mod=mod adds their sums there, never to the repository (whose
  # files are the cache's stamp). Their versions are fixed by k8s.io/kubectl v0.<minor>'s go.mod.
  mkdir -p "$work/module"
  cp "$newest_dir/go.mod" "$newest_dir/go.sum" "$newest_dir/tools.go" "$work/module/"
  (cd "$work/module" && env GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 \
    "$go" build -trimpath -ldflags="$ldflags" -o "$work/" "${packages[@]}" >&2)
  mkdir -p "$assets"
  for b in $missing; do
    # go build names go.etcd.io/etcd/server/v3's binary after its last non-version element.
    if [ "$b" = etcd ]; then install -m 0755 "$work/server" "$assets/etcd"; else install -m 0755 "$work/$b" "$assets/$b"; fi
  done
  echo "$stamp" >"$assets/.stamp"
  rm -rf "$work"
  log "built v$newest_version in $((SECONDS - start)) s"
  check_version "$assets" "$newest_version"
  have_all "$assets" "${newest_binaries[@]}" || die "build finished but binaries are missing in $assets"
  echo "$assets"
}

case "${1:-newest}" in
  oldest) build_oldest ;;
  newest) build_newest ;;
  all) build_oldest; build_newest ;;
  versions) echo "oldest v$oldest_version"; echo "newest v$newest_version" ;;
  *) die "usage: scripts/testenv.sh [oldest|newest|all|versions]" ;;
esac
