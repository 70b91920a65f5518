//! The CA a user creates before installing (the Secret the chart and the kustomize base mount),
//! and which CA signed a pod's certificate.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};

/// Creates Secret `namespace/name` (type kubernetes.io/tls, plus `ca.crt`) holding `ca`, as the
/// README's `kubectl create secret tls` does.
pub async fn create_secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    ca: &crate::harness::Ca,
) {
    let data = [
        ("tls.crt", ca.cert_pem()),
        ("tls.key", ca.key_pem()),
        ("ca.crt", ca.cert_pem()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
    .collect();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap_or_else(|e| panic!("create the CA Secret {namespace}/{name}: {e}"));
}

/// Whether the first certificate of `cert_pem` names `ca`'s subject as its issuer.
pub fn issued_by(cert_pem: &str, ca: &crate::harness::Ca) -> bool {
    let (_, leaf) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).expect("PEM");
    let leaf = leaf.parse_x509().expect("certificate");
    let (_, ca_pem) = x509_parser::pem::parse_x509_pem(ca.cert_pem().as_bytes()).expect("CA PEM");
    let ca_cert = ca_pem.parse_x509().expect("CA certificate");
    leaf.issuer() == ca_cert.subject()
}
