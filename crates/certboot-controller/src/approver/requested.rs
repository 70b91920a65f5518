//! What a CSR's PKCS#10 request asks for, read from untrusted bytes: subject, SANs, key type,
//! CA bits, and whether its signature verifies (proof that the requester holds the key).
//!
//! Nothing here decides; [`super::checks`] does. The request is decoded strictly
//! ([`certboot_core::pki::csr_der`]): a request with anything certboot does not understand, or over the
//! size limits, is an error; SANs and subject attributes of a kind the approver never grants are
//! kept as "other" so a check can refuse them by name.

use std::net::IpAddr;

use x509_parser::der_parser::oid;
use x509_parser::prelude::{FromDer, X509CertificationRequest};
use x509_parser::public_key::PublicKey;

use certboot_core::pki::csr_der::{self, CsrDerError, MAX_REQUEST_DER};
use certboot_core::pki::csr_ext::San;
use certboot_core::pki::key::KeyAlgorithm;

/// The most bytes `spec.request` (PEM) may have: [`MAX_REQUEST_DER`] in base64 with line breaks
/// fits, so a huge request is refused before it is decoded.
pub const MAX_REQUEST_PEM: usize = 24 * 1024;
const _: () = assert!(MAX_REQUEST_DER * 4 / 3 + MAX_REQUEST_DER / 48 + 80 < MAX_REQUEST_PEM);

/// The request is refused before anything in it is judged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestedError {
    #[error("spec.request is not one PEM CERTIFICATE REQUEST block (and nothing else)")]
    NotPem,
    #[error("spec.request is {0} bytes, more than certboot's limit of {MAX_REQUEST_PEM} (a pod's request is under 2 KiB); file a request with fewer names")]
    TooLarge(usize),
    #[error(transparent)]
    Strict(#[from] CsrDerError),
    #[error("spec.request is not a valid PKCS#10 request")]
    NotPkcs10,
}

impl RequestedError {
    /// True when the request is refused for its size (bytes or number of SANs).
    pub fn is_size(&self) -> bool {
        matches!(
            self,
            RequestedError::TooLarge(_)
                | RequestedError::Strict(CsrDerError::TooLarge(_) | CsrDerError::TooManySans(_))
        )
    }
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
    /// keyUsage bits asked for in the request, as `spec.usages` names (signers issue
    /// `spec.usages`; these must be among them).
    pub key_usages: Vec<&'static str>,
    /// extKeyUsage purposes asked for in the request, as `spec.usages` names.
    pub extended_key_usages: Vec<&'static str>,
    pub key: RequestedKey,
    /// The raw SubjectPublicKeyInfo bit string (what certboot's key fingerprint hashes).
    pub public_key_raw: Vec<u8>,
    /// The whole SubjectPublicKeyInfo (DER), for a signer.
    pub spki_der: Vec<u8>,
    /// basicConstraints CA:TRUE, or keyCertSign / cRLSign asked for.
    pub asks_for_ca: bool,
    pub signature_valid: bool,
}

/// `spec.request` as exactly one PEM block of a request, decoded; refused when over
/// [`MAX_REQUEST_PEM`] before any decoding.
fn der_of(pem_bytes: &[u8]) -> Result<Vec<u8>, RequestedError> {
    if pem_bytes.len() > MAX_REQUEST_PEM {
        return Err(RequestedError::TooLarge(pem_bytes.len()));
    }
    let text = std::str::from_utf8(pem_bytes)
        .map_err(|_| RequestedError::NotPem)?
        .trim();
    // One block and nothing around it: PEM readers differ in what they skip (Go's takes the first
    // block that decodes), so certboot reads only text where there is nothing to skip.
    if !text.starts_with("-----BEGIN ")
        || !text.ends_with("-----")
        || text.matches("-----BEGIN").count() != 1
        || text.matches("-----END").count() != 1
    {
        return Err(RequestedError::NotPem);
    }
    let block = pem::parse(text).map_err(|_| RequestedError::NotPem)?;
    let tag_ok = matches!(
        block.tag(),
        "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST"
    );
    if !tag_ok || block.headers().iter().next().is_some() {
        return Err(RequestedError::NotPem);
    }
    Ok(block.into_contents())
}

/// The size limits only (bytes of PEM and DER, number of SANs): `Err` only for a size refusal,
/// so it can run before any other check.
pub fn check_size(pem_bytes: &[u8]) -> Result<(), RequestedError> {
    let outcome = der_of(pem_bytes).and_then(|der| {
        csr_der::parse(&der)
            .map(|_| ())
            .map_err(RequestedError::from)
    });
    match outcome {
        Err(e) if e.is_size() => Err(e),
        _ => Ok(()),
    }
}

/// Decodes `spec.request` (PEM) strictly (see [`csr_der`]) and verifies its signature.
pub fn decode(pem_bytes: &[u8]) -> Result<Requested, RequestedError> {
    decode_der(&der_of(pem_bytes)?)
}

/// [`decode`] for the DER inside the PEM block.
pub fn decode_der(der: &[u8]) -> Result<Requested, RequestedError> {
    let strict = csr_der::parse(der)?;
    // The same bytes, read by x509-parser for what the strict decoder leaves out: the key's type
    // and the signature (ring). The strict decoder has accepted every byte, so both read alike.
    let (rest, csr) =
        X509CertificationRequest::from_der(der).map_err(|_| RequestedError::NotPkcs10)?;
    if !rest.is_empty() {
        return Err(RequestedError::NotPkcs10);
    }
    let extensions = &strict.extensions;
    let mut requested = Requested {
        common_names: Vec::new(),
        organizations: Vec::new(),
        other_subject: Vec::new(),
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
        uris: Vec::new(),
        other_sans: Vec::new(),
        key_usages: extensions.key_usages.clone(),
        extended_key_usages: extensions.extended_key_usages.clone(),
        key: key_of(&csr),
        public_key_raw: strict.public_key.to_vec(),
        spki_der: strict.spki.to_vec(),
        asks_for_ca: extensions.ca
            || extensions
                .key_usages
                .iter()
                .any(|u| matches!(*u, "cert sign" | "crl sign")),
        signature_valid: certboot_core::pki::signature::request_signed(&csr),
    };
    for attribute in strict.subject {
        match attribute.name.as_str() {
            "CN" => requested.common_names.push(attribute.value),
            "O" => requested.organizations.push(attribute.value),
            other => requested
                .other_subject
                .push(format!("{other}={}", attribute.value)),
        }
    }
    for san in &strict.extensions.sans {
        match san {
            San::Dns(d) => requested.dns_names.push(d.clone()),
            San::Ip(ip) => requested.ip_addresses.push(*ip),
            San::Uri(u) => requested.uris.push(u.clone()),
            San::Email(e) => requested.other_sans.push(format!("email:{e}")),
            San::Other(kind) => requested.other_sans.push((*kind).to_string()),
        }
    }
    Ok(requested)
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
            8192 => RequestedKey::Known(KeyAlgorithm::Rsa8192),
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
                Some(c) if c == oid!(1.3.132 .0 .35) => {
                    RequestedKey::Known(KeyAlgorithm::EcdsaP521)
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

impl Requested {
    /// certboot's key fingerprint (first 8 hex digits of the SHA-256 of the raw public key), as
    /// in its renewal CSR names.
    pub fn key_fingerprint(&self) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.public_key_raw);
        digest.as_ref()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use certboot_core::pki::key::PrivateKey;
    use certboot_core::request::RequestConfig;

    fn config() -> RequestConfig {
        RequestConfig {
            organizations: vec!["shop".into()],
            dns_names: vec!["web.shop.svc".into()],
            ip_addresses: vec!["10.1.2.3".parse().unwrap(), "fd00::3".parse().unwrap()],
            uris: vec!["spiffe://cluster.local/ns/shop/sa/web".into()],
            ..RequestConfig::example("certboot.io/serving", "web-0.shop")
        }
    }

    #[test]
    fn reads_back_what_certboot_requests_for_every_key_type() {
        for algorithm in [
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::EcdsaP521,
            KeyAlgorithm::Ed25519,
            KeyAlgorithm::Rsa2048,
            KeyAlgorithm::Rsa8192,
        ] {
            let key = PrivateKey::generate(algorithm).unwrap();
            let pem = certboot_core::pki::pkcs10::build_pkcs10(&config(), &key).unwrap();
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
        let pem = certboot_core::pki::pkcs10::build_pkcs10(&config(), &key).unwrap();
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
        assert!(matches!(
            decode(not_csr.as_bytes()),
            Err(RequestedError::Strict(CsrDerError::Malformed { .. }))
        ));
        let cert = pem::encode(&pem::Pem::new("CERTIFICATE", vec![0x30, 0x00]));
        assert_eq!(decode(cert.as_bytes()), Err(RequestedError::NotPem));
    }

    #[test]
    fn spec_request_is_one_pem_block_and_nothing_else() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let pem = certboot_core::pki::pkcs10::build_pkcs10(&config(), &key).unwrap();
        assert!(decode(format!("\n{pem}\n").as_bytes()).is_ok());
        for bad in [
            format!("{pem}{pem}"),
            format!("junk\n{pem}"),
            format!("{pem}junk"),
            pem.replace(
                "-----BEGIN CERTIFICATE REQUEST-----\n",
                "-----BEGIN CERTIFICATE REQUEST-----\nProc-Type: 4,ENCRYPTED\n\n",
            ),
        ] {
            assert_eq!(decode(bad.as_bytes()), Err(RequestedError::NotPem), "{bad}");
        }
    }

    #[test]
    fn a_huge_spec_request_is_refused_by_its_length_alone() {
        // 1 MB that would not even decode: refused for its size, before any decoding.
        let huge = vec![b'A'; 1 << 20];
        let err = decode(&huge).unwrap_err();
        assert_eq!(err, RequestedError::TooLarge(1 << 20));
        assert!(err.is_size());
        assert_eq!(check_size(&huge), Err(RequestedError::TooLarge(1 << 20)));
        assert_eq!(check_size(b"garbage"), Ok(()), "not a size problem");
    }
}
