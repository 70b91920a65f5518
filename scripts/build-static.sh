#!/usr/bin/env bash
# Builds certboot and certboot-controller as fully static x86_64 Linux executables (glibc,
# +crt-static; musl is not needed) and prints certboot's path and size. Each is built alone (-p):
# cargo unifies a dependency's features over the packages of one build, so certboot built with the
# controller would link kube's runtime feature, which only the controller uses. The Dockerfile runs
# the same build commands, and tests/dockerfile.rs checks that both stay equal; CI exports
# CERTBOOT_STATIC_BIN from the first line of this script's output.
#
# Usage: scripts/build-static.sh            (prints: <path>\n<bytes> bytes (<MiB> MiB))
# Other architectures: TARGET=aarch64-unknown-linux-gnu scripts/build-static.sh (needs that
# target's std, `rustup target add aarch64-unknown-linux-gnu`, and a cross linker, e.g.
# CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${TARGET:-x86_64-unknown-linux-gnu}"

# The build commands (keep in sync with the Dockerfile; tests/dockerfile.rs compares them).
# -z pack-relative-relocs (binutils 2.38+, glibc 2.36+): static-pie keeps ASLR but needs its
# ~15,000 relative relocations at start-up; packed as DT_RELR they take 4 KiB instead of 344 KiB.
RUSTFLAGS="-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs" cargo build --release --target "$target" -p certboot >&2
RUSTFLAGS="-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs" cargo build --release --target "$target" -p certboot-controller >&2

binary="target/$target/release/certboot"
bytes="$(stat -c %s "$binary")"
echo "$PWD/$binary"
awk -v b="$bytes" 'BEGIN { printf "%d bytes (%.2f MiB)\n", b, b / 1048576 }'
