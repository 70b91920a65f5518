#!/usr/bin/env bash
# Fuzzes certboot's parser of status.certificate (certboot::pki::verify::verify_chain) for a bounded
# time: fuzz/fuzz_targets/verify_chain.rs, seeded from fuzz/seeds/verify_chain.
# Only stable Rust is installed: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly-only flags,
# and `-s none` skips AddressSanitizer (needs nightly's -Zsanitizer; Rust code here is safe
# anyway, and panics/aborts are what we look for). A crash fails CI; the input is saved under
# fuzz/artifacts/verify_chain/ (reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run -s none verify_chain <file>).
# FUZZ_SECONDS overrides the duration (default 60).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-60}"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
mkdir -p corpus/verify_chain
RUSTC_BOOTSTRAP=1 cargo fuzz run -s none verify_chain corpus/verify_chain seeds/verify_chain -- \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 2>&1 | grep -Ev '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)'
