//! Certification path validation by rustls-webpki, the validator rustls itself uses: from the leaf
//! through the chain's CA certificates to a trust anchor, it checks every signature with an
//! accepted algorithm (ECDSA P-256/P-384/P-521, Ed25519, RSA 2048-8192 bits with SHA-256/384/512; no
//! SHA-1), `basicConstraints` CA:true and `pathLenConstraint` on every intermediate, the validity
//! of every certificate, name constraints, and refuses critical extensions it does not know.
//!
//! The trust anchors are the certificates of `CERTBOOT_CA_BUNDLE` when it is set; without it, the
//! last certificate of the chain (what the signer vouches for, with nothing to compare it to). A
//! trust anchor is trusted as it is by webpki, so the anchor a path ends at is checked here by the
//! issuer rules ([`crate::pki::issuer`]) as well. keyUsage, which webpki ignores, is checked there
//! too, for every certificate of the chain.

use std::cell::RefCell;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeIdIter, VerifiedPath};
use x509_parser::certificate::X509Certificate;

use crate::pki::issuer::{check_issuer, describe, Position, Source};
use crate::pki::verify_error::VerifyError;

/// Validates `chain` (leaf first, each issued by the next, already parsed) on its own: the leaf
/// must parse as an end-entity certificate and, when the chain holds more than the leaf, its
/// last certificate is the trust anchor of the path through the others.
pub fn validate_chain(chain: &[X509Certificate<'_>], now: i64) -> Result<(), VerifyError> {
    let ders: Vec<CertificateDer<'_>> = chain.iter().map(|c| der(c)).collect();
    let Some((leaf, issuers)) = ders.split_first() else {
        return Err(VerifyError::Empty);
    };
    let leaf = EndEntityCert::try_from(leaf).map_err(|e| path_invalid(&e))?;
    let Some((last, intermediates)) = issuers.split_last() else {
        return Ok(());
    };
    let anchor = webpki::anchor_from_trusted_cert(last).map_err(|e| path_invalid(&e))?;
    verify(
        &leaf,
        &[anchor],
        intermediates,
        validation_time(chain, now),
        None,
    )
    .map(drop)
    .map_err(|e| path_invalid(&e))
}

/// Validates `chain` (as for [`validate_chain`]) to one of the certificates of
/// `CERTBOOT_CA_BUNDLE`, `bundle`; the anchor the path ends at must also pass the issuer rules.
/// A chain to none of them is [`VerifyError::NotFromBundle`], and an anchor's own failure (say,
/// an expired old root) is reported when no other path succeeds.
pub fn validate_to_bundle(
    chain: &[X509Certificate<'_>],
    bundle: &[X509Certificate<'_>],
    now: i64,
) -> Result<(), VerifyError> {
    let ders: Vec<CertificateDer<'_>> = chain.iter().map(|c| der(c)).collect();
    let Some((leaf, intermediates)) = ders.split_first() else {
        return Err(VerifyError::Empty);
    };
    let leaf = EndEntityCert::try_from(leaf).map_err(|e| path_invalid(&e))?;
    let bundle_ders: Vec<CertificateDer<'_>> = bundle.iter().map(|c| der(c)).collect();
    // Certificates webpki cannot read as an anchor are left out: trusting less is safe, and a
    // bundle with no usable anchor leaves nothing to chain to.
    let (anchors, anchor_certs): (Vec<TrustAnchor<'_>>, Vec<(usize, &X509Certificate<'_>)>) =
        bundle_ders
            .iter()
            .zip(bundle.iter().enumerate())
            .filter_map(|(d, cert)| webpki::anchor_from_trusted_cert(d).ok().map(|a| (a, cert)))
            .unzip();
    if anchors.is_empty() {
        return Err(VerifyError::BundleUnusable);
    }
    let anchor_error: RefCell<Option<VerifyError>> = RefCell::new(None);
    let check_anchor = |path: &VerifiedPath<'_>| {
        let below = path.intermediate_certificates().count();
        let found = anchors
            .iter()
            .position(|a| std::ptr::eq(a, path.anchor()))
            .and_then(|i| anchor_certs.get(i));
        let Some(&(index, cert)) = found else {
            return Err(webpki::Error::UnknownIssuer);
        };
        let position = Position {
            issued: below,
            below,
        };
        let which = || describe(cert, index, Source::Bundle);
        check_issuer(cert, &which, position, now).map_err(|e| {
            anchor_error.borrow_mut().get_or_insert(e);
            webpki::Error::UnknownIssuer
        })
    };
    let time = validation_time(chain, now);
    match verify(&leaf, &anchors, intermediates, time, Some(&check_anchor)) {
        Ok(()) => Ok(()),
        Err(e) => Err(match anchor_error.into_inner() {
            Some(anchor) => anchor,
            None if e == webpki::Error::UnknownIssuer => VerifyError::NotFromBundle,
            None => path_invalid(&e),
        }),
    }
}

fn der<'a>(cert: &X509Certificate<'a>) -> CertificateDer<'a> {
    CertificateDer::from(cert.as_raw())
}

type PathCheck<'f> = &'f dyn Fn(&VerifiedPath<'_>) -> Result<(), webpki::Error>;

fn verify(
    leaf: &EndEntityCert<'_>,
    anchors: &[TrustAnchor<'_>],
    intermediates: &[CertificateDer<'_>],
    time: UnixTime,
    check: Option<PathCheck<'_>>,
) -> Result<(), webpki::Error> {
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        anchors,
        intermediates,
        time,
        AnyPurpose,
        None,
        check,
    )
    .map(drop)
}

/// The time the path is validated at: `now`, or the latest notBefore of the chain when that is
/// later (by at most the clock-skew tolerance the leaf and issuer checks allowed before).
fn validation_time(chain: &[X509Certificate<'_>], now: i64) -> UnixTime {
    let latest = chain
        .iter()
        .map(|c| c.validity().not_before.timestamp())
        .fold(now, i64::max);
    UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(latest).unwrap_or(0)))
}

/// certboot does not restrict extended key usages here (what to request is the configuration's
/// and the signer's business); it only refuses an extension that does not parse.
struct AnyPurpose;

impl ExtendedKeyUsageValidator for AnyPurpose {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        for purpose in iter {
            purpose?;
        }
        Ok(())
    }
}

fn path_invalid(e: &webpki::Error) -> VerifyError {
    use webpki::Error as E;
    let reason = match e {
        E::EndEntityUsedAsCa => "a certificate that is not a CA (no basicConstraints CA:true) issues another one",
        E::CaUsedAsEndEntity => "the leaf is a CA certificate",
        E::PathLenConstraintViolated => "a CA issued more levels of CA certificates than its pathLenConstraint allows",
        E::CertExpired { .. } => "a certificate of the chain has expired",
        E::CertNotValidYet { .. } => "a certificate of the chain is not valid yet",
        E::InvalidCertValidity => "a certificate's notAfter is before its notBefore",
        E::InvalidSignatureForPublicKey => "a signature does not verify with its issuer's public key",
        E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => "a certificate is signed with an algorithm certboot does not accept (accepted: ECDSA P-256/P-384/P-521, Ed25519, RSA 2048-8192 bits, with SHA-256/384/512; not SHA-1 or MD5)",
        E::UnsupportedCriticalExtension => "a certificate carries a critical extension certboot does not understand",
        E::NameConstraintViolation => "the leaf's names are outside the name constraints of a CA of the chain",
        E::MaximumPathDepthExceeded => "the chain has more than 6 intermediate CA certificates",
        E::UnknownIssuer => "a certificate's issuer is not the next certificate of the chain",
        _ => "a certificate is malformed or the chain is not acceptable",
    };
    let detail: String = format!("{e:?}").chars().take(160).collect();
    VerifyError::PathInvalid { reason, detail }
}

#[cfg(test)]
#[path = "path_tests.rs"]
mod tests;
