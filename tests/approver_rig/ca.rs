//! Test CAs for the signer's end-to-end tests: a root and an intermediate (the signing CA), and
//! the files a `kubernetes.io/tls` Secret mounts for it.

use std::path::Path;

/// A root CA and an intermediate (the signing CA), in PEM.
pub struct TestCa {
    pub root: String,
    pub intermediate: String,
    pub key: String,
}

pub fn new_ca(name: &str) -> TestCa {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_params = |cn: &str| {
        let mut p = CertificateParams::new(vec![]).expect("params");
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p
    };
    let root_key = KeyPair::generate().expect("root key");
    let root_params = ca_params(&format!("{name} root"));
    let root = root_params.self_signed(&root_key).expect("root");
    let root_issuer = Issuer::new(root_params, root_key);
    let key = KeyPair::generate().expect("intermediate key");
    let mut intermediate_params = ca_params(&format!("{name} intermediate"));
    intermediate_params.use_authority_key_identifier_extension = true;
    let intermediate = intermediate_params
        .signed_by(&key, &root_issuer)
        .expect("intermediate");
    TestCa {
        root: root.pem(),
        intermediate: intermediate.pem(),
        key: key.serialize_pem(),
    }
}

/// A root CA and an intermediate (the signing CA), as a kubernetes.io/tls Secret mounts them:
/// tls.crt = intermediate, tls.key = its key, ca.crt = root. Returns the root PEM.
pub fn write_ca(dir: &Path) -> String {
    let ca = new_ca("e2e");
    std::fs::create_dir_all(dir).expect("ca dir");
    std::fs::write(dir.join("tls.crt"), &ca.intermediate).expect("tls.crt");
    std::fs::write(dir.join("tls.key"), &ca.key).expect("tls.key");
    std::fs::write(dir.join("ca.crt"), &ca.root).expect("ca.crt");
    ca.root
}
