//! The approver's reconcile: one per pending CSR of a served signer (the CSRs come from the shared
//! watch of [`crate::csrs`]), with a cache of Services (trimmed to what is judged,
//! [`crate::cache`]):
//! claim → read the pod (a live GET: its UID and IPs must be current) → judge → write the
//! Approved or Denied condition through `/approval` → an Event on the pod, when it was fetched.
//!
//! Idempotent: a CSR with an Approved or Denied condition is never touched again; the write
//! carries the resourceVersion it judged, so a concurrent decision makes it fail with 409, after
//! which the CSR is read afresh and left alone if someone decided meanwhile. A restart re-lists
//! every CSR of the served signers, so nothing pending is lost. Nothing is kept per CSR: how
//! long a CSR has waited follows from its creation time ([`super::wait`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestStatus,
};
use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use tracing::{debug, info, warn};

use super::checks::{self, Claim, Verdict};
use super::denial::{reason, Denial};
use super::facts::Facts;
use super::policy::{Policy, SignerPolicy};
use super::wait::{self, Next};
use crate::cache::{cut_request_bytes, trim_service};
use crate::metrics::Metrics;
use certboot_core::api::{with_retry_for, ApiError, Operation};
use certboot_core::csr::state_of;
use certboot_core::timefmt::unix_now;

/// How long one API call of a reconcile may keep failing transiently (retried with backoff)
/// before the reconcile gives up and the CSR is requeued: no reconcile holds its slot forever.
pub const CALL_BUDGET: Duration = Duration::from_secs(60);

/// Why a reconcile failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("CSR {0:?} changed twice while the approver wrote its decision; trying again")]
    Conflict(String),
}

/// Aborts the Service watch when the approver goes away (leadership lost, shutdown).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Shared state of the approver's reconciles.
pub struct Approver {
    client: Client,
    policy: Arc<Policy>,
    services: Store<Service>,
    csr_stores: Mutex<Vec<Store<CertificateSigningRequest>>>,
    recorder: Recorder,
    metrics: Metrics,
    _service_watch: AbortOnDrop,
}

impl Approver {
    /// Starts the Service cache and waits until it is filled, so no DNS name is judged against an
    /// empty cache. `None` when the watch stopped before.
    pub async fn start(
        client: Client,
        policy: Arc<Policy>,
        metrics: Metrics,
        identity: &str,
    ) -> Option<Arc<Approver>> {
        let (services, writer) = reflector::store();
        let service_watch = watcher(Api::<Service>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .modify(trim_service)
            .reflect(writer)
            .for_each(|event| async move {
                if let Err(e) = event {
                    warn!("watch of Services failed: {e}; retrying with backoff (needs list and watch on services)");
                }
            });
        let service_watch = AbortOnDrop(tokio::spawn(service_watch));
        info!("waiting for the Service cache");
        if services.wait_until_ready().await.is_err() {
            warn!("the Service cache stopped before it was ready");
            return None;
        }
        Some(Arc::new(Approver {
            client: client.clone(),
            policy,
            services,
            csr_stores: Mutex::new(Vec::new()),
            recorder: Recorder::new(
                client,
                Reporter {
                    controller: "certboot-approver".into(),
                    instance: Some(identity.to_string()),
                },
            ),
            metrics,
            _service_watch: service_watch,
        }))
    }

    /// Whether the policy lets the approver decide CSRs of `signer`.
    pub fn serves(&self, signer: &str) -> bool {
        self.policy.signer(signer).is_some()
    }

    /// Counts the CSRs of `store` in the pending gauge.
    pub fn add_store(&self, store: Store<CertificateSigningRequest>) {
        self.csr_stores
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(store);
    }

    /// The cached Services of `namespace` (the PodCertificateRequest signer names them too).
    pub fn services_in(&self, namespace: &str) -> Vec<Arc<Service>> {
        self.services
            .state()
            .into_iter()
            .filter(|s| s.metadata.namespace.as_deref() == Some(namespace))
            .collect()
    }

    fn csr_api(&self) -> Api<CertificateSigningRequest> {
        Api::all(self.client.clone())
    }

    /// Recounts the pending gauge from the caches.
    fn count_pending(&self) {
        let stores = self.csr_stores.lock().unwrap_or_else(|p| p.into_inner());
        let pending = stores
            .iter()
            .flat_map(|s| s.state())
            .filter(|csr| undecided(csr))
            .count();
        self.metrics.set_pending(pending);
    }
}

/// Neither Approved nor Denied (nor Failed): the approver still reads its request.
pub fn undecided(csr: &CertificateSigningRequest) -> bool {
    let conditions = csr
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    !conditions
        .iter()
        .any(|c| matches!(c.type_.as_str(), "Approved" | "Denied" | "Failed"))
}

/// Decides one CSR of a served signer, if it is undecided.
pub async fn reconcile(
    csr: Arc<CertificateSigningRequest>,
    ctx: Arc<Approver>,
) -> Result<Action, ReconcileError> {
    let Some(policy) = ctx.policy.signer(&csr.spec.signer_name) else {
        return Ok(Action::await_change());
    };
    ctx.count_pending();
    if !undecided(&csr) {
        return Ok(Action::await_change());
    }
    let age = wait::age(&csr, Timestamp::now());
    let (verdict, pod) = match cut_request_bytes(&csr) {
        Some(size) => (Verdict::Deny(too_large(size)), None),
        None => decide(&ctx, &csr, policy).await?,
    };
    let name = csr.name_any();
    let verdict = match verdict {
        Verdict::Wait(why) => match wait::next_look(age) {
            Next::LookAgainIn(delay) => {
                info!(csr = %name, "CSR {name}: {why}; looking again in {}ms", delay.as_millis());
                return Ok(Action::requeue(delay));
            }
            Next::GiveUp => Verdict::Deny(wait::gave_up(&why)),
        },
        other => other,
    };
    match verdict {
        Verdict::Approve(message) => {
            let condition = condition("Approved", reason::APPROVED, &message);
            if write_decision(&ctx, &csr, condition).await? {
                info!(csr = %name, decision = "approved", "approved CSR {name}: {message}");
                ctx.metrics.decided(true, reason::APPROVED, age);
                event(
                    &ctx,
                    &csr,
                    pod.as_ref(),
                    EventType::Normal,
                    "CSRApproved",
                    &message,
                );
            }
        }
        Verdict::Deny(denial) => {
            let message = denial_message(&denial);
            let condition = condition("Denied", denial.reason, &message);
            if write_decision(&ctx, &csr, condition).await? {
                warn!(csr = %name, decision = "denied", reason = denial.reason, "denied CSR {name}: {message}");
                ctx.metrics.decided(false, denial.reason, age);
                event(
                    &ctx,
                    &csr,
                    pod.as_ref(),
                    EventType::Warning,
                    "CSRDenied",
                    &message,
                );
            }
        }
        Verdict::Wait(_) => {}
    }
    ctx.count_pending();
    Ok(Action::await_change())
}

/// The denial of a request too large to be cached, let alone judged.
fn too_large(size: usize) -> Denial {
    // The same denial as a request judged in full: the user sees one message for one fault.
    checks::request_denial(super::requested::RequestedError::TooLarge(size))
}

/// The denial as the CSR's condition message: which check, and what was wrong.
fn denial_message(denial: &Denial) -> String {
    format!(
        "certboot approver: check {:?} failed ({}): {}",
        denial.check, denial.reason, denial.message
    )
}

/// Claims, reads the pod, and judges.
async fn decide(
    ctx: &Approver,
    csr: &CertificateSigningRequest,
    policy: &SignerPolicy,
) -> Result<(Verdict, Option<Pod>), ReconcileError> {
    let claim: Claim = match checks::claim(csr, policy) {
        Ok(claim) => claim,
        Err(denial) => return Ok((Verdict::Deny(denial), None)),
    };
    let namespace = claim.service_account.namespace.clone();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let op = Operation {
        verb: "get",
        group: "",
        resource: "pods",
        name: format!("{namespace}/{}", claim.pod_name),
    };
    let pod = with_retry_for(&op, CALL_BUDGET, || pods.get_opt(&claim.pod_name)).await?;
    let services = ctx.services_in(&namespace);
    let facts = Facts {
        policy,
        cluster_domain: &ctx.policy.cluster_domain,
        pod: pod.as_ref(),
        services: &services,
        now: unix_now(),
    };
    let verdict = checks::judge(csr, &claim, &facts);
    Ok((verdict, pod))
}

fn condition(type_: &str, reason: &str, message: &str) -> CertificateSigningRequestCondition {
    let now = Time(Timestamp::now());
    CertificateSigningRequestCondition {
        type_: type_.to_string(),
        status: "True".to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// Writes the condition through `/approval` on the CSR as the API server has it now: the cached
/// copy is trimmed (other tools' labels and annotations dropped), and `/approval` keeps the
/// metadata it is sent, so it is never the body of a write. The write carries the resourceVersion
/// read; on 409 the CSR is read and judged afresh for "still undecided" (its spec, which the
/// verdict rests on, cannot change). Decided meanwhile, or gone → left alone (`false`).
async fn write_decision(
    ctx: &Approver,
    csr: &CertificateSigningRequest,
    condition: CertificateSigningRequestCondition,
) -> Result<bool, ReconcileError> {
    let api = ctx.csr_api();
    let name = csr.name_any();
    for _ in 0..2 {
        let fresh = with_retry_for(&Operation::csr("get", &name), CALL_BUDGET, || {
            api.get_opt(&name)
        })
        .await?;
        let mut updated = match fresh {
            Some(fresh) if undecided(&fresh) && fresh.uid() == csr.uid() => fresh,
            Some(fresh) => {
                info!(csr = %name, "CSR {name} was decided by someone else meanwhile ({}); leaving it", state_of(&fresh).phase());
                return Ok(false);
            }
            None => return Ok(false),
        };
        let status = updated
            .status
            .get_or_insert_with(CertificateSigningRequestStatus::default);
        status
            .conditions
            .get_or_insert_with(Vec::new)
            .push(condition.clone());
        let op = Operation::csr("update", &format!("{name}/approval"));
        let params = PostParams::default();
        match with_retry_for(&op, CALL_BUDGET, || {
            api.replace_subresource("approval", &name, &params, &updated)
        })
        .await
        {
            Ok(_) => return Ok(true),
            Err(e) if e.code == Some(409) => {
                debug!(csr = %name, "CSR {name} changed while deciding (409); reading it afresh");
            }
            Err(e) if e.code == Some(404) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ReconcileError::Conflict(name))
}

/// An Event on the pod the approver fetched, in the background: Events never delay or fail a
/// decision. No pod fetched, no Event: the CSR's name (chosen by whoever created it) never picks
/// the namespace or the object an Event lands on; the CSR's condition and the log say why.
fn event(
    ctx: &Arc<Approver>,
    csr: &CertificateSigningRequest,
    pod: Option<&Pod>,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let Some(reference) = event_target(pod) else {
        debug!(csr = %csr.name_any(), "no Event for CSR {}: its pod was not fetched", csr.name_any());
        return;
    };
    let event = KubeEvent {
        type_,
        reason: reason.to_string(),
        note: Some(truncate(&format!("CSR {}: {note}", csr.name_any()), 1024)),
        action: if reason == "CSRApproved" {
            "Approve"
        } else {
            "Deny"
        }
        .into(),
        secondary: None,
    };
    let ctx = ctx.clone();
    tokio::spawn(async move {
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            debug!("could not post an Event: {}", certboot_core::api::short(&e));
        }
    });
}

/// The object an Event about a CSR goes to: the pod as read from the API, or nothing.
pub(crate) fn event_target(pod: Option<&Pod>) -> Option<ObjectReference> {
    let pod = pod?;
    Some(ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(pod.metadata.name.clone()?),
        namespace: Some(pod.metadata.namespace.clone()?),
        uid: pod.metadata.uid.clone(),
        ..ObjectReference::default()
    })
}

pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn an_event_goes_only_to_a_fetched_pod() {
        // Before: a CSR named "victim:anything" without a pod put an Event in namespace "victim".
        assert_eq!(event_target(None), None);
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("web-0".into()),
                namespace: Some("shop".into()),
                uid: Some("6f1c".into()),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        };
        let target = event_target(Some(&pod)).expect("a fetched pod gets the Event");
        assert_eq!(target.namespace.as_deref(), Some("shop"));
        assert_eq!(target.name.as_deref(), Some("web-0"));
        assert_eq!(target.uid.as_deref(), Some("6f1c"));
    }

    #[test]
    fn a_request_too_large_to_cache_is_denied_as_too_large_saying_its_size() {
        let denial = too_large(786_432);
        assert_eq!(denial.reason, reason::REQUEST_TOO_LARGE);
        assert!(
            denial.message.contains("786432 bytes"),
            "{}",
            denial.message
        );
    }
}
