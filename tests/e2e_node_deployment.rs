//! The test bed runs Deployments (the harness's smoke test for
//! [`harness::node::workload_cluster`]): kube-scheduler places a Deployment's pods onto the test
//! node, kube-controller-manager's Deployment and ReplicaSet controllers create them, and the
//! service-account controllers give them their `default` account (and, on v1.20, its token
//! Secret). Both Kubernetes versions.

mod harness;

use std::time::Duration;

use harness::node::images::APP_IMAGE;

const NS: &str = "smoke";

#[tokio::test]
async fn a_deployment_of_two_busybox_replicas_is_scheduled_onto_the_node_and_becomes_available() {
    let Some((cp, node)) = harness::node::workload_cluster().await else {
        return;
    };
    cp.create_namespace(NS).await;
    let deployment = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "sleeper"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "sleeper"}},
            "template": {
                "metadata": {"labels": {"app": "sleeper"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "sleep",
                        "image": APP_IMAGE,
                        "command": ["sleep", "3600"]
                    }]
                }
            }
        }
    });
    node.create_deployment(NS, deployment).await;
    let pods = node
        .wait_for_deployment(NS, "sleeper", 2, Duration::from_secs(120))
        .await;
    assert_eq!(pods.len(), 2, "two pods, each Running on the test node");
}
