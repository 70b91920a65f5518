//! Check 9, the lifetime: a policy entry's `maxExpirationSeconds` is a maximum for every
//! certificate it approves, including one whose CSR asks for no lifetime at all (the signer would
//! then choose: kube-controller-manager issues 1 year by default).
//!
//! Where certboot's own signer signs the entry's signer in this process, that signer caps every
//! certificate at the entry's maximum itself, so a CSR without `spec.expirationSeconds` is
//! approved (and on API servers before 1.22, which drop the field, that is the only way the
//! maximum holds; the controller refuses at start to leave such a maximum to the approver alone).

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;

use super::denial::{deny, reason, Denial};
use super::policy::SignerPolicy;

/// Check 9: `spec.expirationSeconds` is set and at most the entry's maximum, when it has one.
pub(super) fn check_lifetime(
    csr: &CertificateSigningRequest,
    policy: &SignerPolicy,
) -> Result<(), Denial> {
    let Some(max) = policy.max_expiration_seconds else {
        return Ok(());
    };
    match csr.spec.expiration_seconds {
        Some(asked) if i64::from(asked) > i64::from(max) => Err(deny(
            "lifetime",
            reason::EXPIRATION_TOO_LONG,
            format!(
                "expirationSeconds {asked} is more than the policy's maximum of {max} for signer {}; ask for at most {max} (CERTBOOT_EXPIRATION_SECONDS)",
                policy.signer_name
            ),
        )),
        Some(_) => Ok(()),
        None if policy.signed_here => Ok(()),
        None => Err(deny(
            "lifetime",
            reason::EXPIRATION_REQUIRED,
            format!(
                "the CSR sets no spec.expirationSeconds, so signer {} would choose the lifetime, but the policy allows at most {max} seconds; set CERTBOOT_EXPIRATION_SECONDS (or spec.expirationSeconds) to at most {max}",
                policy.signer_name
            ),
        )),
    }
}
