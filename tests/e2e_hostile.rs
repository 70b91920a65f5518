//! End-to-end: `certboot-controller` against hostile requests, filed with a pod's own bound token
//! under the pod's own CSR name, against a real kube-apiserver and kube-controller-manager.
//!
//! The hidden-SAN test also shows the threat is real: the same request, approved by an admin, is
//! signed by kube-controller-manager (a Go signer), and its certificate carries the hidden name.

mod approver_rig;
mod harness;
mod hostile_csr;
mod support;

use std::time::{Duration, Instant};

use approver_rig::{condition, Rig, APP_NS, CERTBOOT_SA};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

const SERVING: &str = "certboot.io/serving";
const CLIENT: &str = "kubernetes.io/kube-apiserver-client";
const DECIDE: Duration = Duration::from_secs(30);
const HIDDEN: &str = "evil.example.com";

fn uid6(pod: &Pod) -> String {
    pod.metadata
        .uid
        .as_deref()
        .unwrap_or_default()
        .chars()
        .take(6)
        .collect()
}

/// Files `request_pem` for `pod` as the pod would (its bound token, certboot's name for it).
async fn file_as_pod(
    rig: &Rig,
    pod: &Pod,
    signer: &str,
    request_pem: &str,
    usages: &[&str],
) -> String {
    let name = format!(
        "{APP_NS}:{}:{}",
        pod.metadata.name.as_deref().unwrap_or_default(),
        uid6(pod)
    );
    let token = rig.bound_token(pod).await;
    let as_pod: Api<CertificateSigningRequest> = Api::all(rig.cp.endpoint().token_client(&token));
    as_pod
        .create(
            &PostParams::default(),
            &harness::csr_object(&name, request_pem, signer, usages),
        )
        .await
        .expect("the pod may create a CSR");
    name
}

/// The DNS SANs of the first certificate in `pem_text`.
fn dns_names(pem_text: &str) -> Vec<String> {
    let block = pem::parse(pem_text).expect("certificate PEM");
    let (_, cert) = X509Certificate::from_der(block.contents()).expect("certificate");
    cert.subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_san_hidden_in_a_second_extension_request_is_denied_though_a_go_signer_would_issue_it() {
    let policy = approver_rig::shipped_policy_with_signers(&[CLIENT]);
    let Some(rig) = Rig::start_with_policy(&[CLIENT], &policy).await else {
        return;
    };
    let usages = ["digital signature", "client auth"];

    // The threat: approved by hand (no approver running yet), kube-controller-manager signs the
    // request and copies the SAN that `openssl req -text` and a first-attribute parser never show.
    let key = hostile_csr::key();
    let hidden = hostile_csr::pem(&hostile_csr::hidden_san(&key, "api-0.shop", HIDDEN));
    let admin: Api<CertificateSigningRequest> = Api::all(rig.cp.admin_client());
    admin
        .create(
            &PostParams::default(),
            &harness::csr_object("hidden-san-by-hand", &hidden, CLIENT, &usages),
        )
        .await
        .expect("the API server accepts the request");
    rig.cp
        .approve_csr("hidden-san-by-hand", "ByHand", "approved by an admin")
        .await;
    let signed = rig
        .cp
        .wait_for_certificate("hidden-san-by-hand", DECIDE)
        .await;
    let pem_text = harness::issued_certificate(&signed).expect("issued");
    assert_eq!(
        dns_names(&pem_text),
        vec![HIDDEN.to_string()],
        "kube-controller-manager issues the hidden name"
    );

    // The pod files the same kind of request: certboot's approver denies it.
    let _controller = rig.controller("approver-a");
    let pod = rig.pod("api-0", CERTBOOT_SA, &[], &["10.0.3.1"]).await;
    let request = hostile_csr::pem(&hostile_csr::hidden_san(
        &hostile_csr::key(),
        "api-0.shop",
        HIDDEN,
    ));
    let name = file_as_pod(&rig, &pod, CLIENT, &request, &usages).await;
    let csr = rig.wait_for_condition(&name, "Denied", DECIDE).await;
    let (reason, message) = condition(&csr, "Denied");
    assert_eq!(reason, "InvalidRequest", "{message}");
    assert!(
        message.contains("more than one extensionRequest"),
        "{message}"
    );
    assert!(!harness::has_condition(&csr, "Approved"));
    assert!(harness::issued_certificate(&csr).is_none());
}

#[tokio::test]
async fn a_huge_request_is_denied_promptly_with_a_short_message() {
    let Some(rig) = Rig::start(&[SERVING]).await else {
        return;
    };
    let pod = rig.pod("big-0", CERTBOOT_SA, &[], &["10.0.3.2"]).await;
    let _controller = rig.controller("approver-a");
    // 100,000 IP SANs: 600 KB of DER, 810 KB of PEM; the API server stores it.
    let names: Vec<Vec<u8>> = (0u32..100_000)
        .map(|i| hostile_csr::tlv(0x87, &(0x0a00_0000 + i).to_be_bytes()))
        .collect();
    let der = hostile_csr::request(
        &hostile_csr::key(),
        "big-0.shop",
        &[hostile_csr::extension_request(&[hostile_csr::extension(
            hostile_csr::SUBJECT_ALT_NAME,
            false,
            &hostile_csr::seq(&names),
        )])],
    );
    let filed = Instant::now();
    let name = file_as_pod(
        &rig,
        &pod,
        SERVING,
        &hostile_csr::pem(&der),
        &["digital signature", "server auth"],
    )
    .await;
    let csr = rig.wait_for_condition(&name, "Denied", DECIDE).await;
    eprintln!(
        "a 100,000-SAN request was denied {:.1}s after it was filed",
        filed.elapsed().as_secs_f64()
    );
    let (reason, message) = condition(&csr, "Denied");
    assert_eq!(reason, "RequestTooLarge", "{message}");
    assert!(message.len() <= 1024, "{} bytes: {message}", message.len());
    assert!(message.contains("limit"), "{message}");
}

#[tokio::test]
async fn usages_without_an_extended_key_usage_are_denied() {
    let Some(rig) = Rig::start(&[SERVING]).await else {
        return;
    };
    let pod = rig.pod("web-k", CERTBOOT_SA, &[], &["10.0.3.3"]).await;
    let _controller = rig.controller("approver-a");
    let run = rig
        .certboot(&pod, &rig.bound_kubeconfig(&pod).await, SERVING)
        .env("CERTBOOT_USAGES", "digital signature")
        .run()
        .await;
    run.assert_code(3)
        .assert_stderr_contains("ExtendedKeyUsageMissing");
    let name = format!("{APP_NS}:web-k:{}", uid6(&pod));
    let csr = rig.wait_for_condition(&name, "Denied", DECIDE).await;
    let (reason, message) = condition(&csr, "Denied");
    assert_eq!(reason, "ExtendedKeyUsageMissing", "{message}");
    assert!(
        message.contains("server auth") && message.contains("client auth"),
        "{message}"
    );
    support::no_pair(&rig.tmp.path().join("certs-web-k"));
}
