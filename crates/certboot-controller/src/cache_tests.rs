use std::collections::BTreeMap;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};
use k8s_openapi::ByteString;

use super::*;

fn map(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn big_meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some("shop".into()),
        uid: Some("0a1b".into()),
        resource_version: Some("42".into()),
        labels: map(&[("team", &"x".repeat(60))]),
        annotations: map(&[("notes", &"y".repeat(2000))]),
        managed_fields: Some(vec![ManagedFieldsEntry {
            manager: Some("kubectl".into()),
            ..ManagedFieldsEntry::default()
        }]),
        ..ObjectMeta::default()
    }
}

fn json_len<T: serde::Serialize>(value: &T) -> usize {
    serde_json::to_vec(value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

#[test]
fn a_service_keeps_its_identity_and_selector_only() {
    let mut service = Service {
        metadata: big_meta("web"),
        spec: Some(ServiceSpec {
            selector: map(&[("app", "web")]),
            ports: Some(vec![ServicePort {
                port: 443,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    };
    assert!(json_len(&service) > 2000);
    trim_service(&mut service);
    let meta = &service.metadata;
    assert_eq!(meta.name.as_deref(), Some("web"));
    assert_eq!(meta.namespace.as_deref(), Some("shop"));
    assert_eq!(meta.uid.as_deref(), Some("0a1b"));
    assert_eq!(meta.resource_version.as_deref(), Some("42"));
    assert_eq!(
        service.spec.as_ref().and_then(|s| s.selector.clone()),
        map(&[("app", "web")])
    );
    assert!(meta.annotations.is_none() && meta.labels.is_none() && meta.managed_fields.is_none());
    // A 2 KB Service costs the cache about 150 bytes.
    assert!(json_len(&service) < 200, "{}", json_len(&service));
}

fn csr(request_bytes: usize) -> CertificateSigningRequest {
    let mut meta = big_meta("shop:web-0:0a1b2c:1");
    meta.namespace = None;
    meta.labels = map(&[
        ("certboot.io/pod-name", "web-0"),
        ("certboot.io/pod-namespace", "shop"),
        ("team", "x"),
    ]);
    meta.annotations = map(&[
        ("certboot.io/pod-uid", "0a1b"),
        ("notes", &"y".repeat(2000)),
        // Forged by the CSR's author: never taken for the cache's own marker.
        (CUT_REQUEST, "5"),
    ]);
    CertificateSigningRequest {
        metadata: meta,
        spec: CertificateSigningRequestSpec {
            request: ByteString(vec![b'A'; request_bytes]),
            signer_name: "certboot.io/serving".into(),
            ..CertificateSigningRequestSpec::default()
        },
        status: None,
    }
}

#[test]
fn a_csr_still_judged_keeps_its_request_and_certboots_pod_keys_only() {
    let mut pending = csr(900);
    trim_csr(&mut pending, true);
    assert_eq!(pending.spec.request.0.len(), 900);
    assert_eq!(
        pending.metadata.labels,
        map(&[
            ("certboot.io/pod-name", "web-0"),
            ("certboot.io/pod-namespace", "shop")
        ])
    );
    assert_eq!(
        pending.metadata.annotations,
        map(&[("certboot.io/pod-uid", "0a1b")])
    );
    assert!(pending.metadata.managed_fields.is_none());
    assert_eq!(
        cut_request_bytes(&pending),
        None,
        "the forged marker is dropped"
    );
}

#[test]
fn a_decided_or_issued_csr_loses_its_request() {
    let mut decided = csr(900);
    trim_csr(&mut decided, false);
    assert!(decided.spec.request.0.is_empty());
    assert_eq!(
        decided.metadata.name.as_deref(),
        Some("shop:web-0:0a1b2c:1")
    );
    assert_eq!(decided.spec.signer_name, "certboot.io/serving");
}

#[test]
fn a_request_over_the_limit_is_never_cached_only_its_size() {
    // Forty of these filled the caches past the controller's memory limit.
    let mut huge = csr(786_432);
    trim_csr(&mut huge, true);
    assert!(huge.spec.request.0.is_empty());
    assert_eq!(cut_request_bytes(&huge), Some(786_432));
    assert!(json_len(&huge) < 1024, "{}", json_len(&huge));

    let mut at_limit = csr(REQUEST_CACHE_LIMIT);
    trim_csr(&mut at_limit, true);
    assert_eq!(at_limit.spec.request.0.len(), REQUEST_CACHE_LIMIT);
    assert_eq!(cut_request_bytes(&at_limit), None);
}
