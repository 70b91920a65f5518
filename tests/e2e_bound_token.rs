//! End-to-end: certboot authenticated by a service-account token bound to its pod, the token a
//! kubelet mounts into every pod from Kubernetes 1.22 on (projected volume). The API server
//! records who asked in the CSR: `spec.username` and, from the token, the pod's name and UID in
//! `spec.extra` (`authentication.kubernetes.io/pod-name`, `.../pod-uid`). Approvers and the
//! guard-rail policy (`manifests/policy/`) rely on them. Runs on every version (v1.20 records
//! the same for a pod-bound token; what changed in 1.22 is that every pod gets one by default).

mod harness;
mod support;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::Event;
use kube::api::{ListParams, PostParams};
use kube::Api;
use std::time::Duration;
use support::{read_pair, Certboot};

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

/// CSR names are predictable, so whoever may create CSRs can file one under another pod's name
/// first: another pod of the same service account (an app container holding certboot's token)
/// or another user. certboot says who filed it, in its log and as a Warning Event on the pod,
/// leaves that CSR alone, and gets its certificate under `<name>:<8 hex>` instead of failing.
#[tokio::test]
async fn a_csr_under_our_name_filed_by_someone_else_is_reported_and_certboot_carries_on() {
    let Some((cp, _, tmp)) = harness::with_certboot_rbac(NS).await else {
        return;
    };
    let _signer = cp.custom_signer(SIGNER, Duration::from_secs(3600));
    let evil = cp.bound_pod(NS, "evil-0", "certboot").await;
    let squatters = [
        (
            "web-1",
            cp.endpoint().token_client(&evil.token),
            "system:serviceaccount:shop:certboot (token bound to pod evil-0)".to_owned(),
        ),
        ("web-2", cp.admin_client(), harness::ADMIN_USER.to_owned()),
    ];
    let csrs = Api::<CertificateSigningRequest>::all(cp.admin_client());
    for (victim, squatter, who) in squatters {
        let pod = cp.bound_pod(NS, victim, "certboot").await;
        let name = format!("{NS}:{victim}:{}", &pod.uid[..6]);
        let (_key, pem) = harness::new_key_and_csr(&format!("{victim}.{NS}"), &[]);
        let taken = Api::<CertificateSigningRequest>::all(squatter)
            .create(
                &PostParams::default(),
                &harness::csr_object(&name, &pem, SIGNER, &["digital signature", "server auth"]),
            )
            .await
            .expect("the squatter files a CSR under the pod's name");

        let out = tmp.path().join(victim);
        std::fs::create_dir_all(&out).expect("mkdir");
        let kubeconfig = cp.write_kubeconfig(&out, &pod.token);
        let run = Certboot::new(&kubeconfig, &out.join("certs"), NS, victim)
            .env("POD_UID", &pod.uid)
            .env("CERTBOOT_SIGNER_NAME", SIGNER)
            .run()
            .await;
        run.assert_code(0).assert_stderr_contains(&format!(
            "CSR {name} was filed by {who}, not by this pod; filing under {name}:"
        ));
        read_pair(&out.join("certs"));
        let left = csrs
            .get(&name)
            .await
            .expect("the squatter's CSR is left alone");
        assert_eq!(left.metadata.uid, taken.metadata.uid);

        let events = Api::<Event>::namespaced(cp.admin_client(), NS)
            .list(&ListParams::default().fields(&format!("involvedObject.name={victim}")))
            .await
            .expect("list Events");
        let taken_events: Vec<&Event> = events
            .items
            .iter()
            .filter(|e| e.reason.as_deref() == Some("CSRNameTaken"))
            .collect();
        assert_eq!(taken_events.len(), 1, "{:?}", events.items);
        assert_eq!(taken_events[0].type_.as_deref(), Some("Warning"));
        assert!(
            taken_events[0]
                .message
                .as_deref()
                .unwrap_or_default()
                .contains(&format!("was filed by {who}")),
            "{:?}",
            taken_events[0]
        );
    }
}
