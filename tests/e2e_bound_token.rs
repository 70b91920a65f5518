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
use std::path::Path;
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

/// The examples' projected volume `certboot-token` as the kubelet fills it (a token bound to the
/// pod, the cluster CA from `kube-root-ca.crt`, the namespace), at the standard path: certboot's
/// in-cluster configuration reads it, with neither KUBECONFIG nor POD_NAMESPACE. That path is
/// fixed, so certboot runs in a mount namespace of its own with a tmpfs on /run (/var/run)
/// holding the three files; this needs root. The harness runs no kube-root-ca.crt publisher, so
/// `ca.crt` is the CA that publisher would copy (the one that signed the API server's certificate).
#[tokio::test]
async fn certboot_works_with_the_examples_projected_token_volume() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED e2e: the projected-volume test mounts a tmpfs on /run and needs root");
        return;
    }
    let Some((cp, _, tmp)) = harness::with_certboot_rbac(NS).await else {
        return;
    };
    let _signer = cp.custom_signer(SIGNER, Duration::from_secs(3600));
    let pod = cp.bound_pod(NS, "web-9", "certboot").await;
    let volume = tmp.path().join("certboot-token");
    std::fs::create_dir_all(&volume).expect("mkdir");
    std::fs::write(volume.join("token"), &pod.token).expect("token");
    std::fs::write(volume.join("ca.crt"), cp.apiserver_ca_pem()).expect("ca.crt");
    std::fs::write(volume.join("namespace"), NS).expect("namespace");
    let script = tmp.path().join("in-pod.sh");
    std::fs::write(
        &script,
        "set -e\n\
         /usr/bin/mount -t tmpfs -o mode=0755 certboot-test /run\n\
         /usr/bin/mkdir -p /run/secrets/kubernetes.io/serviceaccount\n\
         /usr/bin/cp \"$TOKEN_VOLUME\"/token \"$TOKEN_VOLUME\"/ca.crt \"$TOKEN_VOLUME\"/namespace \
         /var/run/secrets/kubernetes.io/serviceaccount/\n\
         bin=\"$CERTBOOT_UNDER_TEST\"\n\
         unset TOKEN_VOLUME CERTBOOT_UNDER_TEST\n\
         exec \"$bin\"\n",
    )
    .expect("write the script");
    let port = cp
        .url()
        .rsplit(':')
        .next()
        .expect("the API server's port")
        .to_owned();
    let dir = tmp.path().join("certs");
    let run = Certboot::new(Path::new("/nonexistent"), &dir, NS, &pod.name)
        .without("KUBECONFIG")
        .without("POD_NAMESPACE")
        .env("HOME", "/nonexistent")
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", &port)
        .env("POD_UID", &pod.uid)
        .env("CERTBOOT_SIGNER_NAME", SIGNER)
        .env("TOKEN_VOLUME", &volume.display().to_string())
        .env("CERTBOOT_UNDER_TEST", env!("CARGO_BIN_EXE_certboot"))
        .binary("/usr/bin/unshare")
        .args(&["--mount", "--propagation", "private", "/bin/sh"])
        .args(&[&script.display().to_string()])
        .run()
        .await;
    run.assert_code(0);
    read_pair(&dir);
    let name = format!("{NS}:{}:{}", pod.name, &pod.uid[..6]);
    let csr = Api::<CertificateSigningRequest>::all(cp.admin_client())
        .get(&name)
        .await
        .expect("the CSR, named with the namespace from the volume's namespace file");
    assert_eq!(
        csr.spec.username.as_deref(),
        Some("system:serviceaccount:shop:certboot")
    );
    assert_eq!(
        csr.spec
            .extra
            .unwrap_or_default()
            .get("authentication.kubernetes.io/pod-uid"),
        Some(&vec![pod.uid.clone()]),
        "the token from the volume is bound to the pod"
    );
}
