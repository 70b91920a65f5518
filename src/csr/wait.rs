//! Waiting for the certificate: a watch on one CSR, never a polling loop.
//!
//! The watch starts at the resourceVersion of the object we created, so no transition can be
//! missed. When the server ends the watch (its timeout, a restart, a dropped connection) certboot
//! re-watches from the last resourceVersion it saw; when that version has been compacted away
//! (410 Gone) it reads the object afresh and watches from there, after checking that it is still
//! the object certboot created (same UID: a CSR deleted and re-created under our name by someone
//! else is not ours). Each event is judged on the object's latest state, so several changes
//! between two events cannot confuse it.
//!
//! A server that ends every watch at once (cleanly, or with 410) must not make certboot re-watch
//! in a hot loop: a watch that ended within [`WATCH_HEALTHY_AFTER`] of its request is followed by
//! the next delay of the same backoff as failures, and a watch that lived that long resets it.
//!
//! It logs one line per state change and a progress line every `progress_interval` while the
//! CSR is pending, and it stops only on a non-empty `status.certificate` or a Denied/Failed
//! condition: "Approved" alone is not done. The overall deadline is the caller's (`CERTBOOT_TIMEOUT`).

use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use futures::StreamExt;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{WatchEvent, WatchParams};
use kube::{Api, ResourceExt};
use tracing::{debug, error, info, warn};

use crate::csr::{state_of, CsrState};
use crate::events::Events;
use certboot_core::api::{backoff, short, with_retry, ApiError, Operation};
use certboot_core::timefmt::{human, unix_now};

/// Server-side timeout of one watch request; certboot re-watches when it ends.
const WATCH_TIMEOUT_SECS: u32 = 290;

/// A watch that lived at least this long (from its request to its end) was a healthy one: the
/// backoff starts over after it. One that ended sooner without an error is followed by a delay.
pub const WATCH_HEALTHY_AFTER: Duration = Duration::from_secs(10);

/// How long a re-watch may be refused with 403 after an earlier watch of the same CSR was
/// allowed. A restarting kube-apiserver answers 403 until its RBAC caches are loaded; a refusal
/// that lasts longer is real (the RBAC was changed) and ends the wait.
const REWATCH_FORBIDDEN_GRACE: Duration = Duration::from_secs(60);

/// Why waiting ended without a certificate.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("CSR {name:?} was denied: {reason}: {message}. Check why with: kubectl get csr {name} -o yaml (status.conditions); fix the request or the approver's policy, then restart the pod")]
    Denied {
        name: String,
        reason: String,
        message: String,
    },
    #[error("CSR {name:?} failed at the signer: {reason}: {message}. Check the signer's logs; for kubernetes.io signers, kube-controller-manager's csrsigning controller")]
    Failed {
        name: String,
        reason: String,
        message: String,
    },
    #[error("CSR {name:?} was deleted while certboot waited for it (by someone, or by kube-controller-manager's CSR cleaner); certboot files a new one when restarted")]
    Deleted { name: String },
    #[error("CSR {name:?} is no longer the one certboot created (UID {created}, now {found}): it was deleted and re-created by someone else while certboot waited, so its certificate would not be for certboot's key. Find who re-created it (kubectl get csr {name} -o yaml: spec.username); certboot files a new one when restarted")]
    Replaced {
        name: String,
        created: String,
        found: String,
    },
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// What the waiter reports besides logs.
pub struct WaitContext<'a> {
    pub signer: &'a str,
    pub progress_interval: Duration,
    pub events: &'a Events,
}

/// Waits until `created` is issued, returning the raw (unverified) `status.certificate`.
pub async fn wait_for_certificate(
    api: &Api<CertificateSigningRequest>,
    created: &CertificateSigningRequest,
    ctx: &WaitContext<'_>,
) -> Result<Vec<u8>, WaitError> {
    let mut tracker = Tracker::new(created.name_any(), ctx);
    if let Some(done) = tracker.observe(created) {
        return done;
    }
    let mut version = created.resource_version().unwrap_or_default();
    let mut failures = backoff().build();
    let mut watched = false;
    let mut forbidden_since: Option<Instant> = None;
    let mut progress = progress_timer(ctx.progress_interval);
    loop {
        let requested = tokio::time::Instant::now();
        let params = WatchParams::default()
            .fields(&format!("metadata.name={}", tracker.name))
            .timeout(WATCH_TIMEOUT_SECS);
        let op = Operation::csr("watch", &tracker.name);
        let stream = match with_retry(&op, || api.watch(&params, &version)).await {
            Ok(stream) => stream,
            Err(e)
                if e.is_forbidden()
                    && watched
                    && forbidden_since.get_or_insert_with(Instant::now).elapsed()
                        < REWATCH_FORBIDDEN_GRACE =>
            {
                let what = format!("re-watch of CSR {} refused with 403, although the previous watch was allowed (an API server that just restarted refuses until its RBAC caches are loaded); retrying", tracker.name);
                back_off(&mut failures, &tracker.name, &what).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        debug!(csr = %tracker.name, "watching CSR {} from resourceVersion {version}", tracker.name);
        watched = true;
        forbidden_since = None;
        let mut stream = std::pin::pin!(stream);
        let ended = loop {
            tokio::select! {
                event = stream.next() => match event {
                    None => break Ended::Closed,
                    Some(Ok(WatchEvent::Added(csr) | WatchEvent::Modified(csr))) => {
                        same_object(created, &csr)?;
                        version = csr.resource_version().unwrap_or(version);
                        if let Some(done) = tracker.observe(&csr) {
                            return done;
                        }
                    }
                    Some(Ok(WatchEvent::Deleted(_))) => return Err(WaitError::Deleted { name: tracker.name }),
                    Some(Ok(WatchEvent::Bookmark(bookmark))) => version = bookmark.metadata.resource_version,
                    Some(Ok(WatchEvent::Error(status))) if status.code == 410 => break Ended::Expired,
                    Some(Ok(WatchEvent::Error(status))) => break Ended::Failed(format!("{} {}: {}", status.code, status.reason, status.message)),
                    Some(Err(err)) => break Ended::Failed(short(&err)),
                },
                _ = progress.tick() => tracker.progress(),
            }
        };
        let lived = requested.elapsed();
        if lived >= WATCH_HEALTHY_AFTER {
            failures = backoff().build();
        } else if !matches!(ended, Ended::Failed(_)) {
            let what = format!(
                "watch of CSR {} ended after only {} without an error; re-watching",
                tracker.name,
                human(lived)
            );
            back_off(&mut failures, &tracker.name, &what).await;
        }
        match ended {
            Ended::Closed => {}
            Ended::Expired => {
                info!(csr = %tracker.name, "watch of CSR {} expired (410 Gone); reading it afresh", tracker.name);
                let csr = get(api, &tracker.name).await?;
                same_object(created, &csr)?;
                version = csr.resource_version().unwrap_or_default();
                if let Some(done) = tracker.observe(&csr) {
                    return done;
                }
            }
            Ended::Failed(reason) => {
                let what = format!("watch of CSR {} broke ({reason}); resuming", tracker.name);
                back_off(&mut failures, &tracker.name, &what).await;
            }
        }
    }
}

/// The timer of the progress lines: first tick one `interval` from now. `interval` is bounded by
/// the configuration (`CERTBOOT_PROGRESS_INTERVAL`); a longer one would still not overflow here.
pub fn progress_timer(interval: Duration) -> tokio::time::Interval {
    let interval = interval.max(Duration::from_millis(1));
    let now = tokio::time::Instant::now();
    let first = now.checked_add(interval).unwrap_or(now);
    tokio::time::interval_at(first, interval)
}

/// Logs `what` happened (it ends with the word the delay completes, "retrying" or "resuming"), then
/// sleeps the next delay of `failures` before certboot watches again.
async fn back_off(failures: &mut impl Iterator<Item = Duration>, csr: &str, what: &str) {
    let delay = failures
        .next()
        .unwrap_or(certboot_core::api::RETRY_MAX_DELAY);
    warn!(csr = %csr, retry_in = %human(delay), "{what} in {}{}", human(delay), certboot_core::logging::expiry_note());
    tokio::time::sleep(delay).await;
}

/// `Err(Replaced)` when `seen` is not the object certboot created (another UID under its name).
fn same_object(
    created: &CertificateSigningRequest,
    seen: &CertificateSigningRequest,
) -> Result<(), WaitError> {
    match (&created.metadata.uid, &seen.metadata.uid) {
        (Some(ours), Some(theirs)) if ours != theirs => Err(WaitError::Replaced {
            name: created.name_any(),
            created: ours.clone(),
            found: theirs.clone(),
        }),
        _ => Ok(()),
    }
}

enum Ended {
    /// The server closed the watch (its timeout): re-watch from the last version.
    Closed,
    /// 410 Gone: the last version is too old to watch from.
    Expired,
    /// The connection broke or the server sent an error.
    Failed(String),
}

async fn get(
    api: &Api<CertificateSigningRequest>,
    name: &str,
) -> Result<CertificateSigningRequest, WaitError> {
    match with_retry(&Operation::csr("get", name), || api.get(name)).await {
        Ok(csr) => Ok(csr),
        Err(e) if e.is_not_found() => Err(WaitError::Deleted {
            name: name.to_string(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Follows the CSR's state, logging each change once and progress while pending.
struct Tracker<'a> {
    name: String,
    ctx: &'a WaitContext<'a>,
    phase: &'static str,
    since: Instant,
}

impl<'a> Tracker<'a> {
    fn new(name: String, ctx: &'a WaitContext<'a>) -> Self {
        Tracker {
            name,
            ctx,
            phase: "",
            since: Instant::now(),
        }
    }

    /// Judges the latest object; `Some` when waiting is over.
    fn observe(&mut self, csr: &CertificateSigningRequest) -> Option<Result<Vec<u8>, WaitError>> {
        let state = state_of(csr);
        let changed = state.phase() != self.phase;
        self.phase = state.phase();
        let elapsed = human(self.since.elapsed());
        let (name, signer) = (&self.name, self.ctx.signer);
        match state {
            CsrState::Pending if changed => {
                info!(csr = %name, signer, phase = "pending", elapsed = %elapsed,
                "CSR {name} is pending: waiting for an approver (signer {signer}); to approve by hand: kubectl certificate approve {name}")
            }
            CsrState::Approved if changed => {
                info!(csr = %name, signer, phase = "approved", elapsed = %elapsed,
                "CSR {name} approved; waiting for signer {signer} to issue the certificate")
            }
            CsrState::Pending | CsrState::Approved => {}
            CsrState::Issued(cert) => {
                info!(csr = %name, signer, phase = "issued", elapsed = %elapsed, "CSR {name} issued by signer {signer} after {elapsed}");
                return Some(Ok(cert));
            }
            CsrState::Denied { reason, message } => {
                return Some(Err(WaitError::Denied {
                    name: name.clone(),
                    reason,
                    message,
                }))
            }
            CsrState::Failed { reason, message } => {
                return Some(Err(WaitError::Failed {
                    name: name.clone(),
                    reason,
                    message,
                }))
            }
        }
        None
    }

    /// A progress line (and an aggregated Event) while nothing happens.
    fn progress(&self) {
        let elapsed = human(self.since.elapsed());
        let (name, signer) = (&self.name, self.ctx.signer);
        let expiry = certboot_core::logging::expiry_note();
        let message = match self.phase {
            "approved" => format!("CSR {name} approved, waiting for signer {signer} to issue the certificate, {elapsed}{expiry}"),
            _ => format!("waiting for signer {signer} to approve CSR {name}, pending {elapsed}{expiry}"),
        };
        if certboot_core::logging::current_expiry().is_some_and(|at| at <= unix_now()) {
            error!(csr = %name, signer, phase = "expired", elapsed = %elapsed, "CERTIFICATE EXPIRED without a successor: {message}");
        } else {
            info!(csr = %name, signer, phase = self.phase, elapsed = %elapsed, "{message}");
        }
        self.ctx.events.waiting(message);
    }
}

/// Scenarios against a scripted API server ([`certboot_core::api::mock`]): what the wait does when the
/// server closes the watch, forgets the version, refuses after a restart, or the CSR ends badly.
#[cfg(test)]
#[path = "wait_tests.rs"]
mod tests;
