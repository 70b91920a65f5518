//! One watch of CSRs per signer name, shared by the approver and the signer: one list, one watch
//! and one cache (trimmed, [`super::cache`]) per signer name, feeding one controller whose
//! reconcile hands each CSR to the job its state calls for: undecided → the approver (when the
//! policy serves the signer), Approved without a certificate → the signer (when it signs for it).
//! The two states are disjoint, and the controller never runs two reconciles of one CSR at once,
//! so the approver and the signer never race on a CSR within this process.
//!
//! Bounds: at most [`CONCURRENCY`] reconciles run at once per signer name, the initial list is
//! read [`LIST_PAGE`] CSRs at a time (each may be up to the API server's object size limit), and
//! a failed reconcile is retried after [`RETRY_AFTER`].

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::Api;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use tracing::{info, warn};

use super::cache::trim_csr;
use crate::approver::controller::{self as approver, Approver};
use crate::signer::controller::{self as signer, Signer};

/// Reconciles running at once per signer name. Each may hold a CSR as the API server returns it
/// (its write's response: up to about 1.5 MiB of JSON, decoded); measured: 8 at once cost about
/// 7 MiB more than 1 under 40 CSRs of 0.75 MB (docs/performance.md).
pub const CONCURRENCY: u16 = 4;
/// CSRs per page of the initial list: a page is read (and decoded) whole, and a CSR may be up
/// to about 1.5 MiB (measured: 20 per page peaked at 89 MiB under 40 CSRs of 0.75 MB, 1 to 5 at
/// about 40 MiB). A start with 1,000 CSRs costs 500 list requests.
pub const LIST_PAGE: u32 = 2;
/// The delay before a failed reconcile is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The jobs CSRs are handed to.
pub struct Jobs {
    pub approver: Option<Arc<Approver>>,
    pub signer: Option<Arc<Signer>>,
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    #[error(transparent)]
    Approve(#[from] approver::ReconcileError),
    #[error(transparent)]
    Sign(#[from] signer::SignError),
}

/// The CSR as the cache keeps it: with its request only while a job here still reads it (an
/// Approved CSR of a signer this process does not sign keeps none, whoever issues it, or never).
fn trim(csr: &mut CertificateSigningRequest, approves: bool, signs: bool) {
    let needs_request = (approves && approver::undecided(csr)) || (signs && signer::due(csr));
    trim_csr(csr, needs_request);
}

/// Runs one controller per signer name in `names` until the process stops.
pub async fn run(client: Client, names: Vec<String>, jobs: Jobs) {
    let jobs = Arc::new(jobs);
    let loops = names.into_iter().map(|name| {
        let approves = jobs.approver.as_ref().is_some_and(|a| a.serves(&name));
        let signs = jobs.signer.as_ref().is_some_and(|s| s.serves(&name));
        let (store, stream) = watch(client.clone(), &name, approves, signs);
        if let Some(approver) = jobs.approver.as_ref().filter(|_| approves) {
            approver.add_store(store.clone());
            info!(signer = %name, "approving CSRs of signer {name}");
        }
        if signs {
            info!(signer = %name, "signing approved CSRs of signer {name}");
        }
        Controller::for_stream(stream, store)
            .with_config(controller::Config::default().concurrency(CONCURRENCY))
            .run(reconcile, error_policy, jobs.clone())
            .for_each(|result| async move {
                if let Err(e) = result {
                    log_controller_error(&e, RBAC_HINT);
                }
            })
    });
    futures::future::join_all(loops).await;
}

/// The trimmed watch of one signer name's CSRs, and the cache it fills.
fn watch(
    client: Client,
    signer_name: &str,
    approves: bool,
    signs: bool,
) -> (
    Store<CertificateSigningRequest>,
    impl futures::Stream<Item = Result<CertificateSigningRequest, watcher::Error>> + Send + 'static,
) {
    let config = watcher::Config::default()
        .fields(&format!("spec.signerName={signer_name}"))
        .page_size(LIST_PAGE);
    let (store, writer) = reflector::store();
    let stream = watcher(Api::<CertificateSigningRequest>::all(client), config)
        .default_backoff()
        .modify(move |csr| trim(csr, approves, signs))
        .reflect(writer)
        .applied_objects();
    (store, stream)
}

async fn reconcile(
    csr: Arc<CertificateSigningRequest>,
    jobs: Arc<Jobs>,
) -> Result<Action, CsrError> {
    let signer_name = csr.spec.signer_name.as_str();
    if approver::undecided(&csr) {
        if let Some(approver) = jobs.approver.as_ref().filter(|a| a.serves(signer_name)) {
            return Ok(approver::reconcile(csr, approver.clone()).await?);
        }
    } else if signer::due(&csr) {
        if let Some(signer) = jobs.signer.as_ref().filter(|s| s.serves(signer_name)) {
            return Ok(signer::reconcile(csr, signer.clone()).await?);
        }
    } else if let Some(approver) = &jobs.approver {
        // Decided meanwhile (by anyone): the pending gauge follows.
        return Ok(approver::reconcile(csr, approver.clone()).await?);
    }
    Ok(Action::await_change())
}

fn error_policy(_csr: Arc<CertificateSigningRequest>, err: &CsrError, _jobs: Arc<Jobs>) -> Action {
    warn!("{err}; retrying in {}s", RETRY_AFTER.as_secs());
    Action::requeue(RETRY_AFTER)
}

/// What a 403 on the CSR watch means.
const RBAC_HINT: &str = "RBAC: the controller needs get, list and watch on certificatesigningrequests (manifests/approver/rbac.yaml)";

/// Logs a controller's error with its causes, and `rbac_hint` when the API server refused.
pub(crate) fn log_controller_error<E: std::error::Error>(e: &E, rbac_hint: &str) {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    if text.contains("403") || text.contains("forbidden") {
        warn!("{text}. {rbac_hint}");
    } else {
        warn!("{text}");
    }
}
