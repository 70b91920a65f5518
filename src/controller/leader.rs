//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it:
//! one holder at a time; the holder renews every `retry_period`; a candidate takes the lease over
//! when its record has not changed for `lease_duration`, measured on the candidate's own monotonic
//! clock (so clock skew between nodes does not matter); the holder steps down when it could not
//! renew for `renew_deadline` (shorter than `lease_duration`, so two holders never overlap).
//!
//! Every write carries the resourceVersion it read: two candidates racing for the same lease get
//! one success and one 409.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tracing::{info, warn};

use crate::api::{short, status_code, ApiError, Operation};

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
    #[error("could not renew the lease {namespace}/{name} for {}s; stepping down (exiting) before another replica takes over", .after.as_secs())]
    RenewFailed {
        namespace: String,
        name: String,
        after: Duration,
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
            match self.round().await {
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
                Err(e) if e.is_forbidden() => return Err(e.into()),
                Err(e) => warn!("{e}; retrying in {}s", self.settings.retry_period.as_secs()),
            }
            tokio::time::sleep(self.settings.retry_period).await;
        }
    }

    /// Renews the lease until leadership is lost; returns why.
    pub async fn hold(&mut self) -> LeaderError {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(self.settings.retry_period).await;
            match self.round().await {
                Ok(Round::Leading) => renewed = Instant::now(),
                Ok(Round::Following(holder)) if !holder.is_empty() => {
                    return LeaderError::Lost {
                        namespace: self.settings.namespace.clone(),
                        name: self.settings.name.clone(),
                        holder,
                    }
                }
                Ok(Round::Following(_)) => {
                    warn!("renewing the lease: it changed under us (409); retrying")
                }
                Err(e) => warn!("renewing the lease: {e}"),
            }
            if renewed.elapsed() >= self.settings.renew_deadline {
                return LeaderError::RenewFailed {
                    namespace: self.settings.namespace.clone(),
                    name: self.settings.name.clone(),
                    after: renewed.elapsed(),
                };
            }
        }
    }

    /// Gives the lease up (graceful shutdown), so a standby takes over at once.
    pub async fn release(&mut self) {
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
