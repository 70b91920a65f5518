//! Usages: which `spec.usages` are extended key usages, and whether the key usages a request
//! itself asks for are among `spec.usages`.
//!
//! A certificate without extendedKeyUsage is valid for every purpose, so a CSR must ask for at
//! least one purpose. `any` does not count (and no policy may allow it).

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;

use super::denial::{deny, reason, Denial};
use super::message::few;
use super::policy::SignerPolicy;
use super::requested::Requested;

pub use certboot_core::request::EXTENDED_KEY_USAGES;

/// True when `usage` is an extended key usage purpose (not `any`).
pub fn is_extended(usage: &str) -> bool {
    EXTENDED_KEY_USAGES.contains(&usage)
}

/// The API's synonyms, folded: `signing` is `digital signature`, `s/mime` is `email protection`.
fn canonical(usage: &str) -> &str {
    match usage {
        "signing" => "digital signature",
        "s/mime" => "email protection",
        other => other,
    }
}

/// The usages the request's keyUsage / extKeyUsage extensions ask for that `spec.usages` does not
/// list (a signer that copied them would issue more than `spec.usages`).
pub fn requested_beyond<'r>(requested: &[&'r str], usages: &[String]) -> Vec<&'r str> {
    requested
        .iter()
        .filter(|r| !usages.iter().any(|u| canonical(u) == canonical(r)))
        .copied()
        .collect()
}

/// Step 5: the request's own keyUsage / extKeyUsage ask for nothing beyond `spec.usages` (signers
/// issue `spec.usages`; one that copied the request's extensions must not issue more).
pub(super) fn check_requested(
    csr: &CertificateSigningRequest,
    requested: &Requested,
) -> Result<(), Denial> {
    let usages = csr.spec.usages.as_deref().unwrap_or_default();
    let beyond: Vec<&str> = [&requested.key_usages, &requested.extended_key_usages]
        .into_iter()
        .flat_map(|list| requested_beyond(list, usages))
        .collect();
    if beyond.is_empty() {
        return Ok(());
    }
    Err(deny(
        "request",
        reason::USAGE_NOT_ALLOWED,
        format!(
            "the request's keyUsage/extKeyUsage extensions ask for {} that spec.usages {} does not list; file the request without these extensions or with only usages of spec.usages",
            few(&beyond),
            few(usages)
        ),
    ))
}

/// Step 8: at least one extended key usage (a certificate without one is valid for any purpose).
pub(super) fn check_extended(usages: &[String], policy: &SignerPolicy) -> Result<(), Denial> {
    if usages.iter().any(|u| is_extended(u)) {
        return Ok(());
    }
    let allowed: Vec<&String> = policy.usages.iter().filter(|u| is_extended(u)).collect();
    let fix = if allowed.is_empty() {
        format!(
            "the policy for signer {} allows none: add one to its usages",
            policy.signer_name
        )
    } else {
        format!("add one the policy allows: {allowed:?}")
    };
    Err(deny(
        "usages",
        reason::EXTENDED_KEY_USAGE_MISSING,
        format!(
            "spec.usages {} has no extended key usage, and a certificate without one is valid for any purpose; {fix}",
            few(usages)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synonyms_match_and_any_is_no_purpose() {
        let usages = vec!["signing".to_string(), "s/mime".to_string()];
        assert!(requested_beyond(&["digital signature", "email protection"], &usages).is_empty());
        assert_eq!(
            requested_beyond(&["server auth", "digital signature"], &usages),
            vec!["server auth"]
        );
        assert!(is_extended("client auth"));
        assert!(!is_extended("any"));
        assert!(!is_extended("digital signature"));
    }
}
