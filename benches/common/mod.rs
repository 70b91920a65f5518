//! What the approver and signer benches share: the burst of pods with bound tokens and their
//! certboot processes, the figures read from the audit log and `/proc`, and the report file.

#![allow(dead_code)] // each bench uses a different part

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::approver_rig::{Rig, CERTBOOT_SA};
use crate::support::Certboot;

/// `CERTBOOT_BENCH_SCALE`, 200 unless set.
pub fn scale() -> usize {
    std::env::var("CERTBOOT_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// N pods (IPs published), each with a token bound to it, and a certboot run for each
/// (`CERTBOOT_BENCH_CERTBOOT` picks the binary).
pub async fn certboot_runs(rig: &Rig, n: usize, signer: &str) -> Vec<Certboot> {
    eprintln!("bench: creating {n} pods with bound tokens");
    let mut runs = Vec::new();
    for i in 0..n {
        let ip = format!("10.1.{}.{}", i / 250, i % 250 + 1);
        let pod = rig
            .pod(&format!("web-{i}"), CERTBOOT_SA, &[("app", "web")], &[&ip])
            .await;
        let kubeconfig = rig.bound_kubeconfig(&pod).await;
        let mut certboot = rig
            .certboot(&pod, &kubeconfig, signer)
            .env("CERTBOOT_EVENTS", "false")
            .env("CERTBOOT_TIMEOUT", "300s");
        if let Ok(binary) = std::env::var("CERTBOOT_BENCH_CERTBOOT") {
            certboot = certboot.binary(&binary);
        }
        runs.push(certboot);
    }
    runs
}

/// Starts every run at once and waits for all: (failed runs, first spawn → last exit).
pub async fn burst(runs: &[Certboot]) -> (usize, Duration) {
    eprintln!("bench: starting {} certboot processes at once", runs.len());
    let started = Instant::now();
    let running: Vec<_> = runs.iter().map(|c| c.spawn()).collect();
    let mut failed = 0;
    for run in running {
        if run.finish(Duration::from_secs(300)).await.code() != 0 {
            failed += 1;
        }
    }
    (failed, started.elapsed())
}

/// Prints the report and writes it to `target/bench/<file>`.
pub fn publish(report: &str, file: &str) {
    println!("{report}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(out.join(file), report);
}

pub fn micros(event: &Value, field: &str) -> Option<i64> {
    let text = event[field].as_str()?;
    let ts: k8s_openapi::jiff::Timestamp = text.parse().ok()?;
    Some(ts.as_microsecond())
}

pub fn p50_p95_max(values: &[f64]) -> String {
    if values.is_empty() {
        return "-".into();
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let q = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
    format!(
        "{:.0} ms / {:.0} ms / {:.0} ms",
        q(0.5),
        q(0.95),
        sorted[sorted.len() - 1]
    )
}

/// (VmHWM in KiB, user + system CPU seconds) of a live process.
pub fn proc_figures(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After the command: state is field 3; utime and stime are fields 14 and 15.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i))
        .filter_map(|v| v.parse::<f64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (hwm, ticks / hz)
}

/// (RssAnon, RssFile) in KiB of a live process now: its heap and stacks, and the pages of its
/// binary (code) it touched. A debug build's RssFile is several times a release build's.
pub fn rss_split(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("RssAnon:"), field("RssFile:"))
}

pub fn apiserver_version(rig: &Rig) -> String {
    // kube-controller-manager's user agent says v0.0.0 when built from the Go module: the API
    // server's own version, as the harness read it.
    format!("Kubernetes {}", rig.cp.version())
}

/// Milliseconds from `from` to `to` (audit microseconds), per name present in both.
pub fn between(from: &BTreeMap<String, i64>, to: &BTreeMap<String, i64>) -> Vec<f64> {
    to.iter()
        .filter_map(|(name, at)| from.get(name).map(|f| (*at - *f) as f64 / 1000.0))
        .collect()
}
