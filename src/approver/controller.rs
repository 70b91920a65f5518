//! The approver's control loop: a watch with a local cache per served signer (`spec.signerName`
//! field selector), a cache of Services, and one reconcile per pending CSR:
//! claim → read the pod (a live GET: its UID and IPs must be current) → judge → write the
//! Approved or Denied condition through `/approval` → an Event on the pod.
//!
//! Idempotent: a CSR with an Approved or Denied condition is never touched again; the write
//! carries the resourceVersion it judged, so a concurrent decision makes it fail with 409, after
//! which the CSR is read afresh and left alone if someone decided meanwhile. A restart re-lists
//! every CSR of the served signers, so nothing pending is lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestStatus,
};
use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use tracing::{debug, info, warn};

use super::checks::{self, reason, Claim, Denial, Facts, Verdict};
use super::policy::{Policy, SignerPolicy};
use crate::api::{with_retry, ApiError, Operation};
use crate::controller::metrics::Metrics;
use crate::csr::state_of;
use crate::timefmt::unix_now;

/// The first delay before looking at a waiting CSR again; doubles up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(250);
const MAX_WAIT: Duration = Duration::from_secs(30);

/// Why a reconcile failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("CSR {0:?} changed twice while the approver wrote its decision; trying again")]
    Conflict(String),
}

/// Shared state of the approver's reconciles.
pub struct Approver {
    client: Client,
    policy: Arc<Policy>,
    services: Store<Service>,
    csr_stores: Mutex<Vec<Store<CertificateSigningRequest>>>,
    recorder: Recorder,
    metrics: Metrics,
    /// When each pending CSR (by UID) was first seen, and how often it waited.
    seen: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Approver {
    fn csr_api(&self) -> Api<CertificateSigningRequest> {
        Api::all(self.client.clone())
    }

    fn first_seen(&self, uid: &str) -> (Instant, u32) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        *seen.entry(uid.to_string()).or_insert((Instant::now(), 0))
    }

    fn waited(&self, uid: &str) -> Duration {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let entry = seen.entry(uid.to_string()).or_insert((Instant::now(), 0));
        entry.1 = entry.1.saturating_add(1);
        let shift = entry.1.min(10);
        (FIRST_WAIT * 2u32.saturating_pow(shift - 1)).min(MAX_WAIT)
    }

    fn forget(&self, uid: &str) {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
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

/// Neither Approved nor Denied (nor Failed).
fn undecided(csr: &CertificateSigningRequest) -> bool {
    let conditions = csr
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    !conditions
        .iter()
        .any(|c| matches!(c.type_.as_str(), "Approved" | "Denied" | "Failed"))
}

/// Runs the approver for every signer of `policy` until the process stops. Waits for the Service
/// cache first, so no DNS name is judged against an empty cache.
pub async fn run(client: Client, policy: Arc<Policy>, metrics: Metrics, identity: &str) {
    let (services, writer) = reflector::store();
    let service_watch = reflector::reflector(
        writer,
        watcher(Api::<Service>::all(client.clone()), watcher::Config::default()).default_backoff(),
    )
    .for_each(|event| async move {
        if let Err(e) = event {
            warn!("watch of Services failed: {e}; retrying with backoff (needs list and watch on services)");
        }
    });
    let service_task = tokio::spawn(service_watch);
    info!("waiting for the Service cache");
    if services.wait_until_ready().await.is_err() {
        warn!("the Service cache stopped before it was ready");
        return;
    }
    let approver = Arc::new(Approver {
        client: client.clone(),
        policy: policy.clone(),
        services,
        csr_stores: Mutex::new(Vec::new()),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "certboot-approver".into(),
                instance: Some(identity.to_string()),
            },
        ),
        metrics,
        seen: Mutex::new(HashMap::new()),
    });
    let mut loops = Vec::new();
    for signer in policy.signer_names() {
        let config = watcher::Config::default().fields(&format!("spec.signerName={signer}"));
        let controller = Controller::new(approver.csr_api(), config);
        approver
            .csr_stores
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(controller.store());
        info!(signer = %signer, "approving CSRs of signer {signer}");
        loops.push(
            controller
                .run(reconcile, error_policy, approver.clone())
                .for_each(|result| async move {
                    if let Err(e) = result {
                        log_controller_error(&e);
                    }
                }),
        );
    }
    futures::future::join_all(loops).await;
    service_task.abort();
}

fn log_controller_error<E: std::error::Error>(e: &E) {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    if text.contains("403") || text.contains("forbidden") {
        warn!("{text}. RBAC: the approver needs get, list and watch on certificatesigningrequests (manifests/approver/rbac.yaml)");
    } else {
        warn!("{text}");
    }
}

fn error_policy(
    _csr: Arc<CertificateSigningRequest>,
    err: &ReconcileError,
    _ctx: Arc<Approver>,
) -> Action {
    warn!("{err}; retrying in 5s");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(
    csr: Arc<CertificateSigningRequest>,
    ctx: Arc<Approver>,
) -> Result<Action, ReconcileError> {
    let uid = csr.uid().unwrap_or_default();
    let Some(policy) = ctx.policy.signer(&csr.spec.signer_name) else {
        return Ok(Action::await_change());
    };
    if !undecided(&csr) {
        ctx.forget(&uid);
        ctx.count_pending();
        return Ok(Action::await_change());
    }
    let (first_seen, _) = ctx.first_seen(&uid);
    ctx.count_pending();
    let (verdict, pod) = decide(&ctx, &csr, policy).await?;
    let name = csr.name_any();
    match verdict {
        Verdict::Wait(why) => {
            let delay = ctx.waited(&uid);
            info!(csr = %name, "CSR {name}: {why}; looking again in {}ms", delay.as_millis());
            Ok(Action::requeue(delay))
        }
        Verdict::Approve(message) => {
            let condition = condition("Approved", reason::APPROVED, &message);
            if write_decision(&ctx, &csr, condition).await? {
                info!(csr = %name, decision = "approved", "approved CSR {name}: {message}");
                ctx.metrics
                    .decided(true, reason::APPROVED, first_seen.elapsed());
                event(
                    &ctx,
                    &csr,
                    pod.as_ref(),
                    EventType::Normal,
                    "CSRApproved",
                    &message,
                );
            }
            ctx.forget(&uid);
            ctx.count_pending();
            Ok(Action::await_change())
        }
        Verdict::Deny(denial) => {
            let message = denial_message(&denial);
            let condition = condition("Denied", denial.reason, &message);
            if write_decision(&ctx, &csr, condition).await? {
                warn!(csr = %name, decision = "denied", reason = denial.reason, "denied CSR {name}: {message}");
                ctx.metrics
                    .decided(false, denial.reason, first_seen.elapsed());
                event(
                    &ctx,
                    &csr,
                    pod.as_ref(),
                    EventType::Warning,
                    "CSRDenied",
                    &message,
                );
            }
            ctx.forget(&uid);
            ctx.count_pending();
            Ok(Action::await_change())
        }
    }
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
    let pod = with_retry(&op, || pods.get_opt(&claim.pod_name)).await?;
    let services = ctx
        .services
        .state()
        .into_iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(namespace.as_str()))
        .collect::<Vec<_>>();
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

/// Writes the condition through `/approval` with the resourceVersion judged. On 409 the CSR is read
/// afresh: decided meanwhile → left alone (`false`); still undecided → written once more on the
/// fresh object (its spec, which the verdict rests on, cannot change).
async fn write_decision(
    ctx: &Approver,
    csr: &CertificateSigningRequest,
    condition: CertificateSigningRequestCondition,
) -> Result<bool, ReconcileError> {
    let api = ctx.csr_api();
    let name = csr.name_any();
    let mut current = csr.clone();
    for _ in 0..2 {
        let mut updated = current.clone();
        let status = updated
            .status
            .get_or_insert_with(CertificateSigningRequestStatus::default);
        status
            .conditions
            .get_or_insert_with(Vec::new)
            .push(condition.clone());
        let op = Operation::csr("update", &format!("{name}/approval"));
        let params = PostParams::default();
        match with_retry(&op, || {
            api.replace_subresource("approval", &name, &params, &updated)
        })
        .await
        {
            Ok(_) => return Ok(true),
            Err(e) if e.code == Some(409) => {
                debug!(csr = %name, "CSR {name} changed while deciding (409); reading it afresh");
                let fresh =
                    with_retry(&Operation::csr("get", &name), || api.get_opt(&name)).await?;
                match fresh {
                    Some(fresh) if undecided(&fresh) && fresh.uid() == csr.uid() => current = fresh,
                    Some(fresh) => {
                        info!(csr = %name, "CSR {name} was decided by someone else meanwhile ({}); leaving it", state_of(&fresh).phase());
                        return Ok(false);
                    }
                    None => return Ok(false),
                }
            }
            Err(e) if e.code == Some(404) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ReconcileError::Conflict(name))
}

/// An Event on the pod (or, when the pod is unknown, on the pod the CSR claims), in the
/// background: Events never delay or fail a decision.
fn event(
    ctx: &Arc<Approver>,
    csr: &CertificateSigningRequest,
    pod: Option<&Pod>,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let reference = match pod {
        Some(pod) => ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            ..ObjectReference::default()
        },
        None => match super::identity::claimed_name(&csr.name_any()) {
            Some(claimed) => ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(claimed.pod),
                namespace: Some(claimed.namespace),
                ..ObjectReference::default()
            },
            None => return,
        },
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
            debug!("could not post an Event: {}", crate::api::short(&e));
        }
    });
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}
