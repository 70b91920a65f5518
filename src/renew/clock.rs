//! Waiting for a wall-clock time (the renewal time is a Unix time, like the certificate's notAfter).
//!
//! A timer runs on the monotonic clock, which stands still while the machine is suspended and
//! does not follow a step of the wall clock: one long sleep until the renewal time could fire
//! hours late, after the certificate expired. So the wait is cut into sleeps of at most
//! [`RECHECK`], and the wall clock is read again after each one.

use std::time::Duration;

use certboot_core::timefmt::unix_now;

/// How often, at least, the wall clock is read again while waiting.
pub const RECHECK: Duration = Duration::from_secs(60);

/// A source of the current wall-clock time (Unix seconds).
pub trait WallClock {
    fn now(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now(&self) -> i64 {
        unix_now()
    }
}

/// Returns once `clock` reads `at` or later, checking it at least every [`RECHECK`].
pub async fn sleep_until(at: i64, clock: &impl WallClock) {
    loop {
        let left = at.saturating_sub(clock.now());
        if left <= 0 {
            return;
        }
        let chunk = Duration::from_secs(left.unsigned_abs()).min(RECHECK);
        tokio::time::sleep(chunk).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    /// Wall time = start + monotonic (tokio) time elapsed + the jumps the test makes.
    struct Controlled {
        origin: tokio::time::Instant,
        start: i64,
        jumped: AtomicI64,
    }

    impl Controlled {
        fn new(start: i64) -> Controlled {
            Controlled {
                origin: tokio::time::Instant::now(),
                start,
                jumped: AtomicI64::new(0),
            }
        }

        /// The machine was suspended for `seconds`, or the wall clock was stepped forward.
        fn jump(&self, seconds: i64) {
            self.jumped.fetch_add(seconds, Ordering::SeqCst);
        }
    }

    impl WallClock for Controlled {
        fn now(&self) -> i64 {
            self.start + self.origin.elapsed().as_secs() as i64 + self.jumped.load(Ordering::SeqCst)
        }
    }

    const DAY: i64 = 86_400;

    #[tokio::test(start_paused = true)]
    async fn a_suspend_or_clock_step_does_not_make_the_renewal_late() {
        let clock = Controlled::new(1_000_000);
        let renew_at = 1_000_000 + DAY;
        let began = tokio::time::Instant::now();
        let suspend = async {
            tokio::time::sleep(Duration::from_secs(600)).await;
            clock.jump(DAY);
        };
        tokio::join!(sleep_until(renew_at, &clock), suspend);
        let waited = began.elapsed();
        // Due as soon as the wall clock says so: within one re-check after the jump, not a day later.
        assert!(waited <= Duration::from_secs(600) + RECHECK, "{waited:?}");
        assert!(clock.now() >= renew_at);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_jump_it_waits_until_the_time_and_no_longer() {
        let clock = Controlled::new(1_000_000);
        let began = tokio::time::Instant::now();
        sleep_until(1_000_000 + DAY, &clock).await;
        assert_eq!(began.elapsed().as_secs(), DAY as u64);
        // A time in the past returns at once.
        let again = tokio::time::Instant::now();
        sleep_until(0, &clock).await;
        assert_eq!(again.elapsed(), Duration::ZERO);
    }
}
