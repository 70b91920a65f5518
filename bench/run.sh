#!/usr/bin/env bash
# certboot's benchmark in one command: builds the release static binary (the shipped artefact),
# then measures it against a real etcd + kube-apiserver + kube-controller-manager on loopback and
# prints a markdown report (also written to target/bench/pod_certificate.md).
#
#   bench/run.sh
#
# Knobs (environment, see benches/pod_certificate/main.rs): CERTBOOT_BENCH_RUNS (30),
# CERTBOOT_BENCH_SLOW_RUNS (10), CERTBOOT_BENCH_SCALE (200), CERTBOOT_BENCH_DELAYED (20),
# CERTBOOT_BENCH_DELAY_SECS (30), CERTBOOT_BENCH_SKIP (keygen,overhead,scale,delayed),
# CERTBOOT_BENCH_COMPARE_ASSETS (default: the oldest control plane; empty: none).
set -euo pipefail
cd "$(dirname "$0")/.."

# The control planes (built once by scripts/testenv.sh, then cached): every scenario on the
# newest Kubernetes, and the 200-pod scale scenario also on the oldest, side by side.
if [ -z "${KUBEBUILDER_ASSETS:-}" ]; then
  KUBEBUILDER_ASSETS="$(scripts/testenv.sh newest)"
  export KUBEBUILDER_ASSETS
fi
if [ -z "${CERTBOOT_BENCH_COMPARE_ASSETS+set}" ]; then
  CERTBOOT_BENCH_COMPARE_ASSETS="$(scripts/testenv.sh oldest)"
  export CERTBOOT_BENCH_COMPARE_ASSETS
fi

# The shipped binary: scripts/build-static.sh, the Dockerfile's build command.
CERTBOOT_BENCH_BINARY="$(scripts/build-static.sh | sed -n 1p)"
export CERTBOOT_BENCH_BINARY

# The bench program itself (profile.bench: the release opt-level, no LTO); it starts the control plane.
cargo bench --bench pod_certificate

# The approver under a 200-pod burst, with the shipped static builds of both binaries
# (benches/approver.rs; report in target/bench/approver.md).
release_dir="$(dirname "$CERTBOOT_BENCH_BINARY")"
CERTBOOT_BENCH_CERTBOOT="$CERTBOOT_BENCH_BINARY" CERTBOOT_BENCH_CONTROLLER="$release_dir/certboot-controller" \
  cargo bench --bench approver

# The signer (approver + signer in one certboot-controller) under the same burst
# (benches/signer.rs; report in target/bench/signer.md).
CERTBOOT_BENCH_CERTBOOT="$CERTBOOT_BENCH_BINARY" CERTBOOT_BENCH_CONTROLLER="$release_dir/certboot-controller" \
  cargo bench --bench signer
