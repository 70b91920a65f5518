//! Checking certificates before anything is written: the issued chain (untrusted input from
//! `status.certificate`) and a pair already on disk.
//!
//! The issued chain must be PEM `CERTIFICATE` blocks only, leaf first; the leaf must carry our
//! public key, must not be a CA, and must be valid now; each certificate must be issued (name and
//! signature) by the next one, and each one after the leaf must be entitled to issue it
//! ([`crate::pki::issuer`]: a CA, allowed to sign certificates, within its path length, valid
//! now). The chain is then validated as a whole by a path validator ([`crate::pki::path`]), with
//! its last certificate as the trust anchor; [`crate::pki::expect`] validates it again to
//! `CERTBOOT_CA_BUNDLE` when that is set. The chain certboot writes is re-encoded from the parsed
//! DER, so text around the PEM blocks never reaches the disk.

use std::time::Duration;

use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::pki::issuer::check_chain_issuers;
use crate::pki::key::{KeyError, PrivateKey};
use crate::pki::path::validate_chain;
pub use crate::pki::verify_error::{VerifyError, NOT_BEFORE_TOLERANCE_SECS};
use crate::timefmt::rfc3339;

/// Refuses a certificate whose lifetime is below `floor` (`CERTBOOT_MIN_LIFETIME`): in all
/// (notBefore to notAfter), or from `now` (less a tenth of the floor for the time signing and
/// delivery took), so a backdated notBefore cannot hide a certificate that is about to expire.
pub fn check_lifetime(cert: &Verified, floor: Duration, now: i64) -> Result<(), VerifyError> {
    let floor_secs = i64::try_from(floor.as_secs()).unwrap_or(i64::MAX);
    let left = cert.not_after.saturating_sub(now);
    if cert.lifetime() >= floor_secs && left >= floor_secs - floor_secs / 10 {
        return Ok(());
    }
    let secs = |s: i64| Duration::from_secs(s.max(0) as u64);
    Err(VerifyError::TooShortLived {
        lifetime: secs(cert.lifetime()),
        left: secs(left),
        floor,
    })
}

/// A verified certificate chain, ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The chain re-encoded as PEM, leaf first.
    pub chain_pem: String,
    /// The leaf's serial number in hex.
    pub serial: String,
    pub subject: String,
    pub not_before: i64,
    pub not_after: i64,
}

#[cfg(any(test, feature = "test-support"))]
impl Verified {
    /// A chain for tests of what depends only on its validity (reuse, renewal schedules).
    pub fn with_validity(not_before: i64, not_after: i64) -> Verified {
        Verified {
            chain_pem: String::new(),
            serial: String::new(),
            subject: String::new(),
            not_before,
            not_after,
        }
    }
}

impl Verified {
    /// The leaf's lifetime in seconds.
    pub fn lifetime(&self) -> i64 {
        self.not_after.saturating_sub(self.not_before)
    }

    /// SHA-256 of the leaf certificate's DER, lowercase hex (empty if the chain holds no PEM).
    pub fn leaf_sha256(&self) -> String {
        let Some(leaf) = pem::parse_many(self.chain_pem.as_bytes())
            .ok()
            .and_then(|blocks| blocks.into_iter().next())
        else {
            return String::new();
        };
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf.contents())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Verifies a chain from `status.certificate` against our key at time `now` (Unix seconds).
pub fn verify_issued(
    pem_bytes: &[u8],
    key: &PrivateKey,
    now: i64,
) -> Result<Verified, VerifyError> {
    verify_chain(pem_bytes, key.public_key_raw(), now)
}

/// Verifies a chain against a raw public key (the SubjectPublicKeyInfo bit string).
pub fn verify_chain(
    pem_bytes: &[u8],
    public_key: &[u8],
    now: i64,
) -> Result<Verified, VerifyError> {
    let blocks = parse_blocks(pem_bytes)?;
    let certs = parse_certificates(&blocks)?;
    let leaf = &certs[0];
    let has_our_key = |cert: &X509Certificate<'_>| {
        cert.public_key().subject_public_key.data.as_ref() == public_key
    };
    if !has_our_key(leaf) {
        return Err(match certs.iter().position(has_our_key) {
            Some(index) => VerifyError::LeafNotFirst { index },
            None => VerifyError::KeyMismatch,
        });
    }
    if leaf.is_ca() {
        return Err(VerifyError::IsCa);
    }
    check_validity(leaf, now)?;
    check_order(&certs)?;
    check_chain_issuers(&certs, now)?;
    validate_chain(&certs, now)?;
    Ok(Verified {
        chain_pem: pem::encode_many_config(
            &blocks,
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        ),
        serial: leaf.raw_serial_as_string().replace(':', ""),
        subject: leaf.subject().to_string(),
        not_before: leaf.validity().not_before.timestamp(),
        not_after: leaf.validity().not_after.timestamp(),
    })
}

fn parse_blocks(pem_bytes: &[u8]) -> Result<Vec<pem::Pem>, VerifyError> {
    let blocks = pem::parse_many(pem_bytes).map_err(VerifyError::NotPem)?;
    if blocks.is_empty() {
        return Err(VerifyError::Empty);
    }
    for (index, block) in blocks.iter().enumerate() {
        if block.tag() != "CERTIFICATE" {
            return Err(VerifyError::NotCertificate {
                index,
                tag: block.tag().chars().take(40).collect(),
            });
        }
    }
    Ok(blocks)
}

fn parse_certificates(blocks: &[pem::Pem]) -> Result<Vec<X509Certificate<'_>>, VerifyError> {
    blocks
        .iter()
        .enumerate()
        .map(
            |(index, block)| match X509Certificate::from_der(block.contents()) {
                Ok(([], cert)) => Ok(cert),
                Ok(_) => Err(VerifyError::TrailingBytes { index }),
                Err(source) => Err(VerifyError::Unparsable { index, source }),
            },
        )
        .collect()
}

fn check_validity(leaf: &X509Certificate<'_>, now: i64) -> Result<(), VerifyError> {
    let not_before = leaf.validity().not_before.timestamp();
    let not_after = leaf.validity().not_after.timestamp();
    if not_before > now.saturating_add(NOT_BEFORE_TOLERANCE_SECS) {
        return Err(VerifyError::NotYetValid {
            not_before: rfc3339(not_before),
            not_before_unix: not_before,
            now,
        });
    }
    if not_after <= now {
        return Err(VerifyError::Expired {
            not_after: rfc3339(not_after),
            not_after_unix: not_after,
            now,
        });
    }
    Ok(())
}

fn check_order(certs: &[X509Certificate<'_>]) -> Result<(), VerifyError> {
    for (index, pair) in certs.windows(2).enumerate() {
        let (child, parent) = (&pair[0], &pair[1]);
        let issued_by = child.issuer().as_raw() == parent.subject().as_raw()
            && super::signature::certificate_signed_by(child, parent.public_key());
        if !issued_by {
            return Err(VerifyError::ChainOrder {
                index,
                next: index + 1,
            });
        }
    }
    Ok(())
}

/// Checks a certificate/key pair read from disk: both parse, they match, and the certificate is
/// valid at `now`. Returns the verified chain.
pub fn verify_pair(cert_pem: &[u8], key_pem: &str, now: i64) -> Result<Verified, PairError> {
    let key = PrivateKey::from_pem(key_pem).map_err(PairError::Key)?;
    verify_chain(cert_pem, key.public_key_raw(), now).map_err(PairError::Certificate)
}

/// Why a pair on disk cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error("the key file cannot be used: {0}")]
    Key(#[source] KeyError),
    #[error("the certificate file cannot be used: {0}")]
    Certificate(#[source] VerifyError),
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
