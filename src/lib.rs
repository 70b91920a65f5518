//! certboot: gives a Kubernetes pod its own TLS identity through the certificates.k8s.io/v1 CSR API.
//!
//! Folders by concept, in the order of the flow:
//! [`config`] → [`pki`] (key, PKCS#10, verify) → [`csr`] (the object, submit, wait) over [`api`]
//! (client, retries, errors, Events) → [`store`], tied together by [`obtain`]; [`renew`] keeps the
//! certificate fresh in sidecar mode. [`error`] maps every failure to its documented exit code.

pub mod api;
pub mod check;
pub mod cli;
pub mod config;
pub mod csr;
pub mod dryrun;
pub mod endpoints;
pub mod error;
pub mod hardening;
pub mod help;
pub mod logging;
pub mod obtain;
pub mod pki;
pub mod renew;
pub mod signals;
pub mod store;
pub mod termination;
pub mod timefmt;

pub mod approver;
pub mod controller;
pub mod podcert;
pub mod signer;

/// Hostile PKCS#10 requests for the unit tests (shared with the end-to-end tests).
#[cfg(test)]
#[path = "../tests/hostile_csr/mod.rs"]
pub(crate) mod hostile_csr;
