#!/usr/bin/env bash
# Fuzzes certboot's parser of status.certificate (certboot_core::pki::verify::verify_chain) and its strict
# reader of spec.request (certboot_core::pki::csr_der, certboot_controller::approver::requested), each for a bounded
# time: fuzz/fuzz_targets/{verify_chain,request}.rs, seeded from fuzz/seeds/<target>.
# Only stable Rust is installed: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly-only flags,
# and `-s none` skips AddressSanitizer (needs nightly's -Zsanitizer; Rust code here is safe
# anyway, and panics/aborts are what we look for). A crash fails CI; the input is saved under
# fuzz/artifacts/<target>/ (reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run -s none <target> <file>).
# FUZZ_SECONDS overrides the duration (default 60).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-60}"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
for target in verify_chain request; do
  mkdir -p "corpus/$target"
  RUSTC_BOOTSTRAP=1 cargo fuzz run -s none "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 2>&1 | grep -Ev '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)'
done
