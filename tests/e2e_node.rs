//! certboot on a real node (tests/harness/node/: containerd + the kubelet of the version under
//! test, in a network namespace of their own): README.md's pod spec, unchanged but for
//! `nodeName`, runs its init container from the image the Dockerfile's final stage makes, and the
//! app starts with a matching pair whose IP SAN is the pod's IP. Needs root and the Debian
//! packages `.ci/run` installs; skipped without them (a failure under `CI=true`).

mod harness;
mod support;

use std::net::IpAddr;
use std::time::Duration;

use harness::node::pods::{is_ready, readme_pod};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams};

const NS: &str = "default";
const POD_DEADLINE: Duration = Duration::from_secs(120);

/// The IP SANs of the first certificate in `cert_pem`.
fn ip_sans(cert_pem: &str) -> Vec<IpAddr> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).expect("cert.pem is PEM");
    let cert = pem.parse_x509().expect("cert.pem holds a certificate");
    let sans = cert
        .subject_alternative_name()
        .expect("SAN extension parses")
        .expect("the certificate has SANs");
    sans.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => Some(IpAddr::from(<[u8; 4]>::try_from(*bytes).ok()?)),
                16 => Some(IpAddr::from(<[u8; 16]>::try_from(*bytes).ok()?)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().expect("a created pod has a UID")
}

#[tokio::test]
async fn readme_pod_runs_with_a_certificate_for_its_own_ip() {
    let Some((cp, node)) = harness::node::cluster().await else {
        return;
    };
    cp.apply_manifest_file(
        concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/rbac.yaml"),
        NS,
    )
    .await;
    let _signer = cp.custom_signer("example.com/my-signer", Duration::from_secs(3600));
    let created = node.create_pod(NS, node.bind(readme_pod())).await;
    let pod = node
        .wait_for_pod(NS, "web", "Ready", POD_DEADLINE, is_ready)
        .await;
    assert_eq!(uid(&pod), uid(&created));
    let status = pod.status.clone().expect("status");
    let pod_ip: IpAddr = status
        .pod_ip
        .as_deref()
        .expect("status.podIP is set")
        .parse()
        .expect("status.podIP is an IP");
    assert_ne!(
        status.host_ip.as_deref(),
        Some(pod_ip.to_string().as_str()),
        "the pod has an IP of its own (CNI bridge), not the node's"
    );

    // The pair the app mounts: matching, valid, and naming the pod's IP.
    let (cert, _key) = support::read_pair(&node.empty_dir(&uid(&pod), "certs"));
    assert!(
        ip_sans(&cert).contains(&pod_ip),
        "cert.pem's IP SANs {:?} include the pod's IP {pod_ip}",
        ip_sans(&cert)
    );
    // The app saw both files when it started (its command is `ls -l /certs/ && sleep 3600`).
    let app_log = node.container_log(&pod, "app");
    assert!(
        app_log.contains("cert.pem") && app_log.contains("key.pem"),
        "the app listed the pair: {app_log}"
    );
    let init = &status
        .init_container_statuses
        .expect("init container statuses")[0];
    let terminated = init
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("certboot's init container has terminated");
    assert_eq!(terminated.exit_code, 0, "{terminated:?}");

    // What `kubectl describe pod web` shows: certboot's events beside the kubelet's.
    let events = Api::<Event>::namespaced(cp.admin_client(), NS)
        .list(&ListParams::default())
        .await
        .expect("list events");
    let reasons: Vec<String> = events
        .items
        .iter()
        .filter(|e| e.involved_object.uid.as_deref() == Some(uid(&pod).as_str()))
        .filter_map(|e| e.reason.clone())
        .collect();
    for reason in ["CertificateRequested", "CertificateIssued", "Started"] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "event {reason} on pod web: {reasons:?}"
        );
    }
}
