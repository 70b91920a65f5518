//! `cargo bench --bench approver`: the approver under a burst, against a real control plane
//! (`KUBEBUILDER_ASSETS`). N Pod objects (IPs published), each with a token bound to it, N certboot
//! processes at once, one `certboot-controller`, and the harness signer (issues once approved).
//!
//! Reports: wall time (first spawn → last exit), CSR created → approved p50/p95 (audit
//! `stageTimestamp` of the create and of the `/approval` update), the approver's API requests
//! per CSR (and its fixed ones: watches, Lease), its peak RSS (`VmHWM`) and CPU seconds
//! (`/proc/<pid>/stat`). No timing is asserted.
//!
//! Knobs: `CERTBOOT_BENCH_SCALE` (200), `CERTBOOT_BENCH_CONTROLLER` (the controller binary to
//! measure, e.g. the static release build; default: this profile's build),
//! `CERTBOOT_BENCH_CERTBOOT` (likewise for certboot).

#[path = "../tests/approver_rig/mod.rs"]
mod approver_rig;
#[path = "common/mod.rs"]
mod common;
#[path = "../tests/harness/mod.rs"]
mod harness;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use approver_rig::{Rig, APP_NS, CONTROLLER_SA, SYSTEM_NS};
use common::{apiserver_version, micros, p50_p95_max, proc_figures};
use harness::SignerBehaviour;
use serde_json::Value;

const SIGNER: &str = "certboot.io/serving";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let n = common::scale();
    let Some(rig) = Rig::start(&[SIGNER]).await else {
        eprintln!("bench: KUBEBUILDER_ASSETS is not set; nothing measured");
        return;
    };
    let _signer = rig.cp.custom_signer_with(
        SIGNER,
        Duration::from_secs(3600),
        SignerBehaviour::IssueWhenApproved,
    );
    let runs = common::certboot_runs(&rig, n, SIGNER).await;
    let controller = match std::env::var("CERTBOOT_BENCH_CONTROLLER") {
        Ok(binary) => rig.controller_binary(&binary, "approver-bench"),
        Err(_) => rig.controller("approver-bench"),
    };
    let mut controller = controller;
    controller
        .wait_for_log("approving CSRs of signer", Duration::from_secs(30))
        .await;
    let base_requests = rig.cp.count_requests_by(&format!(
        "system:serviceaccount:{SYSTEM_NS}:{CONTROLLER_SA}"
    ));

    let (failed, wall) = common::burst(&runs).await;
    let (rss_kib, cpu_seconds) = proc_figures(controller.pid());

    let requests = rig.cp.requests_by(&format!(
        "system:serviceaccount:{SYSTEM_NS}:{CONTROLLER_SA}"
    ));
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for r in &requests {
        *by_kind.entry(kind(r)).or_default() += 1;
    }
    let per_csr: usize = by_kind
        .iter()
        .filter(|(k, _)| per_csr_kind(k))
        .map(|(_, v)| *v)
        .sum();
    let latencies = created_to_approved(&rig.cp.audit_events());
    let mut report = String::new();
    report.push_str(&format!(
        "## Approver, {n} pods at once ({})\n\n",
        apiserver_version(&rig)
    ));
    report.push_str("| Figure | Result | Goal |\n|---|---|---|\n");
    report.push_str(&format!("| issued | {}/{n} | all |\n", n - failed));
    report.push_str(&format!(
        "| wall time, first spawn → last exit | {:.2} s | |\n",
        wall.as_secs_f64()
    ));
    report.push_str(&format!(
        "| CSR created → approved, p50 / p95 / max | {} | |\n",
        p50_p95_max(&latencies)
    ));
    report.push_str(&format!(
        "| approver API requests per CSR (get pod, /approval, event) | {:.2} | ≤ 3: {} |\n",
        per_csr as f64 / n as f64,
        if per_csr as f64 / n as f64 <= 3.0 {
            "met"
        } else {
            "NOT met"
        }
    ));
    report.push_str(&format!(
        "| approver requests not tied to a CSR (start-up before the burst: {base_requests}) | {} | |\n",
        requests.len() - per_csr
    ));
    report.push_str(&format!(
        "| approver peak RSS (VmHWM) | {:.1} MiB | < 30 MiB: {} |\n",
        rss_kib as f64 / 1024.0,
        if rss_kib < 30 * 1024 {
            "met"
        } else {
            "NOT met"
        }
    ));
    let (anon_kib, file_kib) = common::rss_split(controller.pid());
    report.push_str(&format!(
        "| approver RSS at the end: heap (RssAnon) / binary pages (RssFile) | {:.1} MiB / {:.1} MiB | |\n",
        anon_kib as f64 / 1024.0,
        file_kib as f64 / 1024.0
    ));
    report.push_str(&format!(
        "| approver CPU time (user + system), whole run | {cpu_seconds:.2} s | |\n"
    ));
    report.push_str("\nApprover requests by kind:\n\n");
    for (k, v) in &by_kind {
        report.push_str(&format!("- {k}: {v}\n"));
    }
    common::publish(&report, "approver.md");
    drop(controller);
}

/// "verb resource[/subresource]" of an audit event.
fn kind(event: &Value) -> String {
    let r = &event["objectRef"];
    let resource = r["resource"].as_str().unwrap_or("?");
    match r["subresource"].as_str() {
        Some(sub) => format!("{} {resource}/{sub}", event["verb"].as_str().unwrap_or("?")),
        None => format!("{} {resource}", event["verb"].as_str().unwrap_or("?")),
    }
}

fn per_csr_kind(kind: &str) -> bool {
    matches!(
        kind,
        "get pods"
            | "update certificatesigningrequests/approval"
            | "get certificatesigningrequests"
            | "create events"
            | "patch events"
    )
}

/// Per CSR of the app namespace: create completed → approval update completed, in ms.
fn created_to_approved(events: &[Value]) -> Vec<f64> {
    let mut created: BTreeMap<String, i64> = BTreeMap::new();
    let mut approved: BTreeMap<String, i64> = BTreeMap::new();
    for e in events.iter().filter(|e| {
        e["stage"] == "ResponseComplete"
            && e["objectRef"]["resource"] == "certificatesigningrequests"
    }) {
        let name = e["objectRef"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !name.starts_with(&format!("{APP_NS}:"))
            || e["responseStatus"]["code"].as_i64().unwrap_or(0) >= 300
        {
            continue;
        }
        let Some(at) = micros(e, "stageTimestamp") else {
            continue;
        };
        match (e["verb"].as_str(), e["objectRef"]["subresource"].as_str()) {
            (Some("create"), None) => {
                created.insert(name, at);
            }
            (Some("update"), Some("approval")) => {
                approved.insert(name, at);
            }
            _ => {}
        }
    }
    approved
        .iter()
        .filter_map(|(name, at)| created.get(name).map(|c| (*at - *c) as f64 / 1000.0))
        .collect()
}
