//! Test PKI built with rcgen: the harness CA (which serves the apiserver, is its client CA and
//! the controller-manager's signing CA), fresh P-256 keys with PKCS#10 requests, and signing of
//! CSRs the way a signer controller would (used by [`super::csr::CustomSigner`]).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
    PKCS_ECDSA_P256_SHA256,
};

/// A self-signed CA with its key, able to issue serving certificates and sign CSRs.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

impl Ca {
    /// A new P-256 CA named `common_name`, valid from an hour ago for ten years.
    pub fn new(common_name: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(
            &mut params,
            Duration::from_secs(3600),
            Duration::from_secs(10 * 365 * 86400),
        );
        params.serial_number = Some(next_serial());
        let key = new_p256_key();
        let key_pem = key.serialize_pem();
        let issuer = CertifiedIssuer::self_signed(params, key).expect("self-sign the harness CA");
        let cert_pem = issuer.pem();
        Ca {
            issuer,
            cert_pem,
            key_pem,
        }
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A serving certificate for 127.0.0.1 and localhost: `(cert_pem, key_pem)`.
    pub fn issue_loopback_serving_cert(&self) -> (String, String) {
        let mut params = CertificateParams::new(vec!["localhost".to_string()])
            .expect("serving certificate parameters");
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        // The `kubernetes` Service's ClusterIP (first of --service-cluster-ip-range): pods on the
        // harness node reach the API server there (tests/harness/node/).
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        set_validity(
            &mut params,
            Duration::from_secs(3600),
            Duration::from_secs(365 * 86400),
        );
        params.serial_number = Some(next_serial());
        let key = new_p256_key();
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign the apiserver serving certificate");
        (cert.pem(), key.serialize_pem())
    }

    /// Signs a PKCS#10 request (PEM) as a certificates.k8s.io signer would: subject and SANs
    /// from the request, key usages and extended key usages from the CSR's `spec.usages`,
    /// `basicConstraints CA:false`, valid from five minutes ago until `now + lifetime`.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        usages: &[String],
        lifetime: Duration,
    ) -> Result<String, String> {
        let now = SystemTime::now();
        self.sign_csr_with(
            csr_pem,
            usages,
            now - Duration::from_secs(300),
            now + lifetime,
            false,
        )
    }

    /// Like [`Ca::sign_csr`], but signed with the key of another (`CA:false`) leaf this CA issues
    /// for the occasion: `leaf, that other leaf` (a hostile chain through a non-CA).
    pub fn sign_csr_through_leaf(
        &self,
        csr_pem: &str,
        usages: &[String],
        lifetime: Duration,
    ) -> Result<String, String> {
        let mut params = CertificateParams::new(vec!["another-pod.default.svc".to_string()])
            .map_err(|e| format!("leaf parameters: {e}"))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "another-pod.default");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        set_validity(&mut params, Duration::from_secs(300), lifetime);
        params.serial_number = Some(next_serial());
        let key = new_p256_key();
        let other = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| format!("cannot sign the other leaf: {e}"))?;
        let other_issuer = rcgen::Issuer::from_params(&params, &key);
        let mut request = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| format!("cannot parse or verify the PKCS#10 request: {e}"))?;
        request.params.is_ca = IsCa::ExplicitNoCa;
        request.params.key_usages = usages.iter().filter_map(|u| key_usage(u)).collect();
        request.params.extended_key_usages = usages
            .iter()
            .filter_map(|u| extended_key_usage(u))
            .collect();
        request.params.serial_number = Some(next_serial());
        set_validity(&mut request.params, Duration::from_secs(300), lifetime);
        let leaf = request
            .signed_by(&other_issuer)
            .map_err(|e| format!("cannot sign the request: {e}"))?;
        Ok(format!("{}{}", leaf.pem(), other.pem()))
    }

    /// Like [`Ca::sign_csr`] with an explicit validity window and `basicConstraints` (hostile
    /// signers in the tests: expired, not yet valid, or CA certificates).
    pub fn sign_csr_with(
        &self,
        csr_pem: &str,
        usages: &[String],
        not_before: SystemTime,
        not_after: SystemTime,
        is_ca: bool,
    ) -> Result<String, String> {
        let mut request = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| format!("cannot parse or verify the PKCS#10 request: {e}"))?;
        let params = &mut request.params;
        params.is_ca = if is_ca {
            IsCa::Ca(BasicConstraints::Unconstrained)
        } else {
            IsCa::ExplicitNoCa
        };
        params.key_usages = usages.iter().filter_map(|u| key_usage(u)).collect();
        params.extended_key_usages = usages
            .iter()
            .filter_map(|u| extended_key_usage(u))
            .collect();
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(next_serial());
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let cert = request
            .signed_by(&self.issuer)
            .map_err(|e| format!("cannot sign the request: {e}"))?;
        Ok(cert.pem())
    }
}

/// A fresh ECDSA P-256 key.
pub fn new_p256_key() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("generate a P-256 key")
}

/// A fresh P-256 key and a PKCS#10 request for `CN=common_name, O=organizations...`
/// (no extensions): `(key_pem, csr_pem)`.
pub fn new_key_and_csr(common_name: &str, organizations: &[&str]) -> (String, String) {
    let key = new_p256_key();
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    for org in organizations {
        params
            .distinguished_name
            .push(DnType::OrganizationName, *org);
    }
    let csr = params
        .serialize_request(&key)
        .expect("serialize the PKCS#10 request");
    (
        key.serialize_pem(),
        csr.pem().expect("PEM-encode the PKCS#10 request"),
    )
}

/// DER bodies of every `CERTIFICATE` block in `pem`.
pub fn certificate_ders(pem: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .map(|block| block.expect("well-formed PEM"))
        .filter(|block| block.label == "CERTIFICATE")
        .map(|block| block.contents)
        .collect()
}

/// The Kubernetes key-usage names that map to X.509 key usages.
fn key_usage(usage: &str) -> Option<KeyUsagePurpose> {
    Some(match usage {
        "digital signature" => KeyUsagePurpose::DigitalSignature,
        "content commitment" => KeyUsagePurpose::ContentCommitment,
        "key encipherment" => KeyUsagePurpose::KeyEncipherment,
        "key agreement" => KeyUsagePurpose::KeyAgreement,
        "data encipherment" => KeyUsagePurpose::DataEncipherment,
        "cert sign" => KeyUsagePurpose::KeyCertSign,
        "crl sign" => KeyUsagePurpose::CrlSign,
        "encipher only" => KeyUsagePurpose::EncipherOnly,
        "decipher only" => KeyUsagePurpose::DecipherOnly,
        _ => return None,
    })
}

/// The Kubernetes key-usage names that map to X.509 extended key usages.
fn extended_key_usage(usage: &str) -> Option<ExtendedKeyUsagePurpose> {
    Some(match usage {
        "any" => ExtendedKeyUsagePurpose::Any,
        "server auth" => ExtendedKeyUsagePurpose::ServerAuth,
        "client auth" => ExtendedKeyUsagePurpose::ClientAuth,
        "code signing" => ExtendedKeyUsagePurpose::CodeSigning,
        "email protection" => ExtendedKeyUsagePurpose::EmailProtection,
        "timestamping" => ExtendedKeyUsagePurpose::TimeStamping,
        "ocsp signing" => ExtendedKeyUsagePurpose::OcspSigning,
        _ => return None,
    })
}

/// Validity from `now - backdate` to `now + lifetime`.
fn set_validity(params: &mut CertificateParams, backdate: Duration, lifetime: Duration) {
    let now = SystemTime::now();
    params.not_before = (now - backdate).into();
    params.not_after = (now + lifetime).into();
}

/// A serial number unique within this process (time-based, plus a counter).
fn next_serial() -> SerialNumber {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64;
    let serial =
        (nanos & 0x7fff_ffff_ffff_0000) | (COUNTER.fetch_add(1, Ordering::Relaxed) & 0xffff);
    SerialNumber::from(serial.max(1))
}
