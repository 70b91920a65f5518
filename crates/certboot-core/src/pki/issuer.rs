//! The rules every issuing certificate must meet, checked one certificate at a time so that a
//! refusal names the certificate: it is a CA (`basicConstraints` CA:true), its keyUsage, when it
//! has one, allows `keyCertSign`, its `pathLenConstraint` allows the CA certificates below it, and
//! it is valid now (notBefore up to [`NOT_BEFORE_TOLERANCE_SECS`] ahead, for clock skew).
//!
//! Applied to every certificate after the leaf in a chain (with or without `CERTBOOT_CA_BUNDLE`),
//! and to the `CERTBOOT_CA_BUNDLE` certificate a path ends at. The path validator
//! ([`crate::pki::path`]) checks the same path as a whole; these checks come first for the
//! message, and for what it does not check (keyUsage, and anything about the trust anchor).

use x509_parser::certificate::X509Certificate;

use crate::logging::escape_control;
use crate::pki::verify_error::{VerifyError, NOT_BEFORE_TOLERANCE_SECS};
use crate::timefmt::rfc3339;

/// Where a certificate named in a message comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The chain checked (`status.certificate`, or the certificate file on disk); 0 is the leaf.
    Chain,
    /// `CERTBOOT_CA_BUNDLE`.
    Bundle,
}

/// "certificate 1 of the chain (CN=intermediate)", for messages; the subject is cut at 120
/// characters, with control characters escaped.
pub fn describe(cert: &X509Certificate<'_>, index: usize, source: Source) -> String {
    let place = match source {
        Source::Chain => "the chain",
        Source::Bundle => "CERTBOOT_CA_BUNDLE",
    };
    let subject: String = cert.subject().to_string().chars().take(120).collect();
    format!(
        "certificate {index} of {place} ({})",
        escape_control(&subject)
    )
}

/// Where an issuer sits in a path: which certificate of the chain it issued, and how many CA
/// certificates lie between it and the leaf.
#[derive(Debug, Clone, Copy)]
pub struct Position {
    /// The index in the chain of the certificate it issued.
    pub issued: usize,
    /// The CA certificates between it and the leaf (what `pathLenConstraint` limits).
    pub below: usize,
}

/// Checks `cert`, described as `which`, as the issuer at `position`, at time `now`.
pub fn check_issuer(
    cert: &X509Certificate<'_>,
    which: &dyn Fn() -> String,
    position: Position,
    now: i64,
) -> Result<(), VerifyError> {
    let issued = position.issued;
    // A duplicate or unparsable basicConstraints counts as none: not a CA.
    let constraints = cert.basic_constraints().ok().flatten().map(|ext| ext.value);
    let Some(constraints) = constraints.filter(|bc| bc.ca) else {
        return Err(VerifyError::IssuerNotCa {
            cert: which(),
            issued,
        });
    };
    match cert.key_usage() {
        Ok(None) => {}
        Ok(Some(ku)) if ku.value.key_cert_sign() => {}
        // No keyCertSign, or a duplicate or unparsable keyUsage.
        _ => {
            return Err(VerifyError::IssuerCannotSign {
                cert: which(),
                issued,
            })
        }
    }
    if let Some(allowed) = constraints.path_len_constraint {
        if u64::try_from(position.below).unwrap_or(u64::MAX) > u64::from(allowed) {
            return Err(VerifyError::PathTooLong {
                cert: which(),
                allowed,
                below: position.below,
            });
        }
    }
    check_validity(cert, which, now)
}

fn check_validity(
    cert: &X509Certificate<'_>,
    which: &dyn Fn() -> String,
    now: i64,
) -> Result<(), VerifyError> {
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    if not_before > now.saturating_add(NOT_BEFORE_TOLERANCE_SECS) {
        return Err(VerifyError::IssuerNotYetValid {
            cert: which(),
            not_before: rfc3339(not_before),
            not_before_unix: not_before,
            now,
        });
    }
    if not_after <= now {
        return Err(VerifyError::IssuerExpired {
            cert: which(),
            not_after: rfc3339(not_after),
            not_after_unix: not_after,
            now,
        });
    }
    Ok(())
}

/// Checks every certificate after the leaf of `chain` (leaf first, each issued by the next) as
/// the issuer of the one before it.
pub fn check_chain_issuers(chain: &[X509Certificate<'_>], now: i64) -> Result<(), VerifyError> {
    for (index, cert) in chain.iter().enumerate().skip(1) {
        let before = index.saturating_sub(1);
        let position = Position {
            issued: before,
            below: before,
        };
        check_issuer(
            cert,
            &|| describe(cert, index, Source::Chain),
            position,
            now,
        )?;
    }
    Ok(())
}
