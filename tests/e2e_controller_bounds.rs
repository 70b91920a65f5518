//! End-to-end: what anyone who may create CSRs can make `certboot-controller` do with what it
//! holds and where it writes. A request too large to cache is denied saying its size (the cache
//! never holds it; `cargo bench --bench signer` with `CERTBOOT_BENCH_HOSTILE` measures the
//! memory), and an Event goes only to a pod the approver fetched, never to the namespace a CSR's
//! name claims.

mod approver_rig;
mod harness;
mod hostile_load;
mod support;

use std::time::Duration;

use approver_rig::{condition, Rig, APP_NS, CERTBOOT_SA};
use harness::SignerBehaviour;
use k8s_openapi::api::events::v1::Event;
use kube::api::Api;

const SERVING: &str = "certboot.io/serving";
const DECIDE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_request_too_large_to_cache_is_denied_saying_its_size() {
    let Some(rig) = Rig::start(&[SERVING]).await else {
        return;
    };
    let mut controller = rig.controller("bounds");
    controller
        .wait_for_log("approving CSRs of signer", DECIDE)
        .await;
    let request = hostile_load::big_request(750_000);
    hostile_load::create_csrs(&rig.cp.admin_client(), SERVING, "hostile-big", 1, &request).await;
    let csr = rig
        .wait_for_condition("hostile-big-0", "Denied", DECIDE)
        .await;
    let (reason, message) = condition(&csr, "Denied");
    assert_eq!(reason, "RequestTooLarge", "{message}");
    assert!(
        message.contains(&format!("{} bytes", request.len())),
        "the denial names the request's size: {message}"
    );
}

#[tokio::test]
async fn an_event_goes_only_to_a_fetched_pod_never_to_the_namespace_a_csr_name_claims() {
    let Some(rig) = Rig::start(&[SERVING]).await else {
        return;
    };
    let _signer = rig.cp.custom_signer_with(
        SERVING,
        Duration::from_secs(3600),
        SignerBehaviour::IssueWhenApproved,
    );
    rig.cp.create_namespace("victim").await;
    let mut controller = rig.controller("events");
    controller
        .wait_for_log("approving CSRs of signer", DECIDE)
        .await;

    // Not from a pod (the admin files it), named for pod db-0 in namespace "victim": denied
    // before any pod is read.
    let request = hostile_load::big_request(1);
    hostile_load::create_csrs(
        &rig.cp.admin_client(),
        SERVING,
        "victim:db-0:abcdef",
        1,
        &request,
    )
    .await;
    let csr = rig
        .wait_for_condition("victim:db-0:abcdef-0", "Denied", DECIDE)
        .await;
    let (reason, _) = condition(&csr, "Denied");
    assert_eq!(reason, "RequesterNotServiceAccount");

    // Then a pod's own CSR: its Event on the pod shows the approver has posted what it had to.
    let pod = rig
        .pod("web-0", CERTBOOT_SA, &[("app", "web")], &["10.0.2.1"])
        .await;
    let kubeconfig = rig.bound_kubeconfig(&pod).await;
    let run = rig.certboot(&pod, &kubeconfig, SERVING).spawn();
    let events: Api<Event> = Api::namespaced(rig.cp.admin_client(), APP_NS);
    harness::poll_until(DECIDE, "a CSRApproved Event on pod web-0", || {
        let events = events.clone();
        async move {
            let list = events.list(&Default::default()).await.ok()?;
            list.items.into_iter().find(|e| {
                e.reason.as_deref() == Some("CSRApproved")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("web-0")
            })
        }
    })
    .await;
    assert_eq!(run.finish(DECIDE).await.code(), 0);

    let victim: Api<Event> = Api::namespaced(rig.cp.admin_client(), "victim");
    let posted = victim.list(&Default::default()).await.expect("list Events");
    assert!(
        posted.items.is_empty(),
        "Events in namespace victim: {:?}",
        posted
            .items
            .iter()
            .map(|e| (&e.reason, &e.note))
            .collect::<Vec<_>>()
    );
}
