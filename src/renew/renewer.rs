//! Sidecar mode: renew the certificate before it expires, for as long as the pod lives.
//!
//! The renewal time comes from the issued certificate itself: at two thirds of its lifetime (counted
//! from when certboot received it) by default, or `CERTBOOT_RENEW_BEFORE` before expiry, moved earlier by a random jitter of up to a
//! tenth of that window so that pods started together do not renew together. Each renewal uses a
//! fresh key and a new CSR. A failed renewal never touches the pair on disk: certboot retries with
//! exponential backoff and jitter, logging each failure with the time left before expiry.

use std::time::Duration;

use backon::BackoffBuilder;
use tracing::{error, info, warn};

use crate::obtain::{Attempt, Certifier};
use crate::config::Config;
use crate::error::Error;
use crate::api::events::{reason, Events, Kind};
use crate::renew::metrics::Metrics;
use crate::renew::reload;
use crate::store::Store;
use crate::timefmt::{human, relative, rfc3339, unix_now};
use crate::pki::verify::Verified;

/// The first delay after a failed renewal; it doubles up to [`RENEW_RETRY_MAX`].
pub const RENEW_RETRY_MIN: Duration = Duration::from_secs(1);
/// The cap on the delay between renewal attempts.
pub const RENEW_RETRY_MAX: Duration = Duration::from_secs(300);

/// When to renew a certificate (Unix seconds). `received_at` is when certboot obtained it: signers
/// often backdate notBefore (Kubernetes' by 5 minutes), so the lifetime counts from the later of the
/// two. `jitter` is in `[0, 1)`.
pub fn renew_at(
    cert: &Verified,
    received_at: i64,
    renew_before: Option<Duration>,
    jitter: f64,
) -> i64 {
    let start = cert.not_before.max(received_at);
    let lifetime = (cert.not_after - start).max(1);
    let window = match renew_before.map(|d| d.as_secs() as i64) {
        Some(before) if before < lifetime => before,
        _ => lifetime / 3,
    };
    let spread = (window as f64 * 0.1 * jitter.clamp(0.0, 1.0)) as i64;
    cert.not_after - window - spread
}

/// A uniform random number in `[0, 1)` from the system's secure random source.
pub fn jitter() -> f64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// Everything the renewal loop needs.
pub struct Rotator<'a> {
    pub certifier: &'a Certifier<'a>,
    pub config: &'a Config,
    pub store: &'a Store,
    pub ca_bundle: Option<&'a [u8]>,
    pub events: &'a Events,
    pub metrics: &'a Metrics,
}

impl Rotator<'_> {
    /// Renews `current` (received at `received_at`) before it expires, forever. Returns only on
    /// shutdown (by being dropped).
    pub async fn run(&self, mut current: Verified, mut received_at: i64) {
        if let Some(renew_before) = self.config.renew.renew_before {
            if renew_before.as_secs() as i64 >= current.lifetime() {
                warn!(
                    "CERTBOOT_RENEW_BEFORE={} is not shorter than the certificate's lifetime ({}); renewing at two thirds of the lifetime instead",
                    human(renew_before),
                    human(Duration::from_secs(current.lifetime().max(0) as u64))
                );
            }
        }
        self.metrics.certificate(current.not_after);
        loop {
            let at = renew_at(
                &current,
                received_at,
                self.config.renew.renew_before,
                jitter(),
            );
            info!(
                phase = "scheduled",
                "next renewal at {} ({}); the certificate is valid until {}",
                rfc3339(at),
                relative(at - unix_now()),
                rfc3339(current.not_after)
            );
            sleep_until_unix(at).await;
            current = self.renew(&current).await;
            received_at = unix_now();
        }
    }

    /// Renews until one attempt succeeds, keeping the current pair on disk meanwhile.
    async fn renew(&self, current: &Verified) -> Verified {
        let mut delays = crate::api::backoff()
            .with_min_delay(RENEW_RETRY_MIN)
            .with_max_delay(RENEW_RETRY_MAX)
            .build();
        loop {
            match self.attempt(current).await {
                Ok(next) => {
                    self.metrics.renewed(next.not_after);
                    return next;
                }
                Err(err) => {
                    self.metrics.failed();
                    let delay = delays.next().unwrap_or(RENEW_RETRY_MAX);
                    self.report_failure(current, &err, delay);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn attempt(&self, current: &Verified) -> Result<Verified, Error> {
        // Every retry line inside this attempt also says when the current certificate expires.
        let obtain = crate::api::CURRENT_EXPIRY.scope(
            current.not_after,
            self.certifier
                .obtain(Attempt::Renewal, Some(current.not_after)),
        );
        let issued = obtain.await?;
        self.certifier.store(self.store, &issued, self.ca_bundle)?;
        if let (Some(process), Some(signal)) = (
            &self.config.renew.reload_process,
            self.config.renew.reload_signal,
        ) {
            reload::notify(process, signal);
        }
        if self.config.renew.delete_csr {
            self.certifier.delete_csr(&issued.csr_name).await;
        }
        Ok(issued.cert)
    }

    fn report_failure(&self, current: &Verified, err: &Error, delay: Duration) {
        let left = current.not_after - unix_now();
        if left <= 0 {
            error!(
                phase = "expired",
                "CERTIFICATE EXPIRED {} and no successor could be obtained: {err}; retrying in {}",
                relative(left),
                human(delay)
            );
            self.events.post(
                Kind::Warning,
                reason::EXPIRED,
                format!(
                    "Certificate expired {} without a successor: {err}",
                    relative(left)
                ),
            );
        } else {
            warn!(
                phase = "renewal-failed",
                "renewal failed: {err}; the current certificate stays in place and expires {}; retrying in {}",
                relative(left),
                human(delay)
            );
            self.events.post(
                Kind::Warning,
                reason::RENEWAL_FAILED,
                format!(
                    "Renewal failed (certificate expires {}): {err}",
                    relative(left)
                ),
            );
        }
    }
}

async fn sleep_until_unix(at: i64) {
    let wait = (at - unix_now()).max(0) as u64;
    tokio::time::sleep(Duration::from_secs(wait)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(not_before: i64, not_after: i64) -> Verified {
        Verified {
            chain_pem: String::new(),
            serial: String::new(),
            subject: String::new(),
            not_before,
            not_after,
        }
    }

    #[test]
    fn default_renews_at_two_thirds_of_the_lifetime_minus_jitter() {
        let c = cert(0, 3000);
        assert_eq!(renew_at(&c, 0, None, 0.0), 2000);
        assert_eq!(renew_at(&c, 0, None, 0.5), 1950);
    }

    #[test]
    fn renew_before_counts_back_from_expiry() {
        let c = cert(0, 86_400);
        assert_eq!(
            renew_at(&c, 0, Some(Duration::from_secs(3600)), 0.0),
            82_800
        );
        assert_eq!(
            renew_at(&c, 0, Some(Duration::from_secs(3600)), 0.5),
            82_620
        );
    }

    #[test]
    fn renew_before_longer_than_the_lifetime_falls_back_to_two_thirds() {
        let c = cert(0, 30);
        assert_eq!(renew_at(&c, 0, Some(Duration::from_secs(3600)), 0.0), 20);
    }

    #[test]
    fn a_backdated_not_before_does_not_make_a_fresh_certificate_due() {
        // Kubernetes' signer backdates notBefore by 5 minutes; a 30 s certificate received at
        // t=1000 is renewed at t=1020, not at once.
        let c = cert(700, 1030);
        assert_eq!(renew_at(&c, 1000, None, 0.0), 1020);
    }

    #[test]
    fn jitter_spreads_values_in_the_unit_interval() {
        let samples: Vec<f64> = (0..200).map(|_| jitter()).collect();
        assert!(samples.iter().all(|j| (0.0..1.0).contains(j)));
        assert!(samples.iter().any(|j| *j < 0.25) && samples.iter().any(|j| *j > 0.75));
    }
}
