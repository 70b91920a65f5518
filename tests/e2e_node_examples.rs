//! The example workloads of manifests/examples/ on a real node (tests/harness/node/): the pod
//! their Deployment would create, bound to the node, with the placeholder app image replaced by
//! busybox running `sleep`. The classic sidecar runs on every version; the native sidecar (1.29+)
//! is held back by its `certboot check` startupProbe until the pair is on disk, and its reload
//! signal reaches the app through a shared process namespace.

mod harness;
mod support;

use std::time::Duration;

use harness::node::pods::{is_ready, manifest_documents, pod_from_template, uid};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde_json::{json, Value};

const NS: &str = "default";
const POD_DEADLINE: Duration = Duration::from_secs(120);

fn workload(relative: &str) -> Value {
    manifest_documents(relative)
        .into_iter()
        .find(|doc| doc["kind"] == "Deployment")
        .expect("the example has a Deployment")
}

fn find_status<'a>(pod: &'a Pod, container: &str) -> Option<&'a ContainerStatus> {
    let status = pod.status.as_ref()?;
    status
        .container_statuses
        .iter()
        .chain(status.init_container_statuses.iter())
        .flatten()
        .find(|s| s.name == container)
}

fn status<'a>(pod: &'a Pod, container: &str) -> &'a ContainerStatus {
    find_status(pod, container).unwrap_or_else(|| panic!("no status for container {container}"))
}

fn running(pod: &Pod, container: &str) -> bool {
    find_status(pod, container)
        .and_then(|s| s.state.as_ref())
        .is_some_and(|s| s.running.is_some())
}

#[tokio::test]
async fn classic_sidecar_example_runs_with_its_renewing_container() {
    let Some((cp, node)) = harness::node::cluster_with_rbac(NS).await else {
        return;
    };
    let _signer = cp.custom_signer("example.com/worker", Duration::from_secs(3600));
    let pod = pod_from_template(&workload("examples/classic-sidecar.yaml"), "worker-0");
    node.create_pod(NS, node.bind(pod)).await;
    let pod = node
        .wait_for_pod(NS, "worker-0", "Ready", POD_DEADLINE, is_ready)
        .await;
    support::read_pair(&node.empty_dir(&uid(&pod), "certs"));
    assert!(running(&pod, "certboot-renew"), "the renewing sidecar runs");
    assert!(running(&pod, "app"), "the app runs");
}

#[tokio::test]
async fn native_sidecar_example_holds_the_app_until_the_pair_is_there_and_signals_reloads() {
    if harness::version::skip_unless(
        29,
        "a native sidecar (init container restartPolicy: Always)",
    ) {
        return;
    }
    let Some((cp, node)) = harness::node::cluster_with_rbac(NS).await else {
        return;
    };
    // 60-second certificates, so that a renewal comes within the test; certboot accepts them
    // with CERTBOOT_MIN_LIFETIME lowered (a test signer's lifetime, see README).
    let _signer = cp.custom_signer_with(
        "example.com/api",
        Duration::from_secs(60),
        harness::SignerBehaviour::Delayed(Duration::from_secs(3)),
    );
    let mut template = pod_from_template(&workload("examples/native-sidecar.yaml"), "api-0");
    // The example's commented-out reload settings, switched on as its comment says.
    template["spec"]["shareProcessNamespace"] = json!(true);
    let env = template["spec"]["initContainers"][0]["env"]
        .as_array_mut()
        .expect("certboot's env");
    env.extend([
        json!({"name": "CERTBOOT_RELOAD_SIGNAL", "value": "SIGHUP"}),
        json!({"name": "CERTBOOT_RELOAD_PROCESS", "value": "sleep"}),
        json!({"name": "CERTBOOT_MIN_LIFETIME", "value": "30s"}),
        json!({"name": "CERTBOOT_RENEW_BEFORE", "value": "45s"}),
    ]);
    node.create_pod(NS, node.bind(template)).await;

    // The signer waits 3 s before issuing: meanwhile the startupProbe (`certboot check`) fails
    // and the app must not start.
    let pending = node
        .wait_for_pod(
            NS,
            "api-0",
            "certboot's sidecar running",
            POD_DEADLINE,
            |pod| running(pod, "certboot"),
        )
        .await;
    if !support::entries(&node.empty_dir(&uid(&pending), "certs")).contains(&"cert.pem".to_owned())
    {
        assert!(
            !running(&pending, "app"),
            "the app started before the pair was written"
        );
    }
    let pod = node
        .wait_for_pod(NS, "api-0", "Ready", POD_DEADLINE, is_ready)
        .await;
    support::read_pair(&node.empty_dir(&uid(&pod), "certs"));
    assert!(running(&pod, "certboot"), "the sidecar keeps running");
    assert_eq!(status(&pod, "certboot").started, Some(true));

    // The renewal (15 s after issuance, give or take jitter) sends SIGHUP to `sleep`, the app's
    // process; busybox's sleep dies of it (exit 129) and the kubelet restarts the app.
    let pod = node
        .wait_for_pod(
            NS,
            "api-0",
            "the app to get SIGHUP after a renewal",
            POD_DEADLINE,
            |pod| {
                find_status(pod, "app")
                    .and_then(|s| s.last_state.as_ref())
                    .and_then(|s| s.terminated.as_ref())
                    .is_some()
            },
        )
        .await;
    let app = status(&pod, "app");
    let terminated = app
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("terminated");
    assert_eq!(
        terminated.exit_code, 129,
        "the app ended by SIGHUP (128 + 1): {terminated:?}"
    );
    assert!(running(&pod, "certboot"), "the sidecar keeps running");
}
