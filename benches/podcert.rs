//! `cargo bench --bench podcert`: the PodCertificateRequest signer under a burst, and certboot's
//! CSR signer beside kube-controller-manager's, against a real control plane of 1.37+
//! (`KUBEBUILDER_ASSETS`).
//!
//! 1. N pods bound to a node, then N PCRs at once as their kubelet files them (a stub request
//!    from a fresh P-256 key each); one `certboot-controller` (approver, signer, PCR signer).
//!    Reports: PCRs issued, throughput (issued / first create → last issue), created → issued
//!    p50/p95/max (audit `stageTimestamp` of the create and of the controller's `/status` write).
//! 2. The same run: N CSRs of `kubernetes.io/kube-apiserver-client` (kube-controller-manager
//!    signs them) and N of a signer certboot signs, created and approved by the admin,
//!    interleaved. Reports approved → issued p50/p95/max for each signer.
//!
//! No timing is asserted. Knobs: `CERTBOOT_BENCH_SCALE` (200), `CERTBOOT_BENCH_CONTROLLER` (the
//! binary to measure, e.g. a release build; default: this profile's build).

#[path = "../tests/approver_rig/mod.rs"]
mod approver_rig;
#[path = "common/mod.rs"]
mod common;
#[path = "../tests/harness/mod.rs"]
mod harness;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use approver_rig::{Rig, APP_NS, CONTROLLER_SA, SYSTEM_NS};
use common::{apiserver_version, between, micros, p50_p95_max, proc_figures};
use k8s_openapi::api::certificates::v1::{CertificateSigningRequest, PodCertificateRequest};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use serde_json::Value;

const SIGNER: &str = "certboot.io/serving";
/// Signed by certboot, approved by hand (the approver does not serve it).
const BY_HAND: &str = "certboot.io/bench";
const KCM_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
const NODE: &str = "bench-node";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let n = common::scale();
    if harness::version::skip_unless(37, "PodCertificateRequest") {
        return;
    }
    let policy = approver_rig::podcert::policy(SIGNER);
    let Some(rig) = Rig::start_with_policy(&[SIGNER, BY_HAND], &policy.to_string()).await else {
        eprintln!("bench: KUBEBUILDER_ASSETS is not set; nothing measured");
        return;
    };
    let ca_dir = rig.tmp.path().join("ca");
    approver_rig::ca::write_ca(&ca_dir);
    let ca = ca_dir.display().to_string();
    let names = format!("{SIGNER},{BY_HAND}");
    let env = [
        ("CERTBOOT_SIGNER_NAMES", names.as_str()),
        ("CERTBOOT_SIGNER_CA_DIR", ca.as_str()),
    ];
    let mut controller = match std::env::var("CERTBOOT_BENCH_CONTROLLER") {
        Ok(binary) => rig.controller_binary_with(&binary, "podcert-bench", &env),
        Err(_) => rig.controller_with("podcert-bench", &env),
    };
    controller
        .wait_for_log(
            "signing PodCertificateRequests of signer",
            Duration::from_secs(180),
        )
        .await;

    eprintln!("bench: creating {n} pods and {n} stub requests");
    let mut stubs = Vec::new();
    for i in 0..n {
        let pod = approver_rig::podcert::pod_on_node(&rig, &format!("web-{i}"), NODE).await;
        stubs.push((pod, approver_rig::podcert::stub().1));
    }
    let api: Api<PodCertificateRequest> = Api::namespaced(rig.cp.admin_client(), APP_NS);
    let started = Instant::now();
    let creates = stubs.into_iter().enumerate().map(|(i, (pod, der))| {
        let api = api.clone();
        async move {
            api.create(&PostParams::default(), &pcr(&format!("pcr-{i}"), &pod, der))
                .await
                .expect("create PCR");
        }
    });
    futures::future::join_all(creates).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    let issued = loop {
        let list = api.list(&ListParams::default()).await.expect("list PCRs");
        let issued = list
            .items
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.certificate_chain.as_ref())
                    .is_some()
            })
            .count();
        if issued == n || Instant::now() > deadline {
            break issued;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let wall = started.elapsed();
    let (rss_kib, cpu_seconds) = proc_figures(controller.pid());

    let (csr_names, kcm_names) = side_by_side(&rig, n).await;
    let user = format!("system:serviceaccount:{SYSTEM_NS}:{CONTROLLER_SA}");
    // The audit log records a request after its response: wait (bounded) until it is complete.
    let deadline = Instant::now() + Duration::from_secs(30);
    let events = loop {
        let events = rig.cp.audit_events();
        let times = csr_times(&events, &kcm_names);
        if times.1.len() >= n || Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (created, written) = pcr_times(&events, &user);
    let created_to_issued = between(&created, &written);
    let first = created.values().min().copied().unwrap_or(0);
    let last = written.values().max().copied().unwrap_or(0);
    let span = (last - first) as f64 / 1e6;
    let throughput = if span > 0.0 {
        written.len() as f64 / span
    } else {
        0.0
    };
    let (ours_approved, ours_issued) = csr_times(&events, &csr_names);
    let (kcm_approved, kcm_issued) = csr_times(&events, &kcm_names);

    let mut report = format!(
        "## PodCertificateRequest signer, {n} PCRs at once ({})\n\n| Figure | Result |\n|---|---|\n",
        apiserver_version(&rig)
    );
    report.push_str(&format!("| issued | {issued}/{n} |\n"));
    report.push_str(&format!(
        "| wall time, first create → all issued (listed every 100 ms) | {:.2} s |\n",
        wall.as_secs_f64()
    ));
    report.push_str(&format!(
        "| throughput (issued / first create → last certificate, {span:.2} s) | {throughput:.0} PCRs/s |\n"
    ));
    report.push_str(&format!(
        "| created → issued, p50 / p95 / max | {} |\n",
        p50_p95_max(&created_to_issued)
    ));
    report.push_str(&format!(
        "| certboot-controller peak RSS (VmHWM) / CPU time, whole run | {:.1} MiB / {cpu_seconds:.2} s |\n\n",
        rss_kib as f64 / 1024.0
    ));
    report.push_str(&format!(
        "## CSR signers side by side, {n} CSRs each, created and approved interleaved\n\n| Signer | approved → issued, p50 / p95 / max |\n|---|---|\n"
    ));
    report.push_str(&format!(
        "| certboot-controller ({BY_HAND}) | {} |\n",
        p50_p95_max(&between(&ours_approved, &ours_issued))
    ));
    report.push_str(&format!(
        "| kube-controller-manager ({KCM_SIGNER}) | {} |\n",
        p50_p95_max(&between(&kcm_approved, &kcm_issued))
    ));
    common::publish(&report, "podcert.md");
    drop(controller);
}

fn pcr(name: &str, pod: &Pod, stub: Vec<u8>) -> PodCertificateRequest {
    PodCertificateRequest {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: approver_rig::podcert::spec(pod, SIGNER, stub),
        status: None,
    }
}

/// N CSRs for certboot's signer and N for kube-controller-manager's, created, then approved,
/// interleaved; returns their names.
async fn side_by_side(rig: &Rig, n: usize) -> (Vec<String>, Vec<String>) {
    let admin = rig.cp.admin_client();
    let api: Api<CertificateSigningRequest> = Api::all(admin.clone());
    let (mut ours, mut kcm) = (Vec::new(), Vec::new());
    for i in 0..n {
        for (signer, list) in [(BY_HAND, &mut ours), (KCM_SIGNER, &mut kcm)] {
            let name = format!("{}-{i}", signer.replace('/', "-"));
            let (_key, csr) = harness::new_key_and_csr(&format!("bench-{i}"), &[]);
            let object =
                harness::csr_object(&name, &csr, signer, &["digital signature", "client auth"]);
            api.create(&PostParams::default(), &object)
                .await
                .expect("create CSR");
            list.push(name);
        }
    }
    eprintln!("bench: approving {n} + {n} CSRs, interleaved");
    for (a, b) in ours.iter().zip(&kcm) {
        for name in [a, b] {
            harness::csr::approve_csr(&admin, name, "Bench", "approved by the bench").await;
        }
    }
    (ours, kcm)
}

/// Per PCR of the app namespace: the audit `stageTimestamp` (µs) of its create, and of the
/// controller's `/status` write.
fn pcr_times(events: &[Value], controller: &str) -> (BTreeMap<String, i64>, BTreeMap<String, i64>) {
    let (mut created, mut written) = (BTreeMap::new(), BTreeMap::new());
    for e in successful(events, "podcertificaterequests") {
        let name = e["objectRef"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let Some(at) = micros(e, "stageTimestamp") else {
            continue;
        };
        match (e["verb"].as_str(), e["objectRef"]["subresource"].as_str()) {
            (Some("create"), None) => {
                created.insert(name, at);
            }
            (Some("update"), Some("status")) if e["user"]["username"] == controller => {
                written.insert(name, at);
            }
            _ => {}
        }
    }
    (created, written)
}

/// Per CSR of `names`: when it was approved and when its certificate was written (by anyone).
fn csr_times(events: &[Value], names: &[String]) -> (BTreeMap<String, i64>, BTreeMap<String, i64>) {
    let (mut approved, mut issued) = (BTreeMap::new(), BTreeMap::new());
    for e in successful(events, "certificatesigningrequests") {
        let name = e["objectRef"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !names.contains(&name) {
            continue;
        }
        let Some(at) = micros(e, "stageTimestamp") else {
            continue;
        };
        match (e["verb"].as_str(), e["objectRef"]["subresource"].as_str()) {
            (Some("update"), Some("approval")) => {
                approved.insert(name, at);
            }
            (Some("update"), Some("status")) => {
                issued.insert(name, at);
            }
            _ => {}
        }
    }
    (approved, issued)
}

fn successful<'e>(events: &'e [Value], resource: &'e str) -> impl Iterator<Item = &'e Value> {
    events.iter().filter(move |e| {
        e["stage"] == "ResponseComplete"
            && e["objectRef"]["resource"] == resource
            && e["responseStatus"]["code"].as_i64().unwrap_or(0) < 300
    })
}
