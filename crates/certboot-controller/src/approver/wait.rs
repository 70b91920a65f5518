//! How long the approver waits for a fact a decision needs (the kubelet publishing the pod's IPs,
//! a Service reaching the cache), and when it gives up.
//!
//! Nothing is kept per CSR: the schedule follows from the CSR's age (`metadata.creationTimestamp`),
//! so a deleted CSR leaves nothing behind and a restarted (or newly elected) approver resumes the
//! same schedule. The delay roughly doubles, as the age does: 250 ms, 500 ms, 1 s, … up to 30 s;
//! at [`WAIT_LIMIT`] the CSR is denied with [`GAVE_UP`].

use std::time::Duration;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

use super::denial::Denial;
use certboot_core::timefmt::human;

/// The shortest and the longest delay before looking at a waiting CSR again.
pub const FIRST_WAIT: Duration = Duration::from_millis(250);
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// How long after its creation a CSR may wait before it is denied.
pub const WAIT_LIMIT: Duration = Duration::from_secs(10 * 60);
/// The stable reason of a CSR denied because what it waited for never came.
pub const GAVE_UP: &str = "WaitTimedOut";

/// What to do with a CSR that has to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Look at it again after this delay.
    LookAgainIn(Duration),
    /// It has waited [`WAIT_LIMIT`]: deny it.
    GiveUp,
}

/// The schedule for a CSR of this age: about as long again as it has waited so far, within
/// [`FIRST_WAIT`]..[`MAX_WAIT`], and never past [`WAIT_LIMIT`].
pub fn next_look(age: Duration) -> Next {
    match WAIT_LIMIT.checked_sub(age) {
        Some(left) if !left.is_zero() => {
            Next::LookAgainIn(age.clamp(FIRST_WAIT, MAX_WAIT).min(left))
        }
        _ => Next::GiveUp,
    }
}

/// The CSR's age at `now`: zero when the creation time is missing or ahead of this clock.
pub fn age(csr: &CertificateSigningRequest, now: Timestamp) -> Duration {
    age_of(&csr.metadata, now)
}

/// How long ago the object of `meta` was created (zero when unknown).
pub fn age_of(meta: &ObjectMeta, now: Timestamp) -> Duration {
    let Some(created) = meta.creation_timestamp.as_ref() else {
        return Duration::ZERO;
    };
    let millis = now
        .as_millisecond()
        .saturating_sub(created.0.as_millisecond());
    Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

/// The denial of a CSR that waited [`WAIT_LIMIT`] for `why`.
pub fn gave_up(why: &str) -> Denial {
    Denial {
        check: "wait",
        reason: GAVE_UP,
        message: format!(
            "still waiting {} after the CSR was created: {why}; the approver waits at most {}. \
             Fix what is missing (e.g. the pod's IPs, its Service); the pod's certboot files a new CSR when it runs again",
            human(WAIT_LIMIT),
            human(WAIT_LIMIT)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn created_at(unix: i64) -> CertificateSigningRequest {
        let mut csr = CertificateSigningRequest::default();
        csr.metadata.creation_timestamp =
            Some(Time(Timestamp::from_second(unix).expect("a valid time")));
        csr
    }

    #[test]
    fn the_delay_doubles_with_the_age_from_250_ms_to_30_s() {
        let mut age = Duration::ZERO;
        let mut delays = Vec::new();
        while let Next::LookAgainIn(delay) = next_look(age) {
            delays.push(delay);
            age += delay;
        }
        assert_eq!(
            &delays[..5],
            &[250, 250, 500, 1000, 2000].map(Duration::from_millis)
        );
        assert!(delays.iter().all(|d| *d <= MAX_WAIT && !d.is_zero()));
        // 8 doublings reach 30 s; then every 30 s until the limit: about 28 looks in 10 minutes.
        assert!(delays.len() < 32, "{} looks", delays.len());
        assert_eq!(age, WAIT_LIMIT, "the last look is at the limit itself");
    }

    #[test]
    fn it_gives_up_at_ten_minutes_and_never_waits_past_them() {
        assert_eq!(
            next_look(WAIT_LIMIT - Duration::from_secs(5)),
            Next::LookAgainIn(Duration::from_secs(5))
        );
        assert_eq!(next_look(WAIT_LIMIT), Next::GiveUp);
        assert_eq!(next_look(Duration::from_secs(24 * 3600)), Next::GiveUp);
    }

    #[test]
    fn the_age_comes_from_the_csr_itself_so_nothing_outlives_it() {
        // Two approvers (or one before and after a restart) agree without shared state.
        let csr = created_at(1_000_000);
        let at = |unix: i64| Timestamp::from_second(unix).expect("a valid time");
        assert_eq!(age(&csr, at(1_000_601)), Duration::from_secs(601));
        assert_eq!(next_look(age(&csr, at(1_000_601))), Next::GiveUp);
        // A creation time ahead of this clock, or none: treated as just created.
        assert_eq!(age(&csr, at(999_000)), Duration::ZERO);
        assert_eq!(
            age(&CertificateSigningRequest::default(), at(5)),
            Duration::ZERO
        );
    }

    #[test]
    fn the_denial_says_what_was_awaited_and_the_bound() {
        let denial = gave_up("pod shop/web-0 has no IPs yet");
        assert_eq!(denial.reason, GAVE_UP);
        assert!(denial.message.contains("pod shop/web-0 has no IPs yet"));
        assert!(
            denial.message.contains(&human(WAIT_LIMIT)),
            "{}",
            denial.message
        );
    }
}
