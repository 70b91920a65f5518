#!/usr/bin/env bash
# certboot's benchmark in one command: builds the release static binary (the shipped artefact),
# then measures it against a real etcd + kube-apiserver + kube-controller-manager on loopback and
# prints a markdown report (also written to target/bench/pod_certificate.md).
#
#   bench/run.sh
#
# Knobs (environment, see benches/pod_certificate.rs): CERTBOOT_BENCH_RUNS (30),
# CERTBOOT_BENCH_SLOW_RUNS (10), CERTBOOT_BENCH_SCALE (200), CERTBOOT_BENCH_DELAYED (20),
# CERTBOOT_BENCH_DELAY_SECS (30), CERTBOOT_BENCH_SKIP (keygen,overhead,scale,delayed).
set -euo pipefail
cd "$(dirname "$0")/.."

# The control plane (built once by ../shared/testenv/setup.sh, then cached).
if [ -z "${KUBEBUILDER_ASSETS:-}" ]; then
  KUBEBUILDER_ASSETS="$(../shared/testenv/setup.sh)"
  export KUBEBUILDER_ASSETS
fi

# The shipped binary: exactly the release build of the Dockerfile / static build.
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --target x86_64-unknown-linux-gnu
export CERTBOOT_BENCH_BINARY="$PWD/target/x86_64-unknown-linux-gnu/release/certboot"

# The bench program itself (profile.bench: opt-level 3, no LTO); it starts the control plane.
cargo bench --bench pod_certificate
