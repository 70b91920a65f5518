//! The on-disk layout and command-line flags of one control plane: ports, the harness PKI,
//! the static token file, the audit policy, and the flags of etcd, kube-apiserver and
//! kube-controller-manager (and kube-scheduler, with [`ControlPlaneOptions::workload_controllers`])
//! that matter for certboot's tests, for each Kubernetes version the test bed builds (v1.20 and
//! the newest; see `scripts/testenv.sh`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::clients::Endpoint;
use super::control_plane::{
    ControlPlaneOptions, ADMIN_USER, CONTROLLER_MANAGER_USER, SCHEDULER_USER,
};
use super::pki::{new_p256_key, Ca};
use super::process::free_port;
use super::version::KubeVersion;

/// Ports picked for one control plane.
pub struct Ports {
    pub etcd_client: u16,
    pub etcd_peer: u16,
    pub apiserver: u16,
    pub controller_manager: u16,
    pub scheduler: u16,
}

/// Files written before anything starts.
pub struct Files {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub service_account_key: PathBuf,
    pub service_account_public_key: PathBuf,
    pub token_file: PathBuf,
    pub audit_policy: PathBuf,
    pub audit_log: PathBuf,
    pub controller_manager_kubeconfig: PathBuf,
    pub scheduler_kubeconfig: PathBuf,
}

impl Ports {
    pub fn pick() -> Ports {
        Ports {
            etcd_client: free_port(),
            etcd_peer: free_port(),
            apiserver: free_port(),
            controller_manager: free_port(),
            scheduler: free_port(),
        }
    }
}

impl Files {
    /// PKI, the static token file, the audit policy and the admin kubeconfig.
    pub fn write(root: &Path, ca: &Ca, endpoint: &Endpoint, admin_token: &str) -> Files {
        for sub in ["pki", "logs", "kubeconfigs", "credentials", "etcd"] {
            std::fs::create_dir_all(root.join(sub)).expect("create harness directories");
        }
        let (serving_cert, serving_key) = ca.issue_loopback_serving_cert();
        let controller_manager_token = random_token();
        let scheduler_token = random_token();
        let files = Files {
            ca_cert: endpoint.ca_path.clone(),
            ca_key: root.join("pki/ca.key"),
            serving_cert: root.join("pki/apiserver.crt"),
            serving_key: root.join("pki/apiserver.key"),
            service_account_key: root.join("pki/sa.key"),
            service_account_public_key: root.join("pki/sa.pub"),
            token_file: root.join("pki/tokens.csv"),
            audit_policy: root.join("audit-policy.yaml"),
            audit_log: root.join("audit.log"),
            controller_manager_kubeconfig: endpoint
                .write_token_kubeconfig(&root.join("kubeconfigs"), &controller_manager_token),
            scheduler_kubeconfig: endpoint
                .write_token_kubeconfig(&root.join("kubeconfigs"), &scheduler_token),
        };
        write_file(&files.ca_cert, ca.cert_pem());
        write_file(&files.ca_key, ca.key_pem());
        write_file(&files.serving_cert, &serving_cert);
        write_file(&files.serving_key, &serving_key);
        // v1.20 reads --service-account-key-file as public keys only (no PKCS#8 private key).
        let service_account_key = new_p256_key();
        write_file(
            &files.service_account_key,
            &service_account_key.serialize_pem(),
        );
        write_file(
            &files.service_account_public_key,
            &service_account_key.public_key_pem(),
        );
        let tokens = format!(
            "{admin_token},{ADMIN_USER},{ADMIN_USER},\"system:masters\"\n\
             {controller_manager_token},{CONTROLLER_MANAGER_USER},{CONTROLLER_MANAGER_USER},\"system:masters\"\n\
             {scheduler_token},{SCHEDULER_USER},{SCHEDULER_USER},\"system:masters\"\n"
        );
        write_file(&files.token_file, &tokens);
        write_file(&files.audit_policy, AUDIT_POLICY);
        files
    }
}

/// Every request at level Metadata, one event per request (ResponseComplete).
const AUDIT_POLICY: &str = "\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
";

pub fn etcd_args(root: &Path, ports: &Ports) -> Vec<OsString> {
    let client = format!("http://127.0.0.1:{}", ports.etcd_client);
    let peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
    args([
        "--name=harness".to_owned(),
        format!("--data-dir={}", root.join("etcd").display()),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=harness={peer}"),
        "--initial-cluster-state=new".to_owned(),
    ])
}

pub fn apiserver_args(
    root: &Path,
    files: &Files,
    ports: &Ports,
    options: &ControlPlaneOptions,
    version: KubeVersion,
) -> Vec<OsString> {
    let mut list = args([
        format!("--etcd-servers=http://127.0.0.1:{}", ports.etcd_client),
        "--bind-address=127.0.0.1".to_owned(),
        "--advertise-address=127.0.0.1".to_owned(),
        format!("--secure-port={}", ports.apiserver),
        format!("--cert-dir={}", root.join("apiserver-certs").display()),
        format!("--tls-cert-file={}", files.serving_cert.display()),
        format!("--tls-private-key-file={}", files.serving_key.display()),
        format!("--client-ca-file={}", files.ca_cert.display()),
        format!("--token-auth-file={}", files.token_file.display()),
        // A node's kubelet is authorized as a node, as in a real cluster: only its own pods,
        // their Secrets, ConfigMaps, tokens and (1.37+) PodCertificateRequests.
        if options.node_controllers {
            "--authorization-mode=Node,RBAC".to_owned()
        } else {
            "--authorization-mode=RBAC".to_owned()
        },
        "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_owned(),
        format!(
            "--service-account-key-file={}",
            files.service_account_public_key.display()
        ),
        format!(
            "--service-account-signing-key-file={}",
            files.service_account_key.display()
        ),
        "--profiling=false".to_owned(),
        format!("--audit-policy-file={}", files.audit_policy.display()),
        format!("--audit-log-path={}", files.audit_log.display()),
    ]);
    // The newest servers refuse a loopback --advertise-address for the `kubernetes` Service's
    // endpoints ("may not be in the loopback range"); nothing here uses that Service. v1.20
    // keeps the flags it was proven with.
    if version.has(21) {
        list.push("--endpoint-reconciler-type=none".into());
    }
    if options.node_controllers {
        list.push("--enable-admission-plugins=NodeRestriction".into());
    }
    if options.apiserver_verbosity > 0 {
        list.push(format!("--v={}", options.apiserver_verbosity).into());
    }
    list
}

pub fn controller_manager_args(
    root: &Path,
    files: &Files,
    ports: &Ports,
    options: &ControlPlaneOptions,
    version: KubeVersion,
) -> Vec<OsString> {
    let mut controllers = vec!["csrapproving", "csrsigning", "csrcleaner"];
    if options.node_controllers || options.workload_controllers {
        controllers.extend([
            "serviceaccount",
            "serviceaccount-token",
            "root-ca-cert-publisher",
        ]);
    }
    if options.workload_controllers {
        // Deployments and their ReplicaSets; nodelifecycle lifts the `not-ready` taint the
        // kubelet registers its Node with once the Node is Ready, as in a real cluster, so the
        // scheduler places pods there. garbagecollector deletes a deleted Deployment's
        // ReplicaSets and pods (owner references), which `helm uninstall` relies on.
        controllers.extend([
            "deployment",
            "replicaset",
            "nodelifecycle",
            "garbagecollector",
        ]);
    }
    let controllers = controllers.join(",");
    let mut list = args([
        format!(
            "--kubeconfig={}",
            files.controller_manager_kubeconfig.display()
        ),
        format!("--controllers={controllers}"),
        "--leader-elect=false".to_owned(),
        format!("--cluster-signing-cert-file={}", files.ca_cert.display()),
        format!("--cluster-signing-key-file={}", files.ca_key.display()),
        format!(
            "--cluster-signing-duration={}s",
            options.cluster_signing_duration.as_secs()
        ),
        "--bind-address=127.0.0.1".to_owned(),
        format!("--secure-port={}", ports.controller_manager),
        format!("--cert-dir={}", root.join("kcm-certs").display()),
        "--profiling=false".to_owned(),
    ]);
    if options.node_controllers || options.workload_controllers {
        list.push(format!("--root-ca-file={}", files.ca_cert.display()).into());
        list.push(
            format!(
                "--service-account-private-key-file={}",
                files.service_account_key.display()
            )
            .into(),
        );
    }
    // The insecure port (off here) and its flag were removed in 1.24.
    if !version.has(24) {
        list.push("--port=0".into());
    }
    list
}

/// kube-scheduler, run only with [`ControlPlaneOptions::workload_controllers`]: its own static
/// token (user [`SCHEDULER_USER`]), no leader election, `/healthz` on `ports.scheduler`.
pub fn scheduler_args(
    root: &Path,
    files: &Files,
    ports: &Ports,
    version: KubeVersion,
) -> Vec<OsString> {
    let mut list = args([
        format!("--kubeconfig={}", files.scheduler_kubeconfig.display()),
        "--leader-elect=false".to_owned(),
        "--bind-address=127.0.0.1".to_owned(),
        format!("--secure-port={}", ports.scheduler),
        format!("--cert-dir={}", root.join("scheduler-certs").display()),
        "--profiling=false".to_owned(),
    ]);
    // The insecure port (10251 by default: off here, tests run side by side) and its flag were
    // removed in 1.23.
    if !version.has(23) {
        list.push("--port=0".into());
    }
    list
}

fn args<const N: usize>(list: [String; N]) -> Vec<OsString> {
    list.into_iter().map(OsString::from).collect()
}

/// 32 random hex characters from the OS.
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn write_file(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
