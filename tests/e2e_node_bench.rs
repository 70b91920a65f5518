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

mod harness;

use std::time::{Duration, Instant};

use harness::node::pods::{is_ready, readme_pod};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::Value;

const NS: &str = "default";

#[tokio::test]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn pod_start_with_and_without_certboot() {
    let Some((cp, node)) = harness::node::cluster().await else {
        return;
    };
    cp.apply_manifest_file(
        concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/rbac.yaml"),
        NS,
    )
    .await;
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

    let api = Api::<Pod>::namespaced(cp.admin_client(), NS);
    let (mut with_times, mut without_times) = (Vec::new(), Vec::new());
    // One warm-up pod each (image unpacking, first connections), then alternate.
    for round in 0..=pods {
        for (label, spec, times) in [
            ("with", &with, &mut with_times),
            ("without", &without, &mut without_times),
        ] {
            let name = format!("web-{label}-{round}");
            let elapsed = start_pod(&node, &api, spec, &name).await;
            if round > 0 {
                times.push(elapsed);
            }
        }
    }
    let (with_p50, with_p95) = percentiles(&mut with_times);
    let (without_p50, without_p95) = percentiles(&mut without_times);
    println!(
        "node bench, Kubernetes {}, {pods} pods each: create -> Ready\n\
         with certboot    p50 {with_p50:>6.0?}  p95 {with_p95:>6.0?}\n\
         without          p50 {without_p50:>6.0?}  p95 {without_p95:>6.0?}\n\
         added by certboot: p50 {:>6.0?}  p95 {:>6.0?}",
        node.version(),
        with_p50.saturating_sub(without_p50),
        with_p95.saturating_sub(without_p95),
    );
}

async fn start_pod(
    node: &harness::node::Node,
    api: &Api<Pod>,
    spec: &Value,
    name: &str,
) -> Duration {
    let mut pod = node.bind(spec.clone());
    pod["metadata"]["name"] = Value::from(name);
    let start = Instant::now();
    node.create_pod(NS, pod).await;
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

/// (p50, p95) by nearest rank.
fn percentiles(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort();
    let rank = |p: f64| times[((p * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
    (rank(0.50), rank(0.95))
}
