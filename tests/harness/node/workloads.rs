//! Deployments on the node (with [`super::workload_cluster`]): the node's taints, creating a
//! Deployment, and waiting until it is available with its pods on the node.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node as NodeObject, Pod};
use kube::api::{Api, ListParams, PostParams};
use serde_json::Value;

use super::Node;

const POLL: Duration = Duration::from_millis(200);

impl Node {
    /// Waits until the Node has no `NoSchedule`/`NoExecute` taint (the kubelet registers it with
    /// `node.kubernetes.io/not-ready`; the nodelifecycle controller lifts that once it is Ready).
    pub async fn wait_schedulable(&self, deadline: Duration) {
        let nodes = Api::<NodeObject>::all(self.client.clone());
        let start = Instant::now();
        loop {
            let node = nodes.get_opt(self.name()).await.ok().flatten();
            let taints: Vec<String> = node
                .as_ref()
                .and_then(|n| n.spec.as_ref())
                .and_then(|s| s.taints.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|t| t.effect != "PreferNoSchedule")
                .map(|t| format!("{}:{}", t.key, t.effect))
                .collect();
            if node.is_some() && taints.is_empty() {
                return;
            }
            if start.elapsed() > deadline {
                panic!(
                    "node {} still not schedulable after {deadline:?} (taints: {taints:?}; \
                     kube-controller-manager's nodelifecycle controller lifts not-ready once the \
                     Node is Ready)\n{}",
                    self.name(),
                    self.log_tails()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Creates `deployment` (JSON, any images the node has) in `namespace` as the admin.
    pub async fn create_deployment(&self, namespace: &str, deployment: Value) -> Deployment {
        let deployment: Deployment = serde_json::from_value(deployment).expect("a Deployment");
        Api::<Deployment>::namespaced(self.client.clone(), namespace)
            .create(&PostParams::default(), &deployment)
            .await
            .unwrap_or_else(|e| panic!("create Deployment in {namespace}: {e}"))
    }

    /// Waits until Deployment `namespace/name` reports `replicas` available replicas of its
    /// current revision, and returns its pods (label selector of the Deployment), each checked
    /// to run on this node. Panics after `deadline` with the Deployment's status, its pods'
    /// phases and the node's log tails.
    pub async fn wait_for_deployment(
        &self,
        namespace: &str,
        name: &str,
        replicas: i32,
        deadline: Duration,
    ) -> Vec<Pod> {
        let deployments = Api::<Deployment>::namespaced(self.client.clone(), namespace);
        let start = Instant::now();
        loop {
            let deployment = deployments.get_opt(name).await.ok().flatten();
            let status = deployment.as_ref().and_then(|d| d.status.clone());
            let pods = match &deployment {
                Some(d) => self.pods_of(namespace, d).await,
                None => Vec::new(),
            };
            let done = status.as_ref().is_some_and(|s| {
                s.available_replicas == Some(replicas)
                    && s.updated_replicas == Some(replicas)
                    && s.replicas == Some(replicas)
            });
            let running = pods
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count();
            if done && running == replicas as usize {
                for pod in &pods {
                    let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
                    assert_eq!(
                        node,
                        Some(self.name()),
                        "pod {:?} scheduled onto this node",
                        pod.metadata.name
                    );
                }
                return pods;
            }
            if start.elapsed() > deadline {
                let phases: Vec<String> = pods
                    .iter()
                    .map(|p| {
                        format!(
                            "{}: {}",
                            p.metadata.name.as_deref().unwrap_or("?"),
                            serde_json::to_string(&p.status).unwrap_or_default()
                        )
                    })
                    .collect();
                panic!(
                    "timed out after {deadline:?} waiting for Deployment {namespace}/{name} to \
                     have {replicas} available replicas; status: {}\npods:\n{}\n{}",
                    serde_json::to_string_pretty(&status).unwrap_or_default(),
                    phases.join("\n"),
                    self.log_tails()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The pods matching a Deployment's `matchLabels` selector, with a deletion not started.
    pub async fn pods_of(&self, namespace: &str, deployment: &Deployment) -> Vec<Pod> {
        let selector = deployment
            .spec
            .selector
            .match_labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        Api::<Pod>::namespaced(self.client.clone(), namespace)
            .list(&ListParams::default().labels(&selector))
            .await
            .map(|list| list.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect()
    }
}
