//! What a pod asks for: the certificate request's signer, subject, SANs, usages, key algorithm and
//! lifetime, and the bounds the certificates.k8s.io/v1 API puts on them.

use std::net::IpAddr;

use crate::pki::key::KeyAlgorithm;

/// The smallest `expirationSeconds` the certificates.k8s.io/v1 API accepts.
pub const MIN_EXPIRATION_SECONDS: u32 = 600;

/// The key usages the certificates.k8s.io/v1 API defines: first those of the keyUsage extension
/// (and `any`), then the [`EXTENDED_KEY_USAGES`].
pub const KNOWN_USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// The `spec.usages` values that become an extendedKeyUsage purpose: [`KNOWN_USAGES`] from
/// `server auth` on.
pub const EXTENDED_KEY_USAGES: &[&str] = KNOWN_USAGES.split_at(11).1;

/// What goes into the certificate request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestConfig {
    pub signer_name: String,
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub uris: Vec<String>,
    pub usages: Vec<String>,
    pub key_algorithm: KeyAlgorithm,
    pub expiration_seconds: Option<u32>,
}

#[cfg(any(test, feature = "test-support"))]
impl RequestConfig {
    /// A request for tests: `signer_name`, `common_name`, `server auth`, an ECDSA P-256 key, no
    /// SANs, the signer's default lifetime.
    pub fn example(signer_name: &str, common_name: &str) -> RequestConfig {
        RequestConfig {
            signer_name: signer_name.into(),
            common_name: common_name.into(),
            organizations: vec![],
            dns_names: vec![],
            ip_addresses: vec![],
            uris: vec![],
            usages: vec!["server auth".into()],
            key_algorithm: KeyAlgorithm::EcdsaP256,
            expiration_seconds: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extended_key_usages_are_the_purposes_from_server_auth_on() {
        assert_eq!(EXTENDED_KEY_USAGES.first(), Some(&"server auth"));
        assert_eq!(EXTENDED_KEY_USAGES.len(), 12);
        assert!(!EXTENDED_KEY_USAGES.contains(&"any"));
        assert!(!EXTENDED_KEY_USAGES.contains(&"digital signature"));
    }
}
