//! Retries: the one place where API calls are retried. Every call names its [`Operation`].
//! Transient failures (connection refused or reset, timeouts, 429, 5xx) are retried with capped
//! exponential backoff and jitter (`backon`), honouring the server's `retryAfterSeconds`; each retry
//! is logged with its next delay. 400/401/403/404/409/422 are never retried.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tracing::warn;

use crate::api::error::{is_transient, ApiError, Operation};
use crate::timefmt::human;

/// The first delay between retries.
pub const RETRY_MIN_DELAY: Duration = Duration::from_millis(200);
/// The cap on the delay between retries.
pub const RETRY_MAX_DELAY: Duration = Duration::from_secs(30);

/// The server's `retryAfterSeconds` hint (sent with 429 and some 5xx responses), capped at
/// [`RETRY_MAX_DELAY`]: a server asking for `4294967295` s (136 years) gets 30 s, like any retry.
pub fn retry_after(err: &kube::Error) -> Option<Duration> {
    match err {
        kube::Error::Api(status) => status
            .details
            .as_ref()
            .map(|d| d.retry_after_seconds)
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(u64::from(s)).min(RETRY_MAX_DELAY)),
        _ => None,
    }
}

/// How long one API call may go unanswered (e.g. a paused or overloaded API server) before it
/// counts as a transient failure and is retried, with a log line. Watches are not affected: this
/// bounds only the wait for the response headers.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

fn no_answer() -> kube::Error {
    let err = std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "no answer from the API server within {}",
            human(CALL_TIMEOUT)
        ),
    );
    kube::Error::Service(Box::new(err))
}

/// The backoff policy for transient failures: 200 ms doubling to 30 s, with jitter, unbounded
/// in count (the overall `CERTBOOT_TIMEOUT` bounds it when set).
pub fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(RETRY_MIN_DELAY)
        .with_max_delay(RETRY_MAX_DELAY)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
}

/// Runs `call` until it succeeds or fails permanently, retrying transient failures with [`backoff`].
pub async fn with_retry<T, F, Fut>(op: &Operation, call: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut call = call;
    let bounded = || {
        let attempt = call();
        async move {
            tokio::time::timeout(CALL_TIMEOUT, attempt)
                .await
                .unwrap_or_else(|_| Err(no_answer()))
        }
    };
    bounded
        .retry(backoff())
        .sleep(tokio::time::sleep)
        .when(is_transient)
        .adjust(|err, delay| retry_after(err).or(delay))
        .notify(|err, delay| {
            warn!(
                verb = op.verb,
                resource = op.resource,
                name = %op.name,
                retry_in = %human(delay),
                "{}",
                retry_line(op, err, delay)
            );
        })
        .await
        .map_err(|err| ApiError::new(op.clone(), err))
}

/// [`with_retry`] for at most `budget`: a controller's reconcile uses it so that one object whose
/// calls keep failing does not hold a reconcile slot forever; the reconcile fails with the last
/// error (a timeout when the call itself hangs) and the controller requeues the object.
pub async fn with_retry_for<T, F, Fut>(
    op: &Operation,
    budget: Duration,
    call: F,
) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    match tokio::time::timeout(budget, with_retry(op, call)).await {
        Ok(result) => result,
        Err(_) => {
            let err = std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "still failing after {} of retries; the object is tried again later",
                    human(budget)
                ),
            );
            Err(ApiError::new(
                op.clone(),
                kube::Error::Service(Box::new(err)),
            ))
        }
    }
}

/// The log line of one retry: what failed, why, when it is tried again, and (inside a renewal)
/// when the certificate on disk expires.
pub fn retry_line(op: &Operation, err: &kube::Error, delay: Duration) -> String {
    format!(
        "{} {} {:?} failed ({}); retrying in {}{}",
        op.verb,
        op.resource,
        op.name,
        short(err),
        human(delay),
        crate::logging::expiry_note()
    )
}

/// A one-line description of a kube error for retry logs.
pub fn short(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => {
            format!("{} {}: {}", status.code, status.reason, status.message)
        }
        other => {
            // Error chains often repeat their source's text; keep each piece once.
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(inner) = source {
                let piece = inner.to_string();
                if !text.contains(&piece) {
                    text.push_str(": ");
                    text.push_str(&piece);
                }
                source = inner.source();
            }
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::response::StatusDetails;
    use kube::core::Status;

    fn api_error(code: u16, retry_after_seconds: Option<u32>) -> kube::Error {
        let mut status = Status::failure("boom", "Reason");
        status.code = code;
        status.details = retry_after_seconds.map(|s| StatusDetails {
            name: String::new(),
            group: String::new(),
            kind: String::new(),
            uid: String::new(),
            causes: Vec::new(),
            retry_after_seconds: s,
        });
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn only_429_and_5xx_are_transient_among_api_answers() {
        for code in [429, 500, 502, 503, 504] {
            assert!(is_transient(&api_error(code, None)), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 422] {
            assert!(!is_transient(&api_error(code, None)), "{code}");
        }
    }

    #[test]
    fn retry_after_is_honoured() {
        assert_eq!(
            retry_after(&api_error(429, Some(7))),
            Some(Duration::from_secs(7))
        );
        assert_eq!(retry_after(&api_error(429, None)), None);
    }

    #[test]
    fn retry_after_is_capped_at_the_backoff_maximum() {
        assert_eq!(
            retry_after(&api_error(429, Some(u32::MAX))),
            Some(RETRY_MAX_DELAY)
        );
        assert_eq!(
            retry_after(&api_error(503, Some(31))),
            Some(RETRY_MAX_DELAY)
        );
        assert_eq!(
            retry_after(&api_error(429, Some(30))),
            Some(RETRY_MAX_DELAY)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_huge_retry_after_waits_no_longer_than_the_cap() {
        let start = tokio::time::Instant::now();
        let mut calls = 0;
        let result = with_retry(&Operation::csr("create", "x"), || {
            calls += 1;
            let attempt = calls;
            async move {
                if attempt == 1 {
                    Err(api_error(429, Some(u32::MAX)))
                } else {
                    Ok(attempt)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 2);
        assert!(start.elapsed() <= RETRY_MAX_DELAY, "{:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_call_times_out_and_is_retried() {
        let mut calls = 0;
        let result = with_retry(&Operation::csr("create", "x"), || {
            calls += 1;
            let attempt = calls;
            async move {
                if attempt == 1 {
                    std::future::pending::<()>().await;
                }
                Ok(attempt)
            }
        })
        .await;
        assert_eq!(result.unwrap(), 2);
        assert!(is_transient(&no_answer()));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried_and_transient_ones_are() {
        let mut calls = 0;
        let result: Result<(), ApiError> = with_retry(&Operation::csr("get", "x"), || {
            calls += 1;
            async { Err(api_error(403, None)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 1);

        let mut calls = 0;
        let result = with_retry(&Operation::csr("get", "x"), || {
            calls += 1;
            let attempt = calls;
            async move {
                if attempt < 4 {
                    Err(api_error(503, None))
                } else {
                    Ok(attempt)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reconcile_call_stops_retrying_at_its_budget() {
        let start = tokio::time::Instant::now();
        let mut calls = 0u32;
        let result: Result<(), ApiError> =
            with_retry_for(&Operation::csr("get", "x"), Duration::from_secs(60), || {
                calls += 1;
                async { Err(api_error(503, None)) }
            })
            .await;
        let err = result.expect_err("gives up");
        assert!(err.to_string().contains("get"), "{err}");
        assert!(
            start.elapsed() <= Duration::from_secs(61),
            "{:?}",
            start.elapsed()
        );
        assert!((2..20).contains(&calls), "{calls} calls");
    }
}

#[cfg(test)]
mod retry_log_tests {
    use super::*;

    /// The line itself, not a captured subscriber: a thread-local test subscriber races with the
    /// other tests' subscribers over tracing's per-callsite cache.
    #[tokio::test]
    async fn retry_lines_carry_the_expiry_note_inside_a_renewal() {
        let mut status = kube::core::Status::failure("down", "ServiceUnavailable");
        status.code = 503;
        let err = kube::Error::Api(Box::new(status));
        let op = Operation::csr("create", "x");
        let outside = retry_line(&op, &err, Duration::from_secs(2));
        assert!(
            outside.contains("retrying in 2s") && !outside.contains("expires"),
            "{outside}"
        );
        let inside = crate::logging::with_current_expiry(crate::timefmt::unix_now() + 120, async {
            retry_line(&op, &err, Duration::from_secs(2))
        })
        .await;
        assert!(
            inside.contains("503 ServiceUnavailable: down")
                && inside.contains("retrying in")
                && inside.contains("expires in"),
            "{inside}"
        );
    }
}
