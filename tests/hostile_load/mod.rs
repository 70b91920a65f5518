//! What anyone who may create CSRs or Services can make the controller list and watch: CSRs with
//! huge (but valid) requests and many Services padded with annotations. Shared by the e2e tests
//! of the controller's bounds and `cargo bench --bench signer` (`CERTBOOT_BENCH_HOSTILE`).

#![allow(dead_code)] // each crate uses a different part

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;

/// A valid PKCS#10 request (PEM) of at least `bytes` bytes: a key and thousands of DNS SANs, as
/// the API server accepts it (it parses every request it stores).
pub fn big_request(bytes: usize) -> String {
    let key = rcgen::KeyPair::generate().expect("key");
    // One SAN is about 30 bytes of DER, 40 of PEM.
    let names: Vec<String> = (0..bytes / 40 + 1)
        .map(|i| format!("host-{i:07}.hostile.example.com"))
        .collect();
    let params = rcgen::CertificateParams::new(names).expect("params");
    let pem = params
        .serialize_request(&key)
        .expect("request")
        .pem()
        .expect("pem");
    assert!(pem.len() >= bytes, "{} < {bytes}", pem.len());
    pem
}

/// Creates `count` CSRs of `signer` named `<prefix>-<i>` carrying `request`, as `client`.
pub async fn create_csrs(client: &Client, signer: &str, prefix: &str, count: usize, request: &str) {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    for i in 0..count {
        let csr = CertificateSigningRequest {
            metadata: ObjectMeta {
                name: Some(format!("{prefix}-{i}")),
                ..ObjectMeta::default()
            },
            spec: CertificateSigningRequestSpec {
                request: ByteString(request.as_bytes().to_vec()),
                signer_name: signer.into(),
                usages: Some(vec!["server auth".into()]),
                ..CertificateSigningRequestSpec::default()
            },
            status: None,
        };
        api.create(&PostParams::default(), &csr)
            .await
            .unwrap_or_else(|e| panic!("create CSR {prefix}-{i}: {e}"));
    }
}

/// Creates `count` headless Services (no cluster IP to allocate) in `namespace`, each about
/// `bytes` bytes with its annotations, 16 at a time.
pub async fn create_services(client: &Client, namespace: &str, count: usize, bytes: usize) {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let padding = "x".repeat(bytes.saturating_sub(300));
    futures::stream::iter(0..count)
        .for_each_concurrent(16, |i| {
            let api = api.clone();
            let padding = padding.clone();
            async move {
                let service = Service {
                    metadata: ObjectMeta {
                        name: Some(format!("padded-{i}")),
                        labels: Some(BTreeMap::from([("team".into(), "hostile".into())])),
                        annotations: Some(BTreeMap::from([("notes".into(), padding)])),
                        ..ObjectMeta::default()
                    },
                    spec: Some(ServiceSpec {
                        cluster_ip: Some("None".into()),
                        selector: Some(BTreeMap::from([("app".into(), format!("padded-{i}"))])),
                        ports: Some(vec![ServicePort {
                            port: 443,
                            ..ServicePort::default()
                        }]),
                        ..ServiceSpec::default()
                    }),
                    status: None,
                };
                api.create(&PostParams::default(), &service)
                    .await
                    .unwrap_or_else(|e| panic!("create Service padded-{i}: {e}"));
            }
        })
        .await;
}
