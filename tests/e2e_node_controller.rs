//! The whole loop on a real node, nobody approving by hand: the init-container example's pod
//! (manifests/examples/init-container.yaml, bound to the node) authenticates with the token the
//! kubelet mounts for it, `certboot-controller` (run on the host with the approver's RBAC and
//! the shipped policy, as approver and signer) approves and signs, and the pod starts with a
//! pair from the controller's CA. Pod-bound tokens are what the approver checks the pod with:
//! Kubernetes mounts them by default from 1.22 on (v1.20 mounts a Secret-based token).

mod approver_rig;
mod harness;
mod support;

use std::time::Duration;

use approver_rig::{Rig, APP_NS};
use harness::node::pods::{is_ready, manifest_documents, pod_from_template};

const SIGNER: &str = "example.com/web";

#[tokio::test]
async fn certboot_controller_approves_and_signs_for_a_pod_with_its_own_token() {
    if harness::version::skip_unless(
        22,
        "pod-bound service-account tokens mounted by the kubelet",
    ) {
        return;
    }
    let Some(rig) = Rig::start_with_options(
        &[SIGNER],
        &approver_rig::shipped_policy_with_signers(&[SIGNER]),
        harness::node::control_plane_options(),
    )
    .await
    else {
        return;
    };
    let Some(node) = harness::node::start(&rig.cp).await else {
        return;
    };
    // The signer's CA, as the kubernetes.io/tls Secret of manifests/approver/ mounts it.
    let ca = harness::Ca::new("certboot-controller e2e CA");
    let ca_dir = rig.tmp.path().join("signer-ca");
    std::fs::create_dir_all(&ca_dir).expect("ca dir");
    for (file, pem) in [
        ("tls.crt", ca.cert_pem()),
        ("tls.key", ca.key_pem()),
        ("ca.crt", ca.cert_pem()),
    ] {
        std::fs::write(ca_dir.join(file), pem).expect("write CA file");
    }
    let ca_dir_text = ca_dir.display().to_string();
    let controller = rig.controller_with(
        "controller-0",
        &[
            ("CERTBOOT_SIGNER_NAMES", SIGNER),
            ("CERTBOOT_SIGNER_CA_DIR", &ca_dir_text),
        ],
    );

    // The example's Service (the approver checks DNS names against Services selecting the pod)
    // and the pod its Deployment would create.
    let example = manifest_documents("examples/init-container.yaml");
    rig.cp
        .apply_manifest_file(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/manifests/examples/init-container.yaml"
            ),
            APP_NS,
        )
        .await;
    let deployment = example
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment");
    node.create_pod(APP_NS, node.bind(pod_from_template(deployment, "web-0")))
        .await;
    let deadline = Duration::from_secs(120);
    let pod = node.wait_for_pod(APP_NS, "web-0", "Ready", deadline, is_ready);
    let pod = tokio::time::timeout(deadline + Duration::from_secs(5), pod)
        .await
        .unwrap_or_else(|_| panic!("controller log:\n{}", controller.log()));
    let uid = pod.metadata.uid.clone().expect("uid");
    let (cert, _) = support::read_pair(&node.empty_dir(&uid, "certs"));
    let (_, leaf) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).expect("PEM");
    let leaf = leaf.parse_x509().expect("certificate");
    let (_, ca_pem) = x509_parser::pem::parse_x509_pem(ca.cert_pem().as_bytes()).expect("CA PEM");
    let ca_cert = ca_pem.parse_x509().expect("CA certificate");
    assert_eq!(
        leaf.issuer(),
        ca_cert.subject(),
        "signed by certboot-controller's CA"
    );
    let log = controller.log();
    assert!(
        log.contains("web-0"),
        "the controller decided about the pod's CSR: {log}"
    );
}
