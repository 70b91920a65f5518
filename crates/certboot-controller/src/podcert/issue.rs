//! One certificate for one granted PodCertificateRequest, inside the rules the API server enforces
//! on an `Issued` status (read from `ValidatePodCertificateRequestStatusUpdate`, v1.37.2):
//!
//! - the leaf's key is the stub request's key;
//! - `notBefore` is within 5 minutes of the API server's clock: certboot's CSR signer backdates
//!   5 minutes, which would be refused, so a PCR's certificate starts now (the API server and the
//!   controller share the cluster's clock);
//! - the lifetime is at least 1 hour and at most `spec.maxExpirationSeconds`;
//! - `beginRefreshAt` lies in [notBefore + 10 min, notAfter − 10 min]: certboot picks two thirds
//!   of the lifetime, the kubelet adds up to 5 minutes of jitter;
//! - the chain is at most 100 KiB of PEM `CERTIFICATE` blocks, leaf first.
//!
//! The lifetime is the least of the request's `maxExpirationSeconds`, the signer's maximum (its
//! own `CERTBOOT_SIGNER_MAX_DURATION` and the policy entry's `maxExpirationSeconds`), and what is
//! left of the CA's validity.

use rcgen::{CertificateParams, IsCa, SanType, SubjectPublicKeyInfo};

use super::decide::Grant;
use crate::signer::ca::SigningCa;
use crate::signer::issue::{map_usages, refuse, serial, subject, system_time, Refusal};

/// The shortest certificate the API server accepts for a PCR.
pub const MIN_LIFETIME_SECONDS: i64 = 3600;
/// `beginRefreshAt` keeps this far from either end of the validity.
pub const REFRESH_MARGIN_SECONDS: i64 = 600;
/// `spec.maxExpirationSeconds` when the request sets none (the API's default).
pub const DEFAULT_MAX_EXPIRATION_SECONDS: i64 = 86_400;
/// The largest `status.certificateChain` the API server accepts.
pub const MAX_CHAIN_BYTES: usize = 100 * 1024;

/// The stable reasons of a Failed PCR.
pub mod reason {
    pub const SIGNER_CA_EXPIRING: &str = "SignerCAExpiring";
    pub const LIFETIME_TOO_SHORT: &str = "LifetimeTooShort";
    pub const CHAIN_TOO_LARGE: &str = "ChainTooLarge";
}

/// When the certificate is valid and when the kubelet should replace it (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub not_before: i64,
    pub not_after: i64,
    pub begin_refresh_at: i64,
}

/// The issued chain and its schedule, as the PCR's status carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub chain: String,
    pub schedule: Schedule,
}

/// The validity of a certificate signed at `now`: the least of `max_expiration` (the request's),
/// `signer_max` and the CA's remaining validity, at least [`MIN_LIFETIME_SECONDS`].
pub fn schedule(
    now: i64,
    max_expiration: i64,
    signer_max: i64,
    ca_not_after: i64,
) -> Result<Schedule, Refusal> {
    let asked = max_expiration.min(signer_max);
    let lifetime = asked.min(ca_not_after - now);
    if lifetime < MIN_LIFETIME_SECONDS {
        return Err(if lifetime < asked {
            refuse(
                reason::SIGNER_CA_EXPIRING,
                format!("the signer's CA expires in {}s, under the 1 hour a pod certificate must last; rotate the CA", (ca_not_after - now).max(0)),
            )
        } else {
            refuse(
                reason::LIFETIME_TOO_SHORT,
                format!("the signer may issue at most {signer_max}s (CERTBOOT_SIGNER_MAX_DURATION or the policy's maxExpirationSeconds), under the 1 hour a pod certificate must last; raise it"),
            )
        });
    }
    let not_after = now + lifetime;
    let begin_refresh_at = (now + lifetime * 2 / 3)
        .max(now + REFRESH_MARGIN_SECONDS)
        .min(not_after - REFRESH_MARGIN_SECONDS);
    Ok(Schedule {
        not_before: now,
        not_after,
        begin_refresh_at,
    })
}

/// Signs `grant` with `ca` for `schedule`; the chain is the leaf, then the CA's intermediates.
pub fn issue(grant: &Grant, ca: &SigningCa, schedule: Schedule) -> Result<Issued, Refusal> {
    let mut params = CertificateParams::default();
    let common_names: Vec<String> = grant.common_name.iter().cloned().collect();
    params.distinguished_name = subject(&common_names, &[]);
    params.subject_alt_names = sans(grant)?;
    let (key_usages, extended) = map_usages(&grant.usages)?;
    params.key_usages = key_usages;
    params.extended_key_usages = extended;
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(serial()?);
    params.not_before = system_time(schedule.not_before).into();
    params.not_after = system_time(schedule.not_after).into();
    let public_key = SubjectPublicKeyInfo::from_der(&grant.spki_der)
        .map_err(|_| refuse("UnsupportedKey", "the request's key type cannot be issued"))?;
    let leaf = params
        .signed_by(&public_key, ca.issuer())
        .map_err(|e| refuse("SigningFailed", format!("could not sign: {e}")))?;
    let chain = format!("{}{}", leaf.pem(), ca.intermediates_pem());
    if chain.len() > MAX_CHAIN_BYTES {
        return Err(refuse(
            reason::CHAIN_TOO_LARGE,
            format!(
                "the chain would be {} bytes, over the API server's limit of {MAX_CHAIN_BYTES}; shorten the CA's tls.crt",
                chain.len()
            ),
        ));
    }
    Ok(Issued { chain, schedule })
}

fn sans(grant: &Grant) -> Result<Vec<SanType>, Refusal> {
    let ia5 = |s: &String| {
        s.clone()
            .try_into()
            .map_err(|_| refuse("InvalidName", format!("{s:?} is not ASCII")))
    };
    let mut out = Vec::new();
    for name in &grant.dns_names {
        out.push(SanType::DnsName(ia5(name)?));
    }
    for uri in &grant.uris {
        out.push(SanType::URI(ia5(uri)?));
    }
    Ok(out)
}

#[cfg(test)]
#[path = "issue_tests.rs"]
mod tests;
