//! certboot-controller: the cluster-side half of certboot. One Deployment runs, behind leader
//! election on a Lease, the [`approver`] (a pod's CSR is approved only when it provably comes from
//! that pod), the [`signer`] (CSRs, from the cluster owner's CA; the trust bundle) and the
//! [`podcert`] signer (Kubernetes 1.37+ PodCertificateRequests, same policy and CA). It builds on
//! certboot-core and never on the pod program.
//!
//! [`settings`] reads the environment, [`leader`] holds the Lease, [`endpoints`] serves health and
//! metrics, [`metrics`] counts decisions, [`server_version`] checks at start that the API server
//! can show the approver what the policy bounds, [`csrs`] watches CSRs once for the approver and
//! the signer, [`cache`] trims what the caches keep, [`run`] ties them together.

pub mod cache;
pub mod csrs;
pub mod endpoints;
pub mod leader;
pub mod metrics;
pub mod run;
pub mod server_version;
pub mod settings;

pub mod approver;
pub mod podcert;
pub mod signer;

/// Hostile PKCS#10 requests for the unit tests (shared with the core's and the end-to-end tests).
#[cfg(test)]
#[path = "../../../tests/hostile_csr/mod.rs"]
pub(crate) mod hostile_csr;
