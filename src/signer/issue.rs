//! One certificate for one approved CSR: exactly the request's subject and SANs, never more; key
//! usage and extended key usage from `spec.usages`; CA:false; subject and authority key
//! identifiers; a 128-bit random serial; notBefore backdated [`BACKDATE_SECONDS`] (clock skew
//! between nodes); notAfter the earliest of the requested lifetime (or the default), the maximum,
//! and the CA's own notAfter.

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    SanType, SerialNumber, SubjectPublicKeyInfo,
};
use x509_parser::prelude::{FromDer, X509CertificationRequest};

use super::ca::SigningCa;
use crate::approver::requested;

/// How far notBefore lies before the signing time.
pub const BACKDATE_SECONDS: i64 = 300;

/// A request the signer cannot honour: becomes the CSR's Failed condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

fn refuse(reason: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        reason,
        message: message.into(),
    }
}

/// Lifetimes, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    pub default: i64,
    pub max: i64,
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
    let requested =
        requested::decode(request_pem).map_err(|e| refuse("InvalidRequest", e.to_string()))?;
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
            "the request carries subject attributes or SANs this signer does not issue: {:?} {:?}",
            requested.other_subject, requested.other_sans
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
    let public_key = public_key(request_pem)?;
    let leaf = params
        .signed_by(&public_key, ca.issuer())
        .map_err(|e| refuse("SigningFailed", format!("could not sign: {e}")))?;
    Ok(format!("{}{}", leaf.pem(), ca.intermediates_pem()))
}

fn subject(common_names: &[String], organizations: &[String]) -> DistinguishedName {
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

/// `spec.usages` → key usage and extended key usage; CA usages and unknown ones are refused.
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
    Ok((key, extended))
}

fn public_key(request_pem: &[u8]) -> Result<SubjectPublicKeyInfo, Refusal> {
    let block = pem::parse(request_pem).map_err(|_| refuse("InvalidRequest", "not PEM"))?;
    let (_, csr) = X509CertificationRequest::from_der(block.contents())
        .map_err(|_| refuse("InvalidRequest", "not PKCS#10"))?;
    SubjectPublicKeyInfo::from_der(csr.certification_request_info.subject_pki.raw)
        .map_err(|_| refuse("UnsupportedKey", "the request's key type cannot be issued"))
}

fn serial() -> Result<SerialNumber, Refusal> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| refuse("SigningFailed", "no randomness for the serial number"))?;
    bytes[0] &= 0x7f; // a positive INTEGER
    bytes[0] |= 0x40; // of exactly 16 bytes
    Ok(SerialNumber::from_slice(&bytes))
}

fn system_time(unix: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(unix).unwrap_or(0))
}
