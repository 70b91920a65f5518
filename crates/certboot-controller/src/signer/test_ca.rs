//! Test-only: a self-signed CA written as its `kubernetes.io/tls` Secret would be mounted, and
//! loaded the way the signer loads it.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

use super::ca::SigningCa;
use super::issue::system_time;

/// A CA with `key`, valid from `not_before` to `not_after` (Unix seconds), loaded at `now`. The
/// directory must live as long as the CA is used.
pub fn mounted(
    key: KeyPair,
    not_before: i64,
    not_after: i64,
    now: i64,
) -> (tempfile::TempDir, SigningCa) {
    let mut params = CertificateParams::new(vec![]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "unit CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = system_time(not_before).into();
    params.not_after = system_time(not_after).into();
    let cert = params.self_signed(&key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), key.serialize_pem()).unwrap();
    let ca = SigningCa::load(dir.path(), now).unwrap();
    (dir, ca)
}
