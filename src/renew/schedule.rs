//! When to renew: a pure function of the issued certificate, when it was received, and
//! `CERTBOOT_RENEW_BEFORE`, plus the random jitter that keeps pods started together apart.
//!
//! By default at two thirds of the lifetime (counted from when certboot received it), or
//! `CERTBOOT_RENEW_BEFORE` before expiry, moved earlier by a random jitter of up to a tenth of
//! that window.

use std::time::Duration;

use certboot_core::pki::verify::Verified;

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
    let lifetime = cert.not_after.saturating_sub(start).max(1);
    let window = match renew_before.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)) {
        Some(before) if before < lifetime => before,
        _ => lifetime / 3,
    };
    let jitter = if jitter.is_nan() {
        0.0
    } else {
        jitter.clamp(0.0, 1.0)
    };
    // `as` saturates a float that does not fit; the product is at most a tenth of the window.
    let spread = (window as f64 * 0.1 * jitter) as i64;
    cert.not_after.saturating_sub(window).saturating_sub(spread)
}

/// The minimum interval between two renewals, doubling while renewals keep coming sooner than
/// that (a signer issuing very short certificates must not make certboot renew and signal the app
/// in a tight loop), back to the base once a renewal is scheduled later than the current spacing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spacing {
    base: i64,
    current: i64,
    max: i64,
}

impl Spacing {
    /// `base` between renewals at least, growing up to `max` (both whole seconds).
    pub fn new(base: Duration, max: Duration) -> Spacing {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        let base = secs(base);
        Spacing {
            base,
            current: base,
            max: secs(max).max(base),
        }
    }

    /// When the next renewal may happen: `planned`, or later when it comes too soon after the
    /// `last` one (then `Err` carries the later time, and the spacing doubles).
    pub fn next(&mut self, planned: i64, last: i64) -> Result<i64, i64> {
        let earliest = last.saturating_add(self.current);
        if planned >= earliest {
            self.current = self.base;
            return Ok(planned);
        }
        self.current = self.current.saturating_mul(2).min(self.max);
        Err(earliest)
    }
}

/// A uniform random number in `[0, 1)` from the system's secure random source.
pub fn jitter() -> f64 {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(not_before: i64, not_after: i64) -> Verified {
        Verified::with_validity(not_before, not_after)
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
    fn renewals_that_keep_coming_too_soon_are_spaced_with_a_doubling_interval() {
        let mut spacing = Spacing::new(Duration::from_secs(60), Duration::from_secs(300));
        // A signer issuing 2-second certificates: each renewal is due 1 s after the last.
        let mut last = 0;
        let mut gaps = Vec::new();
        for _ in 0..6 {
            let at = spacing.next(last + 1, last).unwrap_err();
            gaps.push(at - last);
            last = at;
        }
        assert_eq!(gaps, [60, 120, 240, 300, 300, 300]);
        // A renewal that is due late enough resets the spacing.
        assert_eq!(spacing.next(last + 400, last), Ok(last + 400));
        assert_eq!(spacing.next(last + 401, last + 400), Err(last + 460));
    }

    #[test]
    fn extreme_certificates_and_settings_never_overflow() {
        let huge = Some(Duration::from_secs(u64::MAX));
        for (not_before, not_after, received) in [
            (i64::MIN, i64::MAX, 0),
            (i64::MAX, i64::MIN, i64::MAX),
            (0, i64::MIN, i64::MIN),
        ] {
            let c = cert(not_before, not_after);
            for before in [None, huge, Some(Duration::from_secs(1))] {
                for j in [0.0, 0.999, f64::NAN, f64::INFINITY] {
                    let at = renew_at(&c, received, before, j);
                    assert!(at <= c.not_after, "{at} > {}", c.not_after);
                }
            }
        }
    }

    #[test]
    fn jitter_spreads_values_in_the_unit_interval() {
        let samples: Vec<f64> = (0..200).map(|_| jitter()).collect();
        assert!(samples.iter().all(|j| (0.0..1.0).contains(j)));
        assert!(samples.iter().any(|j| *j < 0.25) && samples.iter().any(|j| *j > 0.75));
    }
}
