//! `certboot-controller`: the cluster-side half of certboot. One Deployment runs the approver
//! (and, with its issue, the signer) behind leader election on a Lease.
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
