//! Signature checks on certificates and requests: x509-parser's, plus the ECDSA curve/hash pairs
//! it does not know (P-521 with any SHA-2, P-256/P-384 with SHA-512), through aws-lc-rs.

use aws_lc_rs::signature::{self, EcdsaVerificationAlgorithm, UnparsedPublicKey};
use x509_parser::der_parser::asn1_rs::BitString;
use x509_parser::error::X509Error;
use x509_parser::oid_registry::{
    Oid, OID_EC_P256, OID_NIST_EC_P384, OID_NIST_EC_P521, OID_SIG_ECDSA_WITH_SHA256,
    OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ECDSA_WITH_SHA512,
};
use x509_parser::prelude::{X509Certificate, X509CertificationRequest};
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};

/// True when `csr` is signed by its own key.
pub fn request_signed(csr: &X509CertificationRequest<'_>) -> bool {
    verify(
        &csr.certification_request_info.subject_pki,
        &csr.signature_algorithm,
        &csr.signature_value,
        csr.certification_request_info.raw,
    )
}

/// True when `cert` is signed by the key of `issuer`.
pub fn certificate_signed_by(
    cert: &X509Certificate<'_>,
    issuer: &SubjectPublicKeyInfo<'_>,
) -> bool {
    verify(
        issuer,
        &cert.signature_algorithm,
        &cert.signature_value,
        cert.tbs_certificate.as_ref(),
    )
}

fn verify(
    key: &SubjectPublicKeyInfo<'_>,
    algorithm: &AlgorithmIdentifier<'_>,
    signature: &BitString<'_>,
    signed: &[u8],
) -> bool {
    match x509_parser::verify::verify_signature(key, algorithm, signature, signed) {
        Ok(()) => true,
        Err(X509Error::SignatureUnsupportedAlgorithm) => ecdsa_more(key, &algorithm.algorithm)
            .is_some_and(|alg| {
                UnparsedPublicKey::new(alg, &key.subject_public_key.data)
                    .verify(signed, &signature.data)
                    .is_ok()
            }),
        Err(_) => false,
    }
}

/// The ECDSA verification algorithm for the curve/hash pairs x509-parser leaves out.
fn ecdsa_more(
    key: &SubjectPublicKeyInfo<'_>,
    algorithm: &Oid<'_>,
) -> Option<&'static EcdsaVerificationAlgorithm> {
    let curve = key.algorithm.parameters.as_ref()?.as_oid().ok()?;
    let hash = [
        (&OID_SIG_ECDSA_WITH_SHA256, 256),
        (&OID_SIG_ECDSA_WITH_SHA384, 384),
        (&OID_SIG_ECDSA_WITH_SHA512, 512),
    ]
    .into_iter()
    .find(|(oid, _)| *oid == algorithm)
    .map(|(_, bits)| bits)?;
    if curve == OID_NIST_EC_P521 {
        match hash {
            256 => Some(&signature::ECDSA_P521_SHA256_ASN1),
            384 => Some(&signature::ECDSA_P521_SHA384_ASN1),
            _ => Some(&signature::ECDSA_P521_SHA512_ASN1),
        }
    } else if curve == OID_EC_P256 && hash == 512 {
        Some(&signature::ECDSA_P256_SHA512_ASN1)
    } else if curve == OID_NIST_EC_P384 && hash == 512 {
        Some(&signature::ECDSA_P384_SHA512_ASN1)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::key::{KeyAlgorithm, PrivateKey};
    use crate::request::RequestConfig;
    use x509_parser::prelude::FromDer;

    fn request_der(algorithm: KeyAlgorithm) -> Vec<u8> {
        let config = RequestConfig {
            dns_names: vec!["web.shop.svc".into()],
            key_algorithm: algorithm,
            ..RequestConfig::example("example.com/web", "web-0.shop")
        };
        let key = PrivateKey::generate(algorithm).unwrap();
        let pem = crate::pki::pkcs10::build_pkcs10(&config, &key).unwrap();
        pem::parse(pem).unwrap().into_contents()
    }

    #[test]
    fn p521_requests_verify_and_a_flipped_signature_bit_does_not() {
        for algorithm in [KeyAlgorithm::EcdsaP521, KeyAlgorithm::Rsa8192] {
            let mut der = request_der(algorithm);
            let (_, csr) = X509CertificationRequest::from_der(&der).unwrap();
            assert!(request_signed(&csr), "{algorithm}");
            let last = der.len() - 1;
            der[last] ^= 0x01;
            let (_, csr) = X509CertificationRequest::from_der(&der).unwrap();
            assert!(!request_signed(&csr), "{algorithm}: tampered");
        }
    }
}
