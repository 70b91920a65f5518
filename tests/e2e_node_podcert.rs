//! The `podCertificate` volume on a real node (Kubernetes 1.37+): the kubelet makes the key,
//! files a PodCertificateRequest, and starts no container until `certboot-controller` (run on the
//! host with the approver's RBAC, signing with `podCertificates: true`) has issued it; the app
//! starts with a key and chain that match and verify to the ClusterTrustBundle it mounts, for an
//! ECDSAP256 and an ECDSAP521 key alike.

mod approver_rig;
mod harness;
mod support;

use std::time::Duration;

use approver_rig::{podcert, APP_NS};
use harness::node::pods::{is_ready, pod_certificate_pod};

const SIGNER: &str = "certboot.io/serving";
const DEADLINE: Duration = Duration::from_secs(120);

#[tokio::test]
async fn a_pod_with_a_pod_certificate_volume_starts_with_certboots_certificate() {
    let Some((rig, node, controller)) =
        podcert::node_with_signer(SIGNER, "the podCertificate volume").await
    else {
        return;
    };
    rig.service("web", &[("app", "web")]).await;

    node.create_pod(
        APP_NS,
        node.bind(pod_certificate_pod("web-0", SIGNER, "ECDSAP256")),
    )
    .await;
    let ready = node.wait_for_pod(APP_NS, "web-0", "Ready", DEADLINE, is_ready);
    let pod = tokio::time::timeout(DEADLINE + Duration::from_secs(5), ready)
        .await
        .unwrap_or_else(|_| panic!("web-0 not Ready; controller log:\n{}", controller.log()));
    // What the app saw when it started: the chain, the bundle, and a key.
    // CRI log lines are `<time> stdout F <text>`.
    let log: String = node
        .container_log(&pod, "app")
        .lines()
        .filter_map(|line| line.splitn(4, ' ').nth(3))
        .map(|text| format!("{text}\n"))
        .collect();
    let blocks = pem::parse_many(log.as_bytes()).expect("PEM in the app's log");
    assert!(
        blocks.len() >= 2,
        "chain and bundle in the app's log: {log}"
    );
    assert!(log.contains("KEY "), "the app saw the key: {log}");
    let (_, leaf) =
        x509_parser::parse_x509_certificate(blocks[0].contents()).expect("the leaf parses");
    let (_, root) = x509_parser::parse_x509_certificate(blocks[blocks.len() - 1].contents())
        .expect("the bundle's root parses");
    let (_, issuer) =
        x509_parser::parse_x509_certificate(blocks[1].contents()).expect("the next parses");
    assert!(leaf.verify_signature(Some(issuer.public_key())).is_ok());
    assert!(
        issuer.verify_signature(Some(root.public_key())).is_ok(),
        "the chain verifies to the ClusterTrustBundle the pod mounts"
    );
    assert_eq!(leaf.subject().to_string(), "CN=web-0.shop");
    let sans = leaf
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|s| format!("{:?}", s.value.general_names))
        .unwrap_or_default();
    assert!(sans.contains("web.shop.svc"), "{sans}");
    assert!(!sans.contains("IPAddress"), "no IP SAN: {sans}");

    // ECDSAP521 (issue 24): the kubelet's P-521 key is issued for too, and the pod starts.
    node.create_pod(
        APP_NS,
        node.bind(pod_certificate_pod("web-1", SIGNER, "ECDSAP521")),
    )
    .await;
    let ready = node.wait_for_pod(APP_NS, "web-1", "Ready", DEADLINE, is_ready);
    let pod = tokio::time::timeout(DEADLINE + Duration::from_secs(5), ready)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "web-1 (ECDSAP521) not Ready; controller log:\n{}",
                controller.log()
            )
        });
    let log: String = node
        .container_log(&pod, "app")
        .lines()
        .filter_map(|line| line.splitn(4, ' ').nth(3))
        .map(|text| format!("{text}\n"))
        .collect();
    let blocks = pem::parse_many(log.as_bytes()).expect("PEM in web-1's log");
    let (_, leaf) =
        x509_parser::parse_x509_certificate(blocks[0].contents()).expect("web-1's leaf parses");
    assert_eq!(
        leaf.public_key()
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok()),
        Some(x509_parser::oid_registry::OID_NIST_EC_P521),
        "web-1's certificate carries its P-521 key"
    );
    assert_eq!(leaf.subject().to_string(), "CN=web-1.shop");
}
