//! Benchmark, not a test (ignored by default; prints figures, asserts no timing): what certboot's
//! init container adds to a pod's start on a real node (tests/harness/node/). README.md's pod
//! spec, as is, against the same pod without its init container; the signer (the harness's
//! in-process CustomSigner for `example.com/my-signer`) approves and issues at once. Each sample
//! is the time from the pod's create request to the first poll (every 10 ms) that sees it Ready.
//!
//!   KUBEBUILDER_ASSETS=... CERTBOOT_STATIC_BIN=... \
//!     cargo test --test e2e_node_bench -- --ignored --nocapture
//!
//! CERTBOOT_NODE_BENCH_PODS sets the pods per variant (default 20). Figures: docs/performance.md.
//!
//! On Kubernetes 1.37+ also the `podCertificate` volume with certboot-controller as its signer
//! (run on the host, as in tests/e2e_node_podcert.rs) against the same pod without that volume.

mod approver_rig;
mod harness;
mod support;

use std::time::{Duration, Instant};

use harness::node::pods::{is_ready, pod_certificate_pod, readme_pod};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::Value;

const NS: &str = "default";

#[tokio::test]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn pod_start_with_and_without_certboot() {
    let Some((cp, node)) = harness::node::cluster_with_rbac(NS).await else {
        return;
    };
    let _signer = cp.custom_signer("example.com/my-signer", Duration::from_secs(3600));
    let pods: usize = std::env::var("CERTBOOT_NODE_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let with = readme_pod();
    let mut without = readme_pod();
    without["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("initContainers");
    // The kubelet's own cost of any init container: the same pod with one that exits at once.
    let mut noop = readme_pod();
    noop["spec"]["initContainers"] = serde_json::json!([{
        "name": "noop", "image": "docker.io/library/busybox:1.36", "command": ["true"]
    }]);

    let api = Api::<Pod>::namespaced(cp.admin_client(), NS);
    let (mut with_times, mut without_times, mut noop_times) = (Vec::new(), Vec::new(), Vec::new());
    let mut certboot_runs = Vec::new();
    // One warm-up pod each (image unpacking, first connections), then alternate.
    for round in 0..=pods {
        for (label, spec, times) in [
            ("with", &with, &mut with_times),
            ("without", &without, &mut without_times),
            ("noop", &noop, &mut noop_times),
        ] {
            let name = format!("web-{label}-{round}");
            let elapsed = start_pod(&node, &api, NS, spec, &name).await;
            if round > 0 {
                times.push(elapsed);
                if label == "with" {
                    let pod = api.get(&name).await.expect("get pod");
                    certboot_runs.extend(log_span(&node.container_log(&pod, "certboot")));
                }
            }
        }
    }
    let [with, without, noop, run] =
        [with_times, without_times, noop_times, certboot_runs].map(|mut t| percentiles(&mut t));
    let ms = |d: Duration| d.as_millis();
    println!(
        "node bench, Kubernetes {}, {pods} pods each: create -> Ready (ms)\n\
         with certboot (README pod)   p50 {:>5}  p95 {:>5}\n\
         without init container       p50 {:>5}  p95 {:>5}\n\
         with a no-op init container  p50 {:>5}  p95 {:>5}\n\
         certboot's own run (first to last log line)  p50 {:>5}  p95 {:>5}\n\
         added by certboot vs none: p50 {:>5}  p95 {:>5}\n\
         added by certboot vs no-op init: p50 {:>5}  p95 {:>5}",
        node.version(),
        ms(with.0),
        ms(with.1),
        ms(without.0),
        ms(without.1),
        ms(noop.0),
        ms(noop.1),
        ms(run.0),
        ms(run.1),
        ms(with.0.saturating_sub(without.0)),
        ms(with.1.saturating_sub(without.1)),
        ms(with.0.saturating_sub(noop.0)),
        ms(with.1.saturating_sub(noop.1)),
    );
}

#[tokio::test]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn pod_start_with_and_without_a_pod_certificate_volume() {
    const SIGNER: &str = "certboot.io/serving";
    let Some((rig, node, _controller)) =
        approver_rig::podcert::node_with_signer(SIGNER, "the podCertificate volume").await
    else {
        return;
    };
    let pods: usize = std::env::var("CERTBOOT_NODE_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let with = pod_certificate_pod("web", SIGNER, "ECDSAP256");
    let mut without = with.clone();
    without["spec"]["volumes"]
        .as_array_mut()
        .expect("volumes")
        .retain(|v| v["name"] != "tls");
    without["spec"]["containers"][0]["volumeMounts"]
        .as_array_mut()
        .expect("mounts")
        .retain(|m| m["name"] != "tls");
    let api = Api::<Pod>::namespaced(rig.cp.admin_client(), approver_rig::APP_NS);
    let (mut with_times, mut without_times) = (Vec::new(), Vec::new());
    for round in 0..=pods {
        for (label, spec, times) in [
            ("with", &with, &mut with_times),
            ("without", &without, &mut without_times),
        ] {
            let name = format!("pc-{label}-{round}");
            let elapsed = start_pod(&node, &api, approver_rig::APP_NS, spec, &name).await;
            if round > 0 {
                times.push(elapsed);
            }
        }
    }
    let [with, without] = [with_times, without_times].map(|mut t| percentiles(&mut t));
    let ms = |d: Duration| d.as_millis();
    println!(
        "node bench, Kubernetes {}, {pods} pods each: create -> Ready (ms)\n\
         with a podCertificate volume (certboot-controller signs)  p50 {:>5}  p95 {:>5}\n\
         the same pod without it                                    p50 {:>5}  p95 {:>5}\n\
         added by the volume: p50 {:>5}  p95 {:>5}",
        node.version(),
        ms(with.0),
        ms(with.1),
        ms(without.0),
        ms(without.1),
        ms(with.0.saturating_sub(without.0)),
        ms(with.1.saturating_sub(without.1)),
    );
}

/// The time between the first and the last line of a CRI log (`<RFC 3339 nanos> <stream> ...`).
fn log_span(log: &str) -> Option<Duration> {
    let nanos = |line: &str| -> Option<u128> {
        let stamp = line.split(' ').next()?; // 2026-11-24T08:16:48.923216888Z
        let (date_time, fraction) = stamp.trim_end_matches('Z').split_once('.')?;
        let time = date_time.split('T').nth(1)?;
        let mut seconds = 0u128;
        for part in time.split(':') {
            seconds = seconds * 60 + part.parse::<u128>().ok()?;
        }
        let fraction = format!("{fraction:0<9}");
        Some(seconds * 1_000_000_000 + fraction[..9].parse::<u128>().ok()?)
    };
    let lines: Vec<&str> = log.lines().filter(|l| !l.is_empty()).collect();
    let first = nanos(lines.first()?)?;
    let last = nanos(lines.last()?)?;
    Some(Duration::from_nanos(last.checked_sub(first)? as u64))
}

async fn start_pod(
    node: &harness::node::Node,
    api: &Api<Pod>,
    namespace: &str,
    spec: &Value,
    name: &str,
) -> Duration {
    let mut pod = node.bind(spec.clone());
    pod["metadata"]["name"] = Value::from(name);
    let start = Instant::now();
    node.create_pod(namespace, pod).await;
    let deadline = Duration::from_secs(120);
    loop {
        if api
            .get_opt(name)
            .await
            .ok()
            .flatten()
            .is_some_and(|p| is_ready(&p))
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < deadline,
            "pod {name} not Ready after {deadline:?}\n{}",
            node.log_tails()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// (p50, p95) by nearest rank (zero when there are no samples).
fn percentiles(times: &mut [Duration]) -> (Duration, Duration) {
    if times.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    times.sort();
    let rank = |p: f64| times[((p * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
    (rank(0.50), rank(0.95))
}
