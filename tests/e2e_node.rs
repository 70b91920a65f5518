//! certboot on a real node (tests/harness/node/: containerd + the kubelet of the version under
//! test, in a network namespace of their own): README.md's pod spec, unchanged but for
//! `nodeName`, runs its init container from the image the Dockerfile's final stage makes, and the
//! app starts with a matching pair whose IP SAN is the pod's IP. Needs root and the Debian
//! packages `.ci/run` installs; skipped without them (a failure under `CI=true`).

mod harness;
mod support;

use std::net::IpAddr;
use std::time::Duration;

use harness::node::pods::{is_ready, readme_pod, uid};
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

#[tokio::test]
async fn readme_pod_runs_with_a_certificate_for_its_own_ip() {
    let Some((cp, node)) = harness::node::cluster_with_rbac(NS).await else {
        return;
    };
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

#[tokio::test]
async fn a_denied_csr_keeps_the_pod_in_init_with_the_reason_in_the_termination_message() {
    let Some((cp, node)) = harness::node::cluster_with_rbac(NS).await else {
        return;
    };
    let _signer = cp.custom_signer_with(
        "example.com/my-signer",
        Duration::from_secs(3600),
        harness::SignerBehaviour::Deny,
    );
    node.create_pod(NS, node.bind(readme_pod())).await;
    // The kubelet restarts a failed init container (restartPolicy Always); its message stays in
    // the last termination state either way.
    let pod = node
        .wait_for_pod(
            NS,
            "web",
            "certboot's init container to fail",
            POD_DEADLINE,
            |pod| init_termination_message(pod).is_some(),
        )
        .await;
    let message = init_termination_message(&pod).expect("termination message");
    assert!(
        message.contains("denied") && message.contains("denied by the e2e harness signer"),
        "the init container's termination message names the denial and the signer's message: {message}"
    );
    let status = pod.status.clone().expect("status");
    assert_eq!(
        status.phase.as_deref(),
        Some("Pending"),
        "the pod stays in Init"
    );
    assert!(!is_ready(&pod));
    let app = &status.container_statuses.expect("container statuses")[0];
    assert!(
        app.state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .is_none(),
        "the app never started: {app:?}"
    );
}

/// The termination message of certboot's init container (current or last state), once it has
/// failed.
fn init_termination_message(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.init_container_statuses.as_ref()?;
    let init = statuses.first()?;
    [init.state.as_ref(), init.last_state.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|s| s.terminated.as_ref())
        .find(|t| t.exit_code != 0)
        .and_then(|t| t.message.clone())
}

/// A new sandbox reruns the init container in the same pod (same UID, same emptyDir). Whether
/// certboot may keep the pair depends on the pod's IP: the CNI plugin may give the new sandbox
/// another address, and a certificate naming the old one is wrong for the pod. So: same IP, the
/// pair is kept and no second CSR is filed; new IP, certboot says why it does not reuse the pair
/// and files exactly one more CSR, whose certificate names the new IP.
#[tokio::test]
async fn a_restarted_pod_sandbox_reruns_certboot_which_keeps_the_pair_unless_the_pod_ip_changed() {
    let Some((cp, node)) = harness::node::cluster_with_rbac(NS).await else {
        return;
    };
    let _signer = cp.custom_signer("example.com/my-signer", Duration::from_secs(3600));
    node.create_pod(NS, node.bind(readme_pod())).await;
    let pod = node
        .wait_for_pod(NS, "web", "Ready", POD_DEADLINE, is_ready)
        .await;
    let pod_uid = uid(&pod);
    let first_ip = pod_ip(&pod);
    let (first_cert, _) = support::read_pair(&node.empty_dir(&pod_uid, "certs"));
    let first_run = init_container_id(&pod).expect("certboot's init container ran");

    // Kill the pod's sandbox (its pause process): the kubelet makes a new one and runs the init
    // container again, in the same pod with the same emptyDir.
    let pause = node
        .sandbox_pid(&pod_uid)
        .expect("the pod's sandbox runs in containerd");
    // SAFETY: kill(2) on the node's own container process.
    assert_eq!(unsafe { libc::kill(pause, libc::SIGKILL) }, 0);
    let pod = node
        .wait_for_pod(
            NS,
            "web",
            "Ready again, with certboot run a second time",
            POD_DEADLINE,
            |pod| is_ready(pod) && init_container_id(pod).is_some_and(|id| id != first_run),
        )
        .await;
    let second_ip = pod_ip(&pod);

    let (second_cert, _) = support::read_pair(&node.empty_dir(&pod_uid, "certs"));
    let creates: Vec<_> = cp
        .requests_by("system:serviceaccount:default:certboot")
        .into_iter()
        .filter(|e| {
            e["verb"] == "create"
                && e["objectRef"]["resource"] == "certificatesigningrequests"
                && e["responseStatus"]["code"] == 201
        })
        .collect();
    if first_ip == second_ip {
        assert_eq!(
            first_cert, second_cert,
            "same pod IP {first_ip}: the pair was kept"
        );
        assert_eq!(
            creates.len(),
            1,
            "one CSR for the pod, though certboot ran twice: {creates:?}"
        );
    } else {
        assert_ne!(
            first_cert, second_cert,
            "pod IP {first_ip} -> {second_ip}: a new pair"
        );
        assert!(
            ip_sans(&second_cert).contains(&second_ip)
                && !ip_sans(&second_cert).contains(&first_ip),
            "the new certificate names the new pod IP {second_ip}, not {first_ip}: {:?}",
            ip_sans(&second_cert)
        );
        assert_eq!(
            creates.len(),
            2,
            "exactly one more CSR created for the new IP (the first name is taken, so under its `:<8 hex>` form): {creates:?}"
        );
        let log = node.container_log(&pod, "certboot");
        assert!(
            log.contains("the pair on disk is not reused") && log.contains(&second_ip.to_string()),
            "certboot's second run says why it does not reuse the pair: {log}"
        );
    }
    let init = &pod
        .status
        .as_ref()
        .and_then(|s| s.init_container_statuses.clone())
        .expect("init statuses")[0];
    let exit = init
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code);
    assert_eq!(exit, Some(0), "the second run succeeded: {init:?}");
}

fn pod_ip(pod: &Pod) -> IpAddr {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .expect("a Ready pod has an IP")
        .parse()
        .expect("status.podIP is an IP address")
}

/// The container ID of certboot's init container's current (or last) run.
fn init_container_id(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.init_container_statuses.as_ref()?;
    let state = statuses.first()?.state.as_ref()?;
    state.terminated.as_ref()?.container_id.clone()
}
