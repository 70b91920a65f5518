//! The controller's flow, top to bottom:
//!
//! 1. settings and policy, validated (a bad one exits 2 before any API call);
//! 2. the Kubernetes client; a policy maximum this API server cannot show the approver exits 2
//!    ([`server_version`]); then `/healthz`, `/readyz` and `/metrics`;
//! 3. wait to become the leader of the Lease (standing by, logged, while another replica leads);
//! 4. approve, and sign CSRs and PodCertificateRequests ([`crate::podcert`]), until SIGTERM (the
//!    Lease is released, so a standby takes over at once) or until the
//!    Lease is lost (exit 1: the kubelet restarts this replica as a standby).

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

use futures::FutureExt;
use tracing::{info, warn};

use super::csrs::{self, Jobs};

use super::endpoints::Health;
use super::leader::{Elector, LeaderError, LeaseSettings};
use super::metrics::Metrics;
use super::server_version::{self, ServerVersionError};
use super::settings::Settings;
use crate::approver::controller::Approver;
use crate::approver::policy::{Policy, PolicyError};
use crate::podcert::controller as podcert;
use crate::signer::controller::Signer;
use crate::signer::source::CaSource;
use certboot_core::api::ConnectError;
use certboot_core::config_error::ConfigError;
use certboot_core::exit_code as code;

/// Everything that ends the controller, each with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    #[error("policy error: {0}")]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Leader(Box<LeaderError>),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("signer CA error: {0}")]
    Ca(#[from] crate::signer::ca::CaError),
    #[error(transparent)]
    ServerVersion(#[from] ServerVersionError),
}

impl From<LeaderError> for ControllerError {
    fn from(e: LeaderError) -> Self {
        ControllerError::Leader(Box::new(e))
    }
}

impl ControllerError {
    /// 2 for configuration and policy (also a policy this API server cannot enforce: nothing was
    /// done), 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            ControllerError::Config(_) | ControllerError::Policy(_) | ControllerError::Ca(_) => {
                code::CONFIG
            }
            ControllerError::ServerVersion(e) if e.is_policy() => code::CONFIG,
            ControllerError::Connect(ConnectError::Proxy(_)) => code::CONFIG,
            _ => code::RUNTIME,
        }
    }

    pub fn exit(&self) -> ExitCode {
        ExitCode::from(self.exit_code())
    }
}

/// Steps 2-4, until `shutdown` completes or leadership is lost.
pub async fn run(
    settings: Settings,
    mut policy: Policy,
    shutdown: impl Future<Output = &'static str>,
) -> Result<(), ControllerError> {
    let signed: &[String] = settings
        .signing
        .as_ref()
        .map(|s| s.signer_names.as_slice())
        .unwrap_or_default();
    policy.mark_signed_here(signed);
    policy.check_pod_certificate_signers(signed)?;
    let ca = match &settings.signing {
        Some(signing) => Some(crate::signer::source::CaSource::load(
            signing.ca_dir.clone(),
        )?),
        None => None,
    };
    let client = certboot_core::api::client().await?;
    server_version::check(&client, &policy).await?;
    let metrics = Metrics::new();
    let health = {
        let metrics = metrics.clone();
        Health::new(move || metrics.render())
    };
    if let Some(addr) = settings.health_addr {
        tokio::spawn(health.clone().serve(addr));
    }
    health.set_ready(true);
    let policy = std::sync::Arc::new(policy);
    let approve = approve_and_sign(client.clone(), &settings, policy, ca, metrics.clone());
    let mut shutdown = std::pin::pin!(shutdown);
    if !settings.leader_election {
        info!("leader election is off (CERTBOOT_LEADER_ELECTION=false): run one replica only");
        metrics.set_leader(true);
        tokio::select! {
            () = approve => {}
            name = &mut shutdown => info!("received {name}; stopping"),
        }
        return Ok(());
    }
    let mut lease = LeaseSettings::new(
        &settings.namespace,
        &settings.lease_name,
        &settings.identity,
    );
    lease.lease_duration = settings.lease_duration;
    lease.renew_deadline = settings.lease_duration * 3 / 4;
    let mut elector = Elector::new(client, lease);
    tokio::select! {
        acquired = elector.acquire() => acquired?,
        name = &mut shutdown => {
            info!("received {name} while standing by; stopping");
            return Ok(());
        }
    }
    metrics.set_leader(true);
    let outcome = tokio::select! {
        () = approve => Ok(()),
        lost = elector.hold() => Err(lost),
        name = &mut shutdown => {
            info!("received {name}; releasing the lease and stopping");
            Ok(())
        }
    };
    metrics.set_leader(false);
    match outcome {
        Ok(()) => {
            elector.release().await;
            Ok(())
        }
        Err(lost) => {
            warn!("{lost}");
            Err(lost.into())
        }
    }
}

/// The approver and (when configured) the signer on one shared CSR watch per signer name, and
/// the signer's trust bundle publishers, until stopped.
async fn approve_and_sign(
    client: kube::Client,
    settings: &Settings,
    policy: Arc<Policy>,
    ca: Option<(CaSource, tokio::sync::watch::Receiver<String>)>,
    metrics: Metrics,
) {
    // The trust bundle is published from the start, whatever the caches do.
    let (signer, publish) = match (&settings.signing, ca) {
        (Some(signing), Some((ca, bundle))) => {
            let (signer, publish) = signer(
                client.clone(),
                signing,
                &policy,
                ca,
                bundle,
                metrics.clone(),
            );
            (Some(signer), publish.boxed())
        }
        _ => (None, std::future::pending().boxed()),
    };
    let mut names = policy.signer_names();
    names.extend(signer.iter().flat_map(|s| s.signer_names().to_vec()));
    names.sort();
    names.dedup();
    let watch = async {
        let approver = Approver::start(
            client.clone(),
            policy.clone(),
            metrics.clone(),
            &settings.identity,
        )
        .await;
        let pod_certificates = match (&approver, &signer) {
            (Some(approver), Some(signer)) => podcert::run(
                client.clone(),
                policy,
                signer.clone(),
                approver.clone(),
                metrics,
                &settings.identity,
            )
            .boxed(),
            _ => futures::future::ready(()).boxed(),
        };
        let jobs = Jobs { approver, signer };
        futures::future::join(csrs::run(client.clone(), names, jobs), pod_certificates).await;
    };
    futures::future::join(watch, publish).await;
}

/// The signer, and what keeps its CA and trust bundles current (the CA follows its mounted
/// Secret; the publishers follow the CA's bundle).
fn signer(
    client: kube::Client,
    signing: &super::settings::Signing,
    policy: &Policy,
    ca: CaSource,
    bundle: tokio::sync::watch::Receiver<String>,
    metrics: Metrics,
) -> (Arc<Signer>, impl Future<Output = ()> + Send) {
    let ca = Arc::new(ca);
    let follow = ca.clone().follow();
    let publish = futures::future::join(
        crate::signer::trust::keep_in_sync(
            client.clone(),
            signing.trust_namespaces.clone(),
            bundle.clone(),
            metrics.clone(),
        ),
        crate::signer::cluster_trust_bundle::keep_in_sync(
            client.clone(),
            signing.signer_names.clone(),
            bundle,
        ),
    );
    let own = crate::signer::issue::Lifetimes {
        default: i64::try_from(signing.default_lifetime.as_secs()).unwrap_or(i64::MAX),
        max: i64::try_from(signing.max_lifetime.as_secs()).unwrap_or(i64::MAX),
    };
    // Never beyond the maximum of the policy entry that approved the CSR.
    let lifetimes = crate::signer::lifetime::SignerLifetimes::new(own, policy);
    let signer = Signer::new(client, signing.signer_names.clone(), ca, lifetimes, metrics);
    let keep = async move {
        futures::future::join(follow, publish).await;
    };
    (Arc::new(signer), keep)
}
