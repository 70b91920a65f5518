//! [`ControlPlane`]: etcd + kube-apiserver + kube-controller-manager (the binaries in
//! `KUBEBUILDER_ASSETS`, from `scripts/testenv.sh oldest|newest`) on loopback with random ports,
//! in a temporary directory. Flags that differ between Kubernetes versions are chosen from the
//! version the binaries report (see [`super::version`]).
//!
//! Start-up: etcd (until `/health` answers), kube-apiserver (until `/readyz` is `ok` and the
//! `default` namespace exists), kube-controller-manager (until `/healthz` is `ok`), and with
//! [`ControlPlaneOptions::workload_controllers`] kube-scheduler (until `/healthz` is `ok`); every
//! wait has a deadline and panics with the tail of the component's log. Dropping the control
//! plane aborts the harness's background tasks, kills the processes and removes the directory
//! (kept, with its logs, when `CERTBOOT_E2E_KEEP` is set).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;
use tokio::task::AbortHandle;

use super::clients::{get_text, insecure_probe_client, Endpoint};
use super::csr::{self, BackgroundTask, CsrSelector, CustomSigner, SignerBehaviour};
use super::flags::{
    apiserver_args, controller_manager_args, etcd_args, random_token, scheduler_args, write_file,
    Files, Ports,
};
use super::manifests::{self, AppliedObject, ApplyOptions};
use super::pki::Ca;
use super::process::Component;
use super::version::{self, KubeVersion};

const SKIP_MESSAGE: &str =
    "SKIPPED e2e: KUBEBUILDER_ASSETS not set (run: export KUBEBUILDER_ASSETS=\"$(scripts/testenv.sh newest)\")";
const BINARIES: [&str; 3] = ["etcd", "kube-apiserver", "kube-controller-manager"];
const PROBE_INTERVAL: Duration = Duration::from_millis(50);
/// The admin's user name (static token, group `system:masters`).
pub const ADMIN_USER: &str = "harness-admin";
/// The controller-manager's user name (its own static token, so audit counts stay apart).
pub const CONTROLLER_MANAGER_USER: &str = "harness-controller-manager";
/// kube-scheduler's user name (its own static token).
pub const SCHEDULER_USER: &str = "harness-scheduler";
/// Lifetime of the service-account tokens the harness requests.
const SA_TOKEN_SECONDS: i64 = 24 * 3600;

/// Start-up knobs.
#[derive(Clone, Debug)]
pub struct ControlPlaneOptions {
    /// kube-controller-manager `--cluster-signing-duration` (lifetime of certificates it issues).
    pub cluster_signing_duration: Duration,
    /// How long each component may take to become ready.
    pub ready_deadline: Duration,
    /// kube-apiserver `--v` (0: its default). 1 logs, among others, each watcher the watch cache
    /// closes for falling behind ("Forcing watcher close due to unresponsiveness").
    pub apiserver_verbosity: u8,
    /// Also run the controllers a real node's pods need (`serviceaccount`: each namespace's
    /// `default` account; `serviceaccount-token`: the token Secrets a v1.20 kubelet mounts;
    /// `root-ca-cert-publisher`: the `kube-root-ca.crt` ConfigMap of projected token volumes).
    /// Set by [`super::node::Node`]'s tests.
    pub node_controllers: bool,
    /// Run Deployments as a cluster does: kube-scheduler (binary `kube-scheduler` beside the
    /// others, built by `scripts/testenv.sh`), and kube-controller-manager's `deployment`,
    /// `replicaset`, `nodelifecycle` (lifts the node's `not-ready` taint once it is Ready),
    /// `garbagecollector` (owner references) and the service-account controllers of
    /// `node_controllers`. Set by
    /// [`super::node::workload_options`].
    pub workload_controllers: bool,
}

impl Default for ControlPlaneOptions {
    fn default() -> Self {
        ControlPlaneOptions {
            cluster_signing_duration: Duration::from_secs(8760 * 3600),
            ready_deadline: Duration::from_secs(60),
            apiserver_verbosity: 0,
            node_controllers: false,
            workload_controllers: false,
        }
    }
}

/// A running control plane; see the module docs.
pub struct ControlPlane {
    version: KubeVersion,
    endpoint: Endpoint,
    admin_token: String,
    audit_log: PathBuf,
    ready_deadline: Duration,
    ports: Ports,
    etcd: Mutex<Component>,
    apiserver: Mutex<Component>,
    controller_manager: Mutex<Component>,
    /// kube-scheduler, with [`ControlPlaneOptions::workload_controllers`].
    scheduler: Option<Mutex<Component>>,
    tasks: Mutex<Vec<AbortHandle>>,
    /// The CA the API server trusts for client certificates (node identities).
    ca: Ca,
    dir: Option<tempfile::TempDir>,
}

impl ControlPlane {
    /// Starts a control plane with default options; `None` (after printing the SKIPPED line)
    /// when `KUBEBUILDER_ASSETS` is unset outside CI. Panics when `CI=true` and it is unset, when
    /// a binary is missing, or when a component does not become ready.
    pub async fn start() -> Option<ControlPlane> {
        Self::start_with(ControlPlaneOptions::default()).await
    }

    /// [`ControlPlane::start`] with options.
    pub async fn start_with(options: ControlPlaneOptions) -> Option<ControlPlane> {
        let assets = assets_dir()?;
        if options.workload_controllers {
            require_scheduler(&assets);
        }
        Some(Self::launch(&assets, options).await)
    }

    /// A control plane from the binaries in `assets` (rather than `KUBEBUILDER_ASSETS`), e.g.
    /// to compare two Kubernetes versions in one process.
    pub async fn start_from(assets: &Path, options: ControlPlaneOptions) -> ControlPlane {
        Self::launch(assets, options).await
    }

    /// [`ControlPlane::start`] for a test of `feature`, which Kubernetes has from `1.minor` on:
    /// on an older version prints `SKIPPED e2e on Kubernetes vX.Y.Z: <feature> needs 1.<minor>+`
    /// and returns `None` (a failure under `CI=true` with `CERTBOOT_E2E_K8S=newest`).
    pub async fn start_since(minor: u32, feature: &str) -> Option<ControlPlane> {
        if version::skip_unless(minor, feature) {
            return None;
        }
        Self::start().await
    }

    /// Prepares and boots a control plane; retries with fresh ports when a component could not
    /// bind its port (another process took it between picking and binding).
    async fn launch(assets: &Path, options: ControlPlaneOptions) -> ControlPlane {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let started = Instant::now();
            let plane = Self::prepare(assets, &options);
            match plane.boot().await {
                Ok(([etcd, apiserver, controller_manager], scheduler)) => {
                    eprintln!(
                        "harness: Kubernetes {} control plane at {} ready in {:.1?} (etcd \
                         {etcd:.1?}, kube-apiserver {apiserver:.1?}, kube-controller-manager \
                         {controller_manager:.1?}{})",
                        plane.version,
                        plane.url(),
                        started.elapsed(),
                        scheduler
                            .map(|d| format!(", kube-scheduler {d:.1?}"))
                            .unwrap_or_default()
                    );
                    return plane;
                }
                Err(e) if e.contains("address already in use") && attempt < ATTEMPTS => {
                    eprintln!("harness: port clash, retrying with new ports: {e}");
                }
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Picks ports and writes the PKI, token file, audit policy and kubeconfig; starts nothing.
    fn prepare(assets: &Path, options: &ControlPlaneOptions) -> ControlPlane {
        let version = version::of_assets(assets);
        let dir = tempfile::Builder::new()
            .prefix("certboot-e2e-")
            .tempdir()
            .expect("create temp dir");
        let root = dir.path();
        let ports = Ports::pick();
        let admin_token = random_token();
        let ca = Ca::new("certboot e2e harness CA");
        let endpoint = Endpoint {
            url: format!("https://127.0.0.1:{}", ports.apiserver),
            ca_pem: ca.cert_pem().to_owned(),
            ca_path: root.join("pki/ca.crt"),
        };
        let files = Files::write(root, &ca, &endpoint, &admin_token);
        let log = |name: &str| root.join(format!("logs/{name}.log"));
        let component = |name: &'static str, args| {
            Mutex::new(Component::new(name, assets.join(name), args, log(name)))
        };
        ControlPlane {
            etcd: component("etcd", etcd_args(root, &ports)),
            apiserver: component(
                "kube-apiserver",
                apiserver_args(root, &files, &ports, options, version),
            ),
            controller_manager: component(
                "kube-controller-manager",
                controller_manager_args(root, &files, &ports, options, version),
            ),
            scheduler: options.workload_controllers.then(|| {
                component(
                    "kube-scheduler",
                    scheduler_args(root, &files, &ports, version),
                )
            }),
            version,
            endpoint,
            admin_token,
            audit_log: files.audit_log.clone(),
            ready_deadline: options.ready_deadline,
            ports,
            tasks: Mutex::new(Vec::new()),
            ca,
            dir: Some(dir),
        }
    }

    /// Starts the components in order; returns how long each took to become ready.
    async fn boot(&self) -> Result<([Duration; 3], Option<Duration>), String> {
        let start = Instant::now();
        lock(&self.etcd).start();
        let etcd_port = self.ports.etcd_client;
        self.wait_ready(&self.etcd, || async move { etcd_healthy(etcd_port) })
            .await?;
        let etcd = start.elapsed();
        self.try_start_apiserver().await?;
        let apiserver = start.elapsed() - etcd;
        lock(&self.controller_manager).start();
        let url = format!("https://127.0.0.1:{}", self.ports.controller_manager);
        let probe = insecure_probe_client(&url);
        self.wait_ready(&self.controller_manager, || async {
            get_text(&probe, "/healthz")
                .await
                .is_ok_and(|body| body == "ok")
        })
        .await?;
        let controller_manager = start.elapsed() - etcd - apiserver;
        let scheduler = match &self.scheduler {
            None => None,
            Some(scheduler) => {
                let before = start.elapsed();
                lock(scheduler).start();
                let url = format!("https://127.0.0.1:{}", self.ports.scheduler);
                let probe = insecure_probe_client(&url);
                self.wait_ready(scheduler, || async {
                    get_text(&probe, "/healthz")
                        .await
                        .is_ok_and(|body| body == "ok")
                })
                .await?;
                Some(start.elapsed() - before)
            }
        };
        Ok(([etcd, apiserver, controller_manager], scheduler))
    }

    /// Polls `probe` until true; fails with the component's log tail if it exits or the
    /// deadline passes.
    async fn wait_ready<F, Fut>(
        &self,
        component: &Mutex<Component>,
        mut probe: F,
    ) -> Result<(), String>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        loop {
            lock(component).check_running()?;
            if probe().await {
                return Ok(());
            }
            if start.elapsed() > self.ready_deadline {
                let component = lock(component);
                return Err(format!(
                    "{} not ready after {:?} {}",
                    component.name(),
                    self.ready_deadline,
                    component.log_tail_message()
                ));
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    // ---- endpoint and identities -------------------------------------------------------

    /// The Kubernetes version of the running binaries.
    pub fn version(&self) -> KubeVersion {
        self.version
    }

    /// `https://127.0.0.1:PORT` of the apiserver.
    pub fn url(&self) -> &str {
        &self.endpoint.url
    }

    /// The CA file to trust for the apiserver (the harness CA; also its client CA and the
    /// controller-manager's signing CA for the kubernetes.io signers).
    pub fn apiserver_ca_pem_path(&self) -> &Path {
        &self.endpoint.ca_path
    }

    /// The same CA, PEM.
    pub fn apiserver_ca_pem(&self) -> &str {
        &self.endpoint.ca_pem
    }

    /// Static token of user [`ADMIN_USER`] (group `system:masters`).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The temporary directory holding PKI, logs, kubeconfigs and the audit log.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("temp dir lives until drop").path()
    }

    /// The apiserver endpoint (URL + CA) for building more clients.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// A client authenticating as the admin.
    pub fn admin_client(&self) -> Client {
        self.endpoint.token_client(&self.admin_token)
    }

    /// Writes a kubeconfig for `user_token` into `dir` (see [`Endpoint::write_token_kubeconfig`]).
    pub fn write_kubeconfig(&self, dir: &Path, user_token: &str) -> PathBuf {
        self.endpoint.write_token_kubeconfig(dir, user_token)
    }

    /// A TokenRequest token for `system:serviceaccount:<namespace>:<name>` (valid 24 h). Creates
    /// the namespace and the ServiceAccount if missing.
    pub async fn service_account_token(&self, namespace: &str, name: &str) -> String {
        let client = self.admin_client();
        self.create_namespace(namespace).await;
        let accounts = Api::<ServiceAccount>::namespaced(client, namespace);
        let account = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..Default::default()
            },
            ..Default::default()
        };
        match accounts.create(&PostParams::default(), &account).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => panic!("create ServiceAccount {namespace}/{name}: {e}"),
        }
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(SA_TOKEN_SECONDS),
                ..Default::default()
            }),
            ..Default::default()
        };
        let response: TokenRequest = accounts
            .create_subresource("token", name, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|e| panic!("TokenRequest for {namespace}/{name}: {e}"));
        response
            .status
            .and_then(|s| s.token)
            .expect("TokenRequest status.token")
    }

    /// A kubeconfig (in the control plane's directory) authenticating as the service account.
    pub async fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> PathBuf {
        let token = self.service_account_token(namespace, name).await;
        self.write_kubeconfig(&self.dir().join("kubeconfigs"), &token)
    }

    /// A client authenticating as the service account.
    pub async fn service_account_client(&self, namespace: &str, name: &str) -> Client {
        let token = self.service_account_token(namespace, name).await;
        self.endpoint.token_client(&token)
    }

    /// A client authenticating with a client certificate (PEMs are stored in the directory).
    pub fn client_cert_client(&self, cert_pem: &str, key_pem: &str) -> Client {
        let (cert, key) = self.store_credentials(cert_pem, key_pem);
        self.endpoint.cert_client(&cert, &key)
    }

    /// A kubeconfig authenticating with a client certificate.
    /// A kubeconfig with the identity of node `name` (`system:node:<name>` in `system:nodes`), a
    /// client certificate of the API server's client CA: what a kubelet holds after its TLS
    /// bootstrap. With [`ControlPlaneOptions::node_controllers`] the API server authorizes it
    /// as a node (`--authorization-mode=Node,RBAC`, NodeRestriction).
    pub fn node_kubeconfig(&self, name: &str) -> PathBuf {
        let (key_pem, csr_pem) =
            super::pki::new_key_and_csr(&format!("system:node:{name}"), &["system:nodes"]);
        let usages = ["digital signature".to_string(), "client auth".to_string()];
        let cert_pem = self
            .ca
            .sign_csr(&csr_pem, &usages, Duration::from_secs(86_400))
            .unwrap_or_else(|e| panic!("node {name}'s client certificate: {e}"));
        self.client_cert_kubeconfig(&cert_pem, &key_pem)
    }

    pub fn client_cert_kubeconfig(&self, cert_pem: &str, key_pem: &str) -> PathBuf {
        let (cert, key) = self.store_credentials(cert_pem, key_pem);
        self.endpoint
            .write_cert_kubeconfig(&self.dir().join("kubeconfigs"), &cert, &key)
    }

    fn store_credentials(&self, cert_pem: &str, key_pem: &str) -> (PathBuf, PathBuf) {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let cert = self.dir().join(format!("credentials/client-{n}.crt"));
        let key = self.dir().join(format!("credentials/client-{n}.key"));
        write_file(&cert, cert_pem);
        write_file(&key, key_pem);
        (cert, key)
    }

    // ---- objects ------------------------------------------------------------------------

    /// Applies a manifest into `namespace` (cluster-scoped names unchanged); see
    /// [`manifests::apply_manifest_file`]. Creates the namespace if missing.
    pub async fn apply_manifest_file(
        &self,
        path: impl AsRef<Path>,
        namespace: &str,
    ) -> Vec<AppliedObject> {
        self.apply_manifest_file_with(path, &ApplyOptions::new(namespace))
            .await
    }

    /// Applies a manifest with explicit options (e.g. a cluster-scoped name suffix).
    pub async fn apply_manifest_file_with(
        &self,
        path: impl AsRef<Path>,
        options: &ApplyOptions,
    ) -> Vec<AppliedObject> {
        self.create_namespace(&options.namespace).await;
        manifests::apply_manifest_file(&self.admin_client(), path.as_ref(), options).await
    }

    /// Creates a namespace (no error if it exists).
    pub async fn create_namespace(&self, name: &str) {
        manifests::create_namespace(&self.admin_client(), name).await;
    }

    // ---- CSRs ---------------------------------------------------------------------------

    /// Approves a CSR as the admin (`/approval` subresource).
    pub async fn approve_csr(
        &self,
        name: &str,
        reason: &str,
        message: &str,
    ) -> CertificateSigningRequest {
        csr::approve_csr(&self.admin_client(), name, reason, message).await
    }

    /// Denies a CSR as the admin (`/approval` subresource).
    pub async fn deny_csr(
        &self,
        name: &str,
        reason: &str,
        message: &str,
    ) -> CertificateSigningRequest {
        csr::deny_csr(&self.admin_client(), name, reason, message).await
    }

    /// Waits until a CSR matching `selector` exists.
    pub async fn wait_for_csr(
        &self,
        selector: CsrSelector<'_>,
        deadline: Duration,
    ) -> CertificateSigningRequest {
        csr::wait_for_csr(&self.admin_client(), selector, deadline).await
    }

    /// Waits until the CSR has `status.certificate`.
    pub async fn wait_for_certificate(
        &self,
        name: &str,
        deadline: Duration,
    ) -> CertificateSigningRequest {
        csr::wait_for_certificate(&self.admin_client(), name, deadline).await
    }

    /// Approves every CSR for `signer_name` until the handle (or the control plane) drops.
    pub fn auto_approver(&self, signer_name: &str) -> BackgroundTask {
        let task = csr::auto_approver(self.admin_client(), signer_name);
        self.track(task.abort_handle());
        task
    }

    /// A [`CustomSigner`] that approves and issues at once.
    pub fn custom_signer(&self, signer_name: &str, cert_lifetime: Duration) -> CustomSigner {
        self.custom_signer_with(signer_name, cert_lifetime, SignerBehaviour::Instant)
    }

    /// A [`CustomSigner`] with the given behaviour.
    pub fn custom_signer_with(
        &self,
        signer_name: &str,
        cert_lifetime: Duration,
        behaviour: SignerBehaviour,
    ) -> CustomSigner {
        let signer = CustomSigner::with_behaviour(
            self.admin_client(),
            signer_name,
            cert_lifetime,
            behaviour,
        );
        self.track(signer.abort_handle());
        signer
    }

    fn track(&self, task: AbortHandle) {
        lock(&self.tasks).push(task);
    }

    // ---- audit log ----------------------------------------------------------------------

    /// The audit log (JSON lines, level Metadata, stage ResponseComplete/Panic only).
    pub fn audit_log_path(&self) -> &Path {
        &self.audit_log
    }

    /// All audit events written so far.
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.audit_log).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// The audit events of `username`'s requests, one per request (a watch also logs
    /// ResponseStarted; events are deduplicated by auditID, the last stage wins).
    pub fn requests_by(&self, username: &str) -> Vec<serde_json::Value> {
        super::audit::one_per_request(
            self.audit_events()
                .into_iter()
                .filter(|e| e["user"]["username"] == username),
        )
    }

    /// How many API requests `username` made so far.
    pub fn count_requests_by(&self, username: &str) -> usize {
        self.requests_by(username).len()
    }

    // ---- fault injection ----------------------------------------------------------------

    /// Kills the apiserver (SIGKILL). Clients then get connection refused.
    pub fn stop_apiserver(&self) {
        lock(&self.apiserver).stop();
    }

    /// (Re)starts the apiserver on the same port with the same flags; returns when ready.
    pub async fn start_apiserver(&self) {
        self.try_start_apiserver()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    async fn try_start_apiserver(&self) -> Result<(), String> {
        lock(&self.apiserver).start();
        let admin = self.admin_client();
        self.wait_ready(&self.apiserver, || async {
            get_text(&admin, "/readyz")
                .await
                .is_ok_and(|body| body == "ok")
                && Api::<Namespace>::all(admin.clone())
                    .get_opt("default")
                    .await
                    .is_ok_and(|ns| ns.is_some())
        })
        .await
    }

    /// Freezes the apiserver (SIGSTOP): connections open but nothing answers.
    pub fn pause_apiserver(&self) {
        lock(&self.apiserver).pause();
    }

    /// Thaws the apiserver (SIGCONT).
    pub fn resume_apiserver(&self) {
        lock(&self.apiserver).resume();
    }

    /// Log file of a component: "etcd", "kube-apiserver", "kube-controller-manager" or
    /// "kube-scheduler".
    pub fn log_path(&self, component: &str) -> PathBuf {
        self.dir().join(format!("logs/{component}.log"))
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        lock(&self.tasks).drain(..).for_each(|task| task.abort());
        if let Some(scheduler) = &self.scheduler {
            lock(scheduler).stop();
        }
        lock(&self.controller_manager).stop();
        lock(&self.apiserver).stop();
        lock(&self.etcd).stop();
        if std::env::var_os("CERTBOOT_E2E_KEEP").is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("harness: kept {}", dir.keep().display());
            }
        }
    }
}

/// `KUBEBUILDER_ASSETS`, checked; `None` (SKIPPED printed) when unset outside CI.
fn assets_dir() -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS").filter(|v| !v.is_empty()) else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true but KUBEBUILDER_ASSETS is not set: CI must run the e2e tests (export KUBEBUILDER_ASSETS=\"$(scripts/testenv.sh newest)\")");
        }
        eprintln!("{SKIP_MESSAGE}");
        return None;
    };
    let dir = PathBuf::from(dir);
    for binary in BINARIES {
        let path = dir.join(binary);
        assert!(
            path.is_file(),
            "KUBEBUILDER_ASSETS: missing {} (run scripts/testenv.sh oldest|newest)",
            path.display()
        );
    }
    Some(dir)
}

/// kube-scheduler beside the other binaries (test beds made before it was added lack it).
fn require_scheduler(assets: &Path) {
    let path = assets.join("kube-scheduler");
    assert!(
        path.is_file(),
        "KUBEBUILDER_ASSETS: missing {} (needed to run Deployments; run scripts/testenv.sh \
         oldest|newest again: it builds only what a cached test bed lacks)",
        path.display()
    );
}

/// etcd's `/health` over plain HTTP (blocking, bounded by short timeouts).
fn etcd_healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let timeout = Duration::from_millis(500);
    let Ok(mut stream) =
        std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout)
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let request = format!("GET /health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let mut response = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut response).is_ok()
        && response.contains("\"health\":\"true\"")
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
