//! End-to-end: certboot authenticated by a service-account token bound to its pod, the token a
//! kubelet mounts into every pod from Kubernetes 1.22 on (projected volume). The API server
//! records who asked in the CSR: `spec.username` and, from the token, the pod's name and UID in
//! `spec.extra` (`authentication.kubernetes.io/pod-name`, `.../pod-uid`). Approvers and the
//! guard-rail policy (`manifests/policy/`) rely on them. Runs on every version (v1.20 records
//! the same for a pod-bound token; what changed in 1.22 is that every pod gets one by default).

mod harness;
mod support;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::Api;
use std::time::Duration;
use support::Certboot;

const NS: &str = "shop";
const SIGNER: &str = "example.com/bound";

#[tokio::test]
async fn the_csr_names_the_pod_the_token_is_bound_to() {
    let Some((cp, _, tmp)) = harness::with_certboot_rbac(NS).await else {
        return;
    };
    let _signer = cp.custom_signer(SIGNER, Duration::from_secs(3600));
    let pod = cp.bound_pod(NS, "web-0", "certboot").await;
    let kubeconfig = cp.write_kubeconfig(tmp.path(), &pod.token);
    let certboot = Certboot::new(&kubeconfig, &tmp.path().join("certs"), NS, &pod.name)
        .env("POD_UID", &pod.uid)
        .env("CERTBOOT_SIGNER_NAME", SIGNER);
    certboot.run().await.assert_code(0);

    let csr = Api::<CertificateSigningRequest>::all(cp.admin_client())
        .get(&certboot.csr_name())
        .await
        .expect("the CSR certboot filed");
    assert_eq!(
        csr.spec.username.as_deref(),
        Some("system:serviceaccount:shop:certboot")
    );
    let extra = csr.spec.extra.clone().unwrap_or_default();
    eprintln!(
        "Kubernetes {}: spec.extra keys {:?}",
        cp.version(),
        extra.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        extra.get("authentication.kubernetes.io/pod-name"),
        Some(&vec![pod.name.clone()]),
        "{extra:?}"
    );
    assert_eq!(
        extra.get("authentication.kubernetes.io/pod-uid"),
        Some(&vec![pod.uid.clone()]),
        "{extra:?}"
    );
    assert!(
        certboot.csr_name().ends_with(&pod.uid[..6]),
        "the CSR's name ends with the first 6 characters of the same pod UID: {}",
        certboot.csr_name()
    );
}
