//! What a CSR's PKCS#10 request asks for, read from untrusted bytes: subject, SANs, key type,
//! CA bits, and whether its signature verifies (proof that the requester holds the key).
//!
//! Nothing here decides; [`super::checks`] does. Anything the approver does not understand is
//! kept as "other" so a check can refuse it instead of silently ignoring it.

use std::net::IpAddr;

use x509_parser::der_parser::oid;
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509CertificationRequest};
use x509_parser::public_key::PublicKey;

use crate::pki::key::KeyAlgorithm;

/// The request could not be read at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestedError {
    #[error("spec.request is not a PEM CERTIFICATE REQUEST")]
    NotPem,
    #[error("spec.request is not a valid PKCS#10 request")]
    NotPkcs10,
}

/// The key in the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestedKey {
    /// One of the algorithms certboot knows.
    Known(KeyAlgorithm),
    /// Anything else (an RSA size or curve certboot does not use, DSA, ...), described.
    Other(String),
}

/// The decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    pub common_names: Vec<String>,
    pub organizations: Vec<String>,
    /// Subject attributes other than CN and O, by OID or short name (e.g. `OU`).
    pub other_subject: Vec<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub uris: Vec<String>,
    /// SANs of other kinds (e-mail, directory names, ...), described.
    pub other_sans: Vec<String>,
    pub key: RequestedKey,
    /// The raw SubjectPublicKeyInfo bit string (what certboot's key fingerprint hashes).
    pub public_key_raw: Vec<u8>,
    /// basicConstraints CA:TRUE, or keyCertSign / cRLSign asked for.
    pub asks_for_ca: bool,
    pub signature_valid: bool,
}

/// Decodes `spec.request` (PEM).
pub fn decode(pem_bytes: &[u8]) -> Result<Requested, RequestedError> {
    let block = pem::parse(pem_bytes).map_err(|_| RequestedError::NotPem)?;
    if block.tag() != "CERTIFICATE REQUEST" && block.tag() != "NEW CERTIFICATE REQUEST" {
        return Err(RequestedError::NotPem);
    }
    let (rest, csr) = X509CertificationRequest::from_der(block.contents())
        .map_err(|_| RequestedError::NotPkcs10)?;
    if !rest.is_empty() {
        return Err(RequestedError::NotPkcs10);
    }
    let info = &csr.certification_request_info;
    let mut requested = Requested {
        common_names: Vec::new(),
        organizations: Vec::new(),
        other_subject: Vec::new(),
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
        uris: Vec::new(),
        other_sans: Vec::new(),
        key: key_of(&csr),
        public_key_raw: info.subject_pki.subject_public_key.data.to_vec(),
        asks_for_ca: false,
        signature_valid: csr.verify_signature().is_ok(),
    };
    read_subject(&csr, &mut requested)?;
    for ext in csr.requested_extensions().into_iter().flatten() {
        read_extension(ext, &mut requested);
    }
    Ok(requested)
}

fn read_subject(
    csr: &X509CertificationRequest<'_>,
    out: &mut Requested,
) -> Result<(), RequestedError> {
    let cn = oid!(2.5.4 .3);
    let o = oid!(2.5.4 .10);
    for attr in csr.certification_request_info.subject.iter_attributes() {
        let value = attr
            .as_str()
            .map_err(|_| RequestedError::NotPkcs10)?
            .to_string();
        if *attr.attr_type() == cn {
            out.common_names.push(value);
        } else if *attr.attr_type() == o {
            out.organizations.push(value);
        } else {
            let name = x509_parser::objects::oid2abbrev(
                attr.attr_type(),
                x509_parser::objects::oid_registry(),
            )
            .map(str::to_string)
            .unwrap_or_else(|_| attr.attr_type().to_id_string());
            out.other_subject.push(format!("{name}={value}"));
        }
    }
    Ok(())
}

fn read_extension(ext: &ParsedExtension<'_>, out: &mut Requested) {
    match ext {
        ParsedExtension::SubjectAlternativeName(san) => {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(d) => out.dns_names.push(d.to_string()),
                    GeneralName::IPAddress(bytes) => match ip_from_bytes(bytes) {
                        Some(ip) => out.ip_addresses.push(ip),
                        None => out.other_sans.push(format!("IP:{bytes:02x?}")),
                    },
                    GeneralName::URI(u) => out.uris.push(u.to_string()),
                    GeneralName::RFC822Name(e) => out.other_sans.push(format!("email:{e}")),
                    other => out.other_sans.push(format!("{other:?}")),
                }
            }
        }
        ParsedExtension::BasicConstraints(bc) if bc.ca => out.asks_for_ca = true,
        ParsedExtension::KeyUsage(ku) if ku.key_cert_sign() || ku.crl_sign() => {
            out.asks_for_ca = true
        }
        _ => {}
    }
}

fn key_of(csr: &X509CertificationRequest<'_>) -> RequestedKey {
    let spki = &csr.certification_request_info.subject_pki;
    let ed25519 = oid!(1.3.101 .112);
    if spki.algorithm.algorithm == ed25519 {
        return RequestedKey::Known(KeyAlgorithm::Ed25519);
    }
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => match rsa.key_size() {
            2048 => RequestedKey::Known(KeyAlgorithm::Rsa2048),
            3072 => RequestedKey::Known(KeyAlgorithm::Rsa3072),
            4096 => RequestedKey::Known(KeyAlgorithm::Rsa4096),
            bits => RequestedKey::Other(format!("rsa-{bits}")),
        },
        Ok(PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            match curve {
                Some(c) if c == oid!(1.2.840 .10045 .3 .1 .7) => {
                    RequestedKey::Known(KeyAlgorithm::EcdsaP256)
                }
                Some(c) if c == oid!(1.3.132 .0 .34) => {
                    RequestedKey::Known(KeyAlgorithm::EcdsaP384)
                }
                Some(c) => RequestedKey::Other(format!("ecdsa curve {}", c.to_id_string())),
                None => RequestedKey::Other("ecdsa without a named curve".into()),
            }
        }
        _ => RequestedKey::Other(format!(
            "key algorithm {}",
            spki.algorithm.algorithm.to_id_string()
        )),
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

impl Requested {
    /// certboot's key fingerprint (first 8 hex digits of the SHA-256 of the raw public key), as
    /// in its renewal CSR names.
    pub fn key_fingerprint(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.public_key_raw);
        digest.as_ref()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RequestConfig;
    use crate::pki::key::PrivateKey;

    fn config() -> RequestConfig {
        RequestConfig {
            signer_name: "certboot.io/serving".into(),
            common_name: "web-0.shop".into(),
            organizations: vec!["shop".into()],
            dns_names: vec!["web.shop.svc".into()],
            ip_addresses: vec!["10.1.2.3".parse().unwrap(), "fd00::3".parse().unwrap()],
            uris: vec!["spiffe://cluster.local/ns/shop/sa/web".into()],
            usages: vec!["server auth".into()],
            key_algorithm: KeyAlgorithm::EcdsaP256,
            expiration_seconds: None,
        }
    }

    #[test]
    fn reads_back_what_certboot_requests_for_every_key_type() {
        for algorithm in [
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::Ed25519,
            KeyAlgorithm::Rsa2048,
        ] {
            let key = PrivateKey::generate(algorithm).unwrap();
            let pem = crate::pki::pkcs10::build_pkcs10(&config(), &key).unwrap();
            let r = decode(pem.as_bytes()).unwrap();
            assert_eq!(r.key, RequestedKey::Known(algorithm));
            assert!(r.signature_valid, "{algorithm}");
            assert_eq!(r.common_names, vec!["web-0.shop"]);
            assert_eq!(r.organizations, vec!["shop"]);
            assert!(r.other_subject.is_empty());
            assert_eq!(r.dns_names, vec!["web.shop.svc"]);
            assert_eq!(r.ip_addresses.len(), 2);
            assert_eq!(r.uris, vec!["spiffe://cluster.local/ns/shop/sa/web"]);
            assert!(!r.asks_for_ca);
            assert_eq!(r.key_fingerprint(), key.fingerprint());
        }
    }

    #[test]
    fn a_tampered_request_fails_proof_of_possession() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let pem = crate::pki::pkcs10::build_pkcs10(&config(), &key).unwrap();
        let mut der = pem::parse(pem.as_bytes()).unwrap().into_contents();
        // Flip one byte of the CN ("web-0.shop" -> "web-1.shop"): the signature no longer matches.
        let at = der.windows(5).position(|w| w == b"web-0").unwrap();
        der[at + 4] = b'1';
        let tampered = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
        let r = decode(tampered.as_bytes()).unwrap();
        assert_eq!(r.common_names, vec!["web-1.shop"]);
        assert!(!r.signature_valid);
    }

    #[test]
    fn a_ca_request_is_seen() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["x".to_string()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        assert!(decode(pem.as_bytes()).unwrap().asks_for_ca);
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        assert_eq!(decode(b"hello"), Err(RequestedError::NotPem));
        let not_csr = pem::encode(&pem::Pem::new(
            "CERTIFICATE REQUEST",
            vec![0x30, 0x03, 1, 2, 3],
        ));
        assert_eq!(decode(not_csr.as_bytes()), Err(RequestedError::NotPkcs10));
        let cert = pem::encode(&pem::Pem::new("CERTIFICATE", vec![0x30, 0x00]));
        assert_eq!(decode(cert.as_bytes()), Err(RequestedError::NotPem));
    }
}
