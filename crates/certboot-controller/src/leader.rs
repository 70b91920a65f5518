//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it:
//! one holder at a time; the holder renews every `retry_period`; a candidate takes the lease over
//! when its record has not changed for `lease_duration`, measured on the candidate's own monotonic
//! clock (so clock skew between nodes does not matter); the holder steps down when it could not
//! renew for `renew_deadline` (shorter than `lease_duration`, so two holders never overlap).
//!
//! Every write carries the resourceVersion it read: two candidates racing for the same lease get
//! one success and one 409.
//!
//! Every round is bounded in time (the client has no read timeout of its own): the holder's by
//! what is left of the renew deadline, so an API server that stops answering (a hung GET or PUT)
//! still ends in a step-down before a standby can take over; a candidate's and the release by
//! the renew deadline, so neither waits forever.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::time::Instant;
use tracing::{info, warn};

use certboot_core::api::{short, status_code, ApiError, Operation};

/// Timing of the election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// This process's identity (its pod name).
    pub identity: String,
    /// How long a record that does not change keeps others away.
    pub lease_duration: Duration,
    /// How long the holder keeps leading without a successful renewal.
    pub renew_deadline: Duration,
    /// How often the holder renews and a candidate tries.
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// 8 s lease, 6 s renew deadline, 2 s retry: a standby takes over at most about 12 s after
    /// the leader died (the record's last change is seen up to one retry late, and the takeover
    /// happens at the first retry after the lease expired).
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        LeaseSettings {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(8),
            renew_deadline: Duration::from_secs(6),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Why leading ended or could not start.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("lost the lease {namespace}/{name} to {holder:?}; exiting so that a fresh start waits as a standby")]
    Lost {
        namespace: String,
        name: String,
        holder: String,
    },
    #[error("could not renew the lease {namespace}/{name} for {}s (last attempt: {last}); stepping down (exiting) before another replica takes over; if this repeats, check the API server's health and this pod's network path to it", .after.as_secs())]
    RenewFailed {
        namespace: String,
        name: String,
        after: Duration,
        /// Why the last renewal failed.
        last: String,
    },
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// Takes part in the election for one Lease.
pub struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    /// The last record seen (holder, renew time) and when it was first seen.
    observed: Option<(String, Option<MicroTime>, Instant)>,
}

/// Why a round failed.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error(transparent)]
    Api(ApiError),
    #[error("no answer from the API server within {:.1}s (the round is bounded by the renew deadline)", .0.as_secs_f64())]
    TimedOut(Duration),
}

/// What one round found.
enum Round {
    Leading,
    Following(String),
}

impl Elector {
    pub fn new(client: kube::Client, settings: LeaseSettings) -> Self {
        Elector {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: None,
        }
    }

    fn op(&self, verb: &'static str) -> Operation {
        Operation {
            verb,
            group: "coordination.k8s.io",
            resource: "leases",
            name: format!("{}/{}", self.settings.namespace, self.settings.name),
        }
    }

    /// Waits until this process holds the lease. A 403 ends the wait (RBAC is wrong); other
    /// failures are logged and retried.
    pub async fn acquire(&mut self) -> Result<(), LeaderError> {
        let mut last_holder = String::new();
        loop {
            match self.bounded_round(self.settings.renew_deadline).await {
                Ok(Round::Leading) => {
                    info!(
                        lease = %self.settings.name,
                        "acquired the lease {}/{}; this replica is the leader",
                        self.settings.namespace, self.settings.name
                    );
                    return Ok(());
                }
                Ok(Round::Following(holder)) if holder != last_holder => {
                    info!(lease = %self.settings.name, holder = %holder,
                        "standing by: the lease {}/{} is held by {holder}; taking over if it is not renewed for {}s",
                        self.settings.namespace, self.settings.name, self.settings.lease_duration.as_secs());
                    last_holder = holder;
                }
                Ok(Round::Following(_)) => {}
                Err(RoundError::Api(e)) if e.is_forbidden() => return Err(e.into()),
                Err(e) => warn!(
                    "trying to acquire the lease {}/{}: {e}; retrying in {}s",
                    self.settings.namespace,
                    self.settings.name,
                    self.settings.retry_period.as_secs()
                ),
            }
            tokio::time::sleep(self.settings.retry_period).await;
        }
    }

    /// Renews the lease until leadership is lost; returns why. Each round may take only what is
    /// left of the renew deadline since the last successful renewal: a round that times out
    /// counts as a failed renewal, as client-go's renew loop does.
    pub async fn hold(&mut self) -> LeaderError {
        let mut renewed = Instant::now();
        let mut last = String::from("none yet");
        loop {
            // Never sleep past the deadline: a slow failed round followed by a full retry period
            // would otherwise step down late, overlapping a standby that took over.
            let left = self
                .settings
                .renew_deadline
                .saturating_sub(renewed.elapsed());
            tokio::time::sleep(self.settings.retry_period.min(left)).await;
            let left = self
                .settings
                .renew_deadline
                .saturating_sub(renewed.elapsed());
            if left.is_zero() {
                return self.renew_failed(renewed, last);
            }
            // A renewal counts from when it was sent, not from when its answer arrived.
            let sent = Instant::now();
            match self.bounded_round(left).await {
                Ok(Round::Leading) => renewed = sent,
                Ok(Round::Following(holder)) if !holder.is_empty() => {
                    return LeaderError::Lost {
                        namespace: self.settings.namespace.clone(),
                        name: self.settings.name.clone(),
                        holder,
                    }
                }
                Ok(Round::Following(_)) => {
                    last = "the lease changed under us (409)".into();
                    warn!("renewing the lease: it changed under us (409); retrying");
                }
                Err(e) => {
                    warn!("renewing the lease: {e}");
                    last = e.to_string();
                }
            }
            if renewed.elapsed() >= self.settings.renew_deadline {
                return self.renew_failed(renewed, last);
            }
        }
    }

    fn renew_failed(&self, renewed: Instant, last: String) -> LeaderError {
        LeaderError::RenewFailed {
            namespace: self.settings.namespace.clone(),
            name: self.settings.name.clone(),
            after: renewed.elapsed(),
            last,
        }
    }

    /// Gives the lease up (graceful shutdown), so a standby takes over at once. Bounded by the
    /// renew deadline: an API server that does not answer delays the exit by that much at most
    /// (the lease then expires on its own).
    pub async fn release(&mut self) {
        let deadline = self.settings.renew_deadline;
        if tokio::time::timeout(deadline, self.try_release())
            .await
            .is_err()
        {
            warn!(
                "could not release the lease {}/{}: no answer from the API server within {}s; a standby takes over when it expires",
                self.settings.namespace,
                self.settings.name,
                deadline.as_secs()
            );
        }
    }

    async fn try_release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.settings.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => info!(
                "released the lease {}/{}",
                self.settings.namespace, self.settings.name
            ),
            Err(e) => warn!(
                "could not release the lease {}/{}: {}; a standby takes over when it expires",
                self.settings.namespace,
                self.settings.name,
                short(&e)
            ),
        }
    }

    /// [`Elector::round`], given up after `limit`.
    async fn bounded_round(&mut self, limit: Duration) -> Result<Round, RoundError> {
        match tokio::time::timeout(limit, self.round()).await {
            Ok(result) => result.map_err(RoundError::Api),
            Err(_) => Err(RoundError::TimedOut(limit)),
        }
    }

    /// One read-and-maybe-write of the lease.
    async fn round(&mut self) -> Result<Round, ApiError> {
        let existing = self
            .api
            .get_opt(&self.settings.name)
            .await
            .map_err(|e| ApiError::new(self.op("get"), e))?;
        let Some(lease) = existing else {
            return self.create().await;
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let now = Instant::now();
        let changed =
            !matches!(&self.observed, Some((h, t, _)) if *h == holder && *t == spec.renew_time);
        if changed {
            self.observed = Some((holder.clone(), spec.renew_time.clone(), now));
        }
        let seen_at = self.observed.as_ref().map(|(_, _, at)| *at).unwrap_or(now);
        let duration = spec
            .lease_duration_seconds
            .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
            .unwrap_or(self.settings.lease_duration);
        let mine = holder == self.settings.identity;
        let expired = holder.is_empty() || now.duration_since(seen_at) >= duration;
        if !mine && !expired {
            return Ok(Round::Following(holder));
        }
        self.write(lease, mine).await
    }

    async fn create(&mut self) -> Result<Round, ApiError> {
        let now = MicroTime(Timestamp::now());
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.settings.name.clone()),
                namespace: Some(self.settings.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.settings.identity.clone()),
                lease_duration_seconds: Some(self.duration_seconds()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(Round::Leading),
            Err(e) if status_code(&e) == Some(409) => Ok(Round::Following(String::new())),
            Err(e) => Err(ApiError::new(self.op("create"), e)),
        }
    }

    /// Renews (`mine`) or takes over an expired lease, with the resourceVersion read.
    async fn write(&mut self, mut lease: Lease, mine: bool) -> Result<Round, ApiError> {
        let now = MicroTime(Timestamp::now());
        let duration = self.duration_seconds();
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if !mine {
            spec.holder_identity = Some(self.settings.identity.clone());
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.lease_duration_seconds = Some(duration);
        spec.renew_time = Some(now);
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Round::Leading),
            Err(e) if status_code(&e) == Some(409) => Ok(Round::Following(String::new())),
            Err(e) => Err(ApiError::new(self.op("update"), e)),
        }
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.settings.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use certboot_core::api::mock;
    use serde_json::json;

    fn lease(holder: &str, renewed: &str) -> String {
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "lock", "namespace": "ns", "resourceVersion": "1"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 8, "renewTime": renewed},
        })
        .to_string()
    }

    /// The leader renews once, then the API server stops answering its Lease PUT: it steps down
    /// within the renew deadline of that renewal (without the bound, `hold` waits forever).
    #[tokio::test(start_paused = true)]
    async fn a_renewal_the_api_server_never_answers_ends_in_a_step_down_within_the_renew_deadline()
    {
        let (client, mut server) = mock::pair();
        let settings = LeaseSettings::new("ns", "lock", "me");
        let (deadline, retry) = (settings.renew_deadline, settings.retry_period);
        let mut elector = Elector::new(client, settings);
        let held = tokio::spawn(async move { elector.hold().await });

        let renewed = lease("me", "2026-01-01T00:00:00.000000Z");
        assert_eq!(server.reply(200, renewed.clone()).await.method, "GET");
        assert_eq!(server.reply(200, renewed.clone()).await.method, "PUT");
        let succeeded = tokio::time::Instant::now();
        assert_eq!(server.reply(200, renewed).await.method, "GET");
        let (put, _never_answered) = server.next().await;
        assert_eq!(put.method, "PUT");

        let ended = tokio::time::timeout(deadline + retry * 10, held)
            .await
            .expect("hold() returns although the API server never answers")
            .expect("the task");
        let took = succeeded.elapsed();
        assert!(
            took >= deadline && took <= deadline + Duration::from_millis(10),
            "stepped down {took:?} after the last renewal"
        );
        let message = ended.to_string();
        assert!(
            matches!(ended, LeaderError::RenewFailed { .. }),
            "{message}"
        );
        assert!(
            message.contains("could not renew the lease ns/lock for 6s")
                && message.contains("no answer from the API server within"),
            "{message}"
        );
    }

    /// A candidate whose GET hangs gives the round up and tries again.
    #[tokio::test(start_paused = true)]
    async fn a_candidate_retries_after_a_round_the_api_server_never_answers() {
        let (client, mut server) = mock::pair();
        let mut elector = Elector::new(client, LeaseSettings::new("ns", "lock", "me"));
        let acquired = tokio::spawn(async move { elector.acquire().await });
        let script = async {
            let (first, never_answered) = server.next().await;
            assert_eq!(first.method, "GET");
            // Released: the next round takes the lease over.
            let free = lease("", "2026-01-01T00:00:00.000000Z");
            assert_eq!(server.reply(200, free).await.method, "GET");
            let mine = lease("me", "2026-01-01T00:00:01.000000Z");
            assert_eq!(server.reply(200, mine).await.method, "PUT");
            never_answered
        };
        let _never_answered = tokio::time::timeout(Duration::from_secs(60), script)
            .await
            .expect("a second round after the first one hung");
        tokio::time::timeout(Duration::from_secs(60), acquired)
            .await
            .expect("acquire() returns")
            .expect("the task")
            .expect("acquired");
    }
}
