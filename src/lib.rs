//! certboot: gives a Kubernetes pod its own TLS identity through the certificates.k8s.io/v1 CSR API.
//!
//! One module per concept, in the order of the flow:
//! [`config`] → [`key`] → [`request`] → [`csr`] → [`submit`] → [`wait`] → [`verify`] → [`store`],
//! tied together by [`certify`]; [`rotate`] renews in sidecar mode. [`error`] maps every failure to
//! its documented exit code.

pub mod api;
pub mod certify;
pub mod check;
pub mod cli;
pub mod config;
pub mod csr;
pub mod dryrun;
pub mod error;
pub mod events;
pub mod help;
pub mod key;
pub mod logging;
pub mod metrics;
pub mod reload;
pub mod request;
pub mod resolve;
pub mod rotate;
pub mod store;
pub mod submit;
pub mod termination;
pub mod timefmt;
pub mod verify;
pub mod wait;
pub mod yaml;

pub mod approver;
pub mod controller;
