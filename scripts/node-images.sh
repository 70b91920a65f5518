#!/usr/bin/env bash
# Container images for the test node (tests/harness/node/), built without a registry or a Docker
# engine: buildah (vfs storage, chroot isolation) builds each from scratch, and each is written as
# an OCI archive that the harness imports into its containerd (`ctr -n k8s.io images import`).
#
#   scripts/node-images.sh OUTDIR            builds OUTDIR/{pause,certboot,app,placeholder}.tar
#   scripts/node-images.sh containerfile     prints the certboot image's Containerfile
#
#   pause.tar     localhost/certboot-test/pause:1 (scripts/node/pause.c, static): the sandbox image
#   certboot.tar  ghcr.io/certboot/certboot:0.1.0: the Dockerfile's final stage, verbatim except
#                 that its two `COPY --from=builder` take the prebuilt static binaries
#                 ($CERTBOOT_STATIC_BIN and certboot-controller beside it, scripts/build-static.sh)
#                 instead of the builder stage's (tests/dockerfile.rs proves the derivation)
#   app.tar       docker.io/library/busybox:1.36: Debian's busybox-static (README's app image)
#   placeholder.tar  localhost/certboot-test/app:1: the same busybox, running `sleep` until
#                 stopped; replaces the examples' placeholder app image (registry.example.com/...)
#
# The tags are those in README.md and manifests/examples/, so the pod specs run unchanged: the
# kubelet finds each image present and pulls nothing. Needs root, buildah, busybox-static, gcc
# with a static libc (libc6-dev).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"

# The Dockerfile's last stage (from its last FROM), with the builder stage's binaries replaced
# by files of the build context.
containerfile() {
  awk '/^FROM /{ stage = "" } { stage = stage $0 "\n" } END { printf "%s", stage }' "$repo/Dockerfile" |
    sed 's|^COPY --from=builder /\([a-z-]*\) /|COPY \1 /|'
}

if [ "${1:-}" = containerfile ]; then containerfile; exit 0; fi
out="${1:?usage: scripts/node-images.sh OUTDIR | containerfile}"
bin="${CERTBOOT_STATIC_BIN:?set CERTBOOT_STATIC_BIN (scripts/build-static.sh | head -1)}"
[ -x "$bin" ] && [ -x "$(dirname "$bin")/certboot-controller" ] ||
  { echo "node-images: $bin or certboot-controller beside it is missing" >&2; exit 1; }
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/certboot-node-images.XXXXXX")"
trap 'rm -rf "$work"' EXIT
buildah=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)

build() { # build NAME CONTEXT TAG
  local name="$1" context="$2" tag="$3"
  "${buildah[@]}" bud --quiet --isolation chroot --layers=false -t "$tag" "$context" >/dev/null
  rm -f "$work/$name.tar"
  "${buildah[@]}" push --quiet "$tag" "oci-archive:$work/$name.tar:$tag" >/dev/null
  mv "$work/$name.tar" "$out/$name.tar"
}

mkdir -p "$work/pause" "$work/certboot" "$work/app"
gcc -Os -static -s -o "$work/pause/pause" "$repo/scripts/node/pause.c"
printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$work/pause/Containerfile"
build pause "$work/pause" localhost/certboot-test/pause:1

install -m 0755 "$bin" "$work/certboot/certboot"
install -m 0755 "$(dirname "$bin")/certboot-controller" "$work/certboot/certboot-controller"
containerfile >"$work/certboot/Containerfile"
build certboot "$work/certboot" ghcr.io/certboot/certboot:0.1.0

install -m 0755 "$(command -v busybox)" "$work/app/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nENTRYPOINT ["/bin/sh"]\n' >"$work/app/Containerfile"
build app "$work/app" docker.io/library/busybox:1.36
printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nENTRYPOINT ["/bin/sleep", "2147483647"]\n' >"$work/app/Containerfile"
build placeholder "$work/app" localhost/certboot-test/app:1
echo "$out"
