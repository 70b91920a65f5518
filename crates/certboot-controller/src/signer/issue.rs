//! One certificate for one approved CSR: exactly the request's subject and SANs, never more; key
//! usage and extended key usage from `spec.usages` (at least one extended key usage: without one a
//! certificate is valid for any purpose); CA:false; subject and authority key
//! identifiers; a 128-bit random serial; notBefore backdated [`BACKDATE_SECONDS`] (clock skew
//! between nodes); notAfter the earliest of the requested lifetime (or the default), the maximum,
//! and the CA's own notAfter.
//!
//! The request is read with the approver's strict decoder ([`requested::decode`]): a request the
//! approver would refuse as unreadable, oversized or ambiguous is never signed.

use super::ca::SigningCa;
use crate::approver::{message, requested};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    SanType, SerialNumber, SubjectPublicKeyInfo,
};

/// How far notBefore lies before the signing time.
pub const BACKDATE_SECONDS: i64 = 300;

/// A request the signer cannot honour: becomes the CSR's Failed condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

/// Every Failed message is bounded like the approver's denials (a condition within 1 KiB).
pub(crate) fn refuse(reason: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        reason,
        message: message::bounded(message.into()),
    }
}

/// Lifetimes, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    pub default: i64,
    pub max: i64,
}

/// The refusal of a request that does not decode: too large, or not strict.
pub(super) fn request_refusal(e: requested::RequestedError) -> Refusal {
    let reason = if e.is_size() {
        "RequestTooLarge"
    } else {
        "InvalidRequest"
    };
    refuse(reason, e.to_string())
}

/// Signs `request_pem` for `usages`, returning `status.certificate` (leaf, then intermediates).
pub fn issue(
    request_pem: &[u8],
    usages: &[String],
    expiration_seconds: Option<i32>,
    ca: &SigningCa,
    lifetimes: Lifetimes,
    now: i64,
) -> Result<String, Refusal> {
    let requested = requested::decode(request_pem).map_err(request_refusal)?;
    if !requested.signature_valid {
        return Err(refuse(
            "InvalidRequest",
            "the PKCS#10 signature does not verify with its own key",
        ));
    }
    if requested.asks_for_ca {
        return Err(refuse(
            "CARequested",
            "the request asks for a CA certificate; this signer issues leaf certificates only",
        ));
    }
    if !requested.other_subject.is_empty() || !requested.other_sans.is_empty() {
        return Err(refuse(
            "UnsupportedRequest",
            format!(
                "the request carries subject attributes or SANs this signer does not issue: {} {}",
                message::few(&requested.other_subject),
                message::few(&requested.other_sans)
            ),
        ));
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(&requested.common_names, &requested.organizations);
    params.subject_alt_names = sans(&requested).map_err(|m| refuse("InvalidRequest", m))?;
    let (key_usages, extended) = map_usages(usages)?;
    params.key_usages = key_usages;
    params.extended_key_usages = extended;
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(serial()?);
    let lifetime = match expiration_seconds {
        Some(s) => i64::from(s).max(600),
        None => lifetimes.default,
    }
    .min(lifetimes.max);
    let not_after = (now + lifetime).min(ca.not_after());
    if not_after <= now {
        return Err(refuse(
            "SignerCAExpired",
            "the signer's CA has expired; rotate it",
        ));
    }
    params.not_before = system_time(now - BACKDATE_SECONDS).into();
    params.not_after = system_time(not_after).into();
    let public_key = SubjectPublicKeyInfo::from_der(&requested.spki_der)
        .map_err(|_| refuse("UnsupportedKey", "the request's key type cannot be issued"))?;
    let leaf = params
        .signed_by(&public_key, ca.issuer())
        .map_err(|e| refuse("SigningFailed", format!("could not sign: {e}")))?;
    Ok(format!("{}{}", leaf.pem(), ca.intermediates_pem()))
}

pub(crate) fn subject(common_names: &[String], organizations: &[String]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for o in organizations {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    for cn in common_names {
        dn.push(DnType::CommonName, cn.as_str());
    }
    dn
}

fn sans(requested: &requested::Requested) -> Result<Vec<SanType>, String> {
    let ia5 = |s: &String| {
        s.clone()
            .try_into()
            .map_err(|_| format!("{s:?} is not ASCII"))
    };
    let mut out = Vec::new();
    for d in &requested.dns_names {
        out.push(SanType::DnsName(ia5(d)?));
    }
    for ip in &requested.ip_addresses {
        out.push(SanType::IpAddress(*ip));
    }
    for u in &requested.uris {
        out.push(SanType::URI(ia5(u)?));
    }
    Ok(out)
}

/// `spec.usages` → key usage and extended key usage; CA usages and unknown ones are refused, and
/// so are usages without an extended key usage (the certificate would be valid for any purpose).
pub fn map_usages(
    usages: &[String],
) -> Result<(Vec<KeyUsagePurpose>, Vec<ExtendedKeyUsagePurpose>), Refusal> {
    let mut key = Vec::new();
    let mut extended = Vec::new();
    for usage in usages {
        match usage.as_str() {
            "digital signature" | "signing" => key.push(KeyUsagePurpose::DigitalSignature),
            "content commitment" => key.push(KeyUsagePurpose::ContentCommitment),
            "key encipherment" => key.push(KeyUsagePurpose::KeyEncipherment),
            "key agreement" => key.push(KeyUsagePurpose::KeyAgreement),
            "data encipherment" => key.push(KeyUsagePurpose::DataEncipherment),
            "server auth" => extended.push(ExtendedKeyUsagePurpose::ServerAuth),
            "client auth" => extended.push(ExtendedKeyUsagePurpose::ClientAuth),
            "code signing" => extended.push(ExtendedKeyUsagePurpose::CodeSigning),
            "email protection" => extended.push(ExtendedKeyUsagePurpose::EmailProtection),
            "timestamping" => extended.push(ExtendedKeyUsagePurpose::TimeStamping),
            other => return Err(refuse("UnsupportedUsage", format!(
                "usage {other:?} is not issued by this signer (it issues digital signature, key encipherment, key agreement, data encipherment, content commitment, server auth, client auth, code signing, email protection, timestamping)"
            ))),
        }
    }
    key.dedup();
    extended.dedup();
    if extended.is_empty() {
        return Err(refuse(
            "ExtendedKeyUsageMissing",
            format!(
                "spec.usages {usages:?} has no extended key usage, and a certificate without one is valid for any purpose; this signer issues only with at least one of server auth, client auth, code signing, email protection, timestamping"
            ),
        ));
    }
    Ok((key, extended))
}

pub(crate) fn serial() -> Result<SerialNumber, Refusal> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| refuse("SigningFailed", "no randomness for the serial number"))?;
    bytes[0] &= 0x7f; // a positive INTEGER
    bytes[0] |= 0x40; // of exactly 16 bytes
    Ok(SerialNumber::from_slice(&bytes))
}

pub(crate) fn system_time(unix: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(unix).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use certboot_core::pki::key::{KeyAlgorithm, PrivateKey};
    use certboot_core::request::RequestConfig;
    use rcgen::{BasicConstraints, KeyPair, PKCS_ECDSA_P521_SHA512, PKCS_ED25519, PKCS_RSA_SHA256};
    use x509_parser::prelude::{FromDer, X509Certificate};

    const NOW: i64 = 1_800_000_000;
    const LIFETIMES: Lifetimes = Lifetimes {
        default: 86_400,
        max: 7 * 86_400,
    };

    /// A self-signed CA with `key`, written as a Secret would mount it.
    fn ca_with(key: KeyPair) -> (tempfile::TempDir, SigningCa) {
        crate::signer::test_ca::mounted(key, NOW - 3600, NOW + 30 * 86_400, NOW)
    }

    fn request() -> String {
        request_with(KeyAlgorithm::EcdsaP256)
    }

    fn request_with(key_algorithm: KeyAlgorithm) -> String {
        let config = RequestConfig {
            signer_name: "certboot.io/serving".into(),
            common_name: "web-0.shop".into(),
            organizations: vec![],
            dns_names: vec!["web.shop.svc".into()],
            ip_addresses: vec!["10.0.0.7".parse().unwrap()],
            uris: vec![],
            usages: vec![],
            key_algorithm,
            expiration_seconds: None,
        };
        let key = PrivateKey::generate(config.key_algorithm).unwrap();
        certboot_core::pki::pkcs10::build_pkcs10(&config, &key).unwrap()
    }

    fn usages(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ecdsa_ed25519_and_rsa_cas_issue_what_was_asked_for_bounded_by_the_ca() {
        let rsa = |algorithm| {
            let der = rsa_pkcs8(algorithm);
            KeyPair::from_pkcs8_der_and_sign_algo(&der.as_slice().into(), &PKCS_RSA_SHA256).unwrap()
        };
        let keys = [
            (KeyPair::generate().unwrap(), KeyAlgorithm::EcdsaP256),
            (
                KeyPair::generate_for(&PKCS_ED25519).unwrap(),
                KeyAlgorithm::EcdsaP256,
            ),
            (rsa(KeyAlgorithm::Rsa2048), KeyAlgorithm::EcdsaP256),
            // The CA and the request may be P-521 (signed with SHA-512) or RSA-8192.
            (
                KeyPair::generate_for(&PKCS_ECDSA_P521_SHA512).unwrap(),
                KeyAlgorithm::EcdsaP521,
            ),
            (rsa(KeyAlgorithm::Rsa8192), KeyAlgorithm::Rsa8192),
        ];
        for (key, requested) in keys {
            let (_dir, ca) = ca_with(key);
            let shown = format!("{ca:?}");
            assert!(
                shown.contains("\"...\"") && !shown.contains("PRIVATE"),
                "{shown}"
            );
            let pem = issue(
                request_with(requested).as_bytes(),
                &usages(&["digital signature", "server auth"]),
                Some(3600),
                &ca,
                LIFETIMES,
                NOW,
            )
            .unwrap();
            let block = pem::parse_many(&pem).unwrap();
            assert_eq!(block.len(), 1, "a root CA adds no intermediate");
            let (_, leaf) = X509Certificate::from_der(block[0].contents()).unwrap();
            assert_eq!(leaf.subject().to_string(), "CN=web-0.shop");
            assert!(!leaf.is_ca());
            assert_eq!(
                leaf.validity().not_before.timestamp(),
                NOW - BACKDATE_SECONDS
            );
            assert_eq!(leaf.validity().not_after.timestamp(), NOW + 3600);
            assert_eq!(leaf.raw_serial().len(), 16);
        }
    }

    /// An RSA PKCS#8 key (certboot's own generator).
    fn rsa_pkcs8(algorithm: KeyAlgorithm) -> Vec<u8> {
        let key = PrivateKey::generate(algorithm).unwrap();
        pem::parse(key.to_pem().as_bytes()).unwrap().into_contents()
    }

    #[test]
    fn lifetime_is_the_least_of_request_maximum_and_ca() {
        let (_dir, ca) = ca_with(KeyPair::generate().unwrap());
        let life = |asked: Option<i32>, lifetimes: Lifetimes| {
            let pem = issue(
                request().as_bytes(),
                &usages(&["server auth"]),
                asked,
                &ca,
                lifetimes,
                NOW,
            )
            .unwrap();
            let block = pem::parse(pem.as_bytes()).unwrap();
            let (_, leaf) = X509Certificate::from_der(block.contents()).unwrap();
            leaf.validity().not_after.timestamp() - NOW
        };
        assert_eq!(life(None, LIFETIMES), 86_400, "the default");
        assert_eq!(
            life(Some(30 * 86_400), LIFETIMES),
            7 * 86_400,
            "capped at the maximum"
        );
        assert_eq!(
            life(Some(60), LIFETIMES),
            600,
            "never below the API's minimum"
        );
        let long = Lifetimes {
            default: 365 * 86_400,
            max: 365 * 86_400,
        };
        assert_eq!(life(None, long), 30 * 86_400, "never beyond the CA");
    }

    #[test]
    fn ca_usages_and_ca_requests_are_refused_with_a_reason() {
        let (_dir, ca) = ca_with(KeyPair::generate().unwrap());
        let refused = issue(
            request().as_bytes(),
            &usages(&["cert sign"]),
            None,
            &ca,
            LIFETIMES,
            NOW,
        )
        .unwrap_err();
        assert_eq!(refused.reason, "UnsupportedUsage");
        let refused = issue(
            b"garbage",
            &usages(&["server auth"]),
            None,
            &ca,
            LIFETIMES,
            NOW,
        )
        .unwrap_err();
        assert_eq!(refused.reason, "InvalidRequest");
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![]).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_request = params.serialize_request(&key).unwrap().pem().unwrap();
        let refused = issue(
            ca_request.as_bytes(),
            &usages(&["server auth"]),
            None,
            &ca,
            LIFETIMES,
            NOW,
        )
        .unwrap_err();
        assert_eq!(refused.reason, "CARequested");
    }

    #[test]
    fn a_ca_that_is_not_a_ca_or_not_the_keys_is_refused_at_load() {
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["x".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tls.crt"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("tls.key"), key.serialize_pem()).unwrap();
        let err = SigningCa::load(dir.path(), certboot_core::timefmt::unix_now()).unwrap_err();
        assert!(err.to_string().contains("not a CA"), "{err}");
        let (dir, _) = ca_with(KeyPair::generate().unwrap());
        std::fs::write(
            dir.path().join("tls.key"),
            KeyPair::generate().unwrap().serialize_pem(),
        )
        .unwrap();
        let err = SigningCa::load(dir.path(), NOW).unwrap_err();
        assert!(
            err.to_string().contains("does not belong to the key"),
            "{err}"
        );
    }

    use crate::hostile_csr;

    #[test]
    fn no_certificate_without_an_extended_key_usage_or_from_a_request_the_approver_refuses() {
        let (_dir, ca) = ca_with(KeyPair::generate().unwrap());
        let sign = |request: &[u8], list: &[&str]| {
            issue(request, &usages(list), None, &ca, LIFETIMES, NOW)
        };
        for list in [
            &["digital signature"][..],
            &["digital signature", "key encipherment"],
            &[],
        ] {
            let refused = sign(request().as_bytes(), list).unwrap_err();
            assert_eq!(refused.reason, "ExtendedKeyUsageMissing", "{list:?}");
            assert!(
                refused.message.contains("valid for any purpose"),
                "{}",
                refused.message
            );
        }
        // The hidden-SAN request (approved by hand, say): never signed.
        let key = hostile_csr::key();
        let hidden = hostile_csr::pem(&hostile_csr::hidden_san(
            &key,
            "web-0.shop",
            "evil.example.com",
        ));
        let refused = sign(hidden.as_bytes(), &["server auth"]).unwrap_err();
        assert_eq!(refused.reason, "InvalidRequest");
        assert!(
            refused.message.contains("extensionRequest"),
            "{}",
            refused.message
        );
        // Over the size limit.
        let refused = sign(&vec![b'A'; 1 << 20], &["server auth"]).unwrap_err();
        assert_eq!(refused.reason, "RequestTooLarge");
    }
}
