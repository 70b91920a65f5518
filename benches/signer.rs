//! `cargo bench --bench signer`: the signer under a burst, against a real control plane
//! (`KUBEBUILDER_ASSETS`). N Pod objects (IPs published), each with a token bound to it, N certboot
//! processes at once, and one `certboot-controller` running the approver and the signer (from an
//! ECDSA P-256 intermediate CA) — nothing else signs.
//!
//! Reports: CSRs issued, signing throughput (CSRs issued / time from the first approval to the
//! last certificate written), approved → issued p50/p95/max (audit `stageTimestamp` of the
//! `/approval` update and of the `/status` update carrying the certificate), created → issued
//! p50/p95, and the controller process's peak RSS (`VmHWM`; approver and signer together) and
//! CPU seconds. No timing is asserted.
//!
//! Knobs: `CERTBOOT_BENCH_SCALE` (200), `CERTBOOT_BENCH_CONTROLLER` and
//! `CERTBOOT_BENCH_CERTBOOT` (binaries to measure, e.g. the static release builds; default: this
//! profile's builds), `CERTBOOT_BENCH_HOSTILE` (set: before the controller starts, anyone who may
//! create CSRs and Services has created [`HOSTILE_CSRS`] CSRs of this signer with 0.75 MB requests
//! and [`HOSTILE_SERVICES`] Services of 2 KB in the pods' namespace; the peak RSS is then also
//! reported once the controller's caches are filled, before the burst).

#[path = "../tests/approver_rig/mod.rs"]
mod approver_rig;
#[path = "common/mod.rs"]
mod common;
#[path = "../tests/harness/mod.rs"]
mod harness;
#[path = "../tests/hostile_load/mod.rs"]
mod hostile_load;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use approver_rig::{Rig, APP_NS, CONTROLLER_SA, SYSTEM_NS};
use common::{apiserver_version, between, micros, p50_p95_max, proc_figures};
use serde_json::Value;

const SIGNER: &str = "certboot.io/serving";
/// `CERTBOOT_BENCH_HOSTILE`: how many CSRs of [`HOSTILE_REQUEST_BYTES`], and Services of
/// [`HOSTILE_SERVICE_BYTES`].
const HOSTILE_CSRS: usize = 40;
const HOSTILE_REQUEST_BYTES: usize = 750_000;
const HOSTILE_SERVICES: usize = 10_000;
const HOSTILE_SERVICE_BYTES: usize = 2_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}

/// An ECDSA P-256 root and intermediate as the CA Secret mounts them.
fn write_ca(dir: &std::path::Path) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_params = |cn: &str| {
        let mut p = CertificateParams::new(vec![]).expect("params");
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p
    };
    let root_key = KeyPair::generate().expect("root key");
    let root_params = ca_params("bench root");
    let root = root_params.self_signed(&root_key).expect("root");
    let root_issuer = Issuer::new(root_params, root_key);
    let key = KeyPair::generate().expect("key");
    let intermediate = ca_params("bench intermediate")
        .signed_by(&key, &root_issuer)
        .expect("intermediate");
    std::fs::create_dir_all(dir).expect("ca dir");
    std::fs::write(dir.join("tls.crt"), intermediate.pem()).expect("tls.crt");
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).expect("tls.key");
    std::fs::write(dir.join("ca.crt"), root.pem()).expect("ca.crt");
}

async fn bench() {
    let n = common::scale();
    let Some(rig) = Rig::start(&[SIGNER]).await else {
        eprintln!("bench: KUBEBUILDER_ASSETS is not set; nothing measured");
        return;
    };
    let ca_dir = rig.tmp.path().join("ca");
    write_ca(&ca_dir);
    let runs = common::certboot_runs(&rig, n, SIGNER).await;
    let hostile = std::env::var_os("CERTBOOT_BENCH_HOSTILE").is_some();
    if hostile {
        eprintln!("bench: creating {HOSTILE_CSRS} CSRs of {HOSTILE_REQUEST_BYTES} bytes and {HOSTILE_SERVICES} Services of {HOSTILE_SERVICE_BYTES} bytes");
        let admin = rig.cp.admin_client();
        let request = hostile_load::big_request(HOSTILE_REQUEST_BYTES);
        hostile_load::create_csrs(&admin, SIGNER, "hostile", HOSTILE_CSRS, &request).await;
        hostile_load::create_services(&admin, APP_NS, HOSTILE_SERVICES, HOSTILE_SERVICE_BYTES)
            .await;
    }
    let ca = ca_dir.display().to_string();
    let env = [
        ("CERTBOOT_SIGNER_NAMES", SIGNER),
        ("CERTBOOT_SIGNER_CA_DIR", ca.as_str()),
        ("CERTBOOT_TRUST_NAMESPACES", APP_NS),
    ];
    let mut controller = match std::env::var("CERTBOOT_BENCH_CONTROLLER") {
        Ok(binary) => rig.controller_binary_with(&binary, "signer-bench", &env),
        Err(_) => rig.controller_with("signer-bench", &env),
    };
    controller
        .wait_for_log("approving CSRs of signer", Duration::from_secs(180))
        .await;
    let started_rss = if hostile {
        Some(settle_hostile(&controller).await)
    } else {
        None
    };

    let (failed, wall) = common::burst(&runs).await;
    let (rss_kib, cpu_seconds) = proc_figures(controller.pid());
    let (anon_kib, file_kib) = common::rss_split(controller.pid());
    let user = format!("system:serviceaccount:{SYSTEM_NS}:{CONTROLLER_SA}");
    // The audit log records a request after its response: wait (bounded) until every write is in.
    let deadline = Instant::now() + Duration::from_secs(30);
    let times = loop {
        let times = stage_times(&rig.cp.audit_events(), &user);
        if times.issued.len() >= n - failed || Instant::now() > deadline {
            break times;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let approved_to_issued = between(&times.approved, &times.issued);
    let created_to_issued = between(&times.created, &times.issued);
    let first_approved = times.approved.values().min().copied().unwrap_or(0);
    let last_issued = times.issued.values().max().copied().unwrap_or(0);
    let span = (last_issued - first_approved) as f64 / 1e6;
    let throughput = if span > 0.0 {
        times.issued.len() as f64 / span
    } else {
        0.0
    };

    let mut report = String::new();
    let load = if hostile {
        format!(", after {HOSTILE_CSRS} CSRs of 0.75 MB and {HOSTILE_SERVICES} Services of 2 KB")
    } else {
        String::new()
    };
    report.push_str(&format!(
        "## Signer, {n} pods at once{load} ({})\n\n",
        apiserver_version(&rig)
    ));
    report.push_str("| Figure | Result |\n|---|---|\n");
    report.push_str(&format!("| issued | {}/{n} |\n", n - failed));
    report.push_str(&format!(
        "| wall time, first spawn → last exit | {:.2} s |\n",
        wall.as_secs_f64()
    ));
    report.push_str(&format!(
        "| signing throughput (issued / first approval → last certificate, {span:.2} s) | {throughput:.0} CSRs/s |\n"
    ));
    report.push_str(&format!(
        "| approved → issued, p50 / p95 / max | {} |\n",
        p50_p95_max(&approved_to_issued)
    ));
    report.push_str(&format!(
        "| created → issued, p50 / p95 / max | {} |\n",
        p50_p95_max(&created_to_issued)
    ));
    report.push_str(&format!(
        "| certboot-controller (approver + signer) peak RSS (VmHWM) | {:.1} MiB |\n",
        rss_kib as f64 / 1024.0
    ));
    report.push_str(&format!(
        "| certboot-controller RSS at the end: heap (RssAnon) / binary pages (RssFile) | {:.1} MiB / {:.1} MiB |\n",
        anon_kib as f64 / 1024.0,
        file_kib as f64 / 1024.0
    ));
    if let Some(kib) = started_rss {
        report.push_str(&format!(
            "| certboot-controller peak RSS once its caches are filled and the hostile CSRs denied, before the burst | {:.1} MiB |\n",
            kib as f64 / 1024.0
        ));
    }
    report.push_str(&format!(
        "| certboot-controller CPU time (user + system), whole run | {cpu_seconds:.2} s |\n"
    ));
    common::publish(&report, "signer.md");
    drop(controller);
}

/// Waits (bounded) until the controller has logged a decision on every hostile CSR, then reads
/// its peak RSS so far.
async fn settle_hostile(controller: &approver_rig::Controller) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let log = controller.log();
        let decided = (0..HOSTILE_CSRS)
            .filter(|i| {
                let name = format!("CSR hostile-{i}:");
                log.contains(&format!("denied {name}")) || log.contains(&format!("failed {name}"))
            })
            .count();
        if decided == HOSTILE_CSRS {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("bench: {decided}/{HOSTILE_CSRS} hostile CSRs decided after 300 s");
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    proc_figures(controller.pid()).0
}

/// Per CSR of the app namespace, the audit `stageTimestamp` (µs) of its create, its approval and
/// the controller's `/status` write.
#[derive(Default)]
struct StageTimes {
    created: BTreeMap<String, i64>,
    approved: BTreeMap<String, i64>,
    issued: BTreeMap<String, i64>,
}

fn stage_times(events: &[Value], controller: &str) -> StageTimes {
    let mut times = StageTimes::default();
    for e in events.iter().filter(|e| {
        e["stage"] == "ResponseComplete"
            && e["objectRef"]["resource"] == "certificatesigningrequests"
            && e["responseStatus"]["code"].as_i64().unwrap_or(0) < 300
    }) {
        let name = e["objectRef"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !name.starts_with(&format!("{APP_NS}:")) {
            continue;
        }
        let Some(at) = micros(e, "stageTimestamp") else {
            continue;
        };
        let by_controller = e["user"]["username"] == controller;
        match (e["verb"].as_str(), e["objectRef"]["subresource"].as_str()) {
            (Some("create"), None) => {
                times.created.insert(name, at);
            }
            (Some("update"), Some("approval")) => {
                times.approved.insert(name, at);
            }
            (Some("update"), Some("status")) if by_controller => {
                times.issued.insert(name, at);
            }
            _ => {}
        }
    }
    times
}
