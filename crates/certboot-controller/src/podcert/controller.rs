//! The PodCertificateRequest signer's watch and reconcile: one trimmed watch per signer whose
//! policy entry has `podCertificates: true` (field selector `spec.signerName=`), feeding one
//! controller: read the pod (a live GET) → [`decide`] → [`issue`] → write exactly one condition,
//! `Issued`, `Denied` or `Failed`, through `/status` → an Event on the pod, when it was fetched.
//!
//! Idempotent: a PCR with one of the three conditions is never touched again (the API server
//! makes its whole status immutable then). The write carries the resourceVersion of the copy
//! judged, so a concurrent write fails with 409 and the PCR is judged again from the watch's
//! newer copy. A restart re-lists every PCR of the signers: nothing pending is lost, nothing is
//! decided twice.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::certificates::v1::{PodCertificateRequest, PodCertificateRequestStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use tracing::{debug, info, warn};

use super::decide::{self, decide, reason, Facts};
use super::issue::{self as issuing, Issued, DEFAULT_MAX_EXPIRATION_SECONDS};
use crate::approver::controller::{event_target, truncate, Approver, CALL_BUDGET};
use crate::approver::denial::Denial;
use crate::approver::policy::Policy;
use crate::approver::wait::age_of;
use crate::csrs::{log_controller_error, CONCURRENCY, RETRY_AFTER};
use crate::metrics::Metrics;
use crate::signer::controller::Signer;
use crate::signer::issue::Refusal;
use certboot_core::api::{with_retry_for, ApiError, Operation};
use certboot_core::timefmt::unix_now;

/// PCRs per page of the initial list.
pub const LIST_PAGE: u32 = 50;
/// What a 403 on the watch means.
const RBAC_HINT: &str = "RBAC: the controller needs get, list and watch on podcertificaterequests (manifests/approver/rbac.yaml)";
/// After a 409 (someone wrote the PCR meanwhile), look again this soon.
const AFTER_CONFLICT: Duration = Duration::from_millis(200);

/// Why a reconcile failed (retried after [`RETRY_AFTER`]).
#[derive(Debug, thiserror::Error)]
pub enum PodCertError {
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// Shared state of the reconciles.
pub struct PodCertSigner {
    client: Client,
    policy: Arc<Policy>,
    signer: Arc<Signer>,
    approver: Arc<Approver>,
    recorder: Recorder,
    metrics: Metrics,
}

/// What one reconcile decided.
enum Outcome {
    Issued(Issued),
    Denied(Denial),
    Failed(Refusal),
}

/// Signs the PCRs of the policy's `podCertificates` entries until the process stops; returns at
/// once (with a log line) when there are none, or when the API server serves no
/// PodCertificateRequest (before Kubernetes 1.37, or with the API off).
pub async fn run(
    client: Client,
    policy: Arc<Policy>,
    signer: Arc<Signer>,
    approver: Arc<Approver>,
    metrics: Metrics,
    identity: &str,
) {
    let names: Vec<String> = policy
        .pod_certificate_signers()
        .into_iter()
        .map(|s| s.signer_name.clone())
        .filter(|name| signer.serves(name))
        .collect();
    if names.is_empty() {
        return;
    }
    let served = certboot_core::api::discovery::served(
        &client,
        "certificates.k8s.io",
        &["v1"],
        "PodCertificateRequest",
        "podcertificaterequests",
    )
    .await;
    if served.is_none() {
        info!("the API server serves no PodCertificateRequest (certificates.k8s.io/v1, Kubernetes 1.37+): the policy's podCertificates entries ({}) have nothing to sign; CSRs are signed as before", names.join(", "));
        return;
    }
    let ctx = Arc::new(PodCertSigner {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "certboot-signer".into(),
                instance: Some(identity.to_string()),
            },
        ),
        client: client.clone(),
        policy,
        signer,
        approver,
        metrics,
    });
    let loops = names.into_iter().map(|name| {
        info!(signer = %name, "signing PodCertificateRequests of signer {name}");
        let (store, stream) = watch(client.clone(), &name);
        Controller::for_stream(stream, store)
            .with_config(controller::Config::default().concurrency(CONCURRENCY))
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|result| async move {
                if let Err(e) = result {
                    log_controller_error(&e, RBAC_HINT);
                }
            })
    });
    futures::future::join_all(loops).await;
}

/// The trimmed watch of one signer's PCRs, and the cache it fills.
fn watch(
    client: Client,
    signer_name: &str,
) -> (
    Store<PodCertificateRequest>,
    impl futures::Stream<Item = Result<PodCertificateRequest, watcher::Error>> + Send + 'static,
) {
    let config = watcher::Config::default()
        .fields(&format!("spec.signerName={signer_name}"))
        .page_size(LIST_PAGE);
    let (store, writer) = reflector::store();
    let stream = watcher(Api::<PodCertificateRequest>::all(client), config)
        .default_backoff()
        .modify(trim)
        .reflect(writer)
        .applied_objects();
    (store, stream)
}

/// The PCR as the cache keeps it: what is judged, and the request only while it is undecided.
pub fn trim(pcr: &mut PodCertificateRequest) {
    let meta = &mut pcr.metadata;
    meta.managed_fields = None;
    meta.annotations = None;
    meta.labels = None;
    meta.owner_references = None;
    if decided(pcr) {
        pcr.spec.stub_pkc_s10_request.0 = Vec::new();
        pcr.spec.unverified_user_annotations = None;
        if let Some(status) = pcr.status.as_mut() {
            status.certificate_chain = None;
        }
    }
}

/// True once the PCR has its one final condition: Issued, Denied or Failed.
pub fn decided(pcr: &PodCertificateRequest) -> bool {
    pcr.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|c| matches!(c.type_.as_str(), "Issued" | "Denied" | "Failed"))
}

/// Decides one PCR, if it is undecided.
pub async fn reconcile(
    pcr: Arc<PodCertificateRequest>,
    ctx: Arc<PodCertSigner>,
) -> Result<Action, PodCertError> {
    if decided(&pcr) {
        return Ok(Action::await_change());
    }
    let Some(policy) = ctx
        .policy
        .signer(&pcr.spec.signer_name)
        .filter(|p| p.pod_certificates)
    else {
        return Ok(Action::await_change());
    };
    let namespace = pcr.namespace().unwrap_or_default();
    let pod = if policy.allows_namespace(&namespace) {
        get_pod(&ctx.client, &namespace, &pcr.spec.pod_name).await?
    } else {
        None
    };
    let services = ctx.approver.services_in(&namespace);
    let facts = Facts {
        policy,
        cluster_domain: &ctx.policy.cluster_domain,
        pod: pod.as_ref(),
        services: &services,
    };
    let outcome = match decide(&pcr, &facts) {
        Err(denial) => Outcome::Denied(denial),
        Ok(grant) => match sign(&ctx, &pcr, &grant) {
            Ok(issued) => Outcome::Issued(issued),
            Err(refusal) => Outcome::Failed(refusal),
        },
    };
    let summary = summary(&outcome);
    let status = status_of(&pcr, &outcome, &summary);
    if !write_status(&ctx, &pcr, status).await? {
        return Ok(Action::requeue(AFTER_CONFLICT));
    }
    report(&ctx, &pcr, pod.as_ref(), &outcome, summary);
    Ok(Action::await_change())
}

async fn get_pod(client: &Client, namespace: &str, name: &str) -> Result<Option<Pod>, ApiError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let op = Operation {
        verb: "get",
        group: "",
        resource: "pods",
        name: format!("{namespace}/{name}"),
    };
    with_retry_for(&op, CALL_BUDGET, || pods.get_opt(name)).await
}

/// Signs `grant` with the CA as mounted now, for as long as the request and the signer allow.
fn sign(
    ctx: &PodCertSigner,
    pcr: &PodCertificateRequest,
    grant: &decide::Grant,
) -> Result<Issued, Refusal> {
    let ca = ctx.signer.ca();
    let lifetimes = ctx.signer.lifetimes(&pcr.spec.signer_name);
    let max_expiration = pcr
        .spec
        .max_expiration_seconds
        .map(i64::from)
        .unwrap_or(DEFAULT_MAX_EXPIRATION_SECONDS);
    let schedule = issuing::schedule(unix_now(), max_expiration, lifetimes.max, ca.not_after())?;
    issuing::issue(grant, &ca, schedule)
}

/// The status that records `outcome`: its one condition, and for an issued certificate the chain
/// and its times.
fn status_of(
    pcr: &PodCertificateRequest,
    outcome: &Outcome,
    (type_, reason, message): &Summary,
) -> PodCertificateRequestStatus {
    let condition = Condition {
        type_: (*type_).into(),
        status: "True".into(),
        reason: (*reason).into(),
        message: message.clone(),
        last_transition_time: Time(Timestamp::now()),
        observed_generation: pcr.metadata.generation,
    };
    let mut status = PodCertificateRequestStatus {
        conditions: Some(vec![condition]),
        ..PodCertificateRequestStatus::default()
    };
    if let Outcome::Issued(issued) = outcome {
        let time = |unix: i64| Timestamp::from_second(unix).ok().map(Time);
        status.certificate_chain = Some(issued.chain.clone());
        status.not_before = time(issued.schedule.not_before);
        status.not_after = time(issued.schedule.not_after);
        status.begin_refresh_at = time(issued.schedule.begin_refresh_at);
    }
    status
}

/// The condition's type, reason and message for `outcome`.
/// A decision's condition: its type, reason and message.
type Summary = (&'static str, &'static str, String);

fn summary(outcome: &Outcome) -> Summary {
    match outcome {
        Outcome::Issued(issued) => (
            "Issued",
            reason::ISSUED,
            format!(
                "certboot signer: issued, valid until {}, refresh from {}",
                certboot_core::timefmt::rfc3339(issued.schedule.not_after),
                certboot_core::timefmt::rfc3339(issued.schedule.begin_refresh_at)
            ),
        ),
        Outcome::Denied(denial) => (
            "Denied",
            denial.reason,
            format!(
                "certboot signer: check {:?} failed ({}): {}",
                denial.check, denial.reason, denial.message
            ),
        ),
        Outcome::Failed(refusal) => (
            "Failed",
            refusal.reason,
            format!("certboot signer: {}", refusal.message),
        ),
    }
}

/// Writes `status` with the resourceVersion of the copy judged. `false`: the PCR changed or went
/// away meanwhile (409 or 404); the watch brings what happened.
async fn write_status(
    ctx: &PodCertSigner,
    pcr: &PodCertificateRequest,
    status: PodCertificateRequestStatus,
) -> Result<bool, PodCertError> {
    let namespace = pcr.namespace().unwrap_or_default();
    let name = pcr.name_any();
    let api: Api<PodCertificateRequest> = Api::namespaced(ctx.client.clone(), &namespace);
    // The status subresource takes only the status (and the resourceVersion as a precondition):
    // the spec and metadata of the trimmed cached copy are never written.
    let mut updated = pcr.clone();
    updated.status = Some(status);
    let op = Operation {
        verb: "update",
        group: "certificates.k8s.io",
        resource: "podcertificaterequests/status",
        name: format!("{namespace}/{name}"),
    };
    let params = PostParams::default();
    match with_retry_for(&op, CALL_BUDGET, || {
        api.replace_status(&name, &params, &updated)
    })
    .await
    {
        Ok(_) => Ok(true),
        Err(e) if e.code == Some(409) => {
            debug!(pcr = %name, "PodCertificateRequest {namespace}/{name} changed while deciding (409); judging it again");
            Ok(false)
        }
        Err(e) if e.code == Some(404) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The log line, the metric and the Event of a decision written.
fn report(
    ctx: &Arc<PodCertSigner>,
    pcr: &PodCertificateRequest,
    pod: Option<&Pod>,
    outcome: &Outcome,
    summary: Summary,
) {
    let (type_, reason, message) = summary;
    let name = format!("{}/{}", pcr.namespace().unwrap_or_default(), pcr.name_any());
    let took = age_of(&pcr.metadata, Timestamp::now());
    let result = match outcome {
        Outcome::Issued(_) => {
            info!(pcr = %name, decision = "issued", "issued PodCertificateRequest {name}: {message}");
            "issued"
        }
        Outcome::Denied(_) => {
            warn!(pcr = %name, decision = "denied", reason, "denied PodCertificateRequest {name}: {message}");
            "denied"
        }
        Outcome::Failed(_) => {
            warn!(pcr = %name, decision = "failed", reason, "failed PodCertificateRequest {name}: {message}");
            "failed"
        }
    };
    ctx.metrics.podcert_decided(result, reason, took);
    let Some(reference) = event_target(pod) else {
        return;
    };
    let event = Event {
        type_: if result == "issued" {
            EventType::Normal
        } else {
            EventType::Warning
        },
        reason: format!("PodCertificate{type_}"),
        note: Some(truncate(
            &format!("PodCertificateRequest {}: {message}", pcr.name_any()),
            1024,
        )),
        action: "Sign".into(),
        secondary: None,
    };
    let ctx = ctx.clone();
    tokio::spawn(async move {
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            debug!("could not post an Event: {}", certboot_core::api::short(&e));
        }
    });
}

fn error_policy(
    _pcr: Arc<PodCertificateRequest>,
    err: &PodCertError,
    _ctx: Arc<PodCertSigner>,
) -> Action {
    warn!("{err}; retrying in {}s", RETRY_AFTER.as_secs());
    Action::requeue(RETRY_AFTER)
}
