//! Why an issued certificate (or a pair on disk) was rejected: one error type shared by the checks
//! of [`crate::pki::verify`], [`crate::pki::issuer`] and [`crate::pki::path`], which all report
//! through it (so none of them imports another's errors).

use std::time::Duration;

use crate::timefmt::{human, relative};

/// How far in the future a leaf's notBefore may lie (clock skew between signer and node).
/// Kubernetes' own signer backdates notBefore by 5 minutes for the same reason.
pub const NOT_BEFORE_TOLERANCE_SECS: i64 = 300;

/// Why an issued certificate (or a pair on disk) was rejected.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VerifyError {
    #[error("the certificate is empty or holds no PEM block")]
    Empty,
    #[error("the certificate is not valid PEM ({0})")]
    NotPem(#[source] pem::PemError),
    #[error("PEM block {index} is a {tag:?}, not a CERTIFICATE")]
    NotCertificate { index: usize, tag: String },
    #[error("certificate {index} of the chain cannot be parsed as X.509 ({source})")]
    Unparsable {
        index: usize,
        #[source]
        source: x509_parser::nom::Err<x509_parser::error::X509Error>,
    },
    #[error("certificate {index} of the chain cannot be parsed as X.509 (trailing bytes after the certificate)")]
    TrailingBytes { index: usize },
    #[error("the leaf certificate's public key is not ours: the signer issued it for another key")]
    KeyMismatch,
    #[error("the chain is out of order: the certificate for our key is at position {index}, but the leaf must come first")]
    LeafNotFirst { index: usize },
    #[error("the leaf certificate is a CA certificate (basicConstraints CA:true); refusing to use it as a pod identity")]
    IsCa,
    #[error("the leaf certificate is not valid yet: notBefore {not_before} is {}", relative(.not_before_unix.saturating_sub(*.now)))]
    NotYetValid {
        not_before: String,
        not_before_unix: i64,
        now: i64,
    },
    #[error("the certificate has expired: notAfter {not_after} was {}", relative(.not_after_unix.saturating_sub(*.now)))]
    Expired {
        not_after: String,
        not_after_unix: i64,
        now: i64,
    },
    #[error("the chain is out of order: certificate {index} is not issued by certificate {next} (the leaf must come first, then its issuer, and so on)")]
    ChainOrder { index: usize, next: usize },
    #[error("the certificate is valid for {} in all, above the cap of {} (CERTBOOT_MAX_LIFETIME): a certificate that long was not issued for this pod by its signer. Raise CERTBOOT_MAX_LIFETIME only if your signer really issues such certificates", human(*.lifetime), human(*.cap))]
    TooLongLived { lifetime: Duration, cap: Duration },
    #[error("the certificate names another identity: {what} {got}, where the configuration asks for {want}; a certificate is only used for the identity configured (CERTBOOT_COMMON_NAME, CERTBOOT_DNS_NAMES, CERTBOOT_IP_ADDRESSES, CERTBOOT_URIS, the pod's IPs)")]
    IdentityMismatch {
        what: &'static str,
        got: String,
        want: String,
    },
    #[error("{cert} issues certificate {issued} of the chain but is not a CA certificate (no basicConstraints CA:true): an ordinary certificate cannot vouch for another. The chain must go through CA certificates only: fix the signer's chain (or CERTBOOT_CA_BUNDLE)")]
    IssuerNotCa { cert: String, issued: usize },
    #[error("{cert} issues certificate {issued} of the chain but its keyUsage does not allow certificate signing (keyCertSign): it may not issue certificates. Fix the signer's CA certificate (keyUsage keyCertSign, cRLSign)")]
    IssuerCannotSign { cert: String, issued: usize },
    #[error("{cert} allows at most {allowed} CA certificate(s) below it (pathLenConstraint), but the chain has {below}: it issued a sub-CA it was not allowed to. Have the signer issue from a CA whose path length allows its chain")]
    PathTooLong {
        cert: String,
        allowed: u32,
        below: usize,
    },
    #[error("{cert} has expired: notAfter {not_after} was {}. A chain is only as valid as each of its certificates: renew that CA certificate at the signer (or in CERTBOOT_CA_BUNDLE)", relative(.not_after_unix.saturating_sub(*.now)))]
    IssuerExpired {
        cert: String,
        not_after: String,
        not_after_unix: i64,
        now: i64,
    },
    #[error("{cert} is not valid yet: notBefore {not_before} is {}. Check the clocks of the CA and of this node", relative(.not_before_unix.saturating_sub(*.now)))]
    IssuerNotYetValid {
        cert: String,
        not_before: String,
        not_before_unix: i64,
        now: i64,
    },
    #[error("the chain fails certificate path validation: {reason} ({detail}). Have the signer return a chain a TLS peer accepts")]
    PathInvalid {
        reason: &'static str,
        detail: String,
    },
    #[error("the certificate does not chain to CERTBOOT_CA_BUNDLE: neither its issuer nor that of any certificate of its chain is a certificate of the bundle. Set CERTBOOT_CA_BUNDLE to the signer's CA")]
    NotFromBundle,
    #[error("CERTBOOT_CA_BUNDLE holds no usable PEM certificate, so nothing can chain to it: mount the signer's CA certificate there")]
    BundleUnusable,
    #[error("the certificate is too short-lived: valid for {} in all and {} from now, below the floor of {} (CERTBOOT_MIN_LIFETIME); such certificates would make certboot renew and signal the app over and over. Give the signer a longer lifetime", human(*.lifetime), human(*.left), human(*.floor))]
    TooShortLived {
        lifetime: Duration,
        left: Duration,
        floor: Duration,
    },
}
