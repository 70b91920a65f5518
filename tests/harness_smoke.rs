//! Smoke tests of the e2e harness itself (they do not run the certboot binary): a real
//! control plane, the project's RBAC manifest, service-account identities, CSR approval and
//! issuance by the real controller-manager and by a harness CustomSigner, and client-certificate
//! authentication with the issued certificate.
//!
//! Run: `KUBEBUILDER_ASSETS=$(scripts/testenv.sh newest) cargo test --test harness_smoke`.
//! Without `KUBEBUILDER_ASSETS` (and `CI` unset) each test prints a SKIPPED line and passes.

mod harness;

use std::time::Duration;

use harness::{
    csr_object, issued_certificate, new_key_and_csr, ApplyOptions, ControlPlane, CsrSelector,
};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use x509_parser::prelude::{FromDer, X509Certificate};

const RBAC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/rbac.yaml");
const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
const CLIENT_USAGES: [&str; 2] = ["digital signature", "client auth"];
const DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn controller_manager_issues_a_client_certificate_that_authenticates() {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    cp.apply_manifest_file(RBAC, "default").await;
    let as_certboot = cp.service_account_client("default", "certboot").await;

    let (key_pem, _) = file_csr(&as_certboot, "smoke-kcm", "smoke-user-kcm", CLIENT_SIGNER).await;
    cp.wait_for_csr(CsrSelector::Name("smoke-kcm"), DEADLINE)
        .await;
    cp.approve_csr("smoke-kcm", "SmokeTest", "approved by harness_smoke")
        .await;
    let cert_pem = certificate_of(&cp, "smoke-kcm").await;

    assert_eq!(common_name(&cert_pem), "smoke-user-kcm");
    assert_authenticated_as(
        &cp.client_cert_client(&cert_pem, &key_pem),
        "smoke-user-kcm",
    )
    .await;
}

#[tokio::test]
async fn rbac_applies_into_a_second_namespace_and_the_auto_approver_works() {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    cp.apply_manifest_file(RBAC, "default").await;
    let applied = cp
        .apply_manifest_file_with(RBAC, &ApplyOptions::with_namespaced_cluster_names("team-a"))
        .await;
    assert!(applied
        .iter()
        .any(|o| o.kind == "ClusterRoleBinding" && o.name == "certboot-default-team-a"));
    let _approver = cp.auto_approver(CLIENT_SIGNER);

    for namespace in ["default", "team-a"] {
        let client = cp.service_account_client(namespace, "certboot").await;
        let name = format!("smoke-{namespace}");
        let (key_pem, _) = file_csr(&client, &name, &name, CLIENT_SIGNER).await;
        let cert_pem = certificate_of(&cp, &name).await;
        assert_authenticated_as(&cp.client_cert_client(&cert_pem, &key_pem), &name).await;
    }
    assert!(
        cp.count_requests_by("system:serviceaccount:team-a:certboot") >= 1,
        "audit log counts requests"
    );
}

#[tokio::test]
async fn custom_signer_issues_a_short_lived_certificate() {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    cp.apply_manifest_file(RBAC, "default").await;
    let signer = cp.custom_signer("example.com/test", Duration::from_secs(30));
    let as_certboot = cp.service_account_client("default", "certboot").await;

    file_csr(
        &as_certboot,
        "smoke-custom",
        "smoke-user-custom",
        "example.com/test",
    )
    .await;
    let cert_pem = certificate_of(&cp, "smoke-custom").await;

    let der = &harness::pki::certificate_ders(&cert_pem)[0];
    let (_, cert) = X509Certificate::from_der(der).expect("parse issued certificate");
    let validity = cert.validity();
    let lifetime = validity.not_after.timestamp() - validity.not_before.timestamp();
    assert_eq!(lifetime, 30 + 300, "30 s lifetime plus 5 min backdating");
    assert_eq!(common_name(&cert_pem), "smoke-user-custom");
    let ca_der = &harness::pki::certificate_ders(signer.ca_pem())[0];
    let (_, ca) = X509Certificate::from_der(ca_der).expect("parse signer CA");
    cert.verify_signature(Some(ca.public_key()))
        .expect("leaf is signed by the signer's CA");
    assert!(!cert.is_ca(), "leaf is not a CA");
    let eku = cert
        .extended_key_usage()
        .expect("parse EKU")
        .expect("EKU present")
        .value;
    assert!(eku.client_auth && !eku.server_auth, "usages mapped to EKU");
}

#[tokio::test]
async fn service_account_without_rbac_cannot_create_csrs() {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    cp.apply_manifest_file(RBAC, "default").await;
    // Through a kubeconfig file, as the certboot binary will authenticate.
    let kubeconfig = cp
        .service_account_kubeconfig("default", "certboot-norbac")
        .await;
    let unbound = client_from_kubeconfig(&kubeconfig).await;
    let (_, csr_pem) = new_key_and_csr("nobody", &[]);
    let csr = csr_object("smoke-norbac", &csr_pem, CLIENT_SIGNER, &CLIENT_USAGES);
    let result = Api::<CertificateSigningRequest>::all(unbound)
        .create(&PostParams::default(), &csr)
        .await;
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            let user = "system:serviceaccount:default:certboot-norbac";
            assert!(status.message.contains(user), "{status:?}");
        }
        other => panic!("expected 403, got {other:?}"),
    }
    let requests = cp.requests_by("system:serviceaccount:default:certboot-norbac");
    assert_eq!(requests.len(), 1, "one audited request: {requests:?}");
    assert_eq!(requests[0]["responseStatus"]["code"], 403);
}

#[tokio::test]
async fn apiserver_can_be_stopped_restarted_paused_and_resumed() {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let admin = cp.admin_client();
    cp.stop_apiserver();
    assert!(
        admin.apiserver_version().await.is_err(),
        "stopped apiserver answers nothing"
    );
    cp.start_apiserver().await;
    cp.admin_client()
        .apiserver_version()
        .await
        .expect("restarted apiserver answers");

    cp.pause_apiserver();
    let paused = tokio::time::timeout(
        Duration::from_millis(500),
        cp.admin_client().apiserver_version(),
    )
    .await;
    assert!(paused.is_err(), "paused apiserver does not answer");
    cp.resume_apiserver();
    cp.admin_client()
        .apiserver_version()
        .await
        .expect("resumed apiserver answers");
}

/// A client from a kubeconfig file, loaded the way `KUBECONFIG` is.
async fn client_from_kubeconfig(path: &std::path::Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig to config");
    Client::try_from(config).expect("client from kubeconfig")
}

/// Files a CSR as `client` for a fresh P-256 key: `(key_pem, csr_pem)`.
async fn file_csr(
    client: &Client,
    name: &str,
    common_name: &str,
    signer: &str,
) -> (String, String) {
    let (key_pem, csr_pem) = new_key_and_csr(common_name, &["smoke-group"]);
    let csr = csr_object(name, &csr_pem, signer, &CLIENT_USAGES);
    Api::<CertificateSigningRequest>::all(client.clone())
        .create(&PostParams::default(), &csr)
        .await
        .unwrap_or_else(|e| panic!("create CSR {name}: {e}"));
    (key_pem, csr_pem)
}

/// Waits for `status.certificate` and returns it (PEM).
async fn certificate_of(cp: &ControlPlane, name: &str) -> String {
    let csr = cp.wait_for_certificate(name, DEADLINE).await;
    issued_certificate(&csr).expect("certificate is set")
}

fn common_name(cert_pem: &str) -> String {
    let der = &harness::pki::certificate_ders(cert_pem)[0];
    let (_, cert) = X509Certificate::from_der(der).expect("parse certificate");
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .expect("subject has a CN");
    cn.as_str().expect("CN is a string").to_owned()
}

/// The server must have authenticated `client` as `username`: it may not list namespaces
/// (no RBAC), and the 403 names the user.
async fn assert_authenticated_as(client: &Client, username: &str) {
    match Api::<Namespace>::all(client.clone())
        .list(&Default::default())
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(
                status.message.contains(&format!("User \"{username}\"")),
                "{status:?}"
            );
        }
        other => panic!("expected 403 for {username}, got {other:?}"),
    }
}
