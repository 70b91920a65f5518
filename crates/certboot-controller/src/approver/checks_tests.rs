//! The approver's checks, one scenario per way a pod could get a certificate it should not.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PodIP, PodSpec, PodStatus, Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::ByteString;

use super::*;
use crate::approver::identity::{EXTRA_POD_NAME, EXTRA_POD_UID};
use crate::approver::policy::Policy;
use crate::approver::sans::SERVICE_GRACE_SECONDS;
use certboot_core::pki::key::{KeyAlgorithm, PrivateKey};
use certboot_core::{identity::PodIdentity, request::RequestConfig};

const UID: &str = "6f1d3c52-2b0e-4b7a-9d4e-0c8f1a2b3c4d";
const NOW: i64 = 1_800_000_000;

fn policy(extra: &str) -> Policy {
    Policy::parse(&format!(
        r#"{{"signers": [{{"signerName": "certboot.io/serving"{extra}}}]}}"#
    ))
    .unwrap()
}

fn request() -> RequestConfig {
    RequestConfig {
        dns_names: vec!["web.shop.svc".into()],
        ip_addresses: vec!["10.1.2.3".parse().unwrap()],
        usages: vec!["digital signature".into(), "server auth".into()],
        ..RequestConfig::example("certboot.io/serving", "web-0.shop")
    }
}

fn identity() -> PodIdentity {
    PodIdentity {
        name: "web-0".into(),
        namespace: "shop".into(),
        uid: UID.into(),
        ips: vec![],
    }
}

/// The CSR certboot files for `request`, as the API server stores it when pod `bound_to`'s token
/// (name, uid) created it.
fn csr_with(
    request: &RequestConfig,
    name: &str,
    bound_to: Option<(&str, &str)>,
) -> CertificateSigningRequest {
    let key = PrivateKey::generate(request.key_algorithm).unwrap();
    let pem = certboot_core::pki::pkcs10::build_pkcs10(request, &key).unwrap();
    let mut csr = certboot_core::csr::build(name, &pem, &identity(), request);
    csr.metadata.creation_timestamp = Some(Time(Timestamp::from_second(NOW).unwrap()));
    csr.spec.username = Some("system:serviceaccount:shop:web".into());
    csr.spec.extra = bound_to.map(|(pod, uid)| {
        BTreeMap::from([
            (EXTRA_POD_NAME.to_string(), vec![pod.to_string()]),
            (EXTRA_POD_UID.to_string(), vec![uid.to_string()]),
        ])
    });
    csr
}

use k8s_openapi::jiff::Timestamp;

fn csr() -> CertificateSigningRequest {
    csr_with(&request(), "shop:web-0:6f1d3c", Some(("web-0", UID)))
}

fn pod() -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web-0".into()),
            namespace: Some("shop".into()),
            uid: Some(UID.into()),
            labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            service_account_name: Some("web".into()),
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            pod_ips: Some(vec![PodIP {
                ip: "10.1.2.3".into(),
            }]),
            ..PodStatus::default()
        }),
    }
}

fn service(name: &str, app: &str) -> Arc<Service> {
    Arc::new(Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([("app".to_string(), app.to_string())])),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

fn verdict_at(
    csr: &CertificateSigningRequest,
    policy: &Policy,
    pod: Option<&Pod>,
    services: &[Arc<Service>],
    now: i64,
) -> Verdict {
    let signer = &policy.signers[0];
    let claim = match claim(csr, signer) {
        Ok(claim) => claim,
        Err(denial) => return Verdict::Deny(denial),
    };
    let facts = Facts {
        policy: signer,
        cluster_domain: &policy.cluster_domain,
        pod,
        services,
        now,
    };
    judge(csr, &claim, &facts)
}

fn verdict(
    csr: &CertificateSigningRequest,
    policy: &Policy,
    pod: Option<&Pod>,
    services: &[Arc<Service>],
) -> Verdict {
    verdict_at(csr, policy, pod, services, NOW + 1)
}

#[track_caller]
fn assert_denied(v: Verdict, reason: &str) -> String {
    match v {
        Verdict::Deny(d) => {
            assert_eq!(d.reason, reason, "{}", d.message);
            d.message
        }
        other => panic!("expected a denial {reason}, got {other:?}"),
    }
}

#[test]
fn the_pods_own_request_is_approved_with_what_was_checked() {
    let v = verdict(&csr(), &policy(""), Some(&pod()), &[service("web", "web")]);
    let Verdict::Approve(message) = v else {
        panic!("{v:?}")
    };
    assert!(message.contains("bound to pod shop/web-0"), "{message}");
    assert!(
        message
            .contains("checked requester, pod-binding, pod, name, request, subject, sans, usages"),
        "{message}"
    );
}

#[test]
fn an_impostor_pods_token_cannot_file_for_another_pod() {
    let mut other = pod();
    other.metadata.name = Some("web-1".into());
    other.metadata.uid = Some("99999999-0000".into());
    let impostor = csr_with(
        &request(),
        "shop:web-0:6f1d3c",
        Some(("web-1", "99999999-0000")),
    );
    let message = assert_denied(
        verdict(
            &impostor,
            &policy(""),
            Some(&other),
            &[service("web", "web")],
        ),
        reason::NAME_MISMATCH,
    );
    assert!(message.contains("shop:web-1:999999"), "{message}");
}

#[test]
fn a_recreated_pod_of_the_same_name_is_not_the_requester() {
    let mut recreated = pod();
    recreated.metadata.uid = Some("aaaaaaaa-new".into());
    let message = assert_denied(
        verdict(&csr(), &policy(""), Some(&recreated), &[]),
        reason::POD_UID_MISMATCH,
    );
    assert!(
        message.contains(UID) && message.contains("aaaaaaaa-new"),
        "{message}"
    );
    assert_denied(
        verdict(&csr(), &policy(""), None, &[]),
        reason::POD_NOT_FOUND,
    );
}

#[test]
fn the_pod_must_run_as_the_requesting_service_account_and_not_be_ending() {
    let mut other_sa = pod();
    other_sa.spec.as_mut().unwrap().service_account_name = Some("admin".into());
    assert_denied(
        verdict(&csr(), &policy(""), Some(&other_sa), &[]),
        reason::SERVICE_ACCOUNT_MISMATCH,
    );
    let mut ending = pod();
    ending.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(NOW).unwrap()));
    assert_denied(
        verdict(&csr(), &policy(""), Some(&ending), &[]),
        reason::POD_ENDING,
    );
}

#[test]
fn requesters_that_are_not_pods_are_denied() {
    let mut by_user = csr();
    by_user.spec.username = Some("kubernetes-admin".into());
    assert_denied(
        verdict(&by_user, &policy(""), Some(&pod()), &[]),
        reason::NOT_SERVICE_ACCOUNT,
    );
    let unbound = csr_with(&request(), "shop:web-0:6f1d3c", None);
    assert_denied(
        verdict(&unbound, &policy(""), Some(&pod()), &[]),
        reason::POD_BINDING_MISSING,
    );
    assert_denied(
        verdict(
            &csr(),
            &policy(r#", "namespaces": ["other"]"#),
            Some(&pod()),
            &[],
        ),
        reason::NAMESPACE_NOT_ALLOWED,
    );
}

#[test]
fn the_weaker_mode_relies_on_the_pod_lookup() {
    let weak = policy(r#", "requirePodBoundToken": false"#);
    let unbound = csr_with(&request(), "shop:web-0:6f1d3c", None);
    assert!(matches!(
        verdict(&unbound, &weak, Some(&pod()), &[service("web", "web")]),
        Verdict::Approve(_)
    ));
    let mut recreated = pod();
    recreated.metadata.uid = Some("aaaaaaaa-new".into());
    assert_denied(
        verdict(&unbound, &weak, Some(&recreated), &[service("web", "web")]),
        reason::NAME_MISMATCH,
    );
}

#[test]
fn ip_sans_must_be_the_pods_and_missing_ips_mean_wait() {
    let mut late = pod();
    late.status = Some(PodStatus::default());
    assert!(matches!(
        verdict(&csr(), &policy(""), Some(&late), &[service("web", "web")]),
        Verdict::Wait(_)
    ));
    let mut elsewhere = request();
    elsewhere.ip_addresses = vec!["10.9.9.9".parse().unwrap()];
    let c = csr_with(&elsewhere, "shop:web-0:6f1d3c", Some(("web-0", UID)));
    let message = assert_denied(
        verdict(&c, &policy(""), Some(&pod()), &[service("web", "web")]),
        reason::IP_NOT_ALLOWED,
    );
    assert!(
        message.contains("10.9.9.9") && message.contains("10.1.2.3"),
        "{message}"
    );
}

#[test]
fn dns_sans_come_from_selecting_services_or_templates() {
    // A Service that exists but selects other pods: denied at once.
    let message = assert_denied(
        verdict(&csr(), &policy(""), Some(&pod()), &[service("web", "db")]),
        reason::DNS_NOT_ALLOWED,
    );
    assert!(message.contains("web.shop.svc"), "{message}");
    // A Service not (yet) in the cache: wait during the grace period, then deny.
    assert!(matches!(
        verdict(&csr(), &policy(""), Some(&pod()), &[]),
        Verdict::Wait(_)
    ));
    assert_denied(
        verdict_at(
            &csr(),
            &policy(""),
            Some(&pod()),
            &[],
            NOW + SERVICE_GRACE_SECONDS,
        ),
        reason::DNS_NOT_ALLOWED,
    );
    // Every form of a selecting Service's name, and a StatefulSet template.
    let mut names = request();
    names.dns_names = vec![
        "web".into(),
        "web.shop".into(),
        "web.shop.svc".into(),
        "web.shop.svc.cluster.local".into(),
        "web-0.web.shop.svc".into(),
    ];
    let c = csr_with(&names, "shop:web-0:6f1d3c", Some(("web-0", UID)));
    assert_denied(
        verdict(&c, &policy(""), Some(&pod()), &[service("web", "web")]),
        reason::DNS_NOT_ALLOWED,
    );
    let sts = policy(
        r#", "serviceShortNames": true, "dnsNameTemplates": ["{pod}.{service}.{namespace}.svc"]"#,
    );
    assert!(matches!(
        verdict(&c, &sts, Some(&pod()), &[service("web", "web")]),
        Verdict::Approve(_)
    ));
    // Services only: the policy can turn them off.
    assert_denied(
        verdict(
            &csr(),
            &policy(r#", "serviceDNSNames": false"#),
            Some(&pod()),
            &[service("web", "web")],
        ),
        reason::DNS_NOT_ALLOWED,
    );
}

#[test]
fn subject_is_the_policys() {
    let mut cn = request();
    cn.common_name = "admin".into();
    let c = csr_with(&cn, "shop:web-0:6f1d3c", Some(("web-0", UID)));
    assert_denied(
        verdict(&c, &policy(""), Some(&pod()), &[service("web", "web")]),
        reason::SUBJECT_NOT_ALLOWED,
    );
    let mut org = request();
    org.organizations = vec!["shop".into()];
    let c = csr_with(&org, "shop:web-0:6f1d3c", Some(("web-0", UID)));
    assert_denied(
        verdict(&c, &policy(""), Some(&pod()), &[service("web", "web")]),
        reason::SUBJECT_NOT_ALLOWED,
    );
    assert!(matches!(
        verdict(
            &c,
            &policy(r#", "organizations": ["shop"]"#),
            Some(&pod()),
            &[service("web", "web")]
        ),
        Verdict::Approve(_)
    ));
}

#[test]
fn system_groups_are_never_granted_to_api_clients() {
    let client =
        Policy::parse(r#"{"signers": [{"signerName": "kubernetes.io/kube-apiserver-client"}]}"#)
            .unwrap();
    let mut masters = request();
    masters.signer_name = "kubernetes.io/kube-apiserver-client".into();
    masters.organizations = vec!["system:masters".into()];
    masters.usages = vec!["digital signature".into(), "client auth".into()];
    masters.dns_names = vec![];
    masters.ip_addresses = vec![];
    let mut c = csr_with(&masters, "shop:web-0:6f1d3c", Some(("web-0", UID)));
    c.spec.signer_name = "kubernetes.io/kube-apiserver-client".into();
    assert_denied(
        verdict(&c, &client, Some(&pod()), &[]),
        reason::FORBIDDEN_GROUP,
    );
}

#[test]
fn usages_and_lifetime_are_bounded() {
    let mut signing = csr();
    signing.spec.usages = Some(vec!["digital signature".into(), "cert sign".into()]);
    assert_denied(
        verdict(
            &signing,
            &policy(""),
            Some(&pod()),
            &[service("web", "web")],
        ),
        reason::USAGE_NOT_ALLOWED,
    );
    let mut long = csr();
    long.spec.expiration_seconds = Some(86_401);
    assert_denied(
        verdict(
            &long,
            &policy(r#", "maxExpirationSeconds": 86400"#),
            Some(&pod()),
            &[service("web", "web")],
        ),
        reason::EXPIRATION_TOO_LONG,
    );
}

#[test]
fn requests_without_proof_of_possession_or_for_a_ca_are_denied() {
    let mut garbage = csr();
    garbage.spec.request = ByteString(b"not a request".to_vec());
    assert_denied(
        verdict(&garbage, &policy(""), Some(&pod()), &[]),
        reason::INVALID_REQUEST,
    );
    let mut rsa = request();
    rsa.key_algorithm = KeyAlgorithm::Rsa2048;
    let c = csr_with(&rsa, "shop:web-0:6f1d3c", Some(("web-0", UID)));
    assert_denied(
        verdict(
            &c,
            &policy(r#", "keyAlgorithms": ["ecdsa-p256"]"#),
            Some(&pod()),
            &[service("web", "web")],
        ),
        reason::KEY_NOT_ALLOWED,
    );
    // A CA request, signed by its own key, with certboot's labels.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "web-0.shop");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let mut ca = csr();
    ca.spec.request = ByteString(
        params
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap()
            .into_bytes(),
    );
    assert_denied(
        verdict(&ca, &policy(""), Some(&pod()), &[]),
        reason::CA_REQUESTED,
    );
}

#[test]
fn renewal_names_must_carry_the_requests_own_key_fingerprint() {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let pem = certboot_core::pki::pkcs10::build_pkcs10(&request(), &key).unwrap();
    let mut renewal = csr();
    renewal.spec.request = ByteString(pem.into_bytes());
    renewal.metadata.name = Some(format!("shop:web-0:6f1d3c:{}", key.fingerprint()));
    assert!(matches!(
        verdict(
            &renewal,
            &policy(""),
            Some(&pod()),
            &[service("web", "web")]
        ),
        Verdict::Approve(_)
    ));
    renewal.metadata.name = Some("shop:web-0:6f1d3c:00000000".into());
    assert_denied(
        verdict(
            &renewal,
            &policy(""),
            Some(&pod()),
            &[service("web", "web")],
        ),
        reason::NAME_MISMATCH,
    );
}

#[test]
fn certboot_labels_naming_another_pod_are_denied() {
    let mut c = csr();
    c.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(certboot_core::csr::LABEL_POD_NAME.into(), "web-1".into());
    assert_denied(
        verdict(&c, &policy(""), Some(&pod()), &[service("web", "web")]),
        reason::LABEL_MISMATCH,
    );
}

#[path = "checks_hostile_tests.rs"]
mod hostile;
/// Lifetimes and names that are not the pod's (the checks' fixtures, shared).
#[path = "checks_limits_tests.rs"]
mod limits;
