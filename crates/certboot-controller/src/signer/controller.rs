//! The signer's reconcile (the CSRs come from the watch it shares with the approver,
//! [`crate::csrs`]): each CSR of its signers that is Approved, neither Denied nor
//! Failed, and has no certificate yet is signed once, through the
//! `/status` subresource with the resourceVersion it read (a concurrent write makes it fail with
//! 409; the CSR is then read afresh and left alone if it has a certificate meanwhile). A request
//! it cannot honour gets a `Failed` condition with a reason. A restart re-lists every CSR of its
//! signers: nothing is lost, nothing is signed twice.

use std::sync::Arc;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use tracing::{info, warn};

use super::issue::{issue, request_refusal, Refusal};
use super::lifetime::SignerLifetimes;
use super::source::CaSource;
use crate::approver::controller::CALL_BUDGET;
use crate::cache::cut_request_bytes;
use crate::metrics::Metrics;
use certboot_core::api::{with_retry_for, ApiError, Operation};
use certboot_core::csr::{state_of, CsrState};
use certboot_core::timefmt::unix_now;

/// Why a reconcile failed (retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("CSR {0:?} changed twice while the signer wrote its certificate; trying again")]
    Conflict(String),
}

/// Shared state of the signer's reconciles.
pub struct Signer {
    client: Client,
    signers: Vec<String>,
    ca: Arc<CaSource>,
    lifetimes: SignerLifetimes,
    metrics: Metrics,
}

impl Signer {
    pub fn new(
        client: Client,
        signers: Vec<String>,
        ca: Arc<CaSource>,
        lifetimes: SignerLifetimes,
        metrics: Metrics,
    ) -> Self {
        Signer {
            client,
            signers,
            ca,
            lifetimes,
            metrics,
        }
    }
}

impl Signer {
    /// Whether this process signs CSRs of `signer`.
    pub fn serves(&self, signer: &str) -> bool {
        self.signers.iter().any(|s| s == signer)
    }

    /// The signer names this process signs for.
    pub fn signer_names(&self) -> &[String] {
        &self.signers
    }

    /// The CA as mounted now (a rotated Secret signs from the next certificate on).
    pub fn ca(&self) -> Arc<super::ca::SigningCa> {
        self.ca.current()
    }

    /// The lifetimes of `signer_name`'s certificates.
    pub fn lifetimes(&self, signer_name: &str) -> super::issue::Lifetimes {
        self.lifetimes.for_signer(signer_name)
    }
}

/// True when the signer should sign `csr` now (it still reads its request).
pub fn due(csr: &CertificateSigningRequest) -> bool {
    state_of(csr) == CsrState::Approved
}

/// Signs one CSR of its signers, if it is due.
pub async fn reconcile(
    csr: Arc<CertificateSigningRequest>,
    ctx: Arc<Signer>,
) -> Result<Action, SignError> {
    if !ctx.serves(&csr.spec.signer_name) || !due(&csr) {
        return Ok(Action::await_change());
    }
    let name = csr.name_any();
    let outcome = match cut_request_bytes(&csr) {
        Some(size) => Err(too_large(size)),
        None => {
            let usages = csr.spec.usages.clone().unwrap_or_default();
            // Read afresh: a CA rotated in the mounted Secret signs from the next CSR on.
            let ca = ctx.ca.current();
            issue(
                &csr.spec.request.0,
                &usages,
                csr.spec.expiration_seconds,
                &ca,
                ctx.lifetimes.for_signer(&csr.spec.signer_name),
                unix_now(),
            )
        }
    };
    match outcome {
        Ok(chain) => {
            if write_status(&ctx, &csr, |status| {
                status.certificate = Some(ByteString(chain.clone().into_bytes()))
            })
            .await?
            {
                info!(csr = %name, "signed CSR {name} (signer {})", csr.spec.signer_name);
                ctx.metrics.signed(true);
            }
        }
        Err(Refusal { reason, message }) => {
            let condition = failed(reason, &message);
            if write_status(&ctx, &csr, |status| {
                status
                    .conditions
                    .get_or_insert_with(Vec::new)
                    .push(condition.clone())
            })
            .await?
            {
                warn!(csr = %name, reason, "failed CSR {name}: {message}");
                ctx.metrics.signed(false);
            }
        }
    }
    Ok(Action::await_change())
}

/// The refusal of a request too large to be cached (approved by someone else).
fn too_large(size: usize) -> Refusal {
    request_refusal(crate::approver::requested::RequestedError::TooLarge(size))
}

fn failed(reason: &str, message: &str) -> CertificateSigningRequestCondition {
    let now = Time(Timestamp::now());
    CertificateSigningRequestCondition {
        type_: "Failed".into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(format!("certboot signer: {message}")),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// Writes the status on the CSR as the API server has it now (never the trimmed cached copy:
/// `/status` keeps the metadata it is sent, and the cache drops other tools' labels and
/// annotations), with the resourceVersion read. A 409 reads it afresh; one that has a
/// certificate, a Failed condition or is gone by then is left alone (`false`).
async fn write_status(
    ctx: &Signer,
    csr: &CertificateSigningRequest,
    change: impl Fn(&mut CertificateSigningRequestStatus),
) -> Result<bool, SignError> {
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    let name = csr.name_any();
    for _ in 0..2 {
        let fresh = with_retry_for(&Operation::csr("get", &name), CALL_BUDGET, || {
            api.get_opt(&name)
        })
        .await?;
        let mut updated = match fresh {
            Some(fresh) if due(&fresh) && fresh.uid() == csr.uid() => fresh,
            _ => return Ok(false),
        };
        change(
            updated
                .status
                .get_or_insert_with(CertificateSigningRequestStatus::default),
        );
        let op = Operation::csr("update", &format!("{name}/status"));
        let params = PostParams::default();
        match with_retry_for(&op, CALL_BUDGET, || {
            api.replace_status(&name, &params, &updated)
        })
        .await
        {
            Ok(_) => return Ok(true),
            Err(e) if e.code == Some(409) => {}
            Err(e) if e.code == Some(404) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
    Err(SignError::Conflict(name))
}
