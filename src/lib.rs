//! certboot: the init container and sidecar that give a Kubernetes pod its own TLS identity
//! through the certificates.k8s.io/v1 CSR API. It builds on certboot-core (the API client, the
//! CSR object, PKI, logging) and never on certboot-controller.
//!
//! Folders by concept, in the order of the flow:
//! [`config`] → [`csr`] (filing, waiting) with [`events`] on the pod → [`store`], tied together by
//! [`obtain`]; [`renew`] keeps the certificate fresh in sidecar mode; [`check`] and [`dryrun`] are
//! the other commands ([`cli`], [`help`]); [`hardening`] and [`termination`] guard the process.
//! [`error`] maps every failure to its documented exit code.

pub mod check;
pub mod cli;
pub mod config;
pub mod csr;
pub mod dryrun;
pub mod error;
pub mod events;
pub mod hardening;
pub mod help;
pub mod obtain;
pub mod renew;
pub mod store;
pub mod termination;
