//! A denial: which check failed, its stable reason (the CSR's Denied condition `reason`), and a
//! bounded message naming the offending values. The vocabulary every check speaks, so the checks
//! ([`super::checks`], [`super::sans`], [`super::usages`], [`super::lifetime`]) need not import
//! one another.

use super::message;

/// The stable reasons of a denial (the CSR's Denied condition `reason`).
pub mod reason {
    pub const APPROVED: &str = "CertbootApproved";
    pub const NOT_SERVICE_ACCOUNT: &str = "RequesterNotServiceAccount";
    pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";
    pub const POD_BINDING_MISSING: &str = "PodBindingMissing";
    pub const POD_NOT_FOUND: &str = "PodNotFound";
    pub const POD_UID_MISMATCH: &str = "PodUIDMismatch";
    pub const SERVICE_ACCOUNT_MISMATCH: &str = "ServiceAccountMismatch";
    pub const POD_ENDING: &str = "PodTerminating";
    pub const NAME_MISMATCH: &str = "NameMismatch";
    pub const LABEL_MISMATCH: &str = "LabelMismatch";
    pub const INVALID_REQUEST: &str = "InvalidRequest";
    pub const REQUEST_TOO_LARGE: &str = "RequestTooLarge";
    pub const SIGNATURE_INVALID: &str = "SignatureInvalid";
    pub const KEY_NOT_ALLOWED: &str = "KeyNotAllowed";
    pub const CA_REQUESTED: &str = "CARequested";
    pub const SUBJECT_NOT_ALLOWED: &str = "SubjectNotAllowed";
    pub const FORBIDDEN_GROUP: &str = "ForbiddenGroup";
    pub const IP_NOT_ALLOWED: &str = "IPAddressNotAllowed";
    pub const DNS_NOT_ALLOWED: &str = "DNSNameNotAllowed";
    pub const URI_NOT_ALLOWED: &str = "URINotAllowed";
    pub const SAN_NOT_ALLOWED: &str = "SANNotAllowed";
    pub const USAGE_NOT_ALLOWED: &str = "UsageNotAllowed";
    pub const EXTENDED_KEY_USAGE_MISSING: &str = "ExtendedKeyUsageMissing";
    pub const EXPIRATION_TOO_LONG: &str = "ExpirationTooLong";
    pub const EXPIRATION_REQUIRED: &str = "ExpirationRequired";
}

/// A failed check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The check's name, e.g. `pod`.
    pub check: &'static str,
    /// The stable reason, e.g. `PodUIDMismatch`.
    pub reason: &'static str,
    /// What was wrong, naming the offending values (at most [`message::MAX_DENIAL_MESSAGE`]
    /// bytes).
    pub message: String,
}

pub(crate) fn deny(
    check: &'static str,
    reason: &'static str,
    message: impl Into<String>,
) -> Denial {
    Denial {
        check,
        reason,
        message: message::bounded(message.into()),
    }
}
