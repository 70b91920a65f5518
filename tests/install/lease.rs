//! The controller's Lease (`certboot-controller` in the release namespace): who leads.

use std::time::Instant;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;

use super::{DEADLINE, POLL};

/// The Lease's name (chart value `leaderElection.leaseName`, the kustomize base's).
pub const NAME: &str = "certboot-controller";

/// Waits until the Lease in `namespace` names one of `pods` as its holder; returns that pod.
pub async fn wait_for_holder(client: &kube::Client, namespace: &str, pods: &[String]) -> String {
    let leases = Api::<Lease>::namespaced(client.clone(), namespace);
    let start = Instant::now();
    loop {
        let holder = holder(&leases).await;
        if let Some(holder) = holder.as_ref().filter(|h| pods.contains(h)) {
            return holder.clone();
        }
        assert!(
            start.elapsed() < DEADLINE,
            "Lease {namespace}/{NAME}: holder {holder:?} is not one of the controller pods \
             {pods:?} after {DEADLINE:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The Lease's holder now, if any.
pub async fn current_holder(client: &kube::Client, namespace: &str) -> Option<String> {
    holder(&Api::<Lease>::namespaced(client.clone(), namespace)).await
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt(NAME)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}
