//! [`Node`]: a real Kubernetes node beside the harness's control plane: Debian's containerd
//! (private root, state, socket; the CRI plugin with a local pause image, runc, the CNI bridge
//! plugin) and the kubelet of `KUBEBUILDER_ASSETS`, both in a network namespace of the node's
//! own (see [`netns`]) that reaches the API server only through the harness's relay
//! ([`bridge`]). Images come from `scripts/node-images.sh` (no registry); the pods of README.md
//! and manifests/examples/ run with their own image names, bound to the node by `nodeName`.
//!
//! ```ignore
//! let Some((cp, node)) = harness::node::cluster().await else { return }; // SKIPPED outside CI
//! ```
//!
//! With [`workload_cluster`] the control plane also runs kube-scheduler and the Deployment and
//! ReplicaSet controllers, so Deployments (e.g. a Helm chart's) get their pods scheduled onto the
//! node ([`workloads`]).
//!
//! Dropping the node kills what it started and removes everything it made ([`cleanup`]), also
//! when the test panics; a node left by a killed test process is swept by the next one.

pub mod bridge;
pub mod cleanup;
pub mod config;
pub mod images;
pub mod netns;
pub mod pods;
pub mod preflight;
pub mod workloads;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node as NodeObject;
use kube::Api;

use super::control_plane::{ControlPlane, ControlPlaneOptions};
use super::process::Component;
use super::version::KubeVersion;
use bridge::Bridge;

const READY_DEADLINE: Duration = Duration::from_secs(120);
const PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// A running node; see the module docs.
pub struct Node {
    name: String,
    version: KubeVersion,
    dir: PathBuf,
    client: kube::Client,
    containerd: Mutex<Component>,
    kubelet: Mutex<Component>,
    bridge: Option<Bridge>,
}

/// The control plane options a node needs (service accounts, their tokens, kube-root-ca.crt).
pub fn control_plane_options() -> ControlPlaneOptions {
    ControlPlaneOptions {
        node_controllers: true,
        ..ControlPlaneOptions::default()
    }
}

/// [`control_plane_options`] plus kube-scheduler and the Deployment and ReplicaSet controllers
/// ([`ControlPlaneOptions::workload_controllers`]).
pub fn workload_options() -> ControlPlaneOptions {
    ControlPlaneOptions {
        workload_controllers: true,
        ..control_plane_options()
    }
}

/// A control plane and a node: `None` after printing why (SKIPPED) when either cannot run here;
/// under `CI=true` that is a failure.
pub async fn cluster() -> Option<(ControlPlane, Node)> {
    cluster_with(control_plane_options()).await
}

/// [`cluster`] that runs Deployments ([`workload_options`]): returns once the node is Ready and
/// schedulable (kube-controller-manager's nodelifecycle controller has lifted the `not-ready`
/// taint the kubelet registers the Node with).
pub async fn workload_cluster() -> Option<(ControlPlane, Node)> {
    let (cp, node) = cluster_with(workload_options()).await?;
    node.wait_schedulable(READY_DEADLINE).await;
    Some((cp, node))
}

async fn cluster_with(options: ControlPlaneOptions) -> Option<(ControlPlane, Node)> {
    let tools = match std::env::var_os("KUBEBUILDER_ASSETS").filter(|v| !v.is_empty()) {
        // ControlPlane::start_with prints the usual SKIPPED line (or fails under CI=true).
        None => {
            let _ = ControlPlane::start_with(options).await;
            return None;
        }
        Some(assets) => preflight_or_skip(Path::new(&assets))?,
    };
    let cp = ControlPlane::start_with(options).await?;
    let node = Node::launch(&cp, &tools).await;
    Some((cp, node))
}

/// [`cluster`] with certboot's RBAC (manifests/rbac.yaml) applied in `namespace`.
pub async fn cluster_with_rbac(namespace: &str) -> Option<(ControlPlane, Node)> {
    let (cp, node) = cluster().await?;
    cp.apply_manifest_file(
        concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/rbac.yaml"),
        namespace,
    )
    .await;
    Some((cp, node))
}

/// A node for `cp` (which should run with [`control_plane_options`]).
pub async fn start(cp: &ControlPlane) -> Option<Node> {
    let assets = std::env::var_os("KUBEBUILDER_ASSETS")?;
    let tools = preflight_or_skip(Path::new(&assets))?;
    Some(Node::launch(cp, &tools).await)
}

fn preflight_or_skip(assets: &Path) -> Option<preflight::Tools> {
    match preflight::check(assets) {
        Ok(tools) => Some(tools),
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but the test node cannot run: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED node e2e: {why}");
            None
        }
    }
}

impl Node {
    async fn launch(cp: &ControlPlane, tools: &preflight::Tools) -> Node {
        static SWEEP: Once = Once::new();
        SWEEP.call_once(cleanup::sweep_leftovers);
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let started = Instant::now();
        let archives =
            images::archives(&tools.static_bin).unwrap_or_else(|e| panic!("node images: {e}"));
        let name = format!(
            "{}{}-{}",
            netns::PREFIX,
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(&name);
        for sub in [
            "logs",
            "cni",
            "cni-ipam",
            "pod-logs",
            "kubelet",
            "kubeconfigs",
        ] {
            std::fs::create_dir_all(dir.join(sub))
                .unwrap_or_else(|e| panic!("create {}: {e}", dir.join(sub).display()));
        }
        let version = cp.version();
        // The kubelet is `system:node:<name>`, authorized by the Node authorizer.
        let kubeconfig = cp.node_kubeconfig(&name);
        let log = |n: &str| dir.join(format!("logs/{n}.log"));
        let in_netns = |program: &Path, args: Vec<std::ffi::OsString>| {
            let mut all = vec![
                format!("--net={}", netns::path(&name).display()).into(),
                "--".into(),
                program.as_os_str().to_owned(),
            ];
            all.extend(args);
            all
        };
        let containerd_args = in_netns(
            Path::new("containerd"),
            vec!["--config".into(), dir.join("containerd.toml").into()],
        );
        let kubelet_args = in_netns(
            &tools.kubelet,
            config::kubelet_args(&dir, version, &name, &kubeconfig),
        );
        // From here on, Drop cleans up whatever has been made.
        let mut node = Node {
            containerd: Mutex::new(Component::new(
                "containerd",
                "nsenter".into(),
                containerd_args,
                log("containerd"),
            )),
            kubelet: Mutex::new(Component::new(
                "kubelet",
                "nsenter".into(),
                kubelet_args,
                log("kubelet"),
            )),
            name,
            version,
            dir,
            client: cp.admin_client(),
            bridge: None,
        };
        netns::create(&node.name).unwrap_or_else(|e| panic!("node network namespace: {e}"));
        let port = cp
            .url()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .expect("the control plane URL ends with its port");
        let binds = vec![
            SocketAddr::from(([127, 0, 0, 1], port)),
            SocketAddr::from((netns::SERVICE_IP, 443)),
        ];
        node.bridge = Some(
            Bridge::start(&node.name, binds, SocketAddr::from(([127, 0, 0, 1], port)))
                .unwrap_or_else(|e| panic!("API server relay into the node: {e}")),
        );
        node.write_files();
        node.start_containerd(&archives).await;
        node.start_kubelet().await;
        eprintln!(
            "harness: node {} (Kubernetes {version}, containerd, namespace {}) ready in {:.1?}",
            node.name,
            node.name,
            started.elapsed()
        );
        node
    }

    fn write_files(&self) {
        let write = |rel: &str, text: String| {
            let path = self.dir.join(rel);
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()))
        };
        write("containerd.toml", config::containerd_toml(&self.dir));
        write(
            "cni/10-certboot-node.conflist",
            config::cni_conflist(&self.dir),
        );
        write(
            "kubelet.yaml",
            config::kubelet_config(&self.dir, self.version),
        );
    }

    async fn start_containerd(&self, archives: &Path) {
        lock(&self.containerd).start();
        let socket = self.socket();
        self.wait_for(&self.containerd, "containerd to answer", || async {
            Command::new("ctr")
                .arg("--address")
                .arg(&socket)
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .await;
        images::import(&socket, archives).unwrap_or_else(|e| panic!("{e}"));
    }

    async fn start_kubelet(&self) {
        lock(&self.kubelet).start();
        let nodes = Api::<NodeObject>::all(self.client.clone());
        self.wait_for(&self.kubelet, "the Node to be Ready", || async {
            nodes
                .get_opt(&self.name)
                .await
                .ok()
                .flatten()
                .is_some_and(|n| node_ready(&n))
        })
        .await;
    }

    async fn wait_for<F, Fut>(&self, component: &Mutex<Component>, what: &str, mut probe: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        loop {
            if let Err(e) = lock(component).check_running() {
                panic!("node {}: {e}", self.name);
            }
            if probe().await {
                return;
            }
            if start.elapsed() > READY_DEADLINE {
                let component = lock(component);
                panic!(
                    "node {}: timed out after {READY_DEADLINE:?} waiting for {what} {}",
                    self.name,
                    component.log_tail_message()
                );
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    /// The Node's name (what pods put in `spec.nodeName`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cluster admin's client the node's helpers use.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The Kubernetes version of the kubelet (the control plane's).
    pub fn version(&self) -> KubeVersion {
        self.version
    }

    /// The node's directory (configuration, logs, kubelet and containerd state).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// containerd's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// "last lines of the kubelet's and containerd's logs", for assertion messages.
    pub fn log_tails(&self) -> String {
        format!(
            "{}\n{}",
            lock(&self.kubelet).log_tail_message(),
            lock(&self.containerd).log_tail_message()
        )
    }
}

fn node_ready(node: &NodeObject) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

impl Drop for Node {
    fn drop(&mut self) {
        lock(&self.kubelet).stop();
        lock(&self.containerd).stop();
        self.bridge.take();
        let problems = cleanup::clean_up(&self.name, &self.dir);
        if !problems.is_empty() {
            eprintln!(
                "harness: node {} not fully cleaned up: {problems:?}",
                self.name
            );
        }
        if std::env::var_os("CERTBOOT_E2E_KEEP").is_some() {
            eprintln!("harness: kept {}", self.dir.display());
        } else if let Err(e) = cleanup::remove_dir_unless_mounted(&self.dir) {
            eprintln!("harness: remove {}: {e}", self.dir.display());
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
