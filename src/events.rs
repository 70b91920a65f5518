//! Kubernetes Events on the pod, so `kubectl describe pod` says what certboot is doing.
//!
//! Events are posted in the background and never delay or fail the main flow. Repeated
//! "still waiting" events are aggregated into one Event whose `count` grows, at most one update per
//! [`WAITING_EVENT_INTERVAL`]. When RBAC forbids events, certboot logs one warning and stops trying.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::config::PodIdentity;
use certboot_core::api::{ApiError, Operation};

/// The least time between two updates of the aggregated "still waiting" event.
pub const WAITING_EVENT_INTERVAL: Duration = Duration::from_secs(180);

/// Event reasons, as they appear in `kubectl describe pod`.
pub mod reason {
    pub const REQUESTED: &str = "CertificateRequested";
    pub const WAITING: &str = "WaitingForApproval";
    pub const ISSUED: &str = "CertificateIssued";
    pub const DENIED: &str = "CertificateDenied";
    pub const FAILED: &str = "CertificateFailed";
    pub const REJECTED: &str = "CertificateRejected";
    pub const RENEWAL_FAILED: &str = "RenewalFailed";
    pub const EXPIRED: &str = "CertificateExpired";
    pub const NAME_TAKEN: &str = "CSRNameTaken";
}

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Warning,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Normal => "Normal",
            Kind::Warning => "Warning",
        }
    }
}

/// Posts Events about the pod. Cheap to share; a disabled recorder does nothing.
pub struct Events {
    inner: Option<Arc<Inner>>,
    tasks: Mutex<JoinSet<()>>,
}

struct Inner {
    api: Api<Event>,
    pod: ObjectReference,
    instance: String,
    forbidden: AtomicBool,
    waiting: Mutex<Option<Aggregate>>,
}

struct Aggregate {
    name: String,
    count: i32,
    last_sent: Instant,
}

impl Events {
    /// A recorder that posts nothing (events turned off, or `--dry-run`).
    pub fn disabled() -> Events {
        Events {
            inner: None,
            tasks: Mutex::new(JoinSet::new()),
        }
    }

    /// A recorder for events on `pod`.
    pub fn new(client: Client, pod: &PodIdentity) -> Events {
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(pod.name.clone()),
            namespace: Some(pod.namespace.clone()),
            uid: Some(pod.uid.clone()),
            ..ObjectReference::default()
        };
        Events {
            inner: Some(Arc::new(Inner {
                api: Api::namespaced(client, &pod.namespace),
                pod: reference,
                instance: pod.name.clone(),
                forbidden: AtomicBool::new(false),
                waiting: Mutex::new(None),
            })),
            tasks: Mutex::new(JoinSet::new()),
        }
    }

    /// Posts a one-off event in the background.
    pub fn post(&self, kind: Kind, reason: &'static str, message: String) {
        let Some(inner) = self.active() else { return };
        let event = inner.event(&unique_name(&inner.instance), kind, reason, &message, 1);
        self.spawn(async move {
            let result = inner.api.create(&PostParams::default(), &event).await;
            inner.settle(result.map(drop), "create");
        });
    }

    /// Posts or updates the aggregated "still waiting" event, at most once per interval.
    pub fn waiting(&self, message: String) {
        let Some(inner) = self.active() else { return };
        let Ok(mut guard) = inner.waiting.lock() else {
            return;
        };
        match guard.as_mut() {
            Some(agg) if agg.last_sent.elapsed() < WAITING_EVENT_INTERVAL => {}
            Some(agg) => {
                agg.count += 1;
                agg.last_sent = Instant::now();
                let (name, count) = (agg.name.clone(), agg.count);
                let inner = Arc::clone(&inner);
                self.spawn(async move {
                    let patch = serde_json::json!({
                        "count": count,
                        "message": message,
                        "lastTimestamp": Time(k8s_openapi::jiff::Timestamp::now()),
                    });
                    let result = inner
                        .api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await;
                    inner.settle(result.map(drop), "patch");
                });
            }
            None => {
                let name = unique_name(&inner.instance);
                *guard = Some(Aggregate {
                    name: name.clone(),
                    count: 1,
                    last_sent: Instant::now(),
                });
                let event = inner.event(&name, Kind::Normal, reason::WAITING, &message, 1);
                let inner = Arc::clone(&inner);
                self.spawn(async move {
                    let result = inner.api.create(&PostParams::default(), &event).await;
                    inner.settle(result.map(drop), "create");
                });
            }
        }
    }

    /// Waits up to `within` for events still in flight (called before exit).
    pub async fn flush(&self, within: Duration) {
        let mut tasks = match self.tasks.lock() {
            Ok(mut guard) => std::mem::take(&mut *guard),
            Err(_) => return,
        };
        let _ = tokio::time::timeout(within, async { while tasks.join_next().await.is_some() {} })
            .await;
    }

    fn active(&self) -> Option<Arc<Inner>> {
        self.inner
            .as_ref()
            .filter(|i| !i.forbidden.load(Ordering::Relaxed))
            .cloned()
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        if let Ok(mut tasks) = self.tasks.lock() {
            // Reap finished posts so a long-running sidecar does not accumulate them.
            while tasks.try_join_next().is_some() {}
            tasks.spawn(task);
        }
    }
}

impl Inner {
    fn event(&self, name: &str, kind: Kind, reason: &str, message: &str, count: i32) -> Event {
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        Event {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: self.pod.namespace.clone(),
                ..ObjectMeta::default()
            },
            involved_object: self.pod.clone(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            type_: Some(kind.as_str().to_string()),
            source: Some(EventSource {
                component: Some("certboot".into()),
                host: None,
            }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(count),
            reporting_component: Some("certboot".into()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        }
    }

    /// Records the outcome of an event call: a 403 turns events off with one warning.
    fn settle(&self, result: Result<(), kube::Error>, verb: &'static str) {
        let Err(err) = result else { return };
        let err = ApiError::new(Operation::event(verb, "events"), err);
        if err.is_forbidden() {
            if !self.forbidden.swap(true, Ordering::Relaxed) {
                warn!("cannot post Events on the pod, continuing without them: {err}");
            }
        } else {
            debug!("could not post an Event: {err}");
        }
    }
}

fn unique_name(pod: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let pod: String = pod.chars().take(200).collect();
    format!("{pod}.certboot.{nanos:x}")
}
