//! Sidecar mode: renew the certificate before it expires, for as long as the pod lives.
//!
//! The renewal time comes from the issued certificate itself ([`crate::renew::schedule`]). Each
//! renewal uses a fresh key and a new CSR. A failed renewal never touches the pair on disk: certboot retries with
//! exponential backoff and jitter, logging each failure with the time left before expiry.
//! Renewals are spaced by at least a tenth of `CERTBOOT_MIN_LIFETIME`, doubling while they keep
//! coming sooner ([`Spacing`]), so a signer issuing very short certificates cannot make certboot
//! renew and signal the app in a loop (such certificates are refused anyway, see
//! [`certboot_core::pki::verify::check_lifetime`]).

use std::time::Duration;

use backon::BackoffBuilder;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::error::Error;
use crate::events::{reason, Events, Kind};
use crate::obtain::{Attempt, Certifier};
use crate::renew::clock::{self, SystemClock};
use crate::renew::metrics::Metrics;
use crate::renew::reload;
use crate::renew::schedule::{jitter, renew_at, Spacing};
use crate::store::Store;
use certboot_core::pki::verify::Verified;
use certboot_core::timefmt::{human, relative, rfc3339, unix_now};

/// The first delay after a failed renewal; it doubles up to [`RENEW_RETRY_MAX`].
pub const RENEW_RETRY_MIN: Duration = Duration::from_secs(1);
/// The cap on the delay between renewal attempts.
pub const RENEW_RETRY_MAX: Duration = Duration::from_secs(300);

/// Everything the renewal loop needs.
pub struct Renewer<'a> {
    pub certifier: &'a Certifier<'a>,
    pub config: &'a Config,
    pub store: &'a Store,
    pub events: &'a Events,
    pub metrics: &'a Metrics,
}

impl Renewer<'_> {
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
        let mut spacing = Spacing::new(self.config.min_lifetime / 10, RENEW_RETRY_MAX);
        loop {
            let planned = renew_at(
                &current,
                received_at,
                self.config.renew.renew_before,
                jitter(),
            );
            let at = spacing.next(planned, received_at).unwrap_or_else(|later| {
                warn!(
                    phase = "spaced",
                    "the next renewal would come {} after the last one; waiting until {} instead (renewals are spaced by at least a tenth of CERTBOOT_MIN_LIFETIME, doubling up to {} while they keep coming this fast): check the signer's certificate lifetime and CERTBOOT_RENEW_BEFORE",
                    human(Duration::from_secs(planned.saturating_sub(received_at).max(0) as u64)),
                    rfc3339(later),
                    human(RENEW_RETRY_MAX)
                );
                later
            });
            info!(
                phase = "scheduled",
                "next renewal at {} ({}); the certificate is valid until {}",
                rfc3339(at),
                relative(at - unix_now()),
                rfc3339(current.not_after)
            );
            clock::sleep_until(at, &SystemClock).await;
            current = self.renew(&current).await;
            received_at = unix_now();
        }
    }

    /// Renews until one attempt succeeds, keeping the current pair on disk meanwhile.
    async fn renew(&self, current: &Verified) -> Verified {
        let mut delays = certboot_core::api::backoff()
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
        // CERTBOOT_CA_BUNDLE is read afresh: it is usually a mounted ConfigMap, which changes
        // during a CA rotation (the renewal after the switch comes from the new CA).
        let ca_bundle = self.config.output.read_ca_bundle()?;
        // Every retry line inside this attempt also says when the current certificate expires.
        let obtain = certboot_core::logging::with_current_expiry(
            current.not_after,
            self.certifier
                .obtain(Attempt::Renewal, ca_bundle.as_deref()),
        );
        let issued = obtain.await?;
        self.certifier
            .store(self.store, &issued, ca_bundle.as_deref())?;
        if let (Some(process), Some(signal)) = (
            &self.config.renew.reload_process,
            self.config.renew.reload_signal,
        ) {
            reload::notify(process, signal);
        }
        if self.config.renew.delete_csr {
            self.certifier.delete_csr(&issued).await;
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
                "renewal failed: {err}{}; retrying in {}",
                certboot_core::logging::expiry_note_at(current.not_after),
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
