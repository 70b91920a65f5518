//! `bench/run.sh` (or `cargo bench --bench pod_certificate` once the release binary exists): how
//! fast, small and frugal certboot is on the way to a pod certificate, measured against a real
//! etcd + kube-apiserver + kube-controller-manager (`KUBEBUILDER_ASSETS`, from
//! `scripts/testenv.sh`) on loopback; the scale scenario also on each control plane in
//! `CERTBOOT_BENCH_COMPARE_ASSETS` (colon-separated directories, e.g. the oldest version), side by
//! side in one table.
//!
//! It measures the shipped artefact, the release static binary
//! (`target/x86_64-unknown-linux-gnu/release/certboot`, built by `bench/run.sh` with
//! `scripts/build-static.sh`),
//! and prints one markdown report (also written to `target/bench/pod_certificate.md`):
//!
//! 1. certboot's own time per key algorithm, with the signer's time excluded: process spawn →
//!    the API server receiving the CSR create (audit `requestReceivedTimestamp`), and the signer's
//!    `PUT .../status` completing (audit `stageTimestamp`) → process exit (`waitpid` in a thread).
//!    All clocks are this machine's wall clock (`CLOCK_REALTIME`, microseconds).
//! 2. Peak RSS (`wait4` `ru_maxrss`) of three extra runs per series, started through a small
//!    helper process (see [`spawn::rss_helper`]).
//! 3. Key generation cost, in process (`certboot_core::pki::key::PrivateKey::generate`).
//! 4. Binary size (and whether it is static and stripped).
//! 5. N certboot processes at once, each as its own service account, so that every API request
//!    is counted per pod from the audit log; and the same at a slow signer (issue after 30 s),
//!    next to a naive client that polls with a GET every second. The API server runs at `--v=1`,
//!    so the watchers its watch cache closes for falling behind are counted from its log.
//!
//! Knobs (environment): `CERTBOOT_BENCH_BINARY`, `CERTBOOT_BENCH_RUNS` (30),
//! `CERTBOOT_BENCH_SLOW_RUNS` (10, RSA-3072/4096), `CERTBOOT_BENCH_SCALE` (200),
//! `CERTBOOT_BENCH_DELAYED` (20), `CERTBOOT_BENCH_DELAY_SECS` (30), `CERTBOOT_BENCH_SKIP`
//! (comma-separated: `keygen`, `overhead`, `scale`, `delayed`), `CERTBOOT_BENCH_COMPARE_ASSETS`
//! (more control planes for the scale scenario), `CERTBOOT_BENCH_LOG` (certboot's
//! `CERTBOOT_LOG` filter), `CERTBOOT_BENCH_KEEP` (keep certboot's logs and files).
//!
//! No timing is asserted: it reports. Every loop and wait is bounded, and every process it
//! started is killed on the way out.

#[path = "../../tests/harness/mod.rs"]
mod harness;
#[path = "../../tests/support/mod.rs"]
mod support;

mod audit;
mod keygen;
mod report;
mod scenarios;
mod settings;
mod spawn;

use std::path::Path;
use std::time::Duration;

use harness::{ControlPlane, ControlPlaneOptions, SignerBehaviour};
use keygen::keygen_bench;
use report::Report;
use scenarios::{compare_scale, setup_rbac, Bench};
use settings::Settings;
use spawn::{rss_helper, KillLeftovers, RSS_HELPER};

/// The namespace of the per-run overhead series (RBAC from `manifests/rbac.yaml`).
pub(crate) const NS: &str = "bench";
/// A signer that approves and issues at once (the harness's CustomSigner).
pub(crate) const INSTANT_SIGNER: &str = "example.com/bench-instant";
/// A signer that approves at once and issues after the configured delay.
pub(crate) const DELAYED_SIGNER: &str = "example.com/bench-delayed";
/// Runs discarded before each overhead series (page cache, first TLS session on the server).
pub(crate) const WARMUP_RUNS: usize = 2;
/// Extra runs per series, through [`rss_helper`], for the peak RSS.
pub(crate) const RSS_RUNS: usize = 3;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(RSS_HELPER) {
        rss_helper(&args[2..]);
    }
    let settings = Settings::from_env();
    let _reaper = KillLeftovers;
    let mut report = Report::default();
    report.machine(&settings);

    let binary = settings.binary.clone();
    if !binary.is_file() {
        eprintln!(
            "bench: {} not found. Build it first (bench/run.sh does):\n  \
             RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release --target x86_64-unknown-linux-gnu",
            binary.display()
        );
        std::process::exit(1);
    }
    report.binary(&binary);
    if !settings.skip("keygen") {
        report.keygen(&keygen_bench());
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let options = ControlPlaneOptions {
            apiserver_verbosity: 1,
            ..ControlPlaneOptions::default()
        };
        let Some(cp) = ControlPlane::start_with(options).await else {
            report.note("Control-plane figures skipped: KUBEBUILDER_ASSETS is not set.");
            return;
        };
        setup_rbac(&cp).await;
        let work = tempfile::Builder::new()
            .prefix("certboot-bench-")
            .tempdir()
            .expect("tempdir");
        let bench = Bench {
            cp: &cp,
            binary: &binary,
            work: work.path(),
            settings: &settings,
        };
        let _instant = cp.custom_signer(INSTANT_SIGNER, Duration::from_secs(3600));
        let _delayed = cp.custom_signer_with(
            DELAYED_SIGNER,
            Duration::from_secs(3600),
            SignerBehaviour::Delayed(settings.delay),
        );
        if !settings.skip("overhead") {
            report.overhead(&bench.overhead_series().await);
        }
        let mut scale = Vec::new();
        if !settings.skip("scale") {
            for events in [false, true] {
                scale.push(bench.certboot_scale(settings.scale, events).await);
            }
        }
        if !settings.skip("scale") {
            for assets in &settings.compare_assets {
                let results = compare_scale(assets, &binary, &settings).await;
                scale.extend(results);
            }
        }
        if !settings.skip("delayed") {
            scale.extend(bench.delayed_series().await);
        }
        if !scale.is_empty() {
            report.scale(&scale, &settings);
        }
        report.apiserver_version(&settings);
        if std::env::var_os("CERTBOOT_BENCH_KEEP").is_some() {
            eprintln!("bench: kept {}", work.keep().display());
        }
    });
    report.finish();
    let text = report.render();
    println!("{text}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench/pod_certificate.md");
    if std::fs::create_dir_all(out.parent().expect("parent")).is_ok()
        && std::fs::write(&out, &text).is_ok()
    {
        eprintln!("bench: report written to {}", out.display());
    }
}
