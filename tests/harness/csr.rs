//! CertificateSigningRequest helpers acting as a cluster admin: approve/deny through the
//! `/approval` subresource (what `kubectl certificate approve|deny` does), waiting for a CSR
//! or its certificate, an auto-approver, and a [`CustomSigner`] that approves and issues
//! certificates for its own signerName with a harness CA.
//!
//! Background work runs as tokio tasks owned by a [`BackgroundTask`], aborted on drop (and by
//! the [`super::ControlPlane`] that started them when it drops).

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::ByteString;
use kube::api::{Api, ListParams, ObjectMeta, PostParams, WatchEvent, WatchParams};
use kube::Client;
use tokio::task::{AbortHandle, JoinSet};

use super::pki::Ca;

/// How long the helpers keep retrying a write that conflicts or fails (e.g. apiserver paused).
const WRITE_DEADLINE: Duration = Duration::from_secs(30);
/// Poll interval of the wait helpers.
const POLL: Duration = Duration::from_millis(50);

/// Which CSR [`wait_for_csr`] waits for.
#[derive(Clone, Copy, Debug)]
pub enum CsrSelector<'a> {
    /// The CSR with this name.
    Name(&'a str),
    /// The first CSR matching this label selector (e.g. `app=certboot`).
    Labels(&'a str),
}

/// A CSR object for `csr_pem` (PKCS#10 PEM) with the given signer and usages.
pub fn csr_object(
    name: &str,
    csr_pem: &str,
    signer_name: &str,
    usages: &[&str],
) -> CertificateSigningRequest {
    CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(csr_pem.as_bytes().to_vec()),
            signer_name: signer_name.to_owned(),
            usages: Some(usages.iter().map(|u| (*u).to_owned()).collect()),
            ..Default::default()
        },
        status: None,
    }
}

/// Approves a CSR (condition Approved=True) through the `/approval` subresource.
pub async fn approve_csr(
    client: &Client,
    name: &str,
    reason: &str,
    message: &str,
) -> CertificateSigningRequest {
    add_condition(client, name, "Approved", reason, message).await
}

/// Denies a CSR (condition Denied=True) through the `/approval` subresource.
pub async fn deny_csr(
    client: &Client,
    name: &str,
    reason: &str,
    message: &str,
) -> CertificateSigningRequest {
    add_condition(client, name, "Denied", reason, message).await
}

/// Waits until a CSR matching `selector` exists; panics after `deadline`.
pub async fn wait_for_csr(
    client: &Client,
    selector: CsrSelector<'_>,
    deadline: Duration,
) -> CertificateSigningRequest {
    let api = Api::<CertificateSigningRequest>::all(client.clone());
    poll_until(
        deadline,
        &format!("a CSR matching {selector:?}"),
        || async {
            match selector {
                CsrSelector::Name(name) => api.get_opt(name).await.ok().flatten(),
                CsrSelector::Labels(labels) => {
                    let list = api.list(&ListParams::default().labels(labels)).await.ok()?;
                    list.items.into_iter().next()
                }
            }
        },
    )
    .await
}

/// Waits until the named CSR has `status.certificate`; panics after `deadline` (or if it is
/// denied or failed).
pub async fn wait_for_certificate(
    client: &Client,
    name: &str,
    deadline: Duration,
) -> CertificateSigningRequest {
    let api = Api::<CertificateSigningRequest>::all(client.clone());
    poll_until(
        deadline,
        &format!("status.certificate of CSR {name}"),
        || async {
            let csr = api.get_opt(name).await.ok().flatten()?;
            if let Some(kind) = ["Denied", "Failed"]
                .into_iter()
                .find(|t| has_condition(&csr, t))
            {
                panic!("CSR {name} is {kind}: {:?}", csr.status);
            }
            issued_certificate(&csr).map(|_| csr)
        },
    )
    .await
}

/// The PEM in `status.certificate`, if set and non-empty.
pub fn issued_certificate(csr: &CertificateSigningRequest) -> Option<String> {
    let bytes = &csr.status.as_ref()?.certificate.as_ref()?.0;
    (!bytes.is_empty()).then(|| String::from_utf8_lossy(bytes).into_owned())
}

/// Whether the CSR carries condition `type_` with status "True".
pub fn has_condition(csr: &CertificateSigningRequest, type_: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conds| conds.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// A tokio task that is aborted when this handle drops.
pub struct BackgroundTask {
    abort: AbortHandle,
}

impl BackgroundTask {
    /// Spawns `future` on the current runtime.
    pub fn spawn(future: impl Future<Output = ()> + Send + 'static) -> Self {
        BackgroundTask {
            abort: tokio::spawn(future).abort_handle(),
        }
    }

    /// A handle that can abort the task independently of this owner.
    pub fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }
}

impl Drop for BackgroundTask {
    fn drop(&mut self) {
        self.abort.abort();
    }
}

/// Approves every undecided CSR with `signer_name` as soon as it appears (the controller-manager
/// then signs those of the kubernetes.io signers), until the handle drops.
pub fn auto_approver(client: Client, signer_name: &str) -> BackgroundTask {
    let signer_name = signer_name.to_owned();
    BackgroundTask::spawn(async move {
        let mut seen = HashSet::new();
        let mut work = JoinSet::new();
        let approver = client.clone();
        for_each_csr(client, &signer_name, move |csr| {
            while work.try_join_next().is_some() {}
            let name = csr.metadata.name.clone().unwrap_or_default();
            if is_undecided(csr) && seen.insert(name.clone()) {
                let client = approver.clone();
                work.spawn(async move {
                    approve_csr(
                        &client,
                        &name,
                        "HarnessAutoApprove",
                        "approved by the e2e harness",
                    )
                    .await;
                });
            }
        })
        .await;
    })
}

/// What a [`CustomSigner`] does with each CSR for its signerName.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignerBehaviour {
    /// Approve, then issue at once.
    Instant,
    /// Approve at once, issue after this delay.
    Delayed(Duration),
    /// Deny (reason `HarnessDenied`) and issue nothing.
    Deny,
    /// Leave approval to the test (e.g. [`approve_csr`]); issue once a CSR is approved.
    IssueWhenApproved,
    /// Approve at once, then write a hostile `status.certificate` (see [`HostileCertificate`]).
    Hostile(HostileCertificate),
}

/// What a hostile (or broken) signer puts into `status.certificate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostileCertificate {
    /// A `CERTIFICATE` PEM block whose body is not base64.
    GarbagePem,
    /// A valid PEM block whose body is not X.509 DER.
    NotX509,
    /// A valid certificate, but for another key than the request's.
    OtherKey,
    /// A certificate for the request that expired an hour ago.
    Expired,
    /// A certificate for the request that becomes valid only in an hour.
    NotYetValid,
    /// A certificate for the request with `basicConstraints CA:true`.
    CaCertificate,
    /// The signer's CA certificate first, then the leaf (the chain in the wrong order).
    ChainWrongOrder,
    /// A leaf for the request signed with the key of another leaf the CA issued (`CA:false`),
    /// followed by that leaf: names and signatures chain up to the CA, through a non-CA.
    ThroughNonCaLeaf,
}

impl HostileCertificate {
    /// The kinds kube-apiserver accepts in `status.certificate`: well-formed certificates that
    /// are wrong for the request. Only the client (certboot) can catch these.
    pub const ACCEPTED_BY_THE_API_SERVER: [HostileCertificate; 6] = [
        HostileCertificate::OtherKey,
        HostileCertificate::Expired,
        HostileCertificate::NotYetValid,
        HostileCertificate::CaCertificate,
        HostileCertificate::ChainWrongOrder,
        HostileCertificate::ThroughNonCaLeaf,
    ];

    /// The kinds kube-apiserver's validation refuses (422: "must contain at least one
    /// CERTIFICATE PEM block"): a signer cannot store them, so they never reach certboot.
    pub const REJECTED_BY_THE_API_SERVER: [HostileCertificate; 2] =
        [HostileCertificate::GarbagePem, HostileCertificate::NotX509];

    /// The `status.certificate` this kind writes for `request` (PKCS#10 PEM).
    pub fn certificate(
        self,
        ca: &Ca,
        request: &str,
        usages: &[String],
        lifetime: Duration,
    ) -> Result<String, String> {
        use std::time::SystemTime;
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        match self {
            HostileCertificate::GarbagePem => Ok(
                "-----BEGIN CERTIFICATE-----\nthis is *not* base64 at all!\n-----END CERTIFICATE-----\n"
                    .to_string(),
            ),
            HostileCertificate::NotX509 => Ok(
                "-----BEGIN CERTIFICATE-----\naGVsbG8sIEkgYW0gbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
                    .to_string(),
            ),
            HostileCertificate::OtherKey => {
                let (_, other) = super::pki::new_key_and_csr("someone-else", &[]);
                ca.sign_csr(&other, usages, lifetime)
            }
            HostileCertificate::Expired => {
                ca.sign_csr_with(request, usages, now - 2 * hour, now - hour, false)
            }
            HostileCertificate::NotYetValid => {
                ca.sign_csr_with(request, usages, now + hour, now + 2 * hour, false)
            }
            HostileCertificate::CaCertificate => {
                ca.sign_csr_with(request, usages, now - hour, now + lifetime, true)
            }
            HostileCertificate::ChainWrongOrder => {
                let leaf = ca.sign_csr(request, usages, lifetime)?;
                Ok(format!("{}{leaf}", ca.cert_pem()))
            }
            HostileCertificate::ThroughNonCaLeaf => {
                ca.sign_csr_through_leaf(request, usages, lifetime)
            }
        }
    }
}

/// A signer for a custom signerName (e.g. `example.com/test`) backed by a harness CA: it
/// approves each CSR and writes `status.certificate` (a leaf valid from five minutes ago for
/// `cert_lifetime`, subject and SANs from the request, usages mapped to (extended) key usage,
/// `CA:false`) through the `/status` subresource. Stops when dropped.
pub struct CustomSigner {
    signer_name: String,
    ca: Arc<Ca>,
    task: BackgroundTask,
}

impl CustomSigner {
    /// A signer that approves and issues at once.
    pub fn new(client: Client, signer_name: &str, cert_lifetime: Duration) -> Self {
        Self::with_behaviour(client, signer_name, cert_lifetime, SignerBehaviour::Instant)
    }

    /// A signer with the given behaviour.
    pub fn with_behaviour(
        client: Client,
        signer_name: &str,
        cert_lifetime: Duration,
        behaviour: SignerBehaviour,
    ) -> Self {
        let ca = Arc::new(Ca::new(&format!("harness signer {signer_name}")));
        let task = BackgroundTask::spawn(run_signer(
            client,
            signer_name.to_owned(),
            ca.clone(),
            cert_lifetime,
            behaviour,
        ));
        CustomSigner {
            signer_name: signer_name.to_owned(),
            ca,
            task,
        }
    }

    /// The signerName this signer serves.
    pub fn signer_name(&self) -> &str {
        &self.signer_name
    }

    /// The CA certificate (PEM) that issued certificates chain to.
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// See [`BackgroundTask::abort_handle`].
    pub fn abort_handle(&self) -> AbortHandle {
        self.task.abort_handle()
    }
}

/// The signer's event loop: decide undecided CSRs, issue approved ones (each once).
async fn run_signer(
    client: Client,
    signer_name: String,
    ca: Arc<Ca>,
    lifetime: Duration,
    behaviour: SignerBehaviour,
) {
    let mut decided = HashSet::new();
    let mut issued = HashSet::new();
    let mut work = JoinSet::new();
    let writer = client.clone();
    for_each_csr(client, &signer_name, move |csr| {
        while work.try_join_next().is_some() {}
        let name = csr.metadata.name.clone().unwrap_or_default();
        let client = writer.clone();
        let decides = behaviour != SignerBehaviour::IssueWhenApproved;
        if decides
            && is_undecided(csr)
            && decided.insert(csr.metadata.uid.clone().unwrap_or_else(|| name.clone()))
        {
            work.spawn(async move {
                match behaviour {
                    SignerBehaviour::Deny => {
                        deny_csr(
                            &client,
                            &name,
                            "HarnessDenied",
                            "denied by the e2e harness signer",
                        )
                        .await
                    }
                    _ => {
                        approve_csr(
                            &client,
                            &name,
                            "HarnessSignerApprove",
                            "approved by the e2e harness signer",
                        )
                        .await
                    }
                };
            });
        } else if has_condition(csr, "Approved")
            && issued_certificate(csr).is_none()
            // By UID: a CSR deleted and re-created under the same name is a new request.
            && issued.insert(csr.metadata.uid.clone().unwrap_or_else(|| name.clone()))
        {
            let delay = match behaviour {
                SignerBehaviour::Delayed(delay) => delay,
                _ => Duration::ZERO,
            };
            let ca = ca.clone();
            let hostile = match behaviour {
                SignerBehaviour::Hostile(kind) => Some(kind),
                _ => None,
            };
            work.spawn(async move {
                tokio::time::sleep(delay).await;
                issue(&client, &name, &ca, lifetime, hostile).await;
            });
        }
    })
    .await;
}

/// Signs the CSR's request and stores the certificate (or a Failed condition) in its status.
async fn issue(
    client: &Client,
    name: &str,
    ca: &Ca,
    lifetime: Duration,
    hostile: Option<HostileCertificate>,
) {
    let api = Api::<CertificateSigningRequest>::all(client.clone());
    retry_write(&format!("issue a certificate for CSR {name}"), || async {
        let mut csr = api.get(name).await?;
        let request = String::from_utf8_lossy(&csr.spec.request.0).into_owned();
        let usages = csr.spec.usages.clone().unwrap_or_default();
        let status = csr.status.get_or_insert_with(Default::default);
        let signed = match hostile {
            Some(kind) => kind.certificate(ca, &request, &usages, lifetime),
            None => ca.sign_csr(&request, &usages, lifetime),
        };
        match signed {
            Ok(pem) => status.certificate = Some(ByteString(pem.into_bytes())),
            Err(message) => status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(condition("Failed", "HarnessSignerFailed", &message)),
        }
        api.replace_status(name, &PostParams::default(), &csr).await
    })
    .await;
}

/// Appends a condition via `/approval`, re-reading and retrying on conflicts and errors.
async fn add_condition(
    client: &Client,
    name: &str,
    type_: &str,
    reason: &str,
    message: &str,
) -> CertificateSigningRequest {
    let api = Api::<CertificateSigningRequest>::all(client.clone());
    retry_write(&format!("set {type_} on CSR {name}"), || async {
        let mut csr = api.get(name).await?;
        let status = csr.status.get_or_insert_with(Default::default);
        status
            .conditions
            .get_or_insert_with(Vec::new)
            .push(condition(type_, reason, message));
        api.replace_subresource("approval", name, &PostParams::default(), &csr)
            .await
    })
    .await
}

fn condition(type_: &str, reason: &str, message: &str) -> CertificateSigningRequestCondition {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    CertificateSigningRequestCondition {
        type_: type_.to_owned(),
        status: "True".to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

fn is_undecided(csr: &CertificateSigningRequest) -> bool {
    !["Approved", "Denied", "Failed"]
        .iter()
        .any(|t| has_condition(csr, t))
}

/// Calls `handle` for every CSR with `signer_name`: all existing ones, then each watch event
/// (list + watch, re-listing after any error, e.g. while the apiserver is stopped). Never returns.
async fn for_each_csr(
    client: Client,
    signer_name: &str,
    mut handle: impl FnMut(&CertificateSigningRequest),
) {
    let api = Api::<CertificateSigningRequest>::all(client);
    let mut handle_matching = |csr: &CertificateSigningRequest| {
        if csr.spec.signer_name == signer_name {
            handle(csr);
        }
    };
    loop {
        let Ok(list) = api.list(&ListParams::default()).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        list.items.iter().for_each(&mut handle_matching);
        let version = list.metadata.resource_version.unwrap_or_default();
        let Ok(events) = api
            .watch(&WatchParams::default().timeout(60), &version)
            .await
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut events = events.boxed();
        while let Ok(Some(event)) = events.try_next().await {
            match event {
                WatchEvent::Added(csr) | WatchEvent::Modified(csr) => handle_matching(&csr),
                WatchEvent::Error(_) => break,
                WatchEvent::Deleted(_) | WatchEvent::Bookmark(_) => {}
            }
        }
    }
}

/// Repeats `attempt` until it succeeds; panics with the last error after [`WRITE_DEADLINE`].
async fn retry_write<T, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let start = Instant::now();
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(e) if start.elapsed() > WRITE_DEADLINE => {
                panic!("{what}: still failing after {WRITE_DEADLINE:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Polls `probe` every [`POLL`] until it yields a value; panics after `deadline`.
pub async fn poll_until<T, F, Fut>(deadline: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}
