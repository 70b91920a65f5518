//! End-to-end: what a user sees while certboot works — Events on the pod (`kubectl describe pod`),
//! the termination message, and JSON logs — against a real control plane.

mod harness;
mod support;

use std::time::Duration;

use harness::{ControlPlane, CsrSelector, SignerBehaviour};
use k8s_openapi::api::core::v1::Event;
use kube::api::ListParams;
use kube::Api;
use support::Certboot;

const NS: &str = "default";
const SIGNER: &str = "example.com/web";

/// The pod's events as `kubectl describe pod` lists them: (reason, count, message).
async fn pod_events(cp: &ControlPlane, pod: &str) -> Vec<(String, i32, String)> {
    let params = ListParams::default().fields(&format!("involvedObject.name={pod}"));
    Api::<Event>::namespaced(cp.admin_client(), NS)
        .list(&params)
        .await
        .expect("list events")
        .items
        .into_iter()
        .map(|e| {
            (
                e.reason.unwrap_or_default(),
                e.count.unwrap_or_default(),
                e.message.unwrap_or_default(),
            )
        })
        .collect()
}

async fn wait_for_event(cp: &ControlPlane, pod: &str, reason: &str) -> Vec<(String, i32, String)> {
    harness::poll_until(
        Duration::from_secs(20),
        &format!("event {reason} on pod {pod}"),
        || async {
            let events = pod_events(cp, pod).await;
            events.iter().any(|(r, _, _)| r == reason).then_some(events)
        },
    )
    .await
}

#[tokio::test]
async fn events_tell_the_story_without_flooding() {
    let Some((cp, kubeconfig, tmp)) = harness::with_certboot_rbac(NS).await else {
        return;
    };
    let signer = cp.custom_signer_with(
        SIGNER,
        Duration::from_secs(3600),
        SignerBehaviour::IssueWhenApproved,
    );
    let certboot = Certboot::new(&kubeconfig, &tmp.path().join("certs"), NS, "events-0")
        .env("CERTBOOT_SIGNER_NAME", SIGNER)
        .env("CERTBOOT_PROGRESS_INTERVAL", "1s");
    let mut run = certboot.spawn();
    let name = certboot.csr_name();
    cp.wait_for_csr(CsrSelector::Name(&name), Duration::from_secs(20))
        .await;
    // Several progress ticks pass while nobody approves...
    run.wait_for_log("pending 3s", Duration::from_secs(20))
        .await;
    let events = wait_for_event(&cp, "events-0", "WaitingForApproval").await;
    let waiting: Vec<_> = events
        .iter()
        .filter(|(r, _, _)| r == "WaitingForApproval")
        .collect();
    assert_eq!(
        waiting.len(),
        1,
        "one aggregated waiting event, not one per tick: {events:?}"
    );
    assert!(
        waiting[0].2.contains(&name) && waiting[0].2.contains(SIGNER),
        "{waiting:?}"
    );
    let requested = events
        .iter()
        .find(|(r, _, _)| r == "CertificateRequested")
        .expect("CertificateRequested event");
    assert!(
        requested.2.contains(&name) && requested.2.contains(SIGNER),
        "{requested:?}"
    );

    cp.approve_csr(&name, "Test", "approved by the test").await;
    run.finish(support::RUN_DEADLINE).await.assert_code(0);
    let events = wait_for_event(&cp, "events-0", "CertificateIssued").await;
    let issued = events
        .iter()
        .find(|(r, _, _)| r == "CertificateIssued")
        .expect("issued");
    assert!(
        issued.2.contains("serial") && issued.2.contains("valid until"),
        "{issued:?}"
    );
    drop(signer);
}

#[tokio::test]
async fn denial_reaches_events_and_the_termination_message() {
    let Some((cp, kubeconfig, tmp)) = harness::with_certboot_rbac(NS).await else {
        return;
    };
    let _signer = cp.custom_signer_with(SIGNER, Duration::from_secs(3600), SignerBehaviour::Deny);
    let termination_log = tmp.path().join("termination-log");
    std::fs::write(&termination_log, "").expect("kubelet creates this file");
    let run = Certboot::new(&kubeconfig, &tmp.path().join("certs"), NS, "events-1")
        .env("CERTBOOT_SIGNER_NAME", SIGNER)
        .env(
            "CERTBOOT_TERMINATION_LOG",
            termination_log.to_str().expect("utf-8"),
        )
        .run()
        .await;
    run.assert_code(3);
    let message = std::fs::read_to_string(&termination_log).expect("termination message");
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.contains("was denied: HarnessDenied: denied by the e2e harness signer"),
        "{message}"
    );
    let events = wait_for_event(&cp, "events-1", "CertificateDenied").await;
    let denied = events
        .iter()
        .find(|(r, _, _)| r == "CertificateDenied")
        .expect("denied");
    assert!(denied.2.contains("HarnessDenied"), "{denied:?}");
}

#[tokio::test]
async fn without_rbac_for_events_certboot_warns_once_and_succeeds() {
    let Some((cp, _kubeconfig, tmp)) = harness::with_certboot_rbac(NS).await else {
        return;
    };
    // The ClusterRole for CSRs only: bind it to a service account that has no events Role.
    let _signer = cp.custom_signer(SIGNER, Duration::from_secs(3600));
    let binding = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "certboot-no-events"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "certboot"},
        "subjects": [{"kind": "ServiceAccount", "name": "no-events", "namespace": NS}]
    });
    let binding: k8s_openapi::api::rbac::v1::ClusterRoleBinding =
        serde_json::from_value(binding).expect("binding");
    Api::all(cp.admin_client())
        .create(&Default::default(), &binding)
        .await
        .expect("create binding");
    let kubeconfig = cp.service_account_kubeconfig(NS, "no-events").await;
    let run = Certboot::new(&kubeconfig, &tmp.path().join("certs"), NS, "events-2")
        .env("CERTBOOT_SIGNER_NAME", SIGNER)
        .run()
        .await;
    run.assert_code(0);
    assert_eq!(
        run.stderr.matches("cannot post Events on the pod").count(),
        1,
        "{}",
        run.stderr
    );
    run.assert_stderr_contains("verb \"create\" on resource \"events\"");
}

#[tokio::test]
async fn json_logs_are_one_valid_object_per_line_with_the_documented_fields() {
    let Some((cp, kubeconfig, tmp)) = harness::with_certboot_rbac(NS).await else {
        return;
    };
    let _signer = cp.custom_signer(SIGNER, Duration::from_secs(3600));
    let run = Certboot::new(&kubeconfig, &tmp.path().join("certs"), NS, "json-0")
        .env("CERTBOOT_SIGNER_NAME", SIGNER)
        .env("CERTBOOT_LOG_FORMAT", "json")
        .run()
        .await;
    run.assert_code(0);
    let lines: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(lines.len() >= 3, "{}", run.stderr);
    for line in &lines {
        assert!(
            line["timestamp"].is_string()
                && line["level"].is_string()
                && line["message"].is_string(),
            "{line}"
        );
    }
    let issued = lines
        .iter()
        .find(|l| l["phase"] == "issued")
        .expect("an issued line");
    assert!(
        issued["csr"]
            .as_str()
            .is_some_and(|c| c.contains(":json-0:")),
        "{issued}"
    );
    assert_eq!(issued["signer"], SIGNER);
    assert!(issued["elapsed"].is_string(), "{issued}");
}
