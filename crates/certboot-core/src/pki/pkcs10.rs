//! The PKCS#10 certificate request: subject, subject alternative names, signed by our key.
//!
//! rcgen's default subject is `CN=rcgen self signed cert`; certboot always replaces it.

use rcgen::{CertificateParams, DistinguishedName, DnType, SanType};

use crate::pki::key::{KeyError, PrivateKey};
use crate::request::RequestConfig;

/// Failures while building the request.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("could not build the certificate request: {0} is not a valid IA5 (ASCII) string; use ASCII names in CERTBOOT_DNS_NAMES / CERTBOOT_URIS")]
    NotAscii(String),
    #[error("could not sign the certificate request: {0}")]
    Sign(#[source] rcgen::Error),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Builds and signs a PKCS#10 request for `config`, returning it as PEM
/// (`-----BEGIN CERTIFICATE REQUEST-----`), ready for `spec.request`.
pub fn build_pkcs10(config: &RequestConfig, key: &PrivateKey) -> Result<String, RequestError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(config);
    params.subject_alt_names = subject_alt_names(config)?;
    let signing_key = key.signing_key()?;
    let request = params
        .serialize_request(&*signing_key)
        .map_err(RequestError::Sign)?;
    request.pem().map_err(RequestError::Sign)
}

fn subject(config: &RequestConfig) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for organization in &config.organizations {
        dn.push(DnType::OrganizationName, organization.as_str());
    }
    dn.push(DnType::CommonName, config.common_name.as_str());
    dn
}

fn subject_alt_names(config: &RequestConfig) -> Result<Vec<SanType>, RequestError> {
    let ia5 = |s: &String| {
        s.clone()
            .try_into()
            .map_err(|_| RequestError::NotAscii(s.clone()))
    };
    let mut sans = Vec::new();
    for name in &config.dns_names {
        sans.push(SanType::DnsName(ia5(name)?));
    }
    for ip in &config.ip_addresses {
        sans.push(SanType::IpAddress(*ip));
    }
    for uri in &config.uris {
        sans.push(SanType::URI(ia5(uri)?));
    }
    Ok(sans)
}

/// What a PKCS#10 request says, decoded (for `--dry-run` and for comparing keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRequest {
    pub subject: String,
    pub sans: Vec<String>,
    pub public_key: Vec<u8>,
    pub signature_valid: bool,
}

/// Decodes a PEM PKCS#10 request (untrusted input: returns `None` when it cannot be read), with
/// the strict decoder the approver and the signer use ([`super::csr_der`]).
pub fn decode_pkcs10(pem_bytes: &[u8]) -> Option<DecodedRequest> {
    use super::csr_ext::San;
    use x509_parser::prelude::{FromDer, X509CertificationRequest};
    let block = pem::parse(pem_bytes).ok()?;
    if block.tag() != "CERTIFICATE REQUEST" && block.tag() != "NEW CERTIFICATE REQUEST" {
        return None;
    }
    let strict = super::csr_der::parse(block.contents()).ok()?;
    let (_, csr) = X509CertificationRequest::from_der(block.contents()).ok()?;
    let subject: Vec<String> = strict
        .subject
        .iter()
        .map(|a| format!("{}={}", a.name, a.value))
        .collect();
    let sans = strict
        .extensions
        .sans
        .iter()
        .map(|san| match san {
            San::Dns(d) => format!("DNS:{d}"),
            San::Ip(ip) => format!("IP:{ip}"),
            San::Uri(u) => format!("URI:{u}"),
            San::Email(e) => format!("email:{e}"),
            San::Other(kind) => (*kind).to_string(),
        })
        .collect();
    Some(DecodedRequest {
        subject: subject.join(", "),
        sans,
        public_key: strict.public_key.to_vec(),
        signature_valid: super::signature::request_signed(&csr),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::key::KeyAlgorithm;

    fn config() -> RequestConfig {
        RequestConfig {
            organizations: vec!["shop".into()],
            dns_names: vec!["web.shop.svc".into(), "*.web.shop.svc".into()],
            ip_addresses: vec!["10.1.2.3".parse().unwrap(), "fd00::3".parse().unwrap()],
            uris: vec!["spiffe://cluster.local/ns/shop/sa/web".into()],
            usages: vec!["digital signature".into(), "server auth".into()],
            ..RequestConfig::example("example.com/web", "web-0.shop")
        }
    }

    #[test]
    fn request_carries_subject_sans_and_our_public_key_for_every_algorithm() {
        for algorithm in KeyAlgorithm::ALL {
            let key = PrivateKey::generate(algorithm).unwrap();
            let pem = build_pkcs10(&config(), &key).unwrap();
            let decoded = decode_pkcs10(pem.as_bytes()).unwrap();
            assert_eq!(decoded.subject, "O=shop, CN=web-0.shop", "{algorithm}");
            assert!(!decoded.subject.contains("rcgen"));
            assert_eq!(
                decoded.sans,
                vec![
                    "DNS:web.shop.svc",
                    "DNS:*.web.shop.svc",
                    "IP:10.1.2.3",
                    "IP:fd00::3",
                    "URI:spiffe://cluster.local/ns/shop/sa/web"
                ]
            );
            assert_eq!(decoded.public_key, key.public_key_raw(), "{algorithm}");
            assert!(decoded.signature_valid, "{algorithm}");
        }
    }

    /// openssl (when installed) reads every key type's key file and verifies its request.
    #[test]
    fn openssl_reads_every_key_and_verifies_every_request() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let openssl = |args: &[&str], input: &[u8]| {
            let mut child = Command::new("openssl")
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .ok()?;
            child.stdin.take()?.write_all(input).ok()?;
            Some(child.wait_with_output().unwrap())
        };
        if openssl(&["version"], b"").is_none() {
            eprintln!("openssl not installed: skipped");
            return;
        }
        for algorithm in KeyAlgorithm::ALL {
            let key = PrivateKey::generate(algorithm).unwrap();
            let out = openssl(&["pkey", "-pubout"], key.to_pem().as_bytes()).unwrap();
            assert!(
                out.status.success(),
                "{algorithm}: openssl pkey: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let csr = build_pkcs10(&config(), &key).unwrap();
            let out = openssl(&["req", "-verify", "-noout", "-text"], csr.as_bytes()).unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{algorithm}: openssl req -verify: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            if algorithm == KeyAlgorithm::EcdsaP521 {
                assert!(text.contains("ecdsa-with-SHA512"), "{text}");
                assert!(text.contains("P-521"), "{text}");
            }
            if algorithm == KeyAlgorithm::Rsa8192 {
                assert!(text.contains("(8192 bit)"), "{text}");
            }
        }
    }

    #[test]
    fn garbage_is_not_a_request() {
        assert!(decode_pkcs10(b"garbage").is_none());
        assert!(decode_pkcs10(
            b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
        )
        .is_none());
    }
}
