//! End-to-end test harness for certboot: a real Kubernetes control plane (etcd,
//! kube-apiserver and kube-controller-manager from `KUBEBUILDER_ASSETS`, the oldest or the newest
//! version `scripts/testenv.sh` builds) per test, plus helpers to act as the cluster admin around
//! the certboot binary.
//!
//! Use from an integration test file as `mod harness;`:
//!
//! ```ignore
//! mod harness;
//! use harness::ControlPlane;
//!
//! #[tokio::test]
//! async fn issues_a_certificate() {
//!     let Some(cp) = ControlPlane::start().await else { return }; // SKIPPED outside CI
//!     cp.apply_manifest_file("manifests/rbac.yaml", "default").await;
//!     let kubeconfig = cp.service_account_kubeconfig("default", "certboot").await;
//!     let _approver = cp.auto_approver("kubernetes.io/kube-apiserver-client");
//!     // run certboot with KUBECONFIG=kubeconfig ...
//! }
//! ```
//!
//! Each test starts its own control plane (about 5-10 s); everything it started is killed and
//! its temporary directory removed when it drops, also when the test panics.

#![allow(dead_code)] // each test crate uses a different part of the harness

pub mod audit;
pub mod clients;
pub mod control_plane;
pub mod controller_bin;
pub mod csr;
pub mod flags;
pub mod kubectl;
pub mod manifests;
pub mod node;
pub mod pki;
pub mod pods;
pub mod process;
pub mod version;

// Re-exports for convenience; a test crate uses some of them.
#[allow(unused_imports)]
pub use clients::Endpoint;
#[allow(unused_imports)]
pub use control_plane::{ControlPlane, ControlPlaneOptions, ADMIN_USER, CONTROLLER_MANAGER_USER};
#[allow(unused_imports)]
pub use csr::{
    csr_object, has_condition, issued_certificate, poll_until, BackgroundTask, CsrSelector,
    CustomSigner, HostileCertificate, SignerBehaviour,
};
#[allow(unused_imports)]
pub use manifests::{AppliedObject, ApplyOptions};
#[allow(unused_imports)]
pub use pki::{new_key_and_csr, Ca};
#[allow(unused_imports)]
pub use version::KubeVersion;

/// The starting point of certboot's e2e tests: a control plane with the project's own
/// `manifests/rbac.yaml` applied into `namespace`, a kubeconfig for its `certboot` service
/// account, and a scratch directory. `None` when the control plane is absent (test skipped).
pub async fn with_certboot_rbac(
    namespace: &str,
) -> Option<(ControlPlane, std::path::PathBuf, tempfile::TempDir)> {
    let cp = ControlPlane::start().await?;
    Some(certboot_rbac(cp, namespace, RBAC).await)
}

/// [`with_certboot_rbac`] plus the one rule `CERTBOOT_DELETE_CSR=true` needs (README, RBAC):
/// `delete` added to the ClusterRole's verbs.
pub async fn with_certboot_rbac_deleting(
    namespace: &str,
) -> Option<(ControlPlane, std::path::PathBuf, tempfile::TempDir)> {
    let cp = ControlPlane::start().await?;
    let rbac = rbac_with_delete(cp.dir());
    Some(certboot_rbac(cp, namespace, &rbac).await)
}

/// [`with_certboot_rbac`] for a test of `feature`, which Kubernetes has from `1.minor` on (see
/// [`ControlPlane::start_since`]).
pub async fn with_certboot_rbac_since(
    namespace: &str,
    minor: u32,
    feature: &str,
) -> Option<(ControlPlane, std::path::PathBuf, tempfile::TempDir)> {
    let cp = ControlPlane::start_since(minor, feature).await?;
    Some(certboot_rbac(cp, namespace, RBAC).await)
}

/// [`with_certboot_rbac_since`] with the `delete` rule of [`with_certboot_rbac_deleting`].
pub async fn with_certboot_rbac_since_deleting(
    namespace: &str,
    minor: u32,
    feature: &str,
) -> Option<(ControlPlane, std::path::PathBuf, tempfile::TempDir)> {
    let cp = ControlPlane::start_since(minor, feature).await?;
    let rbac = rbac_with_delete(cp.dir());
    Some(certboot_rbac(cp, namespace, &rbac).await)
}

/// The project's `manifests/rbac.yaml`.
pub const RBAC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/rbac.yaml");

/// `manifests/rbac.yaml` with `delete` added to the ClusterRole's verbs, written into `dir`.
pub fn rbac_with_delete(dir: &std::path::Path) -> std::path::PathBuf {
    use serde::Deserialize;
    let text = std::fs::read_to_string(RBAC).expect("read manifests/rbac.yaml");
    let mut docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde_yaml::Value::deserialize(doc).expect("rbac.yaml parses"))
        .filter(|doc| !doc.is_null())
        .collect();
    let role = docs
        .iter_mut()
        .find(|d| d["kind"] == "ClusterRole")
        .expect("rbac.yaml has a ClusterRole");
    let verbs = role["rules"][0]["verbs"]
        .as_sequence_mut()
        .expect("the ClusterRole's first rule has verbs");
    assert!(
        !verbs.iter().any(|v| v == "delete"),
        "rbac.yaml grants no delete by default"
    );
    verbs.push(serde_yaml::Value::from("delete"));
    let text: Vec<String> = docs
        .iter()
        .map(|d| serde_yaml::to_string(d).expect("YAML"))
        .collect();
    let path = dir.join("rbac-with-delete.yaml");
    std::fs::write(&path, text.join("---\n")).expect("write rbac-with-delete.yaml");
    path
}

async fn certboot_rbac(
    cp: ControlPlane,
    namespace: &str,
    rbac: impl AsRef<std::path::Path>,
) -> (ControlPlane, std::path::PathBuf, tempfile::TempDir) {
    cp.apply_manifest_file(rbac, namespace).await;
    let kubeconfig = cp.service_account_kubeconfig(namespace, "certboot").await;
    (cp, kubeconfig, tempfile::tempdir().expect("tempdir"))
}
