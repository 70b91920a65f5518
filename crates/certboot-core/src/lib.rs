//! certboot-core: what both programs share, and nothing either owns. It depends on neither
//! program, and holds no kube runtime (no watcher, no controller):
//! - [`api`]: the Kubernetes client (proxy, connections), retries, and errors that say what to fix;
//! - [`csr`]: the CertificateSigningRequest object, its name and labels, and its state;
//! - [`identity`] and [`request`]: the pod, and what it asks for;
//! - [`pki`]: keys, PKCS#10 requests, the strict DER readers, and chain verification;
//! - [`logging`], [`timefmt`], [`signals`], [`endpoints`] (the one small HTTP server for health
//!   and metrics), [`config_error`], [`exit_code`] and [`version`].

pub mod api;
pub mod config_error;
pub mod csr;
pub mod endpoints;
pub mod exit_code;
pub mod identity;
pub mod logging;
pub mod pki;
pub mod request;
pub mod signals;
pub mod timefmt;
pub mod version;

/// Hostile PKCS#10 requests for the unit tests (shared with the controller's and the end-to-end
/// tests).
#[cfg(test)]
#[path = "../../../tests/hostile_csr/mod.rs"]
pub(crate) mod hostile_csr;
