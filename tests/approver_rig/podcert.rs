//! PodCertificateRequests as the kubelet files them, for the PCR signer's tests and bench: the
//! policy with `podCertificates` on, certboot-controller signing with a test CA, Pod objects bound
//! to a node, stub requests from fresh keys.

use std::collections::BTreeMap;

use k8s_openapi::api::certificates::v1::PodCertificateRequestSpec;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};
use rcgen::{CertificateParams, KeyPair};

use super::{Controller, Rig, APP_NS, CERTBOOT_SA};

/// The shipped policy for `signer`, with `podCertificates` on.
pub fn policy(signer: &str) -> serde_json::Value {
    let mut policy: serde_json::Value =
        serde_json::from_str(&super::shipped_policy_with_signers(&[signer]))
            .expect("the shipped policy is JSON");
    policy["signers"][0]["podCertificates"] = true.into();
    // Every key type certboot issues for (the default), ECDSAP521 included; the shipped policy
    // still lists the six of before issue 24.
    if let Some(signer) = policy["signers"][0].as_object_mut() {
        signer.remove("keyAlgorithms");
    }
    policy
}

/// certboot-controller signing `signers` (comma-separated) with a test CA (written once, under
/// the rig's directory), with `extra` environment.
pub fn start_signer(
    rig: &Rig,
    identity: &str,
    signers: &str,
    extra: &[(&str, &str)],
) -> Controller {
    let ca_dir = rig.tmp.path().join("signer-ca");
    if !ca_dir.exists() {
        super::ca::write_ca(&ca_dir);
    }
    let ca = ca_dir.display().to_string();
    let mut env = vec![
        ("CERTBOOT_SIGNER_NAMES", signers),
        ("CERTBOOT_SIGNER_CA_DIR", ca.as_str()),
    ];
    env.extend_from_slice(extra);
    rig.controller_with(identity, &env)
}

/// A Pod object bound to `node`, running as certboot's service account, labelled `app=web`.
pub async fn pod_on_node(rig: &Rig, name: &str, node: &str) -> Pod {
    let pods: Api<Pod> = Api::namespaced(rig.cp.admin_client(), APP_NS);
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([("app".into(), "web".into())])),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            service_account_name: Some(CERTBOOT_SA.into()),
            automount_service_account_token: Some(false),
            node_name: Some(node.into()),
            containers: vec![Container {
                name: "app".into(),
                image: Some("busybox:1.36".into()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: None,
    };
    pods.create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("create pod {name}: {e}"))
}

/// The kubelet's stub request: an empty subject, signed by a fresh P-256 key. Returns the key too.
pub fn stub() -> (KeyPair, Vec<u8>) {
    let key = KeyPair::generate().expect("key");
    let der = CertificateParams::default()
        .serialize_request(&key)
        .expect("stub request")
        .der()
        .to_vec();
    (key, der)
}

/// The spec the kubelet of `pod`'s node files for it with `stub`, for `signer`.
pub fn spec(pod: &Pod, signer: &str, stub: Vec<u8>) -> PodCertificateRequestSpec {
    let pod_spec = pod.spec.as_ref();
    PodCertificateRequestSpec {
        signer_name: signer.into(),
        pod_name: pod.metadata.name.clone().unwrap_or_default(),
        pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
        service_account_name: CERTBOOT_SA.into(),
        service_account_uid: "0c8f1a2b-3c4d-4b7a-9d4e-6f1d3c522b0e".into(),
        node_name: pod_spec
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        node_uid: "9d4e0c8f-1a2b-4b7a-3c4d-6f1d3c522b0e".into(),
        max_expiration_seconds: Some(86_400),
        stub_pkc_s10_request: ByteString(stub),
        unverified_user_annotations: None,
    }
}

/// For the node tests (Kubernetes 1.37+, else the SKIPPED line and `None`): a control plane with a
/// node, and certboot-controller signing `signer`'s PCRs, its watch started.
pub async fn node_with_signer(
    signer: &str,
    feature: &str,
) -> Option<(Rig, crate::harness::node::Node, Controller)> {
    if crate::harness::version::skip_unless(37, feature) {
        return None;
    }
    let rig = Rig::start_with_options(
        &[signer],
        &policy(signer).to_string(),
        crate::harness::node::control_plane_options(),
    )
    .await?;
    let node = crate::harness::node::start(&rig.cp).await?;
    let mut controller = start_signer(&rig, "controller-0", signer, &[]);
    controller
        .wait_for_log(
            "signing PodCertificateRequests of signer",
            std::time::Duration::from_secs(120),
        )
        .await;
    Some((rig, node, controller))
}
