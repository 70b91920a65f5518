//! The PodCertificateRequest decision: one scenario per way a pod could get a certificate it
//! should not, and the identity granted when it should.

use std::collections::BTreeMap;

use k8s_openapi::api::certificates::v1::PodCertificateRequestSpec;
use k8s_openapi::api::core::v1::{PodSpec, PodStatus, Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::ByteString;
use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P521_SHA512, PKCS_ED25519};

use super::*;
use crate::approver::policy::Policy;

const UID: &str = "6f1d3c52-2b0e-4b7a-9d4e-0c8f1a2b3c4d";
const NODE: &str = "node-1";

/// A stub request for an ECDSA P-521 key signed with SHA-256, as `openssl req -new -subj /` writes
/// it (the kubelet's ECDSAP521 key type).
const P521_STUB: &str = "MIIBQzCBpQIBADAAMIGbMBAGByqGSM49AgEGBSuBBAAjA4GGAAQAJy6wfSCaSNunVZWSLJEWvDwZNmB17tDH1s0lWcjuyEenO9486fXDC8fyvHDBL5/RSZG6yd84jMvu1Do2VfS77hMBqsVJ8LoZ7/cYamS4AYiEyFx/3Wp3DF7gzKuawuVA3PTGFSExsaAgTFpRLJf8yZMB/aBNcaZbeddRvbpTeAYthAqgADAKBggqhkjOPQQDAgOBjAAwgYgCQgGDLPI8Y39IIfbu3IRP0KZiF552yo2VldDyfM392A9PDgBmt+RNZtGM7v8XY3FBwC5Zbgk3itPnPtfYJ8x9DNDMJgJCAep/PCMcCqYUQv50nZ5QtTctUGuQ5ALI2S6rS84+w3PIpAfR2Kdv1sFwKucRF56UuJeGrfceU9CJRzo/bCANAad7";
/// A stub request for a secp256k1 key (`openssl req -new -subj / -newkey ec -pkeyopt
/// ec_paramgen_curve:secp256k1`): a curve no kubelet key type uses and certboot does not issue for.
const K256_STUB: &str = "MIG3MF8CAQAwADBWMBAGByqGSM49AgEGBSuBBAAKA0IABOKxsyA0AI7IwlBph4ZQAV7feSk+/XsOPRp4hh4UFjMRMx66RNUQblByy0j2/YtUrdE4PDT0ZI3Nf37Aw7sfxEOgADAKBggqhkjOPQQDAgNIADBFAiByENByFiyijoRGoyqQUjG4l6Je8XjtucpiHr0K3CHHNAIhAIvd+28Eop94LrUud0/FmzUKLv1YPmWkBjDTZFRdVgwg";

fn policy(extra: &str) -> Policy {
    Policy::parse(&format!(
        r#"{{"signers": [{{"signerName": "certboot.io/serving", "podCertificates": true{extra}}}]}}"#
    ))
    .unwrap()
}

/// The kubelet's stub: an empty subject, no attributes, signed by the key.
fn stub(key: &KeyPair) -> Vec<u8> {
    CertificateParams::default()
        .serialize_request(key)
        .unwrap()
        .der()
        .to_vec()
}

fn pcr_with(stub: Vec<u8>) -> PodCertificateRequest {
    PodCertificateRequest {
        metadata: ObjectMeta {
            name: Some("req-1".into()),
            namespace: Some("shop".into()),
            creation_timestamp: Some(Time(Timestamp::from_second(1_800_000_000).unwrap())),
            ..ObjectMeta::default()
        },
        spec: PodCertificateRequestSpec {
            signer_name: "certboot.io/serving".into(),
            pod_name: "web-0".into(),
            pod_uid: UID.into(),
            service_account_name: "web".into(),
            service_account_uid: "sa-uid".into(),
            node_name: NODE.into(),
            node_uid: "node-uid".into(),
            max_expiration_seconds: Some(86_400),
            stub_pkc_s10_request: ByteString(stub),
            unverified_user_annotations: None,
        },
        status: None,
    }
}

fn pcr() -> PodCertificateRequest {
    pcr_with(stub(&KeyPair::generate().unwrap()))
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
            node_name: Some(NODE.into()),
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some("Pending".into()),
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

fn judge(pcr: &PodCertificateRequest, policy: &Policy, pod: Option<&Pod>) -> Result<Grant, Denial> {
    let services = [service("web", "web"), service("db", "db")];
    decide(
        pcr,
        &Facts {
            policy: &policy.signers[0],
            cluster_domain: "cluster.local",
            pod,
            services: &services,
        },
    )
}

fn denied(pcr: &PodCertificateRequest, policy: &Policy, pod: Option<&Pod>) -> Denial {
    judge(pcr, policy, pod).expect_err("denied")
}

#[test]
fn grants_the_policys_identity_for_the_pod_and_no_ip() {
    let policy = policy(
        r#", "uriTemplates": ["spiffe://{clusterDomain}/ns/{namespace}/sa/{serviceAccount}"]"#,
    );
    let grant = judge(&pcr(), &policy, Some(&pod())).unwrap();
    assert_eq!(grant.common_name.as_deref(), Some("web-0.shop"));
    assert_eq!(
        grant.dns_names,
        ["web.shop.svc", "web.shop.svc.cluster.local"],
        "the names of the Service that selects the pod, not of db"
    );
    assert_eq!(grant.uris, ["spiffe://cluster.local/ns/shop/sa/web"]);
    assert_eq!(grant.key, KeyAlgorithm::EcdsaP256);
    assert!(
        !grant.usages.contains(&"key encipherment".to_string()),
        "{:?}: key encipherment only for RSA keys",
        grant.usages
    );
}

/// A change to the request or the live pod.
type Change = Box<dyn Fn(&mut PodCertificateRequest, &mut Pod)>;

#[test]
fn a_request_that_is_not_the_pods_is_denied_with_its_reason() {
    let policy = policy("");
    let cases: Vec<(&str, Change)> = vec![
        (
            reason::POD_UID_MISMATCH,
            Box::new(|_, pod| pod.metadata.uid = Some("re-created".into())),
        ),
        (
            reason::SERVICE_ACCOUNT_MISMATCH,
            Box::new(|pcr, _| pcr.spec.service_account_name = "admin".into()),
        ),
        (
            reason::NODE_MISMATCH,
            Box::new(|pcr, _| pcr.spec.node_name = "node-2".into()),
        ),
        (
            reason::POD_ENDING,
            Box::new(|_, pod| {
                pod.metadata.deletion_timestamp = pod
                    .metadata
                    .creation_timestamp
                    .clone()
                    .or(Some(Time(Timestamp::now())))
            }),
        ),
        (
            reason::POD_ENDING,
            Box::new(|_, pod| {
                pod.status = Some(PodStatus {
                    phase: Some("Succeeded".into()),
                    ..PodStatus::default()
                })
            }),
        ),
        (
            reason::UNKNOWN_USER_ANNOTATION,
            Box::new(|pcr, _| {
                pcr.spec.unverified_user_annotations = Some(BTreeMap::from([(
                    "certboot.io/dns-names".to_string(),
                    "evil.example.com".to_string(),
                )]))
            }),
        ),
    ];
    for (want, change) in cases {
        let (mut request, mut live) = (pcr(), pod());
        change(&mut request, &mut live);
        let denial = denied(&request, &policy, Some(&live));
        assert_eq!(denial.reason, want, "{}", denial.message);
    }
    let denial = denied(&pcr(), &policy, None);
    assert_eq!(denial.reason, reason::POD_NOT_FOUND);
    assert!(denial.message.contains("shop/web-0"), "{}", denial.message);
}

#[test]
fn templates_expand_per_selecting_service_and_once_without_one() {
    let policy = policy(
        r#", "dnsNameTemplates": ["{pod}.{service}.{namespace}.svc", "{pod}.pods.example"]"#,
    );
    let grant = judge(&pcr(), &policy, Some(&pod())).unwrap();
    assert_eq!(
        grant.dns_names,
        [
            "web.shop.svc",
            "web.shop.svc.cluster.local",
            "web-0.web.shop.svc",
            "web-0.pods.example"
        ]
    );
}

#[test]
fn a_namespace_outside_the_policy_is_denied_before_the_pod_is_read() {
    let policy = policy(r#", "namespaces": ["shop"]"#);
    let mut request = pcr();
    request.metadata.namespace = Some("other".into());
    let denial = denied(&request, &policy, None);
    assert_eq!(denial.reason, reason::NAMESPACE_NOT_ALLOWED);
}

#[test]
fn keys_certboot_cannot_issue_or_the_policy_does_not_allow_are_denied() {
    let denial = denied(&pcr_with(stub_der(K256_STUB)), &policy(""), Some(&pod()));
    assert_eq!(
        denial.reason,
        reason::UNSUPPORTED_KEY_TYPE,
        "{}",
        denial.message
    );
    assert!(
        denial.message.contains("ECDSAP256")
            && denial.message.contains("ECDSAP521")
            && denial.message.contains("RSA4096"),
        "names the key types that work: {}",
        denial.message
    );
    let only_p384 = policy(r#", "keyAlgorithms": ["ecdsa-p384"]"#);
    let denial = denied(&pcr(), &only_p384, Some(&pod()));
    assert_eq!(denial.reason, reason::KEY_NOT_ALLOWED);
    assert!(denial.message.contains("ECDSAP384"), "{}", denial.message);
    let ed25519 = pcr_with(stub(&KeyPair::generate_for(&PKCS_ED25519).unwrap()));
    assert_eq!(
        judge(&ed25519, &policy(""), Some(&pod())).unwrap().key,
        KeyAlgorithm::Ed25519
    );
}

#[test]
fn an_ecdsa_p521_stub_from_openssl_or_certboot_is_issued_for() {
    let openssl = pcr_with(stub_der(P521_STUB));
    assert_eq!(
        judge(&openssl, &policy(""), Some(&pod())).unwrap().key,
        KeyAlgorithm::EcdsaP521
    );
    let ours = pcr_with(stub(
        &KeyPair::generate_for(&PKCS_ECDSA_P521_SHA512).unwrap(),
    ));
    assert_eq!(
        judge(&ours, &policy(""), Some(&pod())).unwrap().key,
        KeyAlgorithm::EcdsaP521
    );
}

fn stub_der(base64: &str) -> Vec<u8> {
    pem::parse(format!("-----BEGIN X-----\n{base64}\n-----END X-----\n"))
        .unwrap()
        .into_contents()
}

#[test]
fn a_stub_that_does_not_decode_or_verify_is_denied() {
    let denial = denied(&pcr_with(b"not DER".to_vec()), &policy(""), Some(&pod()));
    assert_eq!(denial.reason, reason::INVALID_REQUEST);
    let denial = denied(&pcr_with(Vec::new()), &policy(""), Some(&pod()));
    assert!(
        denial.message.contains("no stubPKCS10Request"),
        "{}",
        denial.message
    );
    let mut der = stub(&KeyPair::generate().unwrap());
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let denial = denied(&pcr_with(der), &policy(""), Some(&pod()));
    assert!(
        [reason::SIGNATURE_INVALID, reason::INVALID_REQUEST].contains(&denial.reason),
        "{denial:?}"
    );
}

#[test]
fn a_policy_that_names_nothing_for_the_pod_is_denied_not_an_empty_certificate() {
    let nothing = policy(
        r#", "commonNames": [], "serviceDNSNames": false, "dnsNameTemplates": [], "uriTemplates": []"#,
    );
    let denial = denied(&pcr(), &nothing, Some(&pod()));
    assert_eq!(denial.reason, reason::NO_IDENTITY);
}

#[test]
fn an_rsa_key_keeps_key_encipherment_and_usages_need_an_extended_one() {
    let rsa = certboot_core::pki::key::PrivateKey::generate(KeyAlgorithm::Rsa3072).unwrap();
    let key = KeyPair::from_pem(&rsa.to_pem()).unwrap();
    let grant = judge(&pcr_with(stub(&key)), &policy(""), Some(&pod())).unwrap();
    assert_eq!(grant.key, KeyAlgorithm::Rsa3072);
    assert!(grant.usages.contains(&"key encipherment".to_string()));
    let no_eku = policy(r#", "usages": ["digital signature"]"#);
    let denial = denied(&pcr(), &no_eku, Some(&pod()));
    assert_eq!(denial.reason, reason::USAGES_NOT_ISSUABLE);
}

#[test]
fn a_hostile_stub_of_1_mb_or_with_a_hidden_san_is_denied_before_anything_is_granted() {
    let policy = policy("");
    let denial = denied(&pcr_with(vec![0x30; 1 << 20]), &policy, Some(&pod()));
    assert_eq!(
        denial.reason,
        reason::REQUEST_TOO_LARGE,
        "{}",
        denial.message
    );
    assert!(denial.message.len() <= 1024, "bounded: {}", denial.message);
    // A SAN the strict decoder would otherwise skip: never read, never granted.
    let key = crate::hostile_csr::key();
    let hidden = crate::hostile_csr::hidden_san(&key, "web-0.shop", "evil.example.com");
    let denial = denied(&pcr_with(hidden), &policy, Some(&pod()));
    assert_eq!(denial.reason, reason::INVALID_REQUEST, "{}", denial.message);
}
